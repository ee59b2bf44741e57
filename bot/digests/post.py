"""One digest run: read once, post to every channel due, at Slack's pace.

``post_digests`` is what the scheduler calls with every digest due at a minute. It reads
the six panels (six Prometheus queries), the chart's four series (four range queries) and
the bot's database once, draws the chart once (in a worker thread), then for each channel
builds its "what changed" and posts: the digest with ``chat.postMessage``, then the chart
into the digest's thread with ``files_upload_v2``. Before each post the channel's
``ChannelPace`` slot is taken, so digests keep to Slack's per-channel limit together with
everything else the bot posts. A calm digest is one line, without a chart.

The number of Prometheus queries per run is ``len(PANELS) + len(CHART_SERIES)`` whatever
the number of channels.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError

from bot.deps import Deps
from bot.digests.chart import ChartData, chart_png, read_chart_data
from bot.digests.content import Activity, changes_for, read_activity, start_of, thread_links
from bot.digests.model import DueDigest, Subscription
from bot.digests.panels import Panel, read_panels
from bot.pace import ChannelPace
from bot.profiles import profile_named
from bot.render.digest import is_calm, render_digest
from bot.replies import Reply

log = logging.getLogger("bot.digests")

IN_FLIGHT = 10  # Slack calls under way at once
SLOT_WAIT_S = 60.0
SLOT_POLL_S = 0.1
CHART_NAME = "streamhouse-24h.png"
CHART_ALT = (
    "Last 24 hours: circuit breaker state, share of S3 PUTs throttled, lease conflicts per "
    "second and memory use against the limit; incident periods shaded."
)


@dataclass(frozen=True)
class DigestRun:
    """What every channel of one run shares: panels, activity, thread links, the chart."""

    panels: tuple[Panel, ...]
    activity: Activity
    links: dict[str, str]
    chart: ChartData


async def read_run(deps: Deps, due: Sequence[DueDigest], now: datetime) -> DigestRun:
    """The one read of a run: Prometheus, the database, and the open incidents' links."""
    prometheus = deps.sources.sources.prometheus
    assert prometheus is not None  # noqa: S101 -- a null source stands in when unset
    profile = profile_named(deps.settings.streamhouse_profile)
    earliest = min(start_of(digest.since, now) for digest in due)
    panels, chart, activity = await asyncio.gather(
        read_panels(prometheus, profile),
        read_chart_data(prometheus, profile, deps.db, now),
        read_activity(deps.db, earliest, now),
    )
    open_incidents = [i for i in activity.incidents if i.state != "resolved"]
    links = await thread_links(deps.slack, open_incidents)
    return DigestRun(tuple(panels), activity, links, chart)


class Poster:
    """Posts to Slack at each channel's pace, with at most ``IN_FLIGHT`` calls at a time.

    Waiting for a channel's slot holds nothing, so every channel of a run waits at once.
    """

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._pace = ChannelPace(deps.db, deps.settings.bot_post_interval_s)
        self._gate = asyncio.Semaphore(IN_FLIGHT)

    async def slot(self, channel: str) -> bool:
        """Wait for the channel's next slot (False if none came within ``SLOT_WAIT_S``)."""
        deadline = asyncio.get_running_loop().time() + SLOT_WAIT_S
        while not await self._pace.take(channel):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("no posting slot in %s for the digest", channel)
                return False
            await asyncio.sleep(SLOT_POLL_S)
        return True

    async def post(self, channel: str, reply: Reply) -> str | None:
        """Post ``reply`` in its own slot; its ts, or None when Slack refused it."""
        if not await self.slot(channel):
            return None
        payload = reply.to_message()
        try:
            async with self._gate:
                response = await self._deps.slack.chat_postMessage(channel=channel, **payload)
        except SlackApiError as error:
            retry_after = error.response.headers.get("Retry-After") if error.response else None
            if retry_after is not None:
                await self._pace.push_back(channel, float(retry_after))
            log.warning("could not post the digest in %s: %s", channel, error.response["error"])
            return None
        return str(response["ts"])

    async def upload(self, channel: str, thread_ts: str, png: bytes) -> None:
        """Share the chart in the digest's thread (it shows as a message: it takes a slot)."""
        if not await self.slot(channel):
            return
        try:
            async with self._gate:
                await self._deps.slack.files_upload_v2(
                    channel=channel,
                    thread_ts=thread_ts,
                    content=png,
                    filename=CHART_NAME,
                    title="Streamhouse, last 24 h",
                    alt_txt=CHART_ALT,
                )
        except SlackApiError as error:
            log.warning("could not upload the digest chart in %s: %s", channel, error)


@dataclass(frozen=True)
class Planned:
    """One channel's digest, ready to post; ``calm`` digests go without a chart."""

    digest: DueDigest
    reply: Reply
    calm: bool


def plan(run: DigestRun, digest: DueDigest) -> Planned:
    """The channel's "what changed" and its message."""
    changes = changes_for(run.activity, start_of(digest.since, run.activity.read_at))
    calm = is_calm(run.panels, changes)
    schedule = digest.subscription.schedule
    reply = render_digest(run.panels, changes, run.links, schedule=schedule, chart=not calm)
    return Planned(digest, reply, calm)


async def draw_chart(run: DigestRun) -> bytes | None:
    """The run's chart, or None when it could not be drawn (the digests go without)."""
    try:
        return await chart_png(run.chart)
    except Exception:  # a drawing bug must not cost the digests
        log.exception("could not draw the digest chart")
        return None


async def post_one(poster: Poster, planned: Planned, png: bytes | None) -> bool:
    """Post one channel's digest (and its chart in the thread); whether the digest posted."""
    channel = planned.digest.subscription.channel
    ts = await poster.post(channel, planned.reply)
    if ts is None:
        return False
    if png is not None and not planned.calm:
        await poster.upload(channel, ts, png)
    return True


async def post_digests(deps: Deps, due: Sequence[DueDigest]) -> list[int]:
    """Post every digest in ``due``; the ids of the subscriptions whose digest was posted."""
    if not due:
        return []
    run = await read_run(deps, due, datetime.now(UTC))
    planned = [plan(run, digest) for digest in due]
    png = None if all(p.calm for p in planned) else await draw_chart(run)
    poster = Poster(deps)

    async def guarded(one: Planned) -> bool:
        try:
            return await post_one(poster, one, png)
        except Exception:  # one channel's failure must not stop the others
            log.exception("digest for subscription %s failed", one.digest.subscription.id)
            return False

    posted = await asyncio.gather(*(guarded(one) for one in planned))
    return [p.digest.subscription.id for p, ok in zip(planned, posted, strict=True) if ok]


async def demo_digest(deps: Deps, channel: str) -> None:
    """Post one digest in ``channel`` now, as a first digest (the last 24 h): for the demo."""
    now = datetime.now(UTC)
    subscription = Subscription(
        id=0,
        channel=channel,
        schedule="once, for the demo",
        timezone="UTC",
        created_by="demo",
        created_at=now,
        last_posted_at=None,
    )
    await post_digests(deps, [DueDigest(subscription, now, None)])
