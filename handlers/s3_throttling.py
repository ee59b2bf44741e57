"""Runbook ``high-s3-throttling-rate.md`` (high S3 throttling rate, severity MEDIUM).

- TH-1 agents' logs over ``ADAPTIVE_WINDOW_S``: adaptive cuts ("Adaptive rate reduced: X ->
  Y") or rejections ("No tokens available"; upstream "S3 PUT rate limited") are a warning.
  Upstream logs no adaptive changes or current rates (facts §6); the evidence says so.
- TH-2 allowed share of the limiter's decisions over 5 min (``allowed``, upstream ``allow``;
  ``circuit_open`` is the breaker's, left out as the HighS3ThrottlingRate alert does):
  under ``ALLOWED_RATIO_WARNING`` a warning, under ``ALLOWED_RATIO_CRITICAL`` critical.
- TH-3 PUT demand (every PUT the agents attempt: all throttle decisions; messages/s are
  context only, many messages make one PUT) against ``THROTTLE_PUT_RATE`` (workload env,
  else ``CONFIG_MAP``, else ``DEFAULT_PUT_RATE``; upstream ignores it, facts §5.1). Above
  it now and at the hour's median: sustained overload (critical); only lately: a burst.
- TH-4 real 503s over ``S3_503_WINDOW_MIN`` min: above ``S3_503_PER_S``/s the limits are
  too high (critical); none while the limiter rejects, too conservative (warning). Upstream
  has no ``error_type="503"``: CloudWatch 5xx and ``is_throttle_error=true`` lines instead.
- TH-5 the last hour of PUT/s, a point a minute (the chart): ``periodic`` (``PERIODIC_SWINGS``
  swings of ``SWING_SHARE`` around the mean), ``spike`` (last ``SPIKE_WINDOW_MIN`` min over
  ``SPIKE_FACTOR`` x the median), ``drop`` (last ``DROP_WINDOW_MIN`` min under the median /
  ``SPIKE_FACTOR``), ``plateau`` (within ``STEADY_CV`` at ``PLATEAU_SHARE`` of the limits),
  ``steady``, ``irregular`` or ``idle``; spike, plateau and periodic are a warning. These
  shape thresholds live in ``handlers.traffic_shape``.

Actions: TH-A1 wait (TH-3 burst); TH-A2 raise the limit by ``PUT_RAISE_STEP``, capped by the
S3 per-prefix limit and ``PEAK_HEADROOM`` x last week's peak demand, never while TH-4 shows
503s; TH-A3 scale out (TH-3 sustained overload).
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from datetime import timedelta

from bot.models import CheckResult, Risk, Status
from bot.sources.base import SourceError, SourceNotConfigured
from handlers.base import ActionSpec, CheckContext, Results, Runbook, check, no_data
from handlers.circuit_breaker import FIVE_XX_MINUTES, S3_PREFIX_PUT_LIMIT
from handlers.logs import LOGS_SOURCE, agent_logs, agent_logs_or_note, compiled, require_kubernetes
from handlers.promql import PUT, family, prometheus_of, total
from handlers.put_limiter import allowed_share, read_decisions, read_put_limits
from handlers.results import cause_of
from handlers.traffic_shape import traffic_shape

ADAPTIVE_WINDOW_S = 900
ALLOWED_RATIO_WARNING = 0.95
ALLOWED_RATIO_CRITICAL = 0.90
DEFAULT_PUT_RATE = 3000.0
S3_503_PER_S = 0.001
S3_503_WINDOW_MIN = 5
PATTERN_HISTORY = timedelta(hours=1)
PATTERN_STEP = timedelta(seconds=60)
PUT_RAISE_STEP = 500.0
CONFIG_MAP = "streamhouse-config"  # where the runbook greps THROTTLE_* settings
PEAK_HEADROOM = 1.2

ADAPTIVE_LOG = compiled(r"adaptive rate reduced:\s*([\d.]+)\s*->\s*([\d.]+)")
CURRENT_RATES_LOG = compiled(r"current rates:\s*put=([\d.]+)")
REJECTED_LOG = r"no tokens available|rate limited"
LIMITER_LOG = r"adaptive rate|current rates|no tokens available|rate limited"
THROTTLE_ERROR_LOG = r"is_throttle_error=true"
BAD_SHAPES = frozenset({"spike", "plateau", "periodic"})  # a drop is not throttling
TITLES = {
    "TH-1": "Rate limiter in the agents' logs",
    "TH-2": "Share of S3 PUTs the limiter allows",
    "TH-3": "PUT demand against the configured limit",
    "TH-4": "Real S3 503 SlowDown answers",
    "TH-5": "PUT traffic pattern over the last hour",
}


# -- TH-1 -----------------------------------------------------------------------------------
@check("TH-1", TITLES["TH-1"])
async def check_limiter_logs(ctx: CheckContext) -> CheckResult:
    """Adaptive reductions and rejections in the last 15 min of the agents' logs."""
    logs = await agent_logs(ctx.sources, tail=1000, since_seconds=ADAPTIVE_WINDOW_S)
    if not logs.pods:
        return no_data("TH-1", TITLES["TH-1"], "no agent pod to read logs from", LOGS_SOURCE)
    lines = [line for found in logs.matching(LIMITER_LOG).values() for line in found]
    reductions = [m.groups() for line in lines if (m := ADAPTIVE_LOG.search(line))]
    rates = [float(m.group(1)) for line in lines if (m := CURRENT_RATES_LOG.search(line))]
    rejected = logs.count(REJECTED_LOG)
    evidence: dict[str, object] = {
        "adaptive_reductions": len(reductions),
        "last_reduction": " -> ".join(reductions[-1]) if reductions else None,
        "current_put_rate": rates[-1] if rates else None,
        "rate_limited_lines": rejected,
        "log_lines": logs.evidence(LIMITER_LOG),
        **logs.problems(),
    }
    if ctx.profile.name == "upstream":
        evidence["note"] = "upstream logs no adaptive changes or current rates, only rejections"
    if reductions:
        before, after = reductions[-1]
        status = Status.WARNING
        summary = f"{len(reductions)} adaptive PUT rate cuts in 15 min (last {before} -> {after}/s)"
    elif rejected:
        status, summary = Status.WARNING, f"{rejected} rate-limited PUT lines in 15 min"
    else:
        status, summary = Status.OK, "no rate limiting in the agents' logs (15 min)"
    return CheckResult("TH-1", TITLES["TH-1"], status, summary, evidence, (LOGS_SOURCE,))


