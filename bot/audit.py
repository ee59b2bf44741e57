"""The tamper-evident audit trail: a hash chain of events in PostgreSQL.

Each event's ``hash`` is ``sha256(prev_hash + canonical(content))`` in hex, where the
content is the incident id, time, actor, kind and body, and the first event's
``prev_hash`` is 64 zeros. Editing, reordering or removing a stored row therefore breaks
the chain at that row, which ``AuditLog.verify`` names. Appends from several bots are
serialised by a transaction-scoped advisory lock, so the chain never forks; each append
also queues the event for its Slack thread (``bot.outbox``) in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from bot.store.db import Connection, Database

GENESIS_HASH = "0" * 64
# One key for every bot replica: ASCII "SHCAUD" read as an integer.
_LOCK_KEY = 0x5348_4341_5544
_SUMMARY_KEYS = ("text", "summary", "message")

_LAST_HASH = "SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1"
_INSERT_EVENT = """
    INSERT INTO audit_events (incident_id, at, actor, kind, body, prev_hash, hash)
    VALUES (%s, %s, %s, %s, %s, %s, %s)
    RETURNING id
"""
_INSERT_OUTBOX = "INSERT INTO audit_outbox (event_id, channel, thread_ts) VALUES (%s, %s, %s)"
_COLUMNS = "id, incident_id, at, actor, kind, body, prev_hash, hash"
_ALL_EVENTS = f"SELECT {_COLUMNS} FROM audit_events ORDER BY id"  # noqa: S608 -- fixed columns
_TIMELINE = f"SELECT {_COLUMNS} FROM audit_events WHERE incident_id = %s ORDER BY id"  # noqa: S608


@dataclass(frozen=True)
class EventContent:
    """What an event's hash covers: everything but its id and its own hashes."""

    incident_id: str
    at: datetime
    actor: str | None
    kind: str
    body: dict[str, Any]


@dataclass(frozen=True)
class AuditEvent(EventContent):
    """A stored event: its content, its place in the chain and its hashes."""

    id: int
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of walking the chain: ``ok``, or the first row that breaks it and why."""

    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None


def canonical(event: EventContent) -> bytes:
    """Stable JSON of the event's content: sorted keys, no spaces, UTC ISO times, UTF-8."""
    content = {
        "incident_id": event.incident_id,
        "at": _iso_utc(event.at),
        "actor": event.actor,
        "kind": event.kind,
        "body": event.body,
    }
    return _dumps(content).encode("utf-8")


def chain_hash(prev_hash: str, event: EventContent) -> str:
    """The hex SHA-256 that links ``event`` to the event before it."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(event)).hexdigest()


def describe(event: AuditEvent) -> str:
    """What happened, in one line: the kind, then the body's text (or its JSON)."""
    summary = next(
        (str(event.body[key]) for key in _SUMMARY_KEYS if event.body.get(key) is not None),
        None,
    )
    if summary is None:
        summary = _dumps(event.body) if event.body else ""
    line = f"{event.kind}: {summary}" if summary else event.kind
    return " ".join(line.split())


class AuditLog:
    """Append to, read and verify the audit chain stored in ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(
        self,
        incident_id: str,
        kind: str,
        body: Mapping[str, Any],
        *,
        actor: str | None = None,
        channel: str,
        thread_ts: str | None,
    ) -> AuditEvent:
        """Add an event at the end of the chain and queue it for ``channel``/``thread_ts``.

        One transaction: the lock, the last hash, the event and its outbox row commit
        together or not at all.
        """
        async with self._db.pool.connection() as conn, conn.transaction():
            return await append_event(
                conn, incident_id, kind, body, actor=actor, channel=channel, thread_ts=thread_ts
            )

    async def verify(self) -> VerifyResult:
        """Walk the chain in id order, recomputing every hash; stop at the first break."""
        expected_prev = GENESIS_HASH
        checked = 0
        async with self._db.pool.connection() as conn:
            # Server-side, so a long chain is read in batches rather than all at once.
            cursor = conn.cursor("audit_verify")
            await cursor.execute(_ALL_EVENTS)
            async for row in cursor:
                event = _event_from_row(row)
                reason = _break_reason(event, expected_prev)
                if reason is not None:
                    return VerifyResult(False, checked, event.id, reason)
                checked += 1
                expected_prev = event.hash
        return VerifyResult(True, checked)

    async def timeline(self, incident_id: str) -> list[AuditEvent]:
        """The incident's events, oldest first."""
        async with self._db.pool.connection() as conn:
            cursor = await conn.execute(_TIMELINE, (incident_id,))
            return [_event_from_row(row) for row in await cursor.fetchall()]


