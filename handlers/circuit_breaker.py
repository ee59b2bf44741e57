"""Runbook ``circuit-breaker-open.md`` (S3 circuit breaker open, severity HIGH).

- CB-1 breaker state per agent/operation, how long it has not been closed (range query over
  ``OPEN_HISTORY``), transitions in 1 h: open is critical, half-open or more than
  ``FLAPPING_TRANSITIONS_PER_HOUR`` transitions a warning. Without the metric (upstream
  never sets it) each agent's latest breaker log line decides.
- CB-2 the cause: ``s3_errors_total`` by ``error_type`` where typed (runbook profile) and
  the agents' S3 error lines ("503 SlowDown", "AccessDenied"…; upstream "S3 upload failed,
  retrying … is_throttle_error=true"), over ``ERROR_LOG_WINDOW_S`` widened back to when the
  breaker opened (at most ``MAX_ERROR_LOG_WINDOW_S``): those errors tell the cause.
- CB-3 S3 from the bot (head_bucket, list_objects_v2, STS) and CloudWatch 5xx: a failed
  call, or 5xx rising over the last ``FIVE_XX_RECENT_MIN`` min, is critical; older 5xx warn.
- CB-4 PUT error ratio over 10 min: over ``PUT_ERROR_RATIO_WARNING`` a warning, over
  ``PUT_ERROR_RATIO_CRITICAL`` (the S3ErrorRateHigh alert) critical.

Actions: CB-A1 watch recovery (always); CB-A2 rollout restart, only with S3 healthy (CB-3)
and the breaker open ``RESET_MIN_OPEN_S``, never within ``RESET_REFUSED_FIRST_S`` of opening;
CB-A3 ``THROTTLE_ENABLED=true``, ``THROTTLE_PUT_RATE=TUNED_PUT_RATE``, only for throttling
and never above ``S3_PREFIX_PUT_LIMIT``.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import timedelta

from bot.models import CheckResult, Risk, Status
from bot.sources.base import SourceError
from handlers.base import ActionSpec, CheckContext, Results, Runbook, always_allowed, check, no_data
from handlers.breaker_state import (
    BREAKER_LOG,
    STATE_NAMES,
    BreakerReading,
    newest_opening_s,
    open_for,
    open_in_logs,
)
from handlers.logs import LOGS_SOURCE, PodLogs, agent_logs_or_note
from handlers.promql import PUT, agent_of, family, prometheus_of, total
from handlers.results import cause_of
from handlers.s3_error_causes import ERROR_TYPE_CAUSES, cause_of_line, dominant
from handlers.sources import objects_of

FLAPPING_TRANSITIONS_PER_HOUR = 5
OPEN_HISTORY = timedelta(hours=1)
OPEN_HISTORY_STEP = timedelta(seconds=30)
ERROR_LOG_WINDOW_S = 300
MAX_ERROR_LOG_WINDOW_S = 3600
FIVE_XX_MINUTES = 60
FIVE_XX_RECENT_MIN = 15
PUT_ERROR_RATIO_WARNING = 0.01
PUT_ERROR_RATIO_CRITICAL = 0.05
RESET_REFUSED_FIRST_S = 120
RESET_MIN_OPEN_S = 300
S3_PREFIX_PUT_LIMIT = 3500
TUNED_PUT_RATE = 2500  # the runbook's "tune down" value

S3_ERROR_LOG = r"s3.*(error|fail)"
TITLES = {
    "CB-1": "Circuit breaker state per agent",
    "CB-2": "Kind of S3 errors behind the breaker",
    "CB-3": "S3 health from the bot",
    "CB-4": "S3 PUT error ratio (10 min)",
}


# -- formatting -----------------------------------------------------------------------------
def minutes(seconds: float) -> str:
    """``seconds`` as an engineer says it: "40 s", "1 min", "10 min"."""
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds / 60:.0f} min"


# -- CB-1 -----------------------------------------------------------------------------------
async def read_breakers(ctx: CheckContext) -> list[BreakerReading]:
    """Every breaker's state, how long it has not been closed, and its transitions."""
    prometheus = prometheus_of(ctx)
    state = family(ctx, "circuit_breaker_state")
    transitions = family(ctx, "circuit_breaker_transitions_total")
    start, end = ctx.now - OPEN_HISTORY, ctx.now
    now, history, changes = await asyncio.gather(
        prometheus.instant(state),
        prometheus.range(state, start=start, end=end, step=OPEN_HISTORY_STEP),
        prometheus.instant(f"increase({transitions}[1h])"),
    )

    def key(labels: Mapping[str, str]) -> tuple[str, str]:
        return agent_of(labels), labels.get("operation", "-")

    opened = {key(s.labels): open_for(s.points, end.timestamp()) for s in history}
    flips: defaultdict[tuple[str, str], float] = defaultdict(float)
    for sample in changes:  # upstream splits transitions by from_state/to_state
        flips[key(sample.labels)] += 0.0 if math.isnan(sample.value) else sample.value
    readings = []
    for sample in now:
        where = key(sample.labels)
        value = 0 if math.isnan(sample.value) else int(sample.value)
        since = opened.get(where) if value else None
        readings.append(BreakerReading(*where, value, since, flips[where]))
    return sorted(readings, key=lambda r: (r.agent, r.operation))


