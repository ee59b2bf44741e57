"""When digests are posted: an APScheduler job per subscription, batched per minute.

``DigestScheduler`` loads the active subscriptions at start-up and gives each an
``AsyncIOScheduler`` job with its ``CronTrigger``. A job does not post: it adds its run to a
batch that is flushed ``batch_window_s`` later, so every channel due at one minute is served
by ONE call of the poster (``post_digests``: one set of queries for all of them).

Before posting, the batch's runs are claimed in the database (``DigestStore.claim``): with
several replicas each run is posted once. Posted runs record ``posted_at`` and the
channel's ``last_posted_at``; claims of runs the poster did not post are released.

At start-up, each subscription's most recent scheduled run is posted if it is within
``BOT_DIGEST_GRACE_S`` and nobody claimed it (the bot was down); older misses are skipped
and never several are posted. Subscriptions made on this replica take effect at once
(``subscriptions_changed``); those made on another are picked up within a minute.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.deps import Deps
from bot.digests.model import DueDigest, Subscription
from bot.digests.schedule import Schedule, fires_at, latest_run, parse_schedule_text
from bot.digests.store import DigestStore
from bot.errors import BotError
from bot.store.db import Database

log = logging.getLogger("bot.digests.scheduler")

Poster = Callable[[Deps, Sequence[DueDigest]], Awaitable[list[int]]]
Clock = Callable[[], datetime]

BATCH_WINDOW_S = 1.0
REFRESH_INTERVAL_S = 60.0
STOP_TIMEOUT_S = 5.0
JOB_PREFIX = "digest-"
REFRESH_JOB = "digests-refresh"
# The id of the subscription ``digest now`` posts for in a channel that has none.
UNSUBSCRIBED = 0

_running: weakref.WeakKeyDictionary[Database, list[DigestScheduler]] = weakref.WeakKeyDictionary()


async def default_poster(deps: Deps, due: Sequence[DueDigest]) -> list[int]:
    """Build and post the digests with ``bot.digests.post.post_digests``."""
    from bot.digests.post import post_digests  # imported late: built in parallel

    return await post_digests(deps, due)


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


class DigestScheduler:
    """Posts every active subscription's digest on its schedule; see the module docstring."""

    def __init__(
        self,
        deps: Deps,
        poster: Poster = default_poster,
        *,
        clock: Clock = utc_now,
        batch_window_s: float = BATCH_WINDOW_S,
    ) -> None:
        self._deps = deps
        self._store = DigestStore(deps.db)
        self._poster = poster
        self._clock = clock
        self._window = batch_window_s
        self._grace = timedelta(seconds=deps.settings.bot_digest_grace_s)
        self._scheduler: AsyncIOScheduler | None = None
        self._schedules: dict[int, tuple[Subscription, Schedule]] = {}
        self._pending: dict[int, datetime] = {}
        self._flush: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._starting: asyncio.Task[None] | None = None

    @property
    def poster(self) -> Poster:
        """What posts the digests (``post_digests`` unless a test gave another)."""
        return self._poster

    @property
    def apscheduler(self) -> AsyncIOScheduler | None:
        """The underlying APScheduler scheduler while running (jobs ``digest-<id>``)."""
        return self._scheduler

    @property
    def subscription_ids(self) -> list[int]:
        """The ids of the subscriptions that have a job, in order."""
        return sorted(self._schedules)

    def start(self) -> None:
        """Start the scheduler; load the subscriptions and catch up missed runs in the
        background (``await ready()`` waits for that). Needs a running event loop."""
        if self._scheduler is not None:
            return
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.start()
        self._scheduler.add_job(
            self.refresh,
            IntervalTrigger(seconds=REFRESH_INTERVAL_S, timezone=UTC),
            id=REFRESH_JOB,
            coalesce=True,
            max_instances=1,
        )
        _running.setdefault(self._deps.db, []).append(self)
        self._starting = asyncio.create_task(self._load_and_catch_up())

    async def ready(self) -> None:
        """Wait until start-up has loaded the subscriptions and posted missed runs."""
        if self._starting is not None:
            await asyncio.shield(self._starting)

    async def stop(self) -> None:
        """Stop scheduling; let a post in hand finish (up to ``STOP_TIMEOUT_S``)."""
        schedulers = _running.get(self._deps.db, [])
        if self in schedulers:
            schedulers.remove(self)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._starting is not None:
            self._starting.cancel()
        if self._flush is not None:
            self._flush.cancel()  # not claimed yet: a restart within the grace catches up
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
            for task in late:
                task.cancel()
        await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the next loop pass

    async def refresh(self) -> None:
        """Bring the jobs in step with the active subscriptions in the database."""
        try:
            subscriptions = await self._store.active()
        except Exception as error:  # the next refresh tries again; jobs stay as they were
            log.warning("could not load digest subscriptions: %s", error)
            return
        self._sync({subscription.id: subscription for subscription in subscriptions})

    async def run_due(self, at: datetime) -> list[int]:
        """Post every loaded subscription scheduled at ``at`` (one batch); the ids posted."""
        due = [
            sub_id for sub_id, (_, schedule) in self._schedules.items() if fires_at(schedule, at)
        ]
        runs = dict.fromkeys(due, at)
        return await self.run(runs)

    async def catch_up(self, now: datetime | None = None) -> list[int]:
        """Post each subscription's latest run if it is within the grace and unclaimed."""
        now = now or self._clock()
        runs = {}
        for sub_id, (subscription, schedule) in self._schedules.items():
            run_at = latest_run(schedule, now, self._grace)
            if run_at is not None and run_at >= subscription.created_at:
                runs[sub_id] = run_at
        posted = await self.run(runs)
        if posted:
            log.info("posted %d digest(s) missed while no bot was running", len(posted))
        return posted

    async def run(self, runs: Mapping[int, datetime]) -> list[int]:
        """Claim these runs, post those won in one poster call, record the outcome."""
        try:
            due = await self._store.claim(runs)
        except Exception as error:  # a later run (or a restart) posts the next digest
            log.warning("could not claim %d digest run(s): %s", len(runs), error)
            return []
        if not due:
            return []
        posted = await self._post(due)
        keys = [(item.subscription.id, item.run_at) for item in due]
        try:
            await self._store.mark_posted(key for key in keys if key[0] in posted)
            await self._store.release(key for key in keys if key[0] not in posted)
        except Exception as error:  # posted is posted; the claim still stops a repeat
            log.warning("could not record %d posted digest(s): %s", len(posted), error)
        return sorted(posted)

    async def post_now(self, channel: str, user: str) -> bool:
        """Post ``channel``'s digest now, outside its schedule (``digest now``)."""
        return await post_digest_now(self._deps, channel, user, self._poster, self._clock)

    async def _post(self, due: Sequence[DueDigest]) -> set[int]:
        """The poster's answer as a set; a poster that fails has posted nothing."""
        try:
            return set(await self._poster(self._deps, due))
        except Exception:
            log.exception("the digest poster failed for %d channel(s)", len(due))
            return set()

    async def _load_and_catch_up(self) -> None:
        await self.refresh()
        await self.catch_up()

    def _sync(self, wanted: Mapping[int, Subscription]) -> None:
        """Add, replace and remove jobs so there is one per wanted subscription."""
        for sub_id in set(self._schedules) - set(wanted):
            self._forget(sub_id)
        for sub_id, subscription in wanted.items():
            known = self._schedules.get(sub_id)
            if known is None or known[0].schedule != subscription.schedule:
                self._track(subscription)
            else:  # same job; keep the stored row (last_posted_at) current
                self._schedules[sub_id] = (subscription, known[1])

    def _track(self, subscription: Subscription) -> None:
        try:
            schedule = parse_schedule_text(subscription.schedule)
        except BotError as error:  # e.g. a zone this machine's tz data lacks
            log.warning("cannot schedule digest %d: %s", subscription.id, error.user_message)
            return
        self._schedules[subscription.id] = (subscription, schedule)
        if self._scheduler is not None:
            self._scheduler.add_job(
                self._fire,
                schedule.trigger(),
                args=(subscription.id,),
                id=f"{JOB_PREFIX}{subscription.id}",
                replace_existing=True,
                misfire_grace_time=max(int(self._grace.total_seconds()), 1),
                coalesce=True,
                max_instances=1,
            )

    def _forget(self, sub_id: int) -> None:
        self._schedules.pop(sub_id, None)
        self._pending.pop(sub_id, None)
        if self._scheduler is not None and self._scheduler.get_job(f"{JOB_PREFIX}{sub_id}"):
            self._scheduler.remove_job(f"{JOB_PREFIX}{sub_id}")

    async def _fire(self, sub_id: int) -> None:
        """A subscription's job: add its run (the schedule's latest time) to the batch."""
        known = self._schedules.get(sub_id)
        if known is None:
            return
        run_at = latest_run(known[1], self._clock(), self._grace)
        if run_at is not None:
            self._pending[sub_id] = run_at
            if self._flush is None:
                self._flush = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        """After the batching window, post everything that became due meanwhile at once."""
        await asyncio.sleep(self._window)
        runs, self._pending, self._flush = self._pending, {}, None
        task: asyncio.Task[object] = asyncio.create_task(self.run(runs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def post_digest_now(
    deps: Deps,
    channel: str,
    user: str,
    poster: Poster = default_poster,
    clock: Clock = utc_now,
) -> bool:
    """Post ``channel``'s digest now; True when the poster posted it.

    It covers what changed since the channel's last digest and counts as its latest. A
    channel without a subscription gets a digest of id ``UNSUBSCRIBED`` with no ``since``.
    """
    store = DigestStore(deps.db)
    subscriptions = await store.active(channel)
    at = clock()
    subscription = (
        subscriptions[0]
        if subscriptions
        else Subscription(UNSUBSCRIBED, channel, "now", "UTC", user, at, None)
    )
    since = max((s.last_posted_at for s in subscriptions if s.last_posted_at), default=None)
    posted = await poster(deps, [DueDigest(subscription, at, since)])
    if subscription.id not in posted:
        return False
    await store.record_posted([s.id for s in subscriptions], at)
    return True


def running_scheduler(db: Database) -> DigestScheduler | None:
    """The digest scheduler started last on ``db`` in this process, if any."""
    schedulers = _running.get(db)
    return schedulers[-1] if schedulers else None


async def subscriptions_changed(db: Database) -> None:
    """Bring the schedulers running on ``db`` in this process in step at once."""
    for scheduler in list(_running.get(db, [])):
        await scheduler.refresh()
