"""The resource-pressure runbook's thresholds and its pure verdicts on what the checks read.

- ``MEMORY_CRITICAL_RATIO`` = 85 % of the memory limit, or an OOMKill within ``OOM_WINDOW``
  = 1 h, is critical; more than ``CPU_WARNING_CORES`` = 3 cores is a warning (RP-1).
- ``DISK_CRITICAL_RATIO`` = 90 % of the WAL volume used, or more than
  ``WAL_TOTAL_CRITICAL_BYTES`` (wal-recovery's 10 GiB) of WAL on one agent, is critical (RP-2).
- Leak trend (RP-5) over ``LEAK_WINDOW`` = 3 h, a point every ``LEAK_STEP``: memory up by
  ``LEAK_MIN_GROWTH`` = 20 % while load moved less than ``LOAD_FLAT_MAX_CHANGE`` = 10 %.
- A new memory limit is twice the current one, at most ``MEMORY_LIMIT_CEILING_BYTES``
  = 16 GiB (RP-A1); a claim grows to twice its size (RP-A3).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.models import Status
from bot.sources.base import PodInfo
from handlers.sizes import GIB, size_text
from handlers.wal_recovery import WAL_TOTAL_CRITICAL_BYTES

MEMORY_CRITICAL_RATIO = 0.85
OOM_WINDOW = timedelta(hours=1)
CPU_WARNING_CORES = 3.0
DISK_CRITICAL_RATIO = 0.90
LEAK_WINDOW = timedelta(hours=3)
LEAK_STEP = timedelta(minutes=5)
LEAK_MIN_GROWTH = 0.20
LOAD_FLAT_MAX_CHANGE = 0.10
MEMORY_LIMIT_CEILING_BYTES = 16 * GIB


def pod_pressure(
    pod: PodInfo, memory: int | None, cpu: float | None, now: datetime
) -> tuple[Status, str]:
    """One agent: OOMKilled within the hour or memory >= 85 % critical, CPU > 3 a warning."""
    killed = pod.last_terminated_reason == "OOMKilled" and (
        pod.last_terminated_at is None or now - pod.last_terminated_at < OOM_WINDOW
    )
    limit = pod.memory_limit_bytes
    ratio = memory / limit if memory is not None and limit else None
    shown = f"{ratio:.0%} of {size_text(limit or 0)}" if ratio is not None else "memory unknown"
    if killed or (ratio is not None and ratio >= MEMORY_CRITICAL_RATIO):
        return Status.CRITICAL, f"{pod.name}: {'OOMKilled, ' if killed else ''}memory {shown}"
    if cpu is not None and cpu > CPU_WARNING_CORES:
        return Status.WARNING, f"{pod.name}: CPU {cpu:.1f} cores"
    return (Status.OK if ratio is not None else Status.UNKNOWN), f"{pod.name}: memory {shown}"


def disk_verdict(used: tuple[int, int] | str, wal_bytes: int | None) -> tuple[Status, str]:
    """One agent's disk: volume (used, capacity) or why unknown, and its WAL size if seen."""
    if isinstance(used, str):
        if wal_bytes is not None and wal_bytes > WAL_TOTAL_CRITICAL_BYTES:
            return Status.CRITICAL, f"WAL {size_text(wal_bytes)}, truncation failing"
        return Status.UNKNOWN, f"volume stats unavailable: {used[:80]}"
    ratio = used[0] / used[1] if used[1] else 0.0
    wal = size_text(wal_bytes) if wal_bytes is not None else f"≤ {size_text(used[0])}"
    text = f"volume {ratio:.0%} used of {size_text(used[1])}, WAL {wal}"
    too_big = wal_bytes is not None and wal_bytes > WAL_TOTAL_CRITICAL_BYTES
    if ratio > DISK_CRITICAL_RATIO or too_big:
        return Status.CRITICAL, text
    if wal_bytes is None and used[0] > WAL_TOTAL_CRITICAL_BYTES:  # the bound proves nothing
        return Status.UNKNOWN, f"{text} (WAL files not visible)"
    return Status.OK, text


def relative_change(points: Sequence[tuple[float, float]]) -> float | None:
    """Change from the first quarter's median to the last quarter's (None: too few points).

    Medians, because a range's first rate() point covers a partial window and reads low.
    """
    if len(points) < 4 or points[-1][0] - points[0][0] < 3600:
        return None
    quarter = max(1, len(points) // 4)
    first = statistics.median(v for _, v in points[:quarter])
    last = statistics.median(v for _, v in points[-quarter:])
    return (last - first) / first if first else None


def is_leak(memory_change: float | None, load_change: float | None) -> bool:
    """Memory up by ``LEAK_MIN_GROWTH`` while load stayed within ``LOAD_FLAT_MAX_CHANGE``."""
    if memory_change is None or memory_change < LEAK_MIN_GROWTH:
        return False
    return load_change is None or abs(load_change) <= LOAD_FLAT_MAX_CHANGE


def proposed_memory_limit(current: int) -> int:
    """The limit RP-A1 sets: twice the current one, capped at the ceiling."""
    return min(2 * current, MEMORY_LIMIT_CEILING_BYTES)


def proposed_claim_size(current: int) -> int:
    """The size RP-A3 requests: twice the current one (a claim only grows)."""
    return 2 * current
