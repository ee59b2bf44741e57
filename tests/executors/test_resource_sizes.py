"""RP-A1/RP-A3 sizes: the guard rail and the preview agree; claims only grow."""

from __future__ import annotations

import pytest

from bot.errors import BotError
from bot.executors.resources import grown_size, memory_limit_change, quantity
from bot.sources.base import WorkloadInfo
from handlers.resource_model import MEMORY_LIMIT_CEILING_BYTES
from handlers.resource_pressure import raised_memory_limit
from handlers.sizes import GIB, MIB


def workload(limit: int | None, kind: str = "Deployment") -> WorkloadInfo:
    """The agent workload with ``limit`` as its memory limit."""
    return WorkloadInfo(
        kind=kind,
        name="streamhouse-agent",
        replicas=3,
        ready_replicas=3,
        env={},
        memory_limit_bytes=limit,
        memory_request_bytes=2 * GIB,
        cpu_limit_cores=2.0,
        cpu_request_cores=1.0,
        annotations={},
    )


def test_quantities_read_like_kubectl() -> None:
    """Whole GiB as Gi, whole MiB as Mi, anything else in bytes."""
    assert quantity(8 * GIB) == "8Gi"
    assert quantity(1536 * MIB) == "1536Mi"
    assert quantity(1000) == "1000"


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (4 * GIB, 8 * GIB),
        (1536 * MIB, 3 * GIB),
        (10 * GIB, MEMORY_LIMIT_CEILING_BYTES),
        (10**9, 1907 * MIB),  # 1G (decimal) doubled, rounded down to whole MiB: still ≤ 2x
    ],
)
def test_memory_limit_is_doubled_up_to_the_ceiling(current: int, new: int) -> None:
    """The preview's new limit is the guard's, at most 2x and at most the ceiling."""
    assert memory_limit_change(workload(current, "StatefulSet")) == (current, new)
    assert raised_memory_limit(current) == new
    assert current < new <= min(2 * current, MEMORY_LIMIT_CEILING_BYTES)


def test_no_limit_or_at_the_ceiling_is_refused() -> None:
    """Nothing to double, or nothing left to raise."""
    with pytest.raises(BotError, match="no memory limit"):
        memory_limit_change(workload(None))
    with pytest.raises(BotError, match="already at the ceiling"):
        memory_limit_change(workload(MEMORY_LIMIT_CEILING_BYTES))


def test_claims_double_and_never_shrink() -> None:
    """Twice the size, rounded up to whole MiB."""
    assert grown_size(50 * GIB) == 100 * GIB
    assert grown_size(10**9) == 1908 * MIB
    assert grown_size(10**9) >= 2 * 10**9
