"""Incidents as Block Kit: the thread's root message and the ``incident list``/``show`` replies.

Pure functions of ``Incident`` values. Titles, notes and anything else people or systems
wrote are escaped; only Slack user ids become mentions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.alerts.model import AlertSummary
from bot.ids import SLASH_COMMAND, BlockId
from bot.incidents import Incident, IncidentState
from bot.render.alerts import alerts_text
from bot.render.diagnosis import HEADER_LIMIT, LINE_LIMIT, SECTION_LIMIT, bounded_lines, icon
from bot.render.text import escape, truncate
from bot.replies import Reply

STATE_ICON: Mapping[IncidentState, str] = {
    IncidentState.OPEN: ":rotating_light:",
    IncidentState.ACKNOWLEDGED: ":eyes:",
    IncidentState.MITIGATING: ":hammer_and_wrench:",
    IncidentState.RESOLVED: ":white_check_mark:",
}
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_SLACK_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,20}$")


def render_incident_root(incident: Incident, alerts: AlertSummary | None = None) -> Reply:
    """The root message of the incident's thread: what, how bad, where it stands, who, and
    (for incidents opened by alerts) the alerts."""
    blocks: list[Block] = [
        HeaderBlock(
            block_id=BlockId.INCIDENT_HEADER,
            text=truncate(f"{incident.id}: {incident.title}", HEADER_LIMIT),
        ),
        _section(BlockId.INCIDENT_STATE, _state_line(incident)),
    ]
    if alerts is not None:
        blocks.append(_section(BlockId.INCIDENT_ALERTS, alerts_text(alerts)))
    blocks += [
        _section(BlockId.INCIDENT_PEOPLE, bounded_lines(_people_lines(incident))),
        ContextBlock(
            block_id=BlockId.INCIDENT_CONTEXT,
            elements=[MarkdownTextObject(text=_next_steps(incident))],
        ),
    ]
    fallback = f"{incident.id} {incident.state.value}: {incident.title} ({incident.status.value})"
    return Reply(text=escape(fallback), blocks=tuple(blocks), response_type="in_channel")


def render_incident_show(incident: Incident, permalink: str | None = None) -> Reply:
    """``incident show``: the root message's content, privately, with a link to the thread."""
    root = render_incident_root(incident)
    blocks = list(root.blocks)
    if permalink:
        link = f":thread: <{escape(permalink)}|Open the incident thread>"
        blocks.insert(3, _section(BlockId.INCIDENT_LIST, link))
    return Reply(text=root.text, blocks=tuple(blocks))


def render_incident_list(incidents: Sequence[Incident]) -> Reply:
    """``incident list``: every unresolved incident on one line each, oldest first."""
    if not incidents:
        text = ":sunny: No open incidents."
        return Reply(text="No open incidents.", blocks=(_section(BlockId.INCIDENT_LIST, text),))
    lines = [truncate(_list_line(incident), LINE_LIMIT) for incident in incidents]
    heading = f"*{len(incidents)} open incident(s)*"
    blocks = (_section(BlockId.INCIDENT_LIST, bounded_lines([heading, *lines])),)
    fallback = ", ".join(f"{i.id} {i.state.value}" for i in incidents)
    return Reply(text=escape(f"Open incidents: {fallback}"), blocks=blocks)


def render_incident_changed(incident: Incident) -> Reply:
    """The private confirmation after ``ack`` or ``resolve``."""
    text = f"{STATE_ICON[incident.state]} {incident.id} is now {incident.state.value}."
    if incident.resolution_note:
        text += f" Note: {escape(incident.resolution_note)}"
    text = truncate(text, SECTION_LIMIT)
    return Reply(text=text, blocks=(_section(BlockId.INCIDENT_STATE, text),))


def person(user_id: str | None) -> str:
    """A Slack user id as a mention; anything else (``None``, a CLI name) escaped."""
    if user_id is None:
        return "the bot"
    return f"<@{user_id}>" if _SLACK_USER_ID.match(user_id) else escape(user_id)


def _state_line(incident: Incident) -> str:
    parts = [
        f"{STATE_ICON[incident.state]} *{incident.state.value.capitalize()}*",
        f"{icon(incident.status)} diagnosis {incident.status.value}",
    ]
    if incident.runbook:
        parts.append(f"runbook `{escape(incident.runbook)}`")
    return "  ·  ".join(parts)


def _people_lines(incident: Incident) -> list[str]:
    lines = [f"Opened by {person(incident.opened_by)} {_when(incident.opened_at)}"]
    if incident.acknowledged_by or incident.acknowledged_at:
        lines.append(
            f"Acknowledged by {person(incident.acknowledged_by)} {_when(incident.acknowledged_at)}"
        )
    if incident.state is IncidentState.RESOLVED:
        line = f"Resolved by {person(incident.resolved_by)} {_when(incident.resolved_at)}"
        if incident.resolution_note:
            line += f": {escape(incident.resolution_note)}"
        lines.append(truncate(line, LINE_LIMIT))
    return lines


def _next_steps(incident: Incident) -> str:
    command = f"{SLASH_COMMAND} incident"
    if incident.state is IncidentState.RESOLVED:
        return "Resolved. The diagnosis and the audit trail stay in this thread."
    steps = [f"`{command} resolve {incident.id} [note]`"]
    if incident.state is IncidentState.OPEN:
        steps.insert(0, f"`{command} ack {incident.id}`")
    return "Diagnosis and audit trail in this thread · " + " · ".join(steps)


def _list_line(incident: Incident) -> str:
    where = f"<#{incident.channel}>" if _SLACK_CHANNEL_ID.match(incident.channel) else "a DM"
    return (
        f"{STATE_ICON[incident.state]} *{incident.id}* {escape(incident.title)} — "
        f"{incident.state.value}, {icon(incident.status)} {incident.status.value}, "
        f"opened {_when(incident.opened_at)} in {where}"
    )


def _when(at: datetime | None) -> str:
    return "" if at is None else f"at {at:%Y-%m-%d %H:%M}Z"


def _section(block_id: str, text: str) -> SectionBlock:
    return SectionBlock(block_id=block_id, text=MarkdownTextObject(text=text))