async def append_event(
    conn: Connection,
    incident_id: str,
    kind: str,
    body: Mapping[str, Any],
    *,
    actor: str | None = None,
    channel: str,
    thread_ts: str | None,
) -> AuditEvent:
    """``AuditLog.append`` inside the caller's open transaction on ``conn``.

    For a change and its audit event that must commit together (an incident's state and
    the event recording it); the advisory lock is held until that transaction ends.
    """
    normalised = _normalise_body(body)
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    prev_hash = await _last_hash(conn)
    # Taken after the lock, so times never go backwards along the chain.
    at = await _clock(conn)
    content = EventContent(incident_id, at, actor, kind, normalised)
    digest = chain_hash(prev_hash, content)
    cursor = await conn.execute(
        _INSERT_EVENT,
        (incident_id, at, actor, kind, Jsonb(normalised), prev_hash, digest),
    )
    row = await cursor.fetchone()
    assert row is not None  # noqa: S101 -- INSERT ... RETURNING always returns a row
    event_id = int(row[0])
    await conn.execute(_INSERT_OUTBOX, (event_id, channel, thread_ts))
    return AuditEvent(incident_id, at, actor, kind, normalised, event_id, prev_hash, digest)


def export_markdown(events: Sequence[AuditEvent]) -> str:
    """A postmortem draft: a title, then a timeline table of time, actor and what happened."""
    incidents = sorted({event.incident_id for event in events})
    title = ", ".join(incidents) if incidents else "(no incident)"
    lines = [f"# Postmortem draft: {_cell(title)}", "", "## Timeline", ""]
    if not events:
        lines.append("_No audit events recorded._")
        return "\n".join(lines) + "\n"
    lines += ["| Time (UTC) | Actor | What happened |", "| --- | --- | --- |"]
    for event in events:
        when = event.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        lines.append(f"| {when} | {_cell(event.actor or '(bot)')} | {_cell(describe(event))} |")
    last = events[-1]
    lines += [
        "",
        f"_{len(events)} audit event(s), ids {events[0].id}-{last.id}; "
        f"last hash `{last.hash[:16]}`. Check with `streamhouse-bot audit verify`._",
    ]
    return "\n".join(lines) + "\n"


def _break_reason(event: AuditEvent, expected_prev: str) -> str | None:
    """Why ``event`` breaks the chain, or None when it links and its hash is right."""
    if event.prev_hash != expected_prev:
        return "prev_hash does not match the hash of the event before it"
    if chain_hash(event.prev_hash, event) != event.hash:
        return "hash does not match the event's content"
    return None


async def _last_hash(conn: Connection) -> str:
    cursor = await conn.execute(_LAST_HASH)
    row = await cursor.fetchone()
    return str(row[0]) if row else GENESIS_HASH


async def _clock(conn: Connection) -> datetime:
    """The database's time (one clock for every bot), truncated to what timestamptz keeps."""
    cursor = await conn.execute("SELECT clock_timestamp()")
    row = await cursor.fetchone()
    assert row is not None  # noqa: S101 -- SELECT of one value always returns a row
    at = row[0]
    if not isinstance(at, datetime):
        raise TypeError(f"clock_timestamp() returned {type(at).__name__}")
    return at.astimezone(UTC)


def _event_from_row(row: TupleRow) -> AuditEvent:
    event_id, incident_id, at, actor, kind, body, prev_hash, digest = row
    return AuditEvent(
        incident_id=incident_id,
        at=at.astimezone(UTC),
        actor=actor,
        kind=kind,
        body=body,
        id=int(event_id),
        prev_hash=prev_hash,
        hash=digest,
    )


def _normalise_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body exactly as it will read back from jsonb, so the stored hash stays valid.

    Datetimes become UTC ISO strings and keys become strings; NaN is refused (jsonb
    cannot store it).
    """
    result = json.loads(_dumps(dict(body)))
    if not isinstance(result, dict):
        raise TypeError("an audit event body must be a JSON object")
    return result


def _dumps(value: Any) -> str:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return _iso_utc(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable in an audit event")


def _iso_utc(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, on one line."""
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())
