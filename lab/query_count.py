"""The bot's Prometheus source wrapped to count the queries made through it (for the digest
tests and benchmark: how many instant and range queries one digest costs)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from bot.deps import Deps
from bot.sources.base import Prometheus, Sample, Series
from bot.sources.factory import SourceSet


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
    if sources.prometheus is None:
        raise ValueError("the bot has no Prometheus source to count")
    counter = CountingPrometheus(sources.prometheus)
    source_set = SourceSet(
        prometheus=counter,
        kubernetes=sources.kubernetes,  # type: ignore[arg-type]
        metadata=sources.metadata,  # type: ignore[arg-type]
        objects=sources.objects,  # type: ignore[arg-type]
        registry=sources.registry,  # type: ignore[arg-type]
    )
    return replace(deps, sources=source_set), counter
