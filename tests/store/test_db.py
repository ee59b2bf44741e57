"""Database: connecting, ping, and the Slack delivery ledger."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, timedelta

import pytest

from bot.store import Database, EmbeddedPostgres, StoreConnectionError


async def test_remember_delivery_is_true_only_the_first_time(db: Database) -> None:
    """A delivery key is new once; the retry of the same delivery is recognised."""
    assert await db.remember_delivery("Ev123") is True
    assert await db.remember_delivery("Ev123") is False
    assert await db.remember_delivery("Ev456") is True


async def test_concurrent_deliveries_of_one_key_have_exactly_one_winner(db: Database) -> None:
    """Many simultaneous inserts of one key (more than the pool's size) yield one True."""
    results = await asyncio.gather(*(db.remember_delivery("trigger-1") for _ in range(25)))
    assert results.count(True) == 1
    assert results.count(False) == 24


async def test_forget_deliveries_older_than_deletes_only_old_keys(db: Database) -> None:
    """Housekeeping removes keys seen before the cut-off, which then count as new again."""
    await db.remember_delivery("old")
    await db.remember_delivery("fresh")
    async with db.pool.connection() as conn:
        await conn.execute(
            "UPDATE slack_deliveries SET seen_at = now() - interval '2 days' WHERE key = 'old'"
        )
    assert await db.forget_deliveries_older_than(timedelta(days=1)) == 1
    assert await db.remember_delivery("fresh") is False
    assert await db.remember_delivery("old") is True


async def test_delivery_arguments_are_validated(db: Database) -> None:
    """An empty key or a negative age is a programming error, not a query."""
    with pytest.raises(ValueError, match="empty"):
        await db.remember_delivery("")
    with pytest.raises(ValueError, match="negative"):
        await db.forget_deliveries_older_than(timedelta(seconds=-1))


async def test_timestamps_come_back_timezone_aware_in_utc(db: Database) -> None:
    """Sessions run in UTC, so timestamptz columns read as UTC-aware datetimes."""
    await db.remember_delivery("Ev-time")
    async with db.pool.connection() as conn:
        cursor = await conn.execute("SELECT seen_at FROM slack_deliveries")
        row = await cursor.fetchone()
    assert row is not None
    assert row[0].tzinfo is not None
    assert row[0].utcoffset() == timedelta(0)
    assert row[0].astimezone(UTC) == row[0]


async def test_ping_returns_a_positive_round_trip_in_seconds(db: Database) -> None:
    """ping() measures a real SELECT 1 and reports seconds as a float."""
    seconds = await db.ping()
    assert isinstance(seconds, float)
    assert 0 < seconds < 5


async def test_connect_to_a_closed_port_names_host_and_database_but_not_password() -> None:
    """An unreachable server raises StoreConnectionError saying where, never the password."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://bot:hunter2secret@127.0.0.1:{port}/chatops"
    with pytest.raises(StoreConnectionError) as caught:
        await Database.connect(url, timeout=0.5)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "'chatops'" in message
    assert "hunter2secret" not in message


async def test_connect_to_a_missing_database_explains_why(pg_server: EmbeddedPostgres) -> None:
    """The server's own reason (no such database) reaches the message, the password does not."""
    url = pg_server.url("no_such_db").replace("postgres@", "postgres:hunter2secret@")
    with pytest.raises(StoreConnectionError) as caught:
        await Database.connect(url, timeout=0.5)
    message = str(caught.value)
    assert "'no_such_db'" in message
    assert "does not exist" in message
    assert "hunter2secret" not in message


async def test_unparsable_url_is_refused_without_echoing_it() -> None:
    """libpq's parse errors quote the URL, so the message leaves it out entirely."""
    with pytest.raises(StoreConnectionError, match="cannot be parsed") as caught:
        await Database.connect("host=db password=hunter2secret stray", timeout=0.5)
    assert "hunter2secret" not in str(caught.value)
