"""A real bot (HTTP mode, its own database) on a lab, with a counting Prometheus for digests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.deps import Deps
from bot.digests.model import DueDigest, Subscription
from bot.runtime import BotRuntime
from bot.sources.base import Prometheus, Sample, Series
from bot.sources.factory import SourceSet
from lab.slack import SlackEmulator
from lab.stack import Lab
from tests.fixtures.bot import make_settings

CHANNELS = ("C0GENERAL", "C0ALERTS", "C0INCIDENTS")


@dataclass
class CountingPrometheus:
    """The bot's real Prometheus source, counting the queries made through it."""

    inner: Prometheus
    instants: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)

    async def instant(self, query: str) -> list[Sample]:
        """Count, then ask the real source."""
        self.instants.append(query)
        return await self.inner.instant(query)

    async def range(
        self, query: str, *, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        """Count, then ask the real source."""
        self.ranges.append(query)
        return await self.inner.range(query, start=start, end=end, step=step)


def counted(deps: Deps) -> tuple[Deps, CountingPrometheus]:
    """``deps`` whose Prometheus counts its queries (everything else unchanged)."""
    sources = deps.sources.sources
    assert sources.prometheus is not None
    counter = CountingPrometheus(sources.prometheus)
    source_set = SourceSet(
        prometheus=counter,
        kubernetes=sources.kubernetes,  # type: ignore[arg-type]
        metadata=sources.metadata,  # type: ignore[arg-type]
        objects=sources.objects,  # type: ignore[arg-type]
        registry=sources.registry,  # type: ignore[arg-type]
    )
    return replace(deps, sources=source_set), counter


def due(channel: str, number: int, since: datetime | None = None) -> DueDigest:
    """A digest due now for ``channel`` (subscription id ``number``)."""
    now = datetime.now(UTC)
    subscription = Subscription(number, channel, "daily 09:00 UTC", "UTC", "U0ALICE", now, since)
    return DueDigest(subscription, now, since)


@asynccontextmanager
async def digest_bot(
    emulator: SlackEmulator, database_url: str, lab: Lab | None, **overrides: Any
) -> AsyncIterator[BotRuntime]:
    """A running bot on ``lab`` (its Streamhouse settings), posting to ``emulator``."""
    env = lab.env() if lab is not None else {}
    values = {k.lower(): v for k, v in env.items() if not k.startswith("AWS_")}
    values.update(overrides)
    async with BotRuntime(make_settings(emulator, database_url, **values)) as bot:
        yield bot
