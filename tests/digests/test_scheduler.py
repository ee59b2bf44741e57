"""The digest scheduler against real bots on one database, with a recording poster.

Runs are driven with fixed times (``run_due``, ``catch_up`` and a fixed clock), so nothing
waits for a real minute; one test lets APScheduler itself fire the jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.deps import Deps
from bot.digests.model import DueDigest
from bot.digests.schedule import next_runs, parse_schedule_text
from bot.digests.scheduler import Clock, DigestScheduler
from bot.digests.store import DigestStore
from bot.runtime import BotRuntime
from lab.slack import SlackEmulator
from tests.fixtures.bot import make_settings

MONDAY_9 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
GRACE = timedelta(seconds=900)


@dataclass
class RecordingPoster:
    """Stands in for ``post_digests``: records each call and posts all but ``failing``."""

    calls: list[list[DueDigest]] = field(default_factory=list)
    failing: set[int] = field(default_factory=set)

    async def __call__(self, deps: Deps, due: Sequence[DueDigest]) -> list[int]:
        """Record the batch; report every digest not in ``failing`` as posted."""
        self.calls.append(list(due))
        return [item.subscription.id for item in due if item.subscription.id not in self.failing]

    def posted(self) -> list[tuple[int, datetime]]:
        """(subscription id, run_at) of every digest handed over, in order."""
        return [(item.subscription.id, item.run_at) for call in self.calls for item in call]


@asynccontextmanager
async def running_bot(emulator: SlackEmulator, database_url: str) -> AsyncIterator[BotRuntime]:
    """A bot on ``database_url`` (several may share one database, like replicas)."""
    settings = make_settings(emulator, database_url, bot_digest_grace_s=GRACE.total_seconds())
    async with BotRuntime(settings) as bot:
        yield bot


@asynccontextmanager
async def started(scheduler: DigestScheduler) -> AsyncIterator[DigestScheduler]:
    """``scheduler`` started (subscriptions loaded, missed runs caught up), then stopped."""
    scheduler.start()
    try:
        await scheduler.ready()
        yield scheduler
    finally:
        await scheduler.stop()


def at(when: datetime) -> Clock:
    """A clock frozen at ``when``."""
    return lambda: when


async def test_two_bots_on_one_database_post_each_run_once(
    slack_emulator: SlackEmulator, database_url: str
) -> None:
    """Both replicas run the 09:00 minute; one poster call serves every channel due then."""
    async with (
        running_bot(slack_emulator, database_url) as one,
        running_bot(slack_emulator, database_url) as two,
    ):
        store = DigestStore(one.deps.db)
        daily = await store.subscribe("C0GENERAL", "daily 09:00 UTC", "UTC", "U0ALICE")
        hourly = await store.subscribe("C0ALERTS", "hourly", "UTC", "U0ALICE")
        later = await store.subscribe("C0INCIDENTS", "daily 10:00 UTC", "UTC", "U0ALICE")
        first, second = RecordingPoster(), RecordingPoster()
        schedulers = [
            DigestScheduler(one.deps, poster=first, clock=at(MONDAY_9)),
            DigestScheduler(two.deps, poster=second, clock=at(MONDAY_9)),
        ]
        for scheduler in schedulers:
            await scheduler.refresh()
        results = await asyncio.gather(*(s.run_due(MONDAY_9) for s in schedulers))
        assert sorted(sub_id for ids in results for sub_id in ids) == [daily.id, hourly.id]
        assert len(first.calls) + len(second.calls) == 1
        assert sorted(first.posted() + second.posted()) == [
            (daily.id, MONDAY_9),
            (hourly.id, MONDAY_9),
        ]
        assert await asyncio.gather(*(s.run_due(MONDAY_9) for s in schedulers)) == [[], []]
        assert (await store.runs(later.id)) == []
        stored = await store.get(hourly.id)
        assert stored is not None
        assert stored.last_posted_at is not None
        ten = MONDAY_9 + timedelta(hours=1)
        await asyncio.gather(*(s.run_due(ten) for s in schedulers))
        # Whichever replica won the 10:00 claim made that call.
        batch = next(call for call in first.calls + second.calls if call[0].run_at == ten)
        assert sorted(item.subscription.id for item in batch) == [hourly.id, later.id]
        since = {item.subscription.id: item.since for item in batch}
        assert since[hourly.id] == stored.last_posted_at
        assert since[later.id] is None


async def test_a_run_missed_while_down_is_posted_once_within_the_grace(
    slack_emulator: SlackEmulator, database_url: str
) -> None:
    """Started 5 min after a missed run: posted once; a second start posts nothing more."""
    async with running_bot(slack_emulator, database_url) as bot:
        subscription = await DigestStore(bot.deps.db).subscribe(
            "C0GENERAL", "hourly", "UTC", "U0ALICE"
        )
        missed = next_runs(parse_schedule_text("hourly"), subscription.created_at, 1)[0]
        poster = RecordingPoster()
        clock = at(missed + timedelta(minutes=5))
        async with started(DigestScheduler(bot.deps, poster=poster, clock=clock)):
            assert poster.posted() == [(subscription.id, missed)]
        async with started(DigestScheduler(bot.deps, poster=poster, clock=clock)):
            assert len(poster.calls) == 1


async def test_a_run_missed_beyond_the_grace_is_skipped(
    slack_emulator: SlackEmulator, database_url: str
) -> None:
    """Started 20 min after a missed run (grace 15 min): nothing is posted."""
    async with running_bot(slack_emulator, database_url) as bot:
        subscription = await DigestStore(bot.deps.db).subscribe(
            "C0GENERAL", "hourly", "UTC", "U0ALICE"
        )
        missed = next_runs(parse_schedule_text("hourly"), subscription.created_at, 1)[0]
        poster = RecordingPoster()
        clock = at(missed + GRACE + timedelta(minutes=5))
        async with started(DigestScheduler(bot.deps, poster=poster, clock=clock)) as scheduler:
            assert scheduler.subscription_ids == [subscription.id]
        assert poster.calls == []


async def test_several_missed_runs_post_only_the_latest(
    slack_emulator: SlackEmulator, database_url: str
) -> None:
    """Down for three runs of a five-minute schedule: only the most recent is posted."""
    async with running_bot(slack_emulator, database_url) as bot:
        schedule = parse_schedule_text('cron "*/5 * * * *"')
        subscription = await DigestStore(bot.deps.db).subscribe(
            "C0GENERAL", schedule.spelling, "UTC", "U0ALICE"
        )
        first = next_runs(schedule, subscription.created_at, 1)[0]
        poster = RecordingPoster()
        clock = at(first + timedelta(minutes=12))
        async with started(DigestScheduler(bot.deps, poster=poster, clock=clock)):
            assert poster.posted() == [(subscription.id, first + timedelta(minutes=10))]


async def test_a_run_created_after_its_time_is_not_caught_up(
    slack_emulator: SlackEmulator, database_url: str
) -> None:
    """Subscribing at 09:05 to `daily 09:00` does not post the 09:00 run at start-up."""
    async with running_bot(slack_emulator, database_url) as bot:
        subscription = await DigestStore(bot.deps.db).subscribe(
            "C0GENERAL", "hourly", "UTC", "U0ALICE"
        )
        poster = RecordingPoster()
        clock = at(subscription.created_at + timedelta(seconds=1))
        async with started(DigestScheduler(bot.deps, poster=poster, clock=clock)):
            assert poster.calls == []


async def test_unsubscribed_channels_are_no_longer_scheduled(
    slack_emulator: SlackEmulator, database_url: str
) -> None:
    """Unsubscribing removes the job on refresh; a replica that still has it posts nothing."""
    async with running_bot(slack_emulator, database_url) as bot:
        store = DigestStore(bot.deps.db)
        subscription = await store.subscribe("C0GENERAL", "daily 09:00 UTC", "UTC", "U0ALICE")
        poster = RecordingPoster()
        stale = DigestScheduler(bot.deps, poster=poster, clock=at(MONDAY_9))
        await stale.refresh()
        async with started(DigestScheduler(bot.deps, poster=poster)) as scheduler:
            assert scheduler.apscheduler is not None
            assert scheduler.apscheduler.get_job(f"digest-{subscription.id}") is not None
            await store.unsubscribe(subscription.id, "U0ALICE")
            await scheduler.refresh()
            assert scheduler.subscription_ids == []
            assert scheduler.apscheduler.get_job(f"digest-{subscription.id}") is None
        assert await stale.run_due(MONDAY_9) == []
        assert poster.calls == []


async def test_a_failed_post_releases_its_claim(
    slack_emulator: SlackEmulator, database_url: str
) -> None:
    """A digest the poster could not post is not marked posted; a restart may retry it."""
    async with running_bot(slack_emulator, database_url) as bot:
        store = DigestStore(bot.deps.db)
        subscription = await store.subscribe("C0GENERAL", "daily 09:00 UTC", "UTC", "U0ALICE")
        poster = RecordingPoster(failing={subscription.id})
        scheduler = DigestScheduler(bot.deps, poster=poster)
        await scheduler.refresh()
        assert await scheduler.run_due(MONDAY_9) == []
        assert await store.runs(subscription.id) == []
        poster.failing.clear()
        assert await scheduler.run_due(MONDAY_9) == [subscription.id]
        assert len(poster.calls) == 2


async def test_jobs_firing_at_one_minute_make_one_poster_call(
    slack_emulator: SlackEmulator, database_url: str
) -> None:
    """APScheduler fires three channels' jobs together; the poster is called once."""
    async with running_bot(slack_emulator, database_url) as bot:
        store = DigestStore(bot.deps.db)
        ids = [
            (await store.subscribe(channel, schedule, "UTC", "U0ALICE")).id
            for channel, schedule in (
                ("C0GENERAL", "daily 09:00 UTC"),
                ("C0ALERTS", "hourly"),
                ("C0INCIDENTS", 'cron "0 9 * * 1" UTC'),
            )
        ]
        poster = RecordingPoster()
        scheduler = DigestScheduler(bot.deps, poster=poster, clock=at(MONDAY_9), batch_window_s=0.2)
        async with started(scheduler):
            assert scheduler.apscheduler is not None
            for sub_id in ids:
                scheduler.apscheduler.modify_job(
                    f"digest-{sub_id}", next_run_time=datetime.now(UTC)
                )
            scheduler.apscheduler.wakeup()
            for _ in range(100):
                if poster.calls:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        assert len(poster.calls) == 1
        assert sorted(poster.posted()) == [(sub_id, MONDAY_9) for sub_id in sorted(ids)]
