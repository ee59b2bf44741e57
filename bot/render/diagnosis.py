"""Diagnoses as Block Kit: pure functions from models to messages, always within Slack's limits.

Everything that came from a system or a user is escaped; long text is cut with
"…and N more" rather than letting Slack refuse the message; every message has fallback text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.ids import ActionId, BlockId
from bot.models import ActionOption, CheckResult, Diagnosis, Status, Triage
from bot.render.text import escape, truncate
from bot.replies import Reply

STATUS_ICON: Mapping[Status | None, str] = {
    Status.OK: ":large_green_circle:",
    Status.WARNING: ":large_yellow_circle:",
    Status.CRITICAL: ":red_circle:",
    Status.UNKNOWN: ":white_circle:",
    None: ":hourglass_flowing_sand:",
}
SECTION_LIMIT = 3000
LINE_LIMIT = 300
HEADER_LIMIT = 150
MAX_BUTTONS = 5  # a short row: Slack allows 25, a phone shows about five


def icon(status: Status | None) -> str:
    """The emoji for a status (``None``: still running)."""
    return STATUS_ICON[status]


def check_line(check_id: str, title: str, result: CheckResult | None) -> str:
    """``:icon: *CB-1 Title* — summary`` (or "checking…" while pending)."""
    if result is None:
        return f"{icon(None)} *{check_id}* {escape(title)} — checking…"
    text = f"{icon(result.status)} *{check_id}* {escape(title)} — {escape(result.summary)}"
    return truncate(text, LINE_LIMIT)


def bounded_lines(lines: Sequence[str], limit: int = SECTION_LIMIT) -> str:
    """Join ``lines`` into at most ``limit`` characters, ending "…and N more" if cut."""
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        rest = len(lines) - index
        suffix = len(f"\n…and {rest} more")
        if used + len(line) + 1 + suffix > limit:
            kept.append(f"…and {rest} more")
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)


def render_diagnosis(diagnosis: Diagnosis) -> Reply:
    """The full result of one runbook."""
    lines = [check_line(c.id, c.title, c) for c in diagnosis.checks]
    blocks: list[Block] = [
        HeaderBlock(
            block_id=BlockId.DIAGNOSIS_HEADER,
            text=truncate(f"{diagnosis.status.value.upper()}: {diagnosis.title}", HEADER_LIMIT),
        ),
        _section(BlockId.DIAGNOSIS_SUMMARY, _summary_text(diagnosis)),
        _section(BlockId.DIAGNOSIS_CHECKS, bounded_lines(lines)),
    ]
    blocked = [a for a in diagnosis.actions if not a.allowed]
    if blocked:
        blocks.append(_section(BlockId.DIAGNOSIS_BLOCKED, _blocked_text(blocked)))
    if diagnosis.guidance:
        guidance = "*Also consider:* " + " ".join(escape(g) for g in diagnosis.guidance)
        blocks.append(_section(BlockId.DIAGNOSIS_GUIDANCE, truncate(guidance, SECTION_LIMIT)))
    blocks.append(_actions(diagnosis))
    blocks.append(_context(diagnosis.finished_at, _sources_of(diagnosis.checks)))
    fallback = f"{diagnosis.status.value}: {diagnosis.title}. {diagnosis.summary}"
    return Reply(text=escape(fallback), blocks=tuple(blocks), response_type="in_channel")


def _summary_text(diagnosis: Diagnosis) -> str:
    # The summary already names the probable cause.
    return truncate(f"{icon(diagnosis.status)} {escape(diagnosis.summary)}", SECTION_LIMIT)


def _blocked_text(blocked: Sequence[ActionOption]) -> str:
    lines = [
        f":no_entry: *{a.id}* {escape(a.title)} — {escape(a.blocked_reason or 'blocked')}"
        for a in blocked
    ]
    return bounded_lines(["*Not offered now:*", *(truncate(line, LINE_LIMIT) for line in lines)])


def _actions(diagnosis: Diagnosis) -> ActionsBlock:
    buttons = [
        ButtonElement(
            text="Open runbook", url=diagnosis.runbook_url, action_id=ActionId.OPEN_RUNBOOK
        )
    ]
    allowed = [a for a in diagnosis.actions if a.allowed][:MAX_BUTTONS]
    for action in allowed:
        buttons.append(
            ButtonElement(
                text=truncate(f"{action.id}: {action.title}", 75),
                action_id=f"{ActionId.REQUEST_ACTION}:{action.id}",
                value=f"{diagnosis.runbook}|{action.id}",
                style="danger" if action.risk.value == "high" else None,
            )
        )
    return ActionsBlock(block_id=BlockId.DIAGNOSIS_ACTIONS, elements=buttons)


def _context(at: datetime, sources: Sequence[str]) -> ContextBlock:
    used = ", ".join(sources) if sources else "none"
    text = f"Data as of {at:%Y-%m-%d %H:%M:%S} UTC · sources: {escape(used)}"
    return ContextBlock(
        block_id=BlockId.DIAGNOSIS_CONTEXT, elements=[MarkdownTextObject(text=text)]
    )


def _sources_of(checks: Sequence[CheckResult]) -> list[str]:
    return sorted({source for check in checks for source in check.sources})


def _section(block_id: str, text: str) -> SectionBlock:
    return SectionBlock(block_id=block_id, text=MarkdownTextObject(text=text))


def render_progress(
    title: str, plan: Sequence[tuple[str, str, str]], results: Mapping[tuple[str, str], CheckResult]
) -> Reply:
    """The message while checks run: every planned ``(runbook, check id, title)`` with its
    verdict so far, pending ones marked as checking."""
    done = sum(1 for runbook, check_id, _ in plan if (runbook, check_id) in results)
    lines = [check_line(cid, t, results.get((rb, cid))) for rb, cid, t in plan]
    blocks: list[Block] = [
        HeaderBlock(
            block_id=BlockId.DIAGNOSIS_HEADER, text=truncate(f"Diagnosing: {title}", HEADER_LIMIT)
        ),
        _section(BlockId.DIAGNOSIS_CHECKS, bounded_lines(lines)),
        ContextBlock(
            block_id=BlockId.DIAGNOSIS_CONTEXT,
            elements=[MarkdownTextObject(text=f"{done} of {len(plan)} checks done")],
        ),
    ]
    return Reply(
        text=f"Diagnosing {escape(title)}: {done}/{len(plan)} checks done",
        blocks=tuple(blocks),
        response_type="in_channel",
    )


def render_triage(triage: Triage) -> Reply:
    """``diagnose all``: the ranking, the probable root, and each runbook's worst checks."""
    blocks: list[Block] = [
        HeaderBlock(
            block_id=BlockId.DIAGNOSIS_HEADER,
            text=f"{triage.status.value.upper()}: Streamhouse triage (all runbooks)",
        ),
        _section(BlockId.DIAGNOSIS_SUMMARY, f"{icon(triage.status)} {escape(triage.summary)}"),
        DividerBlock(),
    ]
    for diagnosis in triage.diagnoses:
        blocks.append(
            _section(f"{BlockId.TRIAGE_RUNBOOK}-{diagnosis.runbook}", _triage_entry(diagnosis))
        )
    checks = [check for diagnosis in triage.diagnoses for check in diagnosis.checks]
    finished = max((d.finished_at for d in triage.diagnoses), default=datetime.now().astimezone())
    blocks.append(_context(finished, _sources_of(checks)))
    fallback = f"{triage.status.value}: Streamhouse triage. {triage.summary}"
    return Reply(text=escape(fallback), blocks=tuple(blocks), response_type="in_channel")


