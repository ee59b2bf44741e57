"""Incidents: ids like ``SH-42``, one Slack thread each, and a forward-only state machine.

open → acknowledged → mitigating → resolved. The store owns the state machine: every move
is one ``UPDATE ... WHERE id = %s AND state IN (...) RETURNING``, so of two people acking
at once exactly one wins, and the other is told who did. Each change and the audit event
that records it (``bot.audit``) commit in one transaction: no change goes unrecorded.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bot.audit import append_event
from bot.errors import ConflictError, NotFoundError, UsageError
from bot.models import Status
from bot.store.db import Connection, Database
from handlers.base import Target

INCIDENT_ID = re.compile(r"^SH-[1-9][0-9]{0,17}$")


class IncidentState(StrEnum):
    """Where an incident is in its life; it only moves forward."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATING = "mitigating"
    RESOLVED = "resolved"


class AuditKind(StrEnum):
    """The ``kind`` of the audit events this module writes."""

    OPENED = "incident.opened"
    DIAGNOSIS = "diagnosis"
    ACKNOWLEDGED = "incident.acknowledged"
    MITIGATING = "incident.mitigating"
    RESOLVED = "incident.resolved"


UNRESOLVED = (IncidentState.OPEN, IncidentState.ACKNOWLEDGED, IncidentState.MITIGATING)

_COLUMNS = (
    "id, runbook, title, status, state, channel, thread_ts, opened_at, opened_by, "
    "acknowledged_by, acknowledged_at, resolved_at, resolved_by, resolution_note, updated_at, "
    "target, origin, summary_ts"
)
_INSERT = f"""
    INSERT INTO incidents (runbook, title, status, channel, thread_ts, opened_by, target)
    VALUES (%s, %s, %s, %s, %s, %s, %s)
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list, values are parameters
_GET = f"SELECT {_COLUMNS} FROM incidents WHERE id = %s"  # noqa: S608 -- fixed columns
_LIST_UNRESOLVED = f"""
    SELECT {_COLUMNS} FROM incidents WHERE state <> 'resolved'
    ORDER BY opened_at, id LIMIT %s
"""  # noqa: S608 -- fixed column list
_FIND_OPEN = f"""
    SELECT {_COLUMNS} FROM incidents
    WHERE state <> 'resolved' AND runbook = %s AND channel = %s AND target = %s
      AND thread_ts IS NOT NULL
    ORDER BY opened_at DESC LIMIT 1
"""  # noqa: S608 -- fixed column list
_SET_STATUS = f"""
    UPDATE incidents SET status = %s, updated_at = now() WHERE id = %s
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list
_ATTACH_THREAD = f"""
    UPDATE incidents SET thread_ts = %s, updated_at = now()
    WHERE id = %s AND thread_ts IS NULL
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list
# Events written before the thread existed go to it too, unless already posted.
REPOINT_OUTBOX = """
    UPDATE audit_outbox SET thread_ts = %s
    WHERE thread_ts IS NULL AND posted_ts IS NULL
      AND event_id IN (SELECT id FROM audit_events WHERE incident_id = %s)
"""
_ACKNOWLEDGE = f"""
    UPDATE incidents
    SET state = 'acknowledged', acknowledged_by = %s, acknowledged_at = now(),
        updated_at = now()
    WHERE id = %s AND state = ANY(%s)
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list
_MITIGATE = f"""
    UPDATE incidents SET state = 'mitigating', updated_at = now()
    WHERE id = %s AND state = ANY(%s)
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list
_RESOLVE = f"""
    UPDATE incidents
    SET state = 'resolved', resolved_by = %s, resolved_at = now(), resolution_note = %s,
        updated_at = now()
    WHERE id = %s AND state = ANY(%s)
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list


