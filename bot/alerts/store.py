"""Storing alerts and grouping them into incidents, in one transaction per delivery.

``AlertStore.accept`` never talks to Slack: it routes each alert to a runbook, opens or
joins the open incident of its group (one ``INSERT ... ON CONFLICT`` on a partial unique
index, so concurrent deliveries and replicas open each incident once), stores the alert
once per (fingerprint, startsAt) and counts re-sends, and marks the incident changed. The
``AlertPoster`` turns those marks into Slack messages at Slack's pace.

A resolved alert never opens an incident: it updates its stored firing alert (and that
incident), joins an open incident of its group, or is stored on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bot.alerts.model import AlertLine, AlertSummary, IncomingAlert
from bot.alerts.routing import UNROUTED, group_key, route, target_of
from bot.audit import append_event
from bot.models import Status
from bot.store.db import Connection, Database
from handlers.registry import RUNBOOKS

ALERT_ACTOR = "alertmanager"
SEVERITY_RANK = {
    "critical": 3,
    "page": 3,
    "high": 3,
    "error": 2,
    "warning": 2,
    "medium": 2,
    "low": 1,
    "info": 1,
}
STATUS_OF_RANK = {3: Status.CRITICAL, 2: Status.WARNING, 1: Status.WARNING, 0: Status.UNKNOWN}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_OPEN = """
    INSERT INTO incidents
        (runbook, title, status, channel, thread_ts, opened_by, target, group_key, origin,
         severity_rank, alerts_changed_at, diagnosis_state)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now(), %s)
    ON CONFLICT (group_key) WHERE state <> 'resolved' AND group_key IS NOT NULL DO NOTHING
    RETURNING id
"""
_OPEN_OF_GROUP = "SELECT id FROM incidents WHERE group_key = %s AND state <> 'resolved'"
_UPDATE_ALERT = """
    UPDATE alerts a SET
        received_count = a.received_count + 1,
        last_received_at = now(),
        status = %s,
        annotations = %s,
        resolved_at = CASE WHEN %s = 'resolved' THEN coalesce(a.resolved_at, now()) END
    FROM (SELECT id, status AS old_status FROM alerts
          WHERE fingerprint = %s AND starts_at = %s FOR UPDATE) old
    WHERE a.id = old.id
    RETURNING a.incident_id, old.old_status
"""
_INSERT_ALERT = """
    INSERT INTO alerts
        (incident_id, fingerprint, starts_at, alertname, runbook, status, severity, labels,
         annotations, origin, generator_url, resolved_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
            CASE WHEN %s = 'resolved' THEN now() END)
    ON CONFLICT (fingerprint, starts_at) DO NOTHING
    RETURNING id
"""
_MARK_CHANGED = """
    UPDATE incidents SET alerts_changed_at = now(), updated_at = now(),
        severity_rank = greatest(severity_rank, %s)
    WHERE id = %s
"""
_COUNTS = """
    SELECT count(*) FILTER (WHERE status = 'firing'),
           count(*) FILTER (WHERE status = 'resolved'),
           coalesce(sum(received_count), 0)
    FROM alerts WHERE incident_id = %s
"""
_LINES = """
    SELECT alertname, status, severity, labels, received_count FROM alerts
    WHERE incident_id = %s
    ORDER BY status = 'firing' DESC, last_received_at DESC, id
    LIMIT %s
"""
_SINCE = """
    SELECT count(*) FILTER (WHERE first_received_at > %s),
           count(*) FILTER (WHERE resolved_at > %s),
           count(*) FILTER (WHERE status = 'firing')
    FROM alerts WHERE incident_id = %s
