"""Failure the emulator can produce on purpose: rate limits and injected faults.

Not thread-safe by themselves: the Workspace lock guards every call.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from lab.slack.api import SlackError

DEFAULT_BURST = 3
DEFAULT_PER_SECOND = 1.0
_STATUS_ERRORS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}


@dataclass
class _Bucket:
    tokens: float
    updated: float


class ChannelRateLimiter:
    """chat.postMessage's limit: a token bucket per channel (burst, then `per_second`)."""

    def __init__(
        self, burst: int | None = DEFAULT_BURST, per_second: float = DEFAULT_PER_SECOND
    ) -> None:
        self.burst: int | None = None
        self.per_second = DEFAULT_PER_SECOND
        self._buckets: dict[str, _Bucket] = {}
        self.configure(burst=burst, per_second=per_second)

    def configure(self, *, burst: int | None, per_second: float) -> None:
        """Change the limit at run time; `burst=None` disables it. Buckets refill."""
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.burst, self.per_second = burst, per_second
        self._buckets.clear()

    def reset(self) -> None:
        """Refill every bucket."""
        self._buckets.clear()

    def take(self, key: str) -> None:
        """Spend one token for `key` or raise the 429 `ratelimited` answer."""
        if self.burst is None:
            return
        now = time.monotonic()
        bucket = self._buckets.setdefault(key, _Bucket(float(self.burst), now))
        bucket.tokens = min(
            float(self.burst), bucket.tokens + (now - bucket.updated) * self.per_second
        )
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        wait = (1.0 - bucket.tokens) / self.per_second
        raise rate_limited(max(1, math.ceil(wait)))


def rate_limited(retry_after: int) -> SlackError:
    """The answer Slack gives when rate limited: HTTP 429 with Retry-After (seconds)."""
    return SlackError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})


@dataclass
class Fault:
    """An injected failure for the next `times` calls of one method."""

    status: int
    error: str | None
    retry_after: int | None
    times: int

    def to_error(self) -> SlackError:
        """The SlackError this fault answers with."""
        if self.status == 429:
            return rate_limited(self.retry_after if self.retry_after is not None else 1)
        error = self.error or _STATUS_ERRORS.get(self.status, "fatal_error")
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        return SlackError(error, status=self.status, headers=headers)


class FaultPlan:
    """Queued faults per method, consumed in order."""

    def __init__(self) -> None:
        self._faults: dict[str, list[Fault]] = {}

    def add(self, method: str, fault: Fault) -> None:
        """Queue a fault for `method`."""
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        self._faults.setdefault(method, []).append(fault)

    def clear(self) -> None:
        """Drop every queued fault."""
        self._faults.clear()

    def take(self, method: str) -> SlackError | None:
        """Return the error for this call of `method`, if a fault is queued."""
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times == 0:
            queue.pop(0)
        return fault.to_error()
