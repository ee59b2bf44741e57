"""Rendering diagnoses: within Slack's limits whatever the evidence, and never a mention."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.models import ActionOption, CheckResult, Diagnosis, Risk, Status, Triage
from bot.render.diagnosis import render_diagnosis, render_progress, render_triage
from bot.render.terminal import diagnosis_text
from lab.slack import check_message

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def diagnosis(
    checks: int = 5,
    summary: str = "fine",
    status: Status = Status.CRITICAL,
    runbook: str = "circuit-breaker",
) -> Diagnosis:
    """A synthetic diagnosis with ``checks`` checks whose summaries are ``summary``."""
    results = tuple(
        CheckResult(f"XX-{i}", f"Check number {i}", status, summary, {"n": i}, ("prometheus",))
        for i in range(checks)
    )
    actions = (
        ActionOption("XX-A1", "Do the safe thing", Risk.LOW, allowed=True),
        ActionOption(
            "XX-A2", "Do the risky thing", Risk.HIGH, allowed=False, blocked_reason=summary
        ),
    )
    return Diagnosis(
        runbook,
        "Circuit breaker open",
        status,
        summary,
        results,
        actions,
        probable_cause=summary,
        runbook_url="https://example.com/rb.md",
        started_at=NOW,
        finished_at=NOW,
        guidance=(summary,),
    )


def accepted(reply_payload: dict[str, object]) -> bool:
    """Whether the emulator's Slack validation accepts the message."""
    return check_message(text=reply_payload["text"], blocks=reply_payload.get("blocks")) is None


def test_a_normal_diagnosis_is_accepted_with_fallback_text() -> None:
    """A diagnosis renders to a message Slack accepts, with a fallback naming the status."""
    payload = render_diagnosis(diagnosis()).to_slack()
    assert accepted(payload)
    assert str(payload["text"]).startswith("critical: Circuit breaker open")


def test_huge_evidence_is_trimmed_not_rejected() -> None:
    """Hundreds of long check lines still fit: the list ends with "…and N more"."""
    payload = render_diagnosis(diagnosis(checks=400, summary="x" * 2000)).to_slack()
    assert accepted(payload)
    assert "more" in str(payload["blocks"])


def test_hostile_text_is_escaped() -> None:
    """Mentions and links from systems are shown literally."""
    hostile = "<!channel> <@U123> <http://evil|click> *bold*"
    payload = render_diagnosis(diagnosis(summary=hostile)).to_slack()
    rendered = str(payload)
    assert "<!channel>" not in rendered
    assert "<@U123>" not in rendered
    assert "&lt;!channel&gt;" in rendered


def test_blocked_actions_show_their_reason_and_allowed_ones_are_buttons() -> None:
    """Allowed actions become buttons; blocked ones are listed with why."""
    blocks = render_diagnosis(diagnosis(summary="S3 is still failing")).to_slack()["blocks"]
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert any(b.get("value") == "circuit-breaker|XX-A1" for b in buttons)
    assert not any("XX-A2" in str(b.get("value")) for b in buttons)
    assert "XX-A2" in str(blocks)
    assert "S3 is still failing" in str(blocks)


def test_progress_marks_pending_checks_and_counts_done() -> None:
    """While running, finished checks show their verdict and the rest "checking…"."""
    plan = [("cb", f"XX-{i}", f"Check {i}") for i in range(3)]
    done = {("cb", "XX-0"): CheckResult("XX-0", "Check 0", Status.OK, "fine")}
    payload = render_progress("circuit-breaker", plan, done).to_slack()
    assert accepted(payload)
    assert "checking…" in str(payload["blocks"])
    assert "1 of 3 checks done" in str(payload["blocks"])


def test_triage_of_six_runbooks_fits_in_one_message() -> None:
    """`diagnose all` with every runbook critical and long summaries stays within limits."""
    triage = Triage(
        Status.CRITICAL,
        "Probable root: s3-throttling.",
        tuple(diagnosis(checks=6, summary="y" * 500, runbook=f"runbook-{i}") for i in range(6)),
        "s3-throttling",
        (),
    )
    assert accepted(render_triage(triage).to_slack())


def test_terminal_text_lists_checks_and_actions() -> None:
    """The CLI report shows each check with its mark and each action's verdict."""
    text = diagnosis_text(diagnosis(summary="open for 10 min"))
    assert "[CRIT] XX-0" in text
    assert "XX-A2" in text
    assert "blocked: open for 10 min" in text