def breaker_verdict(readings: Sequence[BreakerReading]) -> tuple[Status, str]:
    """CB-1's status and summary from the breakers' readings."""
    opened = [r for r in readings if r.state == 1]
    half = [r for r in readings if r.state == 2]
    flapping = [r for r in readings if r.transitions_1h > FLAPPING_TRANSITIONS_PER_HOUR]
    agents = len({r.agent for r in readings})
    if opened:
        newest = newest_opening_s(opened)
        age = f" for {minutes(newest)}" if newest is not None else ""
        return Status.CRITICAL, f"breaker open on {len(opened)} of {agents} agents{age}"
    if half:
        return Status.WARNING, f"breaker half-open (testing S3) on {len(half)} of {agents} agents"
    if flapping:
        worst = max(flapping, key=lambda r: r.transitions_1h)
        flips = worst.transitions_1h
        return Status.WARNING, f"breaker flapping: {flips:.0f} transitions in 1 h on {worst.agent}"
    flips = sum(r.transitions_1h for r in readings)
    return Status.OK, f"breaker closed on all {agents} agents; {flips:.0f} transitions in 1 h"


@check("CB-1", TITLES["CB-1"])
async def check_breaker_state(ctx: CheckContext) -> CheckResult:
    """Breaker state, age and flapping from Prometheus; logs as evidence and fallback."""
    readings = await read_breakers(ctx)
    logs = await agent_logs_or_note(ctx.sources, tail=100)
    evidence: dict[str, object] = {"log_lines": logs.evidence(BREAKER_LOG), **logs.problems()}
    if not readings:
        return _breaker_state_from_logs(logs, evidence)
    status, summary = breaker_verdict(readings)
    evidence["breakers"] = [
        {
            "agent": r.agent,
            "operation": r.operation,
            "state": STATE_NAMES.get(r.state, str(r.state)),
            "open_for_s": None if r.open_for_s is None else round(r.open_for_s),
            "transitions_1h": round(r.transitions_1h, 1),
        }
        for r in readings
    ]
    newest = newest_opening_s(readings)
    evidence["newest_open_s"] = None if newest is None else round(newest)
    return CheckResult("CB-1", TITLES["CB-1"], status, summary, evidence, ("prometheus",))


def _breaker_state_from_logs(logs: PodLogs, evidence: dict[str, object]) -> CheckResult:
    pods = open_in_logs(logs)
    evidence |= {"no_data": "circuit_breaker_state has no series", "newest_open_s": None}
    sources = ("prometheus", LOGS_SOURCE)
    if not pods:
        summary = "no data: circuit_breaker_state has no series, and no log says it is open"
        return CheckResult("CB-1", TITLES["CB-1"], Status.UNKNOWN, summary, evidence, sources)
    evidence["open_in_logs"] = pods
    summary = f"breaker open on {len(pods)} of {len(logs.pods)} agents per their logs (no metric)"
    return CheckResult("CB-1", TITLES["CB-1"], Status.CRITICAL, summary, evidence, sources)


# -- CB-2 -----------------------------------------------------------------------------------
def s3_error_verdict(
    rates: Mapping[str, float] | None, lines: Sequence[str]
) -> tuple[Status, str, str | None]:
    """CB-2's status, summary and cause from error rates by type (None: no series) and the
    agents' S3 error log lines."""
    by_cause: defaultdict[str, float] = defaultdict(float)
    for error_type, rate in (rates or {}).items():
        by_cause[ERROR_TYPE_CAUSES.get(error_type.lower(), "other")] += rate
    cause = dominant(by_cause) or dominant(Counter(cause_of_line(line) for line in lines))
    label = cause or "not classified"
    errors_now = None if rates is None else sum(rates.values())
    if errors_now is None and not lines:
        return Status.UNKNOWN, "no data: no s3_errors_total series and no S3 errors logged", None
    if errors_now:
        return Status.CRITICAL, f"S3 errors at {errors_now:.1f}/s: {label}", cause
    if errors_now is None:
        return Status.CRITICAL, f"{len(lines)} S3 errors logged (no error metric): {label}", cause
    if lines:
        summary = f"no S3 errors now; the {len(lines)} logged when it opened were {label}"
        return Status.WARNING, summary, cause
    return Status.OK, "no S3 errors in the last 5 min", None


