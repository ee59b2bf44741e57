"""The incident store: ids from a sequence, forward-only atomic transitions, audited."""

from __future__ import annotations

import asyncio

import pytest

from bot.audit import AuditLog
from bot.errors import ConflictError, NotFoundError, UsageError
from bot.incidents import Incident, IncidentState, IncidentStore, normalise_incident_id
from bot.models import Status
from bot.store import Database

CHANNEL = "C0INCIDENTS"


async def open_one(store: IncidentStore, thread_ts: str | None = "1700000000.000100") -> Incident:
    """A critical lease-conflicts incident opened by U0ALICE."""
    return await store.open(
        "lease-conflicts",
        "Partition lease conflicts",
        Status.CRITICAL,
        CHANNEL,
        "U0ALICE",
        thread_ts=thread_ts,
        diagnosis={"text": "critical: two holders", "status": "critical"},
    )


async def kinds(db: Database, incident_id: str) -> list[str]:
    """The audit event kinds recorded for an incident, oldest first."""
    return [event.kind for event in await AuditLog(db).timeline(incident_id)]


async def test_ids_come_from_a_sequence(db: Database) -> None:
    """Incidents are numbered SH-1, SH-2, … and open in state `open`."""
    store = IncidentStore(db)
    first, second = await open_one(store), await open_one(store)
    assert (first.id, second.id) == ("SH-1", "SH-2")
    assert first.state is IncidentState.OPEN
    assert first.status is Status.CRITICAL
    assert first.opened_at.utcoffset() is not None


async def test_opening_audits_the_opening_and_the_diagnosis(db: Database) -> None:
    """Opening writes `incident.opened` then `diagnosis`, queued for the incident's thread."""
    store = IncidentStore(db)
    incident = await open_one(store)
    assert await kinds(db, incident.id) == ["incident.opened", "diagnosis"]
    async with db.pool.connection() as conn:
        cursor = await conn.execute("SELECT DISTINCT channel, thread_ts FROM audit_outbox")
        assert await cursor.fetchall() == [(CHANNEL, incident.thread_ts)]


async def test_ack_then_resolve_moves_forward_and_is_audited(db: Database) -> None:
    """open → acknowledged → resolved, recording who and the note, one event per move."""
    store = IncidentStore(db)
    incident = await open_one(store)
    acked = await store.acknowledge(incident.id, "U0BOB")
    assert acked.state is IncidentState.ACKNOWLEDGED
    assert acked.acknowledged_by == "U0BOB"
    resolved = await store.resolve(incident.id, "U0CAROL", "  restarted agent-2  ")
    assert resolved.state is IncidentState.RESOLVED
    assert (resolved.resolved_by, resolved.resolution_note) == ("U0CAROL", "restarted agent-2")
    assert resolved.resolved_at is not None
    assert await kinds(db, incident.id) == [
        "incident.opened",
        "diagnosis",
        "incident.acknowledged",
        "incident.resolved",
    ]


async def test_resolving_twice_is_refused_and_changes_nothing(db: Database) -> None:
    """The second resolve names who resolved it; the note and the audit trail stay as they were."""
    store = IncidentStore(db)
    incident = await open_one(store)
    await store.resolve(incident.id, "U0ALICE", "first")
    with pytest.raises(ConflictError, match="already resolved by U0ALICE"):
        await store.resolve(incident.id, "U0BOB", "second")
    current = await store.get(incident.id)
    assert current is not None
    assert (current.resolved_by, current.resolution_note) == ("U0ALICE", "first")
    assert (await kinds(db, incident.id)).count("incident.resolved") == 1


async def test_acknowledging_a_resolved_incident_is_refused(db: Database) -> None:
    """A resolved incident cannot be acknowledged; it stays resolved."""
    store = IncidentStore(db)
    incident = await open_one(store)
    await store.resolve(incident.id, "U0ALICE", None)
    with pytest.raises(ConflictError, match="nothing left to acknowledge"):
        await store.acknowledge(incident.id, "U0BOB")
    current = await store.get(incident.id)
    assert current is not None
    assert current.state is IncidentState.RESOLVED
    assert current.acknowledged_by is None


async def test_concurrent_acks_have_exactly_one_winner(db: Database) -> None:
    """Eight people ack at once: one wins, the others are told who did, one event recorded."""
    store = IncidentStore(db)
    incident = await open_one(store)
    users = [f"U0USER{n}" for n in range(8)]
    outcomes = await asyncio.gather(
        *(store.acknowledge(incident.id, user) for user in users), return_exceptions=True
    )
    winners = [o for o in outcomes if isinstance(o, Incident)]
    losers = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(winners) == 1
    assert len(losers) == len(users) - 1
    assert all(winners[0].acknowledged_by in str(loser) for loser in losers)
    assert (await kinds(db, incident.id)).count("incident.acknowledged") == 1
    assert (await AuditLog(db).verify()).ok


async def test_unknown_incident_is_not_found(db: Database) -> None:
    """Acting on an id that does not exist says so; `get` returns None."""
    store = IncidentStore(db)
    assert await store.get("SH-404") is None
    with pytest.raises(NotFoundError, match="no incident SH-404"):
        await store.acknowledge("SH-404", "U0ALICE")
    with pytest.raises(NotFoundError):
        await store.resolve("SH-404", "U0ALICE", None)


async def test_list_open_leaves_out_resolved_incidents(db: Database) -> None:
    """`list_open` holds unresolved incidents, oldest first."""
    store = IncidentStore(db)
    ids = [(await open_one(store)).id for _ in range(3)]
    await store.resolve(ids[1], "U0ALICE", None)
    assert [i.id for i in await store.list_open()] == [ids[0], ids[2]]


async def test_attach_thread_moves_unposted_events_into_it(db: Database) -> None:
    """Events written before the root message existed are posted in its thread."""
    store = IncidentStore(db)
    incident = await open_one(store, thread_ts=None)
    attached = await store.attach_thread(incident.id, "1700000001.000200")
    assert attached.thread_ts == "1700000001.000200"
    async with db.pool.connection() as conn:
        cursor = await conn.execute("SELECT DISTINCT thread_ts FROM audit_outbox")
        assert await cursor.fetchall() == [("1700000001.000200",)]
    with pytest.raises(ConflictError, match="already has its thread"):
        await store.attach_thread(incident.id, "1700000002.000300")


@pytest.mark.parametrize(
    ("word", "expected"), [("SH-1", "SH-1"), ("sh-42", "SH-42"), (" Sh-7 ", "SH-7")]
)
def test_incident_ids_are_normalised(word: str, expected: str) -> None:
    """Ids are accepted in any case and come back upper-case."""
    assert normalise_incident_id(word) == expected


@pytest.mark.parametrize("word", ["42", "SH-", "SH-0", "SH-1;drop", "INC-1", "SH-x"])
def test_malformed_incident_ids_are_usage_errors(word: str) -> None:
    """Anything that is not `SH-<n>` is refused with the expected shape."""
    with pytest.raises(UsageError, match="not an incident id"):
        normalise_incident_id(word)