# -- TH-2 -----------------------------------------------------------------------------------
def allowed_status(share: float) -> Status:
    """How bad an allowed share is."""
    if share < ALLOWED_RATIO_CRITICAL:
        return Status.CRITICAL
    return Status.WARNING if share < ALLOWED_RATIO_WARNING else Status.OK


@check("TH-2", TITLES["TH-2"])
async def check_allowed_share(ctx: CheckContext) -> CheckResult:
    """``allowed / all`` throttle decisions over 5 min, and the current PUT limits."""
    by_decision, limits = await asyncio.gather(read_decisions(ctx), read_put_limits(ctx))
    if not by_decision:
        return no_data("TH-2", TITLES["TH-2"], "throttle_decisions_total has no series")
    share = allowed_share(by_decision, ctx.profile.allowed_decision)
    evidence = {
        "per_s_by_decision": {kind: round(rate, 1) for kind, rate in by_decision.items()},
        "allowed_share": share,
        "put_limit_per_agent": limits,
    }
    if share is None:
        breaker = sum(by_decision.values())
        summary = f"no PUT reached the rate limiter in 5 min (the breaker rejected {breaker:.0f}/s)"
        return CheckResult("TH-2", TITLES["TH-2"], Status.OK, summary, evidence, ("prometheus",))
    summary = f"the rate limiter allowed {share:.0%} of PUTs in 5 min"
    status = allowed_status(share)
    return CheckResult("TH-2", TITLES["TH-2"], status, summary, evidence, ("prometheus",))


# -- TH-3 -----------------------------------------------------------------------------------
def demand_verdict(now: float, median: float, limit: float) -> tuple[Status, str, str | None]:
    """Sustained overload, burst or fine, from demand now, its hourly median and the limit."""
    if now <= limit:
        return Status.OK, f"PUT demand {now:.0f}/s is within the {limit:.0f}/s limit", None
    if median > limit:
        summary = (
            f"sustained overload: PUT demand {now:.0f}/s, {median:.0f}/s over the hour, "
            f"limit {limit:.0f}/s"
        )
        return Status.CRITICAL, summary, "sustained overload"
    summary = (
        f"burst: PUT demand {now:.0f}/s above the {limit:.0f}/s limit, {median:.0f}/s over the hour"
    )
    return Status.WARNING, summary, "burst"