@dataclass(frozen=True)
class Incident:
    """One incident as stored; ``thread_ts`` is its root message once posted."""

    id: str
    runbook: str | None
    title: str
    status: Status
    state: IncidentState
    channel: str
    thread_ts: str | None
    opened_at: datetime
    opened_by: str | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    updated_at: datetime
    target: Mapping[str, Any] = field(default_factory=dict)  # what was diagnosed (Target)
    origin: str = "command"  # command | webhook | alertmanager-slack | grafana | shortcut
    summary_ts: str | None = None  # the bot's summary message when the root is not the bot's

    def diagnosis_target(self) -> Target:
        """What the incident's diagnosis was about, as the checks take it."""
        known = Target.__dataclass_fields__
        return Target(**{name: value for name, value in self.target.items() if name in known})

    @property
    def summary_message_ts(self) -> str | None:
        """The message the bot keeps up to date with the incident's summary."""
        return self.summary_ts or self.thread_ts

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Incident:
        """An incident from a ``dict_row``; times in UTC, enums parsed."""
        values = dict(row)
        values["status"] = Status(values["status"])
        values["state"] = IncidentState(values["state"])
        for key in ("opened_at", "acknowledged_at", "resolved_at", "updated_at"):
            if values[key] is not None:
                values[key] = values[key].astimezone(UTC)
        return cls(**values)


def normalise_incident_id(word: str) -> str:
    """``sh-7`` → ``SH-7``; anything that is not an incident id is a ``UsageError``."""
    candidate = word.strip().upper()
    if not INCIDENT_ID.match(candidate):
        raise UsageError(f"`{word}` is not an incident id.", hint="Incident ids look like `SH-42`.")
    return candidate


class IncidentStore:
    """Open, read and move incidents in ``db``; every change is audited with it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def open(
        self,
        runbook: str | None,
        title: str,
        status: Status,
        channel: str,
        opened_by: str | None,
        *,
        thread_ts: str | None = None,
        diagnosis: Mapping[str, Any] | None = None,
        target: Mapping[str, Any] | None = None,
    ) -> Incident:
        """A new open incident with the next id; audits ``incident.opened`` (and the
        ``diagnosis`` that opened it, if given) in the same transaction."""
        async with self._db.pool.connection() as conn, conn.transaction():
            row = await _fetch_one(
                conn,
                _INSERT,
                (
                    runbook,
                    title,
                    status.value,
                    channel,
                    thread_ts,
                    opened_by,
                    Jsonb(dict(target or {})),
                ),
            )
            assert row is not None  # noqa: S101 -- INSERT ... RETURNING always returns a row
            incident = Incident.from_row(row)
            await _audit(
                conn,
                incident,
                AuditKind.OPENED,
                {"text": f"{incident.id} opened: {title} ({status.value})", "runbook": runbook},
                actor=opened_by,
            )
            if diagnosis is not None:
                await _audit(conn, incident, AuditKind.DIAGNOSIS, diagnosis, actor=None)
        return incident

    async def find_open(
        self, runbook: str, channel: str, target: Mapping[str, Any]
    ) -> Incident | None:
        """The unresolved incident of ``runbook`` about ``target`` in ``channel``, if any:
        where a repeated diagnosis belongs."""
        async with self._db.pool.connection() as conn:
            return await _fetch_incident(conn, _FIND_OPEN, (runbook, channel, Jsonb(dict(target))))

    async def add_diagnosis(
        self, incident_id: str, status: Status, diagnosis: Mapping[str, Any], actor: str | None
    ) -> Incident:
        """A later diagnosis of the incident: its status now, audited with the checks."""
        async with self._db.pool.connection() as conn, conn.transaction():
            row = await _fetch_one(conn, _SET_STATUS, (status.value, incident_id))
            if row is None:
                raise NotFoundError(f"There is no incident {incident_id}.")
            incident = Incident.from_row(row)
            await _audit(conn, incident, AuditKind.DIAGNOSIS, diagnosis, actor=actor)
        return incident

    async def attach_thread(self, incident_id: str, thread_ts: str) -> Incident:
        """Record the incident's root message; events not yet posted move into its thread."""
        async with self._db.pool.connection() as conn, conn.transaction():
            row = await _fetch_one(conn, _ATTACH_THREAD, (thread_ts, incident_id))
            if row is None:
                current = await self._require(conn, incident_id)
                raise ConflictError(f"{current.id} already has its thread.")
            await conn.execute(REPOINT_OUTBOX, (thread_ts, incident_id))
        return Incident.from_row(row)

    async def get(self, incident_id: str) -> Incident | None:
        """The incident, or None when there is no such id."""
        async with self._db.pool.connection() as conn:
            row = await _fetch_one(conn, _GET, (incident_id,))
        return None if row is None else Incident.from_row(row)

    async def list_open(self, limit: int = 50) -> list[Incident]:
        """Incidents not yet resolved, oldest first."""
        async with self._db.pool.connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(_LIST_UNRESOLVED, (limit,))
            return [Incident.from_row(row) for row in await cursor.fetchall()]

    async def acknowledge(self, incident_id: str, user: str | None) -> Incident:
        """open → acknowledged; refused (nothing changed) from any other state."""
        return await self._move(
            incident_id,
            _ACKNOWLEDGE,
            (user,),
            allowed_from=(IncidentState.OPEN,),
            kind=AuditKind.ACKNOWLEDGED,
            actor=user,
            note=None,
        )

    async def mitigate(self, incident_id: str, user: str | None) -> Incident:
        """open/acknowledged → mitigating (an approved action ran); refused otherwise."""
        return await self._move(
            incident_id,
            _MITIGATE,
            (),
            allowed_from=(IncidentState.OPEN, IncidentState.ACKNOWLEDGED),
            kind=AuditKind.MITIGATING,
            actor=user,
            note=None,
        )

    async def resolve(self, incident_id: str, user: str | None, note: str | None) -> Incident:
        """Any unresolved state → resolved, with an optional note; resolving twice is refused."""
        note = note.strip() if note and note.strip() else None
        return await self._move(
            incident_id,
            _RESOLVE,
            (user, note),
            allowed_from=UNRESOLVED,
            kind=AuditKind.RESOLVED,
            actor=user,
            note=note,
        )

    async def _move(
        self,
        incident_id: str,
        query: str,
        params: tuple[str | None, ...],
        *,
        allowed_from: Collection[IncidentState],
        kind: AuditKind,
        actor: str | None,
        note: str | None,
    ) -> Incident:
        states = [state.value for state in allowed_from]
        async with self._db.pool.connection() as conn, conn.transaction():
            row = await _fetch_one(conn, query, (*params, incident_id, states))
            if row is None:
                raise refusal(await self._require(conn, incident_id), kind)
            incident = Incident.from_row(row)
            text = f"{incident.id} {incident.state.value}"
            body: dict[str, Any] = {"text": f"{text}: {note}" if note else text}
            if note:
                body["note"] = note
            await _audit(conn, incident, kind, body, actor=actor)
        return incident

    @staticmethod
    async def _require(conn: Connection, incident_id: str) -> Incident:
        row = await _fetch_one(conn, _GET, (incident_id,))
        if row is None:
            raise NotFoundError(
                f"There is no incident {incident_id}. `/streamhouse incident list` shows the "
                "open ones."
            )
        return Incident.from_row(row)


