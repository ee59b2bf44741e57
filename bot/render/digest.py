"""Health digests as Block Kit: the panels' status table, what changed, what is open now.

Pure functions. Everything people or systems wrote (titles, targets, alert names, notes) is
escaped; Slack user ids become mentions; times are Slack date tokens, so each reader sees
them in their own time zone (the fallback is UTC). A calm digest is one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.digests.content import ActionNote, Changes, FiringAlert, IncidentNote
from bot.digests.panels import Panel
from bot.models import Status
from bot.render.diagnosis import LINE_LIMIT, bounded_lines, icon
from bot.render.incident import person
from bot.render.text import code, escape, truncate
from bot.replies import Reply

HEADER_BLOCK = "digest-header"
PANELS_BLOCK = "digest-panels"
CHANGES_BLOCK = "digest-changes"
NOW_BLOCK = "digest-now"
CONTEXT_BLOCK = "digest-context"
FIELD_LIMIT = 2000
TITLE = "Streamhouse health digest"


def when(at: datetime) -> str:
    """``at`` as a Slack date token, shown in the reader's time zone."""
    fallback = f"{at:%Y-%m-%d %H:%M} UTC"
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def quiet_line(changes: Changes) -> str:
    """The whole of a calm digest."""
    return (
        f":large_green_circle: Streamhouse is healthy: all six panels ok, no open incident, "
        f"and nothing changed since {when(changes.since)}."
    )


def panel_field(panel: Panel) -> str:
    """One cell of the status table: status, title, value, and threshold or why unknown."""
    detail = f"unknown: {panel.note}" if panel.status is Status.UNKNOWN and panel.note else None
    lines = [
        f"{icon(panel.status)} *{escape(panel.title)}*: {escape(panel.value)}",
        f"_{escape(detail or panel.threshold)}_",
    ]
    return truncate("\n".join(lines), FIELD_LIMIT)


def incident_line(incident: IncidentNote, verb: str, links: Mapping[str, str]) -> str:
    """``Opened SH-3 title (by @alice)``, with the thread link when there is one."""
    who = incident.resolved_by if verb == "Resolved" else incident.opened_by
    return truncate(f"{verb} {named(incident, links)} by {person(who)}", LINE_LIMIT)


def named(incident: IncidentNote, links: Mapping[str, str]) -> str:
    """``*SH-3* title``, linked to its thread when the link is known."""
    title = escape(truncate(incident.title, 120))
    link = links.get(incident.id)
    return f"<{escape(link)}|{incident.id}> {title}" if link else f"*{incident.id}* {title}"


def action_line(action: ActionNote) -> str:
    """An executed action: what, on what, how it ended, who asked and who approved."""
    mark = ":white_check_mark:" if action.state == "succeeded" else ":x:"
    approved = f", approved by {person(action.approved_by)}" if action.approved_by else ""
    text = (
        f"{mark} {code(action.action_id)} on {code(action.target)} {action.state} "
        f"({action.incident_id}): asked by {person(action.requested_by)}{approved}"
    )
    return truncate(text, LINE_LIMIT)


def expired_line(action: ActionNote) -> str:
    """An approval nobody gave in time."""
    text = (
        f":hourglass: {code(action.action_id)} on {code(action.target)} ({action.incident_id}) "
        f"expired without a decision; asked by {person(action.requested_by)}"
    )
    return truncate(text, LINE_LIMIT)


def pending_line(action: ActionNote) -> str:
    """An approval still waiting."""
    text = (
        f":raised_hand: {code(action.action_id)} on {code(action.target)} ({action.incident_id}) "
        f"waits for approval until {when(action.expires_at)}; asked by "
        f"{person(action.requested_by)}"
    )
    return truncate(text, LINE_LIMIT)


def firing_line(alert: FiringAlert) -> str:
    """``3 firing: CircuitBreakerOpen (high)``."""
    text = f":bell: {alert.count} firing: {escape(alert.alertname)} ({escape(alert.severity)})"
    return truncate(text, LINE_LIMIT)


def change_lines(changes: Changes, links: Mapping[str, str]) -> list[str]:
    """What happened since the last digest, one line each."""
    lines = [f":rotating_light: {incident_line(i, 'Opened', links)}" for i in changes.opened]
    lines += [f":white_check_mark: {incident_line(i, 'Resolved', links)}" for i in changes.resolved]
    lines += [action_line(a) for a in changes.executed]
    lines += [expired_line(a) for a in changes.expired]
    return lines or ["Nothing changed."]


def now_lines(changes: Changes, links: Mapping[str, str]) -> list[str]:
    """What is open, waiting or firing right now."""
    lines = [
        truncate(f":large_orange_circle: {named(i, links)} is {i.state}", LINE_LIMIT)
        for i in changes.open_incidents
    ]
    lines += [pending_line(a) for a in changes.pending]
    lines += [firing_line(alert) for alert in changes.firing]
    return lines or ["No open incident, no approval waiting, no alert firing."]


def is_calm(panels: Sequence[Panel], changes: Changes) -> bool:
    """Every panel ok, nothing changed, nothing open: the digest is one line."""
    return changes.calm and all(panel.status is Status.OK for panel in panels)


def _section(block_id: str, text: str) -> SectionBlock:
    return SectionBlock(block_id=block_id, text=MarkdownTextObject(text=text))


def fallback_text(panels: Sequence[Panel], changes: Changes) -> str:
    """The notification text: the worst panels and the counts."""
    bad = [p for p in panels if p.status is not Status.OK]
    health = ", ".join(f"{p.title} {p.status.value}" for p in bad) or "all panels ok"
    return escape(
        f"{TITLE}: {health}; {len(changes.opened)} opened, {len(changes.resolved)} resolved, "
        f"{len(changes.open_incidents)} open, {len(changes.firing)} alert kind(s) firing"
    )


def render_digest(
    panels: Sequence[Panel],
    changes: Changes,
    links: Mapping[str, str],
    *,
    schedule: str,
    chart: bool,
) -> Reply:
    """The digest message; one line when nothing changed and every panel is ok."""
    if is_calm(panels, changes):
        line = quiet_line(changes)
        return Reply(text=line, blocks=(_section(HEADER_BLOCK, line),), response_type="in_channel")
    heading = f"*What changed since {when(changes.since)}*"
    footer = f"Schedule: {escape(schedule)}"
    if chart:
        footer = "Chart of the last 24 h in the thread · " + footer
    blocks: list[Block] = [
        HeaderBlock(block_id=HEADER_BLOCK, text=TITLE),
        SectionBlock(
            block_id=PANELS_BLOCK,
            fields=[MarkdownTextObject(text=panel_field(p)) for p in panels],
        ),
        _section(CHANGES_BLOCK, bounded_lines([heading, *change_lines(changes, links)])),
        _section(NOW_BLOCK, bounded_lines(["*Now*", *now_lines(changes, links)])),
        ContextBlock(block_id=CONTEXT_BLOCK, elements=[MarkdownTextObject(text=footer)]),
    ]
    return Reply(
        text=fallback_text(panels, changes), blocks=tuple(blocks), response_type="in_channel"
    )