async def configured_put_limit(ctx: CheckContext) -> tuple[float, str]:
    """``THROTTLE_PUT_RATE`` of the agent workload, and where the number comes from."""
    if ctx.profile.name == "upstream":
        return DEFAULT_PUT_RATE, "default: upstream ignores THROTTLE_PUT_RATE (facts §5.1)"
    kubernetes = require_kubernetes(ctx.sources)
    try:
        settings, where = (await kubernetes.agent_workload()).env, "the agent workload's env"
        if "THROTTLE_PUT_RATE" not in settings:
            settings, where = await kubernetes.config_map(CONFIG_MAP), f"config map {CONFIG_MAP}"
    except SourceError as error:
        return DEFAULT_PUT_RATE, f"default: {error.source} unreadable ({error.detail})"
    try:
        return float(settings["THROTTLE_PUT_RATE"]), f"THROTTLE_PUT_RATE in {where}"
    except (KeyError, ValueError):
        return DEFAULT_PUT_RATE, "default: THROTTLE_PUT_RATE unset or not a number"


async def read_demand(ctx: CheckContext) -> tuple[list[float], float | None, float | None]:
    """PUT demand per minute over the hour, last week's peak, and messages per second."""
    prometheus = prometheus_of(ctx)
    demand = f"sum(rate({family(ctx, 'throttle_decisions_total')}{{{PUT}}}[1m]))"
    messages = f"sum(rate({family(ctx, 'producer_messages_sent_total')}[1m]))"
    start = ctx.now - PATTERN_HISTORY
    history, peak, produced = await asyncio.gather(
        prometheus.range(demand, start=start, end=ctx.now, step=PATTERN_STEP),
        prometheus.instant(f"max_over_time({demand}[7d:5m])"),
        prometheus.instant(messages),
    )
    points = [value for series in history for _, value in series.points]
    return points, (total(peak) if peak else None), (total(produced) if produced else None)


@check("TH-3", TITLES["TH-3"])
async def check_demand(ctx: CheckContext) -> CheckResult:
    """Burst or sustained overload: PUT demand now and over the hour against the limit."""
    (points, peak, messages), (limit, limit_from) = await asyncio.gather(
        read_demand(ctx), configured_put_limit(ctx)
    )
    if not points:
        return no_data("TH-3", TITLES["TH-3"], "throttle_decisions_total has no PUT series")
    median = statistics.median(points)
    status, summary, cause = demand_verdict(points[-1], median, limit)
    evidence = {
        "demand_put_per_s": round(points[-1], 1),
        "median_put_per_s_1h": round(median, 1),
        "peak_put_per_s_7d": None if peak is None else round(peak, 1),
        "put_limit": limit,
        "put_limit_from": limit_from,
        "messages_per_s": None if messages is None else round(messages, 1),
    }
    sources = ("prometheus",) if ctx.profile.name == "upstream" else ("prometheus", "kubernetes")
    return CheckResult("TH-3", TITLES["TH-3"], status, summary, evidence, sources, cause)


# -- TH-4 -----------------------------------------------------------------------------------
def slowdown_verdict(per_s: float, throttled: bool) -> tuple[Status, str, str | None]:
    """Whether the PUT limits are too high (503s) or too conservative (none while throttled)."""
    if per_s > S3_503_PER_S:
        summary = f"S3 answers 503 SlowDown at {per_s:.3f}/s: limits too high"
        return Status.CRITICAL, summary, "limits too high"
    if throttled:
        summary = "no S3 503s while the limiter rejects PUTs: limits too conservative"
        return Status.WARNING, summary, "limits too conservative"
    return Status.OK, f"S3 503s at {per_s:.3f}/s", None


async def _is_throttled(ctx: CheckContext) -> bool:
    try:
        share = allowed_share(await read_decisions(ctx), ctx.profile.allowed_decision)
    except SourceError:
        return False
    return share is not None and share < ALLOWED_RATIO_WARNING


