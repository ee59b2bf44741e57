"""Digests (issue 7): 50 channels due at the same minute, posted by one ``post_digests``.

Prints the time to post all 50 (each a digest plus its chart in the thread), the
Prometheus queries made (counted by a wrapper around the bot's own Prometheus source:
target, the panel count for the instant queries, plus the chart's range queries), the
chart's drawing time, and the pace per channel under the Slack emulator's per-channel
chat.postMessage limit (a burst of 3, then 1 post/s, like Slack's): the most posts any
channel received within one second, the shortest gap between two posts to one channel,
and the 429 answers (target: none).

The lab (scenario ``cascade``: throttling, an open breaker, a growing WAL; real Prometheus,
PostgreSQL, moto, the Kubernetes fake) runs in its own process, as in ``bench.diagnose``.
The bot runs in this process on its own embedded PostgreSQL, with two open incidents so
each digest has something to say and a thread to link.
Run with ``python -m bench.digests`` (``--channels 10`` for a quick run).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.diagnose import start_lab
from bot.deps import Deps
from bot.digests.chart import CHART_SERIES, chart_png, read_chart_data
from bot.digests.model import DueDigest, Subscription
from bot.digests.panels import PANELS
from bot.digests.post import post_digests
from bot.incidents import IncidentStore
from bot.models import Status
from bot.profiles import profile_named
from bot.runtime import BotRuntime
from bot.settings import Settings
from lab.query_count import counted
from lab.slack import SlackEmulator
from lab.slack.faults import DEFAULT_BURST, DEFAULT_PER_SECOND

POSTING_METHODS = ("chat.postMessage", "files.completeUploadExternal")


def due_digests(channels: list[str]) -> list[DueDigest]:
    """One digest due now per channel, each covering the last day."""
    now = datetime.now(UTC)
    since = now - timedelta(days=1)
    return [
        DueDigest(Subscription(n, ch, "daily 09:00 UTC", "UTC", "U0ALICE", now, since), now, since)
        for n, ch in enumerate(channels)
    ]


async def open_incidents(deps: Deps, channel: str) -> None:
    """Two open incidents with a thread each (what the digests list and link)."""
    store = IncidentStore(deps.db)
    for title in ("S3 circuit breaker open", "WAL growing on every agent"):
        root = await deps.slack.chat_postMessage(channel=channel, text=title)
        await store.open(None, title, Status.CRITICAL, channel, "U0ALICE", thread_ts=root["ts"])


def pace_per_channel(emulator: SlackEmulator, channels: list[str]) -> tuple[int, float, int]:
    """Most posts to one of ``channels`` within 1 s, the shortest gap (s), the 429 answers."""
    times: defaultdict[str, list[float]] = defaultdict(list)
    limited = 0
    for call in emulator.calls:
        if call.method not in POSTING_METHODS:
            continue
        limited += call.http_status == 429
        channel = str(call.params.get("channel") or call.params.get("channel_id"))
        if call.ok and channel in channels:
            times[channel].append(call.at.timestamp())
    most, gap = 0, float("inf")
    for stamps in times.values():
        stamps.sort()
        for i, start in enumerate(stamps):
            most = max(most, sum(1 for t in stamps[i:] if t - start < 1.0))
            if i:
                gap = min(gap, start - stamps[i - 1])
    return most, gap, limited


async def measure(emulator: SlackEmulator, env: dict[str, str], channels: list[str]) -> None:
    """Start the bot, post the digests once, print the numbers."""
    streamhouse = {k.lower(): v for k, v in env.items() if not k.startswith("AWS_")}
    settings = Settings.model_validate(
        {
            "slack_bot_token": emulator.bot_token,
            "slack_signing_secret": emulator.signing_secret,
            "slack_api_url": emulator.api_url,
            "bot_data_dir": Path(tempfile.mkdtemp(prefix="bench-digests-")),
            "bot_http_host": "127.0.0.1",
            "bot_http_port": 0,
            **streamhouse,
        }
    )
    async with BotRuntime(settings) as bot:
        await open_incidents(bot.deps, "C0INCIDENTS")
        deps, counter = counted(bot.deps)
        started = time.perf_counter()
        posted = await post_digests(deps, due_digests(channels))
        wall = time.perf_counter() - started
        data = await read_chart_data(
            counter.inner, profile_named(settings.streamhouse_profile), deps.db, datetime.now(UTC)
        )
        drawn = time.perf_counter()
        png = await chart_png(data)
        drawing = time.perf_counter() - drawn
    most, gap, limited = pace_per_channel(emulator, channels)
    uploads = sum(1 for f in emulator.files if f.completed)
    print(f"{len(posted)} of {len(channels)} digests posted in {wall:.2f} s, {uploads} charts")
    print(
        f"Prometheus queries: {len(counter.instants)} instant (panels: {len(PANELS)}) + "
        f"{len(counter.ranges)} range (chart series: {len(CHART_SERIES)}) for the whole run"
    )
    print(f"chart: {len(png) / 1024:.0f} KiB PNG drawn in {drawing * 1000:.0f} ms (worker thread)")
    print(
        f"pace: at most {most} posts per channel within 1 s, shortest gap {gap:.2f} s, "
        f"{limited} answers 429 (limit: burst {DEFAULT_BURST}, then {DEFAULT_PER_SECOND:g}/s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--channels", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    child, env = start_lab(Path(tempfile.mkdtemp(prefix="bench-digests-lab-")))
    emulator = SlackEmulator().start()  # the per-channel rate limit is on by default
    channels = [f"C0DIGEST{n:03d}" for n in range(args.channels)]
    for channel in channels:
        emulator.add_channel(channel, channel.lower())
    try:
        asyncio.run(measure(emulator, env, channels))
    finally:
        emulator.stop()
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
