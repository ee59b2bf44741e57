"""Diagnoses as plain text for a terminal (the CLI twin of the Slack message)."""

from __future__ import annotations

import textwrap

from bot.models import CheckResult, Diagnosis, Status, Triage

MARK = {
    Status.OK: "ok  ",
    Status.WARNING: "WARN",
    Status.CRITICAL: "CRIT",
    Status.UNKNOWN: "????",
}
WIDTH = 100


def check_text(check: CheckResult) -> str:
    """``[CRIT] CB-1  Title: summary`` wrapped to the terminal width."""
    line = f"[{MARK[check.status]}] {check.id:<6} {check.title}: {check.summary}"
    return textwrap.fill(line, WIDTH, subsequent_indent=" " * 14)


def diagnosis_text(diagnosis: Diagnosis) -> str:
    """One runbook: status, summary, cause, checks, actions and where the runbook is."""
    lines = [
        f"{diagnosis.title}: {diagnosis.status.value.upper()}",
        f"  {diagnosis.summary}",
    ]
    if diagnosis.probable_cause:
        lines.append(f"  probable cause: {diagnosis.probable_cause}")
    lines += ["", *(check_text(check) for check in diagnosis.checks), ""]
    for action in diagnosis.actions:
        verdict = "offered" if action.allowed else f"blocked: {action.blocked_reason}"
        lines.append(
            textwrap.fill(
                f"  {action.id:<7} {action.title} ({action.risk.value} risk) — {verdict}",
                WIDTH,
                subsequent_indent=" " * 10,
            )
        )
    for advice in diagnosis.guidance:
        lines.append(textwrap.fill(f"  note: {advice}", WIDTH, subsequent_indent=" " * 8))
    lines.append(f"  runbook: {diagnosis.runbook_url}")
    return "\n".join(lines)


def triage_text(triage: Triage) -> str:
    """All runbooks, most severe first, after the root-cause reading."""
    head = [f"Streamhouse triage: {triage.status.value.upper()}", f"  {triage.summary}", ""]
    return "\n".join(head) + "\n\n".join(diagnosis_text(d) for d in triage.diagnoses)
