"""Digest subscriptions and run claims in a real PostgreSQL database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.digests.store import DigestStore
from bot.errors import ConflictError
from bot.store import apply_migrations
from bot.store.db import Database

RUN = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


async def test_subscribe_list_and_unsubscribe(db: Database) -> None:
    """Subscriptions are listed until unsubscribed; the same schedule twice conflicts."""
    store = DigestStore(db)
    first = await store.subscribe("C0GENERAL", "daily 09:00 UTC", "UTC", "U0ALICE")
    second = await store.subscribe("C0ALERTS", "hourly", "UTC", "U0ALICE")
    with pytest.raises(ConflictError, match=f"subscription {first.id}"):
        await store.subscribe("C0GENERAL", "daily 09:00 UTC", "UTC", "U0BOB")
    assert [s.id for s in await store.active()] == [first.id, second.id]
    assert [s.id for s in await store.active("C0ALERTS")] == [second.id]
    assert await store.unsubscribe(first.id, "U0ALICE") is not None
    assert await store.unsubscribe(first.id, "U0ALICE") is None
    assert await store.get(first.id) is None
    again = await store.subscribe("C0GENERAL", "daily 09:00 UTC", "UTC", "U0ALICE")
    assert again.id != first.id


async def test_two_claimers_of_one_run_one_wins(database_url: str) -> None:
    """Two replicas (two pools) claim the same runs at once: each run goes to one of them."""
    async with (
        await Database.connect(database_url) as one,
        await Database.connect(database_url) as two,
    ):
        await apply_migrations(one)
        store = DigestStore(one)
        ids = [
            (await store.subscribe(channel, "daily 09:00 UTC", "UTC", "U0ALICE")).id
            for channel in ("C0GENERAL", "C0ALERTS", "C0INCIDENTS")
        ]
        runs = dict.fromkeys(ids, RUN)
        won = await asyncio.gather(*(DigestStore(db).claim(runs) for db in (one, two, one, two)))
        winners = [claimed for claimed in won if claimed]
        assert len(winners) == 1
        assert sorted(due.subscription.id for due in winners[0]) == ids
        assert all(due.run_at == RUN and due.since is None for due in winners[0])


async def test_posted_runs_set_the_channels_last_digest(db: Database) -> None:
    """Posting records posted_at and last_posted_at; a released claim can be claimed again."""
    store = DigestStore(db)
    posted = await store.subscribe("C0GENERAL", "daily 09:00 UTC", "UTC", "U0ALICE")
    failed = await store.subscribe("C0ALERTS", "daily 09:00 UTC", "UTC", "U0ALICE")
    due = await store.claim({posted.id: RUN, failed.id: RUN})
    await store.mark_posted([(posted.id, RUN)])
    await store.release([(failed.id, RUN)])
    runs = await store.runs(posted.id)
    assert runs[0][0] == RUN
    assert runs[0][1] is not None
    assert await store.runs(failed.id) == []
    fresh = await store.get(posted.id)
    assert fresh is not None
    assert fresh.last_posted_at is not None
    assert len(due) == 2
    again = await store.claim({posted.id: RUN, failed.id: RUN})
    assert [item.subscription.id for item in again] == [failed.id]


async def test_inactive_subscriptions_are_not_claimed(db: Database) -> None:
    """A subscription removed on another replica is not posted even if a job still fires."""
    store = DigestStore(db)
    gone = await store.subscribe("C0GENERAL", "hourly", "UTC", "U0ALICE")
    await store.unsubscribe(gone.id, "U0BOB")
    assert await store.claim({gone.id: RUN}) == []