async def _upstream_slowdowns(ctx: CheckContext) -> tuple[float | None, dict[str, object]]:
    """503s per second from CloudWatch 5xx and ``is_throttle_error=true`` log lines."""
    logs = await agent_logs_or_note(ctx.sources, since_seconds=S3_503_WINDOW_MIN * 60)
    logged = logs.count(THROTTLE_ERROR_LOG)
    evidence: dict[str, object] = {"throttle_error_lines": logged, **logs.problems()}
    per_s: float | None = logged / (S3_503_WINDOW_MIN * 60) if logs.pods else None
    try:
        if ctx.sources.objects is None:
            raise SourceNotConfigured("cloudwatch", "S3_BUCKET is not set")
        series = await ctx.sources.objects.s3_5xx_per_minute(FIVE_XX_MINUTES)
    except SourceError as error:
        evidence["cloudwatch_error"] = f"{error.source}: {error.detail}"
        return per_s, evidence
    recent = [value for _, value in series][-S3_503_WINDOW_MIN:]
    if recent:
        evidence["cloudwatch_5xx_per_min"] = recent
        per_s = max(per_s or 0.0, sum(recent) / (S3_503_WINDOW_MIN * 60))
    return per_s, evidence


@check("TH-4", TITLES["TH-4"])
async def check_real_slowdowns(ctx: CheckContext) -> CheckResult:
    """503 SlowDown rate: from Prometheus where typed, else CloudWatch and logs (upstream)."""
    if ctx.profile.s3_error_types_classified:
        errors = family(ctx, "s3_errors_total")
        query = f'sum(rate({errors}{{error_type="503"}}[{S3_503_WINDOW_MIN}m]))'
        samples = await prometheus_of(ctx).instant(query)
        per_s = total(samples) if samples else None
        evidence: dict[str, object] = {"query": query}
        sources: tuple[str, ...] = ("prometheus",)
    else:
        per_s, evidence = await _upstream_slowdowns(ctx)
        evidence["note"] = 'upstream has no error_type="503"; CloudWatch 5xx and logs stand in'
        sources = ("cloudwatch", LOGS_SOURCE)
    if per_s is None:
        return no_data("TH-4", TITLES["TH-4"], "no S3 503 count available", sources[0])
    status, summary, cause = slowdown_verdict(per_s, await _is_throttled(ctx))
    evidence["slowdowns_per_s"] = round(per_s, 4)
    return CheckResult("TH-4", TITLES["TH-4"], status, summary, evidence, sources, cause)


# -- TH-5 -----------------------------------------------------------------------------------
@check("TH-5", TITLES["TH-5"])
async def check_traffic_pattern(ctx: CheckContext) -> CheckResult:
    """PUTs per second over the hour, one point a minute, classified by shape."""
    requests = family(ctx, "s3_requests_total")
    query = f"sum(rate({requests}{{{PUT}}}[1m]))"
    start = ctx.now - PATTERN_HISTORY
    history, limits = await asyncio.gather(
        prometheus_of(ctx).range(query, start=start, end=ctx.now, step=PATTERN_STEP),
        read_put_limits(ctx),
    )
    values = [value for series in history for _, value in series.points]
    if not values:
        return no_data("TH-5", TITLES["TH-5"], "s3_requests_total has no PUT series")
    capacity = sum(limits.values()) if limits else None
    shape = traffic_shape(values, capacity)
    median = statistics.median(values)
    summary = f"PUT traffic {shape}: {values[-1]:.0f}/s now, median {median:.0f}/s over the hour"
    status = Status.WARNING if shape in BAD_SHAPES else Status.OK
    evidence = {
        "shape": shape,
        "put_limit_total": capacity,
        "chart_start": start.isoformat(),
        "chart_step_s": PATTERN_STEP.total_seconds(),
        "put_per_s": [round(value, 1) for value in values],
    }
    return CheckResult("TH-5", TITLES["TH-5"], status, summary, evidence, ("prometheus",))


# -- actions --------------------------------------------------------------------------------
def guard_wait_for_burst(results: Results, ctx: CheckContext) -> tuple[bool, str | None]:
    """TH-A1: only when TH-3 reads a burst."""
    cause = cause_of(results, "TH-3")
    if cause == "burst":
        return True, None
    return False, f"TH-3 reads {cause or 'no overload'}, not a burst: waiting will not end it"