async def _error_log_window_s(ctx: CheckContext) -> int:
    """The log window: 5 min, or back to the oldest opening of a breaker still open."""
    try:
        readings = await read_breakers(ctx)
    except SourceError:
        return ERROR_LOG_WINDOW_S
    oldest = max((r.open_for_s or 0.0 for r in readings), default=0.0)
    return int(min(max(ERROR_LOG_WINDOW_S, oldest + 60), MAX_ERROR_LOG_WINDOW_S))


@check("CB-2", TITLES["CB-2"])
async def check_s3_error_kind(ctx: CheckContext) -> CheckResult:
    """Classify the S3 errors: throttling, network, credentials or bucket config."""
    errors = family(ctx, "s3_errors_total")
    samples = await prometheus_of(ctx).instant(f"sum by (error_type) (rate({errors}[5m]))")
    rates = {s.labels.get("error_type", "?"): s.value for s in samples} if samples else None
    window = await _error_log_window_s(ctx)
    logs = await agent_logs_or_note(ctx.sources, tail=500, since_seconds=window)
    lines = [line for found in logs.matching(S3_ERROR_LOG).values() for line in found]
    status, summary, cause = s3_error_verdict(rates, lines)
    evidence = {
        "error_rate_per_s": {kind: round(rate, 3) for kind, rate in (rates or {}).items()},
        "classified_by_error_type": ctx.profile.s3_error_types_classified,
        "log_window_s": window,
        "logged_by_cause": dict(Counter(cause_of_line(line) for line in lines)),
        "log_lines": logs.evidence(S3_ERROR_LOG),
        **logs.problems(),
    }
    sources = ("prometheus", LOGS_SOURCE)
    return CheckResult("CB-2", TITLES["CB-2"], status, summary, evidence, sources, cause)


# -- CB-3 -----------------------------------------------------------------------------------
def five_xx_trend(per_minute: Sequence[float]) -> tuple[float, bool]:
    """Total 5xx over the series, and whether the last minutes have more than before."""
    recent = sum(per_minute[-FIVE_XX_RECENT_MIN:])
    before = sum(per_minute[-2 * FIVE_XX_RECENT_MIN : -FIVE_XX_RECENT_MIN])
    return sum(per_minute), recent > before


@check("CB-3", TITLES["CB-3"])
async def check_s3_health(ctx: CheckContext) -> CheckResult:
    """head_bucket, list_objects_v2 and STS from the bot, plus CloudWatch 5xx."""
    objects = objects_of(ctx)
    probe = await objects.probe()
    evidence: dict[str, object] = {
        "bucket": probe.bucket,
        "calls": {"head_bucket": probe.head_ok, "list_objects_v2": probe.list_ok},
        "sts_identity": probe.identity_ok,
        "errors": dict(probe.errors),
        "latency_ms": probe.latency_ms,
    }
    try:
        series = [value for _, value in await objects.s3_5xx_per_minute(FIVE_XX_MINUTES)]
    except SourceError as error:
        series, evidence["cloudwatch_error"] = [], f"{error.source}: {error.detail}"
    five_xx, rising = five_xx_trend(series)
    evidence |= {"cloudwatch_5xx_1h": five_xx, "cloudwatch_5xx_rising": rising}
    evidence["cloudwatch_5xx_recent"] = series[-FIVE_XX_RECENT_MIN:]
    if not probe.healthy:
        failed = ", ".join(f"{call} {code}" for call, code in probe.errors.items()) or "a call"
        status, summary = Status.CRITICAL, f"S3 fails from the bot: {failed}"
    elif five_xx and rising:
        status, summary = Status.CRITICAL, f"S3 answers, but 5xx are rising ({five_xx:.0f} in 1 h)"
    elif five_xx:
        status, summary = Status.WARNING, f"S3 answers; {five_xx:.0f} 5xx in CloudWatch in 1 h"
    else:
        status, summary = Status.OK, "S3 answers head, list and STS; no 5xx in CloudWatch in 1 h"
    sources = ("s3", "sts", "cloudwatch")
    return CheckResult("CB-3", TITLES["CB-3"], status, summary, evidence, sources)


# -- CB-4 -----------------------------------------------------------------------------------
def error_ratio_status(ratio: float) -> Status:
    """How bad a PUT error ratio is."""
    if ratio > PUT_ERROR_RATIO_CRITICAL:
        return Status.CRITICAL
    return Status.WARNING if ratio > PUT_ERROR_RATIO_WARNING else Status.OK


