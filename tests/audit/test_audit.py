"""The audit chain: hashing, verification, append-only storage, concurrency, export, CLI."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from bot.audit import (
    GENESIS_HASH,
    AuditLog,
    EventContent,
    canonical,
    chain_hash,
    export_markdown,
)
from bot.store import Database

REPO_ROOT = Path(__file__).resolve().parents[2]


async def append_events(log: AuditLog, count: int, incident_id: str = "INC-1") -> None:
    """Append ``count`` simple events to ``incident_id``."""
    for n in range(count):
        await log.append(
            incident_id, "note", {"text": f"step {n}"}, actor="U1", channel="C0X", thread_ts="1.0"
        )


def run_cli(url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bot audit ...`` with BOT_DATABASE_URL set to ``url`` (or unset)."""
    env = {k: v for k, v in os.environ.items() if k != "BOT_DATABASE_URL"}
    if url is not None:
        env["BOT_DATABASE_URL"] = url
    return subprocess.run(  # noqa: S603 -- our own interpreter and fixed arguments
        [sys.executable, "-m", "bot", "audit", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tamper(url: str, event_id: int) -> None:
    """Rewrite one row's body as a superuser would, bypassing the append-only trigger."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_events DISABLE TRIGGER ALL")
        conn.execute(
            "UPDATE audit_events SET body = %s WHERE id = %s",
            (psycopg.types.json.Jsonb({"text": "nothing happened"}), event_id),
        )
        conn.execute("ALTER TABLE audit_events ENABLE TRIGGER ALL")


def test_canonical_form_is_sorted_compact_and_utc() -> None:
    """Keys are sorted, there are no spaces, and times are UTC with a Z, whatever the zone."""
    plus_two = timezone(timedelta(hours=2))
    event = EventContent("INC-1", datetime(2024, 5, 1, 14, 0, tzinfo=plus_two), None, "k", {"b": 1})
    assert canonical(event) == (
        b'{"actor":null,"at":"2024-05-01T12:00:00.000000Z",'
        b'"body":{"b":1},"incident_id":"INC-1","kind":"k"}'
    )


def test_hash_depends_on_previous_hash_and_content() -> None:
    """The same content under another prev_hash, or changed content, hashes differently."""
    event = EventContent("INC-1", datetime(2024, 5, 1, tzinfo=UTC), "U1", "k", {"a": 1})
    changed = EventContent("INC-1", datetime(2024, 5, 1, tzinfo=UTC), "U1", "k", {"a": 2})
    assert chain_hash(GENESIS_HASH, event) != chain_hash("1" * 64, event)
    assert chain_hash(GENESIS_HASH, event) != chain_hash(GENESIS_HASH, changed)


async def test_chain_of_twenty_events_verifies(db: Database) -> None:
    """Twenty appended events link from the genesis hash and verify end to end."""
    log = AuditLog(db)
    await append_events(log, 20)
    events = await log.timeline("INC-1")
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    result = await log.verify()
    assert (result.ok, result.checked, result.first_broken_id) == (True, 20, None)


async def test_body_with_datetime_and_unicode_still_verifies(db: Database) -> None:
    """A body holding a datetime and non-ASCII text hashes as it reads back from jsonb."""
    log = AuditLog(db)
    at = datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=-4)))
    event = await log.append(
        "INC-2", "k", {"when": at, "text": "übergabe ✓", "n": 1.5}, channel="C0X", thread_ts=None
    )
    assert event.body["when"] == "2024-05-01T16:30:00.000000Z"
    assert (await log.verify()).ok


async def test_editing_one_body_makes_verify_name_that_row(db: Database, database_url: str) -> None:
    """After a body is rewritten behind the trigger's back, verify names exactly that row."""
    log = AuditLog(db)
    await append_events(log, 20)
    target = (await log.timeline("INC-1"))[7]
    tamper(database_url, target.id)
    result = await log.verify()
    assert not result.ok
    assert result.first_broken_id == target.id
    assert result.checked == 7
    assert result.reason is not None
    assert "content" in result.reason


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET kind = 'edited'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events CASCADE",
    ],
)
async def test_update_delete_and_truncate_are_refused(
    db: Database, database_url: str, statement: str
) -> None:
    """The trigger rejects UPDATE, DELETE and TRUNCATE of audit_events, even for a superuser."""
    await append_events(AuditLog(db), 2)
    with (
        psycopg.connect(database_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
    ):
        conn.execute(statement)
    assert (await AuditLog(db).verify()).checked == 2


async def test_concurrent_appends_from_two_bots_form_one_valid_chain(
    db: Database, database_url: str
) -> None:
    """Ten appends racing over two connection pools chain linearly, with no fork."""
    other = await Database.connect(database_url)
    try:
        logs = [AuditLog(db), AuditLog(other)]
        await asyncio.gather(
            *(
                logs[n % 2].append("INC-1", "note", {"n": n}, channel="C0X", thread_ts="1.0")
                for n in range(10)
            )
        )
    finally:
        await other.close()
    events = await AuditLog(db).timeline("INC-1")
    assert len({event.prev_hash for event in events}) == 10
    assert sorted(event.body["n"] for event in events) == list(range(10))
    result = await AuditLog(db).verify()
    assert (result.ok, result.checked) == (True, 10)


async def test_timeline_holds_only_that_incidents_events(db: Database) -> None:
    """timeline() returns one incident's events, oldest first."""
    log = AuditLog(db)
    await append_events(log, 3, "INC-A")
    await append_events(log, 2, "INC-B")
    events = await log.timeline("INC-B")
    assert [event.body["text"] for event in events] == ["step 0", "step 1"]
    assert {event.incident_id for event in events} == {"INC-B"}


async def test_markdown_export_lists_every_event_with_pipes_escaped(db: Database) -> None:
    """The postmortem draft has a title and one table row per event; pipes are escaped."""
    log = AuditLog(db)
    await append_events(log, 4, "INC-7")
    await log.append(
        "INC-7", "action", {"text": "ran a|b"}, actor="U|2", channel="C0X", thread_ts=None
    )
    markdown = export_markdown(await log.timeline("INC-7"))
    assert markdown.startswith("# Postmortem draft: INC-7\n")
    for n in range(4):
        assert f"| U1 | note: step {n} |" in markdown
    assert "| U\\|2 | action: ran a\\|b |" in markdown
    table_rows = [line for line in markdown.splitlines() if line.startswith("| 20")]
    assert len(table_rows) == 5


async def test_cli_verify_exits_zero_then_one_naming_the_broken_row(
    db: Database, database_url: str
) -> None:
    """`audit verify` exits 0 on a sound chain, and 1 naming the row once one is edited."""
    log = AuditLog(db)
    await append_events(log, 5)
    sound = run_cli(database_url, "verify")
    assert sound.returncode == 0, sound.stderr
    assert "5 event(s) checked" in sound.stdout
    target = (await log.timeline("INC-1"))[3]
    tamper(database_url, target.id)
    broken = run_cli(database_url, "verify")
    assert broken.returncode == 1
    assert f"broken at event id {target.id}:" in broken.stderr


async def test_cli_export_prints_markdown(db: Database, database_url: str) -> None:
    """`audit export INC --format markdown` prints the draft with every event."""
    await append_events(AuditLog(db), 3, "INC-9")
    result = run_cli(database_url, "export", "INC-9", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert "# Postmortem draft: INC-9" in result.stdout
    assert all(f"note: step {n}" in result.stdout for n in range(3))


def test_cli_without_database_url_exits_two_with_a_message() -> None:
    """Without BOT_DATABASE_URL, `audit verify` explains what is missing and exits 2."""
    result = run_cli(None, "verify")
    assert result.returncode == 2
    assert "BOT_DATABASE_URL is not set" in result.stderr