@dataclass(frozen=True)
class LimitRaise:
    """TH-A2's numbers: the configured limit, the ceiling it may reach, and the new value."""

    limit: float
    ceiling: float
    target: float
    peak: float | None  # last week's peak PUT demand, when known

    @property
    def possible(self) -> bool:
        """Whether the new value is above the current one."""
        return self.target > self.limit


def planned_raise(demand: CheckResult) -> LimitRaise:
    """The raise TH-A2 makes from TH-3's evidence: one ``PUT_RAISE_STEP``, capped by the S3
    per-prefix limit and ``PEAK_HEADROOM`` times last week's peak demand."""
    limit = float(demand.evidence.get("put_limit", DEFAULT_PUT_RATE))
    ceiling = float(S3_PREFIX_PUT_LIMIT)
    peak = demand.evidence.get("peak_put_per_s_7d")
    known_peak = float(peak) if isinstance(peak, int | float) else None
    if known_peak is not None:
        ceiling = min(ceiling, PEAK_HEADROOM * known_peak)
    return LimitRaise(limit, ceiling, min(limit + PUT_RAISE_STEP, ceiling), known_peak)


def guard_raise_limit(results: Results, ctx: CheckContext) -> tuple[bool, str | None]:
    """TH-A2: a raise up to 3500/s and 1.2 times last week's peak; never while S3 sends 503."""
    if ctx.profile.name == "upstream":
        return (
            False,
            "upstream Streamhouse does not read THROTTLE_PUT_RATE: raising it does nothing",
        )
    if cause_of(results, "TH-4") == "limits too high":
        return False, "S3 already answers 503 SlowDown (TH-4): a higher limit makes it worse"
    demand = results.get("TH-3")
    if demand is None or demand.status is Status.UNKNOWN:
        return False, "TH-3 could not read PUT demand and the limit"
    plan = planned_raise(demand)
    if not plan.possible:
        return False, (
            f"the limit {plan.limit:.0f}/s already reaches the ceiling {plan.ceiling:.0f}/s "
            f"(S3 per-prefix {S3_PREFIX_PUT_LIMIT}/s, 1.2 times last week's peak demand)"
        )
    return True, None


def guard_scale_out(results: Results, ctx: CheckContext) -> tuple[bool, str | None]:
    """TH-A3: only when TH-3 reads a sustained overload."""
    cause = cause_of(results, "TH-3")
    if cause == "sustained overload":
        return True, None
    return False, f"TH-3 reads {cause or 'no overload'}, not a sustained overload"


def probable_cause(results: Results) -> str | None:
    """TH-3's burst or overload, else TH-4's verdict on the limits, else a TH-5 spike."""
    spike = (
        "burst"
        if results.get("TH-5") and results["TH-5"].evidence.get("shape") == "spike"
        else None
    )
    return cause_of(results, "TH-3") or cause_of(results, "TH-4") or spike


VERIFY = ("TH-2", "TH-4", "TH-1")
RUNBOOK = Runbook(
    id="s3-throttling",
    title="High S3 throttling rate",
    file="high-s3-throttling-rate.md",
    checks=(
        check_limiter_logs,
        check_allowed_share,
        check_demand,
        check_real_slowdowns,
        check_traffic_pattern,
    ),
    actions=(
        ActionSpec("TH-A1", "Wait out the burst (10 min)", Risk.LOW, guard_wait_for_burst, VERIFY),
        ActionSpec("TH-A2", "Raise THROTTLE_PUT_RATE", Risk.MEDIUM, guard_raise_limit, VERIFY),
        ActionSpec("TH-A3", "Scale the agents out by one", Risk.MEDIUM, guard_scale_out, VERIFY),
    ),
    probable_cause=probable_cause,
    guidance=(
        "Bursty producers: a larger token bucket burst absorbs them (ThrottleConfig, a code "
        "change).",
        "Above 3500 PUT/s on one prefix S3 itself throttles: shard segment keys under hash "
        "prefixes.",
        "If the adaptive limiter halves too eagerly after 503s, tune its backoff and recovery.",
        "Producers should back off exponentially on RESOURCE_EXHAUSTED (upstream: INTERNAL).",
    ),
    leads_to=("circuit-breaker",),
)
