"""The agents' S3 PUT rate limiter as Prometheus counts it: its decisions per second, the
share it allows, and each agent's current PUT limit.

``throttle_decisions_total`` also counts the circuit breaker's rejections
(``circuit_open``); they are the breaker's, not the limiter's, and are left out of the
share as the HighS3ThrottlingRate alert does.
"""

from __future__ import annotations

from collections.abc import Mapping

from handlers.base import CheckContext
from handlers.promql import PUT, agent_of, family, prometheus_of


def limiter_decisions(by_decision: Mapping[str, float]) -> dict[str, float]:
    """The rate limiter's own decisions: an open breaker's rejections are the breaker's."""
    return {kind: rate for kind, rate in by_decision.items() if "circuit" not in kind}


def allowed_share(by_decision: Mapping[str, float], allowed: str) -> float | None:
    """Allowed over the rate limiter's decisions (None when it made none)."""
    decided = limiter_decisions(by_decision)
    total_rate = sum(decided.values())
    return decided.get(allowed, 0.0) / total_rate if total_rate > 0 else None


async def read_decisions(ctx: CheckContext) -> dict[str, float]:
    """Throttle decisions per second over 5 min, by decision (empty: no series)."""
    decisions = family(ctx, "throttle_decisions_total")
    samples = await prometheus_of(ctx).instant(f"sum by (decision) (rate({decisions}[5m]))")
    return {s.labels.get("decision", "?"): s.value for s in samples}


async def read_put_limits(ctx: CheckContext) -> dict[str, float]:
    """Each agent's current PUT rate limit (``throttle_rate_current``)."""
    current = family(ctx, "throttle_rate_current")
    samples = await prometheus_of(ctx).instant(f"{current}{{{PUT}}}")
    return {agent_of(s.labels): s.value for s in samples}