"""


@dataclass
class Intake:
    """What one delivery did: alerts new and repeated, incidents opened and touched."""

    stored: int = 0
    repeats: int = 0
    changed: int = 0
    opened: list[str] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    ranks: dict[str, int] = field(default_factory=dict)  # highest severity seen per incident
    groups: dict[str, str] = field(default_factory=dict)  # group key → incident, this delivery


@dataclass(frozen=True)
class Place:
    """Where new incidents go: the channel, and the thread when an alert message (someone
    else's) is the incident's root."""

    channel: str
    thread_ts: str | None = None


def severity_rank(alert: IncomingAlert) -> int:
    """0 (unknown) to 3 (critical)."""
    return SEVERITY_RANK.get(alert.severity, 0)


def incident_title(alert: IncomingAlert, runbook: str, group_labels: Sequence[str]) -> str:
    """``S3 circuit breaker open (namespace=streamhouse)``, ``Unrouted alert: DiskFull``."""
    unrouted = runbook == UNROUTED
    base = f"Unrouted alert: {alert.alertname}" if unrouted else RUNBOOKS[runbook].title
    where = [f"{key}={alert.labels[key]}" for key in group_labels if alert.labels.get(key)]
    return f"{base} ({', '.join(where)})" if where else base


class AlertStore:
    """Alerts and their incidents in ``db``."""

    def __init__(self, db: Database, group_by: Sequence[str] = ("namespace", "cluster")) -> None:
        self._db = db
        self._group_by = tuple(group_by)

    async def accept(self, alerts: Sequence[IncomingAlert], place: Place) -> Intake:
        """Store a delivery's alerts and group them; all or nothing. Each incident touched
        is marked changed once, in id order (concurrent deliveries never deadlock)."""
        intake = Intake()
        async with self._db.pool.connection() as conn, conn.transaction():
            for alert in alerts:
                await self._accept_one(conn, alert, place, intake)
            for incident_id in sorted(intake.touched):
                await conn.execute(_MARK_CHANGED, (intake.ranks[incident_id], incident_id))
        return intake

    async def _accept_one(
        self, conn: Connection, alert: IncomingAlert, place: Place, intake: Intake
    ) -> None:
        starts_at = alert.starts_at or EPOCH
        # A firing alert is usually new, a resolved one usually known: try the likely step
        # first. Losing a race with a concurrent first delivery makes the other step apply.
        if alert.status == "firing":
            steps = (self._insert, self._update)
        else:
            steps = (self._update, self._insert)
        for _ in range(2):
            for step in steps:
                if await step(conn, alert, starts_at, place, intake):
                    return
        raise RuntimeError(f"alert {alert.fingerprint} could neither be stored nor updated")

    async def _update(
        self,
        conn: Connection,
        alert: IncomingAlert,
        starts_at: datetime,
        place: Place,
        intake: Intake,
    ) -> bool:
        cursor = await conn.execute(
            _UPDATE_ALERT,
            (
                alert.status,
                Jsonb(dict(alert.annotations)),
                alert.status,
                alert.fingerprint,
                starts_at,
            ),
        )
        updated = await cursor.fetchone()
        if updated is None:
            return False
        incident_id, old_status = updated
        if old_status == alert.status:
            intake.repeats += 1
            return True
        intake.changed += 1
        if incident_id is not None:
            self._changed(incident_id, alert, intake)
        return True

    async def _insert(
        self,
        conn: Connection,
        alert: IncomingAlert,
        starts_at: datetime,
        place: Place,
        intake: Intake,
    ) -> bool:
        runbook = route(alert)
        incident_id = await self._incident_for(conn, alert, runbook, place, intake)
        cursor = await conn.execute(
            _INSERT_ALERT,
            (
                incident_id,
                alert.fingerprint,
                starts_at,
                alert.alertname,
                runbook,
                alert.status,
                alert.severity,
                Jsonb(dict(alert.labels)),
                Jsonb(dict(alert.annotations)),
                alert.origin,
                alert.generator_url,
                alert.status,
            ),
        )
        if await cursor.fetchone() is None:
            return False
        intake.stored += 1
        if incident_id is not None:
            self._changed(incident_id, alert, intake)
        return True

    async def _incident_for(
        self,
        conn: Connection,
        alert: IncomingAlert,
        runbook: str,
        place: Place,
        intake: Intake,
    ) -> str | None:
        key = group_key(alert, runbook, self._group_by)
        if key in intake.groups:
            return intake.groups[key]
        cursor = await conn.execute(_OPEN_OF_GROUP, (key,))
        found = await cursor.fetchone()
        if found is not None:
            intake.groups[key] = str(found[0])
            return intake.groups[key]
        if alert.status == "resolved":
            return None  # a resolved alert never opens an incident
        rank = severity_rank(alert)
        title = incident_title(alert, runbook, self._group_by)
        cursor = await conn.execute(
            _OPEN,
            (
                None if runbook == UNROUTED else runbook,
                title,
                STATUS_OF_RANK[rank].value,
                place.channel,
                place.thread_ts,
                ALERT_ACTOR,
                Jsonb(target_of(alert, runbook)),
                key,
                alert.origin,
                rank,
                "none" if runbook == UNROUTED and alert.origin != "shortcut" else "wanted",
            ),
        )
        opened = await cursor.fetchone()
        if opened is None:  # another delivery opened it a moment ago
            cursor = await conn.execute(_OPEN_OF_GROUP, (key,))
            found = await cursor.fetchone()
            if found is None:
                return None
            intake.groups[key] = str(found[0])
            return intake.groups[key]
        incident_id = str(opened[0])
        intake.groups[key] = incident_id
        intake.opened.append(incident_id)
        body = {
            "text": f"{incident_id} opened by alert {alert.alertname}: {title}",
            "runbook": None if runbook == UNROUTED else runbook,
            "alert": alert.alertname,
        }
        await append_event(
            conn,
            incident_id,
            "incident.opened",
            body,
            actor=ALERT_ACTOR,
            channel=place.channel,
            thread_ts=place.thread_ts,
        )
        return incident_id

    @staticmethod
    def _changed(incident_id: str, alert: IncomingAlert, intake: Intake) -> None:
        intake.touched.add(incident_id)
        intake.ranks[incident_id] = max(intake.ranks.get(incident_id, 0), severity_rank(alert))

    async def summary(self, incident_id: str, lines: int = 5) -> AlertSummary:
        """Counts and the first few alerts of an incident (firing first, newest first)."""
        async with self._db.pool.connection() as conn:
            cursor = await conn.execute(_COUNTS, (incident_id,))
            counts = await cursor.fetchone()
            assert counts is not None  # noqa: S101 -- an aggregate always returns a row
            rows_cursor = conn.cursor(row_factory=dict_row)
            await rows_cursor.execute(_LINES, (incident_id, lines))
            rows = await rows_cursor.fetchall()
        return AlertSummary(
            firing=int(counts[0]),
            resolved=int(counts[1]),
            received=int(counts[2]),
            lines=tuple(_line(row) for row in rows),
        )

    async def changes_since(self, incident_id: str, since: datetime) -> tuple[int, int, int]:
        """(new alerts, alerts resolved, firing now) since ``since``."""
        async with self._db.pool.connection() as conn:
            cursor = await conn.execute(_SINCE, (since, since, incident_id))
            row = await cursor.fetchone()
        assert row is not None  # noqa: S101 -- an aggregate always returns a row
        return int(row[0]), int(row[1]), int(row[2])


def _line(row: dict[str, Any]) -> AlertLine:
    return AlertLine(
        alertname=str(row["alertname"]),
        status=row["status"],
        severity=str(row["severity"]),
        labels={str(k): str(v) for k, v in dict(row["labels"]).items()},
        received_count=int(row["received_count"]),
    )
