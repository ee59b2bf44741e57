"""The S3 circuit breaker as the agents report it: readings per breaker and log lines.

A breaker is one (agent, operation) pair; its state is 0 closed, 1 open, 2 half-open.
Pure: reading the readings from Prometheus is the circuit-breaker runbook's (CB-1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from handlers.logs import PodLogs, compiled

STATE_NAMES = {0: "closed", 1: "open", 2: "half-open"}
BREAKER_LOG = r"circuit"
BREAKER_OPEN_LOG = compiled(r"circuit breaker open|->\s*open\b|circuit state:\s*open")
BREAKER_CLOSED_LOG = compiled(r"circuit breaker closed|->\s*closed\b|circuit state:\s*closed")


@dataclass(frozen=True)
class BreakerReading:
    """One breaker (agent, operation): state now, seconds not closed, transitions in 1 h."""

    agent: str
    operation: str
    state: int
    open_for_s: float | None
    transitions_1h: float


def open_for(points: Sequence[tuple[float, float]], now_s: float) -> float | None:
    """Seconds since the trailing run of not-closed points began; None when closed now."""
    since = None
    for at, value in reversed(points):
        if value == 0 or math.isnan(value):
            break
        since = at
    return None if since is None else max(now_s - since, 0.0)


def newest_opening_s(readings: Sequence[BreakerReading]) -> float | None:
    """Seconds since the most recent breaker left ``closed`` (None: none is open)."""
    ages = [r.open_for_s for r in readings if r.state and r.open_for_s is not None]
    return min(ages) if ages else None


def open_in_logs(logs: PodLogs) -> list[str]:
    """Pods whose latest open/closed breaker line says open."""
    pods = []
    for pod, lines in logs.matching(BREAKER_LOG).items():
        for line in reversed(lines):
            if BREAKER_OPEN_LOG.search(line):
                pods.append(pod)
                break
            if BREAKER_CLOSED_LOG.search(line):
                break
    return pods