def refusal(incident: Incident, attempted: AuditKind) -> ConflictError:
    """Why ``attempted`` does not apply to ``incident`` in its current state."""
    if incident.state is IncidentState.RESOLVED:
        who = f" by {incident.resolved_by}" if incident.resolved_by else ""
        if attempted is AuditKind.RESOLVED:
            return ConflictError(f"{incident.id} is already resolved{who}; nothing changed.")
        return ConflictError(
            f"{incident.id} is resolved{who}; there is nothing left to acknowledge."
        )
    if incident.state is IncidentState.ACKNOWLEDGED:
        who = f" by {incident.acknowledged_by}" if incident.acknowledged_by else ""
        return ConflictError(f"{incident.id} is already acknowledged{who}; nothing changed.")
    return ConflictError(
        f"{incident.id} is {incident.state.value}; it cannot be {_done(attempted)} now."
    )


def _done(kind: AuditKind) -> str:
    return {AuditKind.RESOLVED: "resolved", AuditKind.MITIGATING: "mitigated"}.get(
        kind, "acknowledged"
    )


async def _fetch_one(
    conn: Connection, query: str, params: tuple[Any, ...]
) -> dict[str, Any] | None:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(query, params)
    return await cursor.fetchone()


async def _fetch_incident(conn: Connection, query: str, params: tuple[Any, ...]) -> Incident | None:
    row = await _fetch_one(conn, query, params)
    return None if row is None else Incident.from_row(row)


async def _audit(
    conn: Connection,
    incident: Incident,
    kind: AuditKind,
    body: Mapping[str, Any],
    *,
    actor: str | None,
) -> None:
    await append_event(
        conn,
        incident.id,
        kind.value,
        body,
        actor=actor,
        channel=incident.channel,
        thread_ts=incident.thread_ts,
    )
