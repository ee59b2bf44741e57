"""What changed since a channel's last digest, from the bot's own database.

One read per digest run (``read_activity``) covers the earliest ``since`` of the channels
due; ``changes_for`` then picks each channel's part without another query. A first
digest (no ``since``) looks back ``FIRST_LOOKBACK``. Reported, for the whole system:

- incidents opened and resolved since then, and the ones still open (with their thread);
- actions executed (succeeded or failed), who asked and who approved;
- approval requests still waiting, and those that expired undecided since then;
- alerts firing now (table ``alerts``), counted by alert name and severity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import dict_row
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.store.db import Database

FIRST_LOOKBACK = timedelta(hours=24)
MAX_ROWS = 200

_INCIDENTS = """
    SELECT id, title, state, channel, thread_ts, opened_at, opened_by, resolved_at, resolved_by
    FROM incidents
    WHERE opened_at >= %(since)s OR resolved_at >= %(since)s OR state <> 'resolved'
    ORDER BY opened_at
    LIMIT %(limit)s
"""
_ACTIONS = """
    SELECT id, incident_id, action_id, target, state, requested_by, approved_by,
           coalesce(executed_at, decided_at, created_at) AS at, expires_at
    FROM action_requests
    WHERE (state IN ('succeeded', 'failed')
           AND coalesce(executed_at, decided_at, created_at) >= %(since)s)
       OR state = 'pending'
       OR (state = 'expired' AND expires_at >= %(since)s)
    ORDER BY created_at
    LIMIT %(limit)s
"""
_FIRING = """
    SELECT alertname, severity, count(*) AS count
    FROM alerts WHERE status = 'firing'
    GROUP BY alertname, severity
    ORDER BY count(*) DESC, alertname
    LIMIT %(limit)s
"""


@dataclass(frozen=True)
class IncidentNote:
    """An incident as the digest mentions it."""

    id: str
    title: str
    state: str
    channel: str
    thread_ts: str | None
    opened_at: datetime
    opened_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None


@dataclass(frozen=True)
class ActionNote:
    """An action request: executed, waiting for approval, or expired undecided."""

    id: str
    incident_id: str
    action_id: str
    target: str
    state: str
    requested_by: str
    approved_by: str | None
    at: datetime  # executed (or decided, or asked) at
    expires_at: datetime

    def expired_by(self, now: datetime) -> bool:
        """Expired, or still pending past its expiry (not yet swept)."""
        return self.state == "expired" or (self.state == "pending" and self.expires_at <= now)


@dataclass(frozen=True)
class FiringAlert:
    """Alerts of one name and severity firing now."""

    alertname: str
    severity: str
    count: int


@dataclass(frozen=True)
class Activity:
    """Everything any channel of this run may report, read at ``read_at``."""

    read_at: datetime
    incidents: tuple[IncidentNote, ...]
    actions: tuple[ActionNote, ...]
    firing: tuple[FiringAlert, ...]


@dataclass(frozen=True)
class Changes:
    """One channel's digest content besides the panels."""

    since: datetime
    opened: tuple[IncidentNote, ...]
    resolved: tuple[IncidentNote, ...]
    executed: tuple[ActionNote, ...]
    expired: tuple[ActionNote, ...]
    pending: tuple[ActionNote, ...]
    open_incidents: tuple[IncidentNote, ...]
    firing: tuple[FiringAlert, ...]

    @property
    def changed(self) -> bool:
        """Whether anything happened since the last digest."""
        return bool(self.opened or self.resolved or self.executed or self.expired)

    @property
    def calm(self) -> bool:
        """Nothing changed, and nothing is open, waiting or firing."""
        return not (self.changed or self.pending or self.open_incidents or self.firing)


def start_of(since: datetime | None, now: datetime) -> datetime:
    """Where a digest's "what changed" begins: its last digest, else ``FIRST_LOOKBACK`` ago."""
    return since if since is not None else now - FIRST_LOOKBACK


async def _rows(db: Database, query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    async with db.pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(query, params)
        return await cursor.fetchall()


async def read_activity(db: Database, since: datetime, now: datetime) -> Activity:
    """Incidents, actions and firing alerts that any digest starting at ``since`` needs."""
    params = {"since": since, "limit": MAX_ROWS}
    incidents, actions, firing = await asyncio.gather(
        _rows(db, _INCIDENTS, params), _rows(db, _ACTIONS, params), _rows(db, _FIRING, params)
    )
    return Activity(
        now,
        tuple(IncidentNote(**row) for row in incidents),
        tuple(ActionNote(**row) for row in actions),
        tuple(FiringAlert(**row) for row in firing),
    )


def changes_for(activity: Activity, since: datetime) -> Changes:
    """One channel's part of ``activity``: what happened after ``since`` and what is open."""
    now = activity.read_at
    incidents, actions = activity.incidents, activity.actions
    return Changes(
        since=since,
        opened=tuple(i for i in incidents if i.opened_at >= since),
        resolved=tuple(i for i in incidents if i.resolved_at and i.resolved_at >= since),
        executed=tuple(a for a in actions if a.state in ("succeeded", "failed") and a.at >= since),
        expired=tuple(a for a in actions if a.expired_by(now) and a.expires_at >= since),
        pending=tuple(a for a in actions if a.state == "pending" and not a.expired_by(now)),
        open_incidents=tuple(i for i in incidents if i.state != "resolved"),
        firing=activity.firing,
    )


async def thread_links(slack: AsyncWebClient, incidents: Sequence[IncidentNote]) -> dict[str, str]:
    """Each incident's thread permalink (``chat.getPermalink``); none where Slack says no."""

    async def link(incident: IncidentNote) -> tuple[str, str | None]:
        if incident.thread_ts is None:
            return incident.id, None
        try:
            answer = await slack.chat_getPermalink(
                channel=incident.channel, message_ts=incident.thread_ts
            )
        except SlackApiError:
            return incident.id, None
        return incident.id, str(answer["permalink"])

    found = await asyncio.gather(*(link(incident) for incident in incidents))
    return {key: url for key, url in found if url is not None}
