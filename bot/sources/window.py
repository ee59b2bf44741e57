"""Sources that only look at what happened after a moment: how verification reads logs.

After an action, "are there still conflicts in the logs?" must not count the lines written
before the action fixed them. ``after(sources, moment)`` wraps the Kubernetes source so
every log read starts at ``moment`` at the earliest (``since_seconds`` clamped); everything
else passes through unchanged.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from bot.sources.base import Kubernetes, Sources


class LogsAfter:
    """A Kubernetes source whose logs start no earlier than ``moment``."""

    def __init__(self, inner: Kubernetes, moment: datetime) -> None:
        self._inner = inner
        self._moment = moment

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def logs(
        self, pod: str, *, tail: int = 200, since_seconds: int | None = None
    ) -> list[str]:
        """The pod's log lines written after the moment (and within ``since_seconds``)."""
        elapsed = max(1, math.ceil((datetime.now(UTC) - self._moment).total_seconds()))
        window = elapsed if since_seconds is None else min(since_seconds, elapsed)
        return await self._inner.logs(pod, tail=tail, since_seconds=window)


def after(sources: Sources, moment: datetime) -> Sources:
    """``sources`` with the Kubernetes logs cut at ``moment``."""
    if sources.kubernetes is None:
        return sources
    return replace(sources, kubernetes=cast(Kubernetes, LogsAfter(sources.kubernetes, moment)))