@check("CB-4", TITLES["CB-4"])
async def check_put_error_ratio(ctx: CheckContext) -> CheckResult:
    """``rate(s3_errors_total{PUT}[10m]) / rate(s3_requests_total{PUT}[10m])``."""
    prometheus = prometheus_of(ctx)
    errors, requests = family(ctx, "s3_errors_total"), family(ctx, "s3_requests_total")
    failed, attempted = await asyncio.gather(
        prometheus.instant(f"sum(rate({errors}{{{PUT}}}[10m]))"),
        prometheus.instant(f"sum(rate({requests}{{{PUT}}}[10m]))"),
    )
    if not failed or not attempted:
        return no_data("CB-4", TITLES["CB-4"], "no PUT series of s3_errors_total/s3_requests_total")
    error_rate, request_rate = total(failed), total(attempted)
    ratio = error_rate / request_rate if request_rate > 0 else 0.0
    evidence = {"errors_per_s": error_rate, "requests_per_s": request_rate, "ratio": ratio}
    summary = (
        f"{ratio:.1%} of S3 PUTs failed in 10 min ({error_rate:.1f}/s of {request_rate:.1f}/s)"
        if request_rate > 0
        else "no S3 PUTs in the last 10 min"
    )
    status = error_ratio_status(ratio)
    return CheckResult("CB-4", TITLES["CB-4"], status, summary, evidence, ("prometheus",))


# -- actions --------------------------------------------------------------------------------
def guard_manual_reset(results: Results, ctx: CheckContext) -> tuple[bool, str | None]:
    """CB-A2: S3 healthy (CB-3), open > 5 min, never within 2 min of opening (CB-1)."""
    breaker, health = results.get("CB-1"), results.get("CB-3")
    if breaker is None or breaker.status is Status.UNKNOWN:
        return False, "CB-1 could not read the breaker state; nothing shows it is stuck open"
    age = breaker.evidence.get("newest_open_s")
    if age is None:
        if breaker.status is Status.CRITICAL:
            return False, "cannot tell how long the breaker has been open (no state history)"
        return False, "no breaker is open: there is nothing to reset"
    if age < RESET_REFUSED_FIRST_S:
        return False, (
            f"the breaker opened {minutes(age)} ago: no reset in the first "
            f"{minutes(RESET_REFUSED_FIRST_S)} after opening; auto-recovery retries after 30 s"
        )
    if health is None or health.status is not Status.OK:
        seen = health.summary if health is not None else "not checked"
        return False, f"S3 is not healthy from the bot (CB-3: {seen}); a reset would reopen it"
    if age < RESET_MIN_OPEN_S:
        return False, (
            f"the breaker opened {minutes(age)} ago; wait until it has been open "
            f"{minutes(RESET_MIN_OPEN_S)}"
        )
    return True, None


def guard_throttle_fix(results: Results, ctx: CheckContext) -> tuple[bool, str | None]:
    """CB-A3: only when CB-2 says throttling; the PUT rate set stays under the S3 limit."""
    if TUNED_PUT_RATE > S3_PREFIX_PUT_LIMIT:
        return False, f"{TUNED_PUT_RATE}/s is above the S3 per-prefix limit {S3_PREFIX_PUT_LIMIT}/s"
    cause = cause_of(results, "CB-2")
    if cause != "throttling":
        found = f"{cause} errors" if cause else "no throttling"
        return False, f"CB-2 found {found} behind the breaker: throttle settings would not help"
    return True, None


ENABLE_THROTTLING = f"Enable S3 throttling at {TUNED_PUT_RATE} PUT/s"


def probable_cause(results: Results) -> str | None:
    """CB-2's classification of the S3 errors behind the breaker."""
    return cause_of(results, "CB-2")


VERIFY = ("CB-1", "CB-4")
RUNBOOK = Runbook(
    id="circuit-breaker",
    title="S3 circuit breaker open",
    file="circuit-breaker-open.md",
    checks=(check_breaker_state, check_s3_error_kind, check_s3_health, check_put_error_ratio),
    actions=(
        ActionSpec("CB-A1", "Watch auto-recovery (3 min)", Risk.LOW, always_allowed, VERIFY),
        ActionSpec("CB-A2", "Reset: restart the agents", Risk.HIGH, guard_manual_reset, VERIFY),
        ActionSpec("CB-A3", ENABLE_THROTTLING, Risk.MEDIUM, guard_throttle_fix, VERIFY),
    ),
    probable_cause=probable_cause,
    guidance=(
        "Network errors: check security groups, DNS and the S3 VPC endpoint of the agents' "
        "subnets.",
        "Credential errors: rotate the agents' AWS secret, then restart the agents.",
        "Bucket errors: compare the bucket and region in the agents' startup logs (upstream "
        "logs 'Object store connected (bucket: …)', not WriteConfig) with the real bucket.",
        "Sustained throttling on one prefix: shard segment keys under hash prefixes (not "
        "implemented in Streamhouse yet).",
    ),
    leads_to=("wal-recovery",),
)