def _triage_entry(diagnosis: Diagnosis) -> str:
    head = (
        f"{icon(diagnosis.status)} *<{diagnosis.runbook_url}|{escape(diagnosis.title)}>* "
        f"— {escape(diagnosis.summary)}"
    )
    worst = [c for c in diagnosis.checks if c.status is not Status.OK]
    worst.sort(key=lambda c: c.status.rank, reverse=True)
    lines = [head, *(f"    {check_line(c.id, c.title, c)}" for c in worst)]
    return bounded_lines(lines, limit=1200)


def render_thread_root(title: str, outcome: Diagnosis | Triage | None) -> Reply:
    """The channel message that heads a diagnosis thread before (or without) an incident:
    "diagnosing…" while checks run, a one-line verdict when the system turned out healthy."""
    if outcome is None:
        text = f"{icon(None)} Diagnosing *{escape(title)}*… the checks report live in this thread."
        fallback = f"Diagnosing {title}…"
    else:
        text = (
            f"{icon(outcome.status)} *{outcome.status.value.upper()}* {escape(title)}: "
            f"{escape(outcome.summary)} No incident opened; the checks are in this thread."
        )
        fallback = f"{outcome.status.value}: {title}. {outcome.summary}"
    block = _section(BlockId.DIAGNOSIS_SUMMARY, truncate(text, SECTION_LIMIT))
    return Reply(text=escape(fallback), blocks=(block,), response_type="in_channel")
