"""The six panels of the runbooks' "Grafana Dashboard", read once per digest run.

Each panel is one PromQL instant query in the active profile's spelling, judged against
thresholds taken from the alert rules (deploy/prometheus): a digest shows warning where an
alert would start to fire, and critical where it is clearly worse. A panel is ``unknown``
when its family does not exist in the profile (no query is made), when Prometheus returns
no series, or when the query fails; the other panels are unaffected.

Panels and their queries (runbook spelling):

- breaker: ``max(circuit_breaker_state == 1) or max(circuit_breaker_state)``
  (1 open, 2 half-open, 0 closed: "open" wins over "half-open" on any agent)
- throttling: ``sum by (decision) (rate(throttle_decisions_total[5m]))``, the share the
  rate limiter did not allow (the breaker's own rejections left out, as the alert does)
- resources: the worst agent's memory share of its limit and its CPU cores, as two
  labelled series of one query
- leases: ``sum(rate(lease_conflicts_total[5m]))``
- registry: ``sum(rate(schema_registry_errors_total[5m]))``
- disk: the fullest ``/data`` volume's used share
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.models import Status
from bot.profiles import Profile
from bot.sources.base import Prometheus, Sample, SourceError
from handlers.put_limiter import allowed_share

AGENT_PODS = '{pod=~"streamhouse-agent-.*",container!="",container!="POD"}'
DATA_VOLUME = '{mountpoint="/data"}'
BREAKER_NAMES = {0: "closed", 1: "open", 2: "half-open"}

THROTTLED_WARNING, THROTTLED_CRITICAL = 0.10, 0.50  # HighThrottlingRate fires above 10 %
MEMORY_WARNING, MEMORY_CRITICAL = 0.85, 0.95  # HighMemoryUsage fires above 85 %
CPU_WARNING_CORES = 3.5  # HighCPUUsage
LEASE_WARNING, LEASE_CRITICAL = 0.01, 0.1  # LeaseConflicts fires above 0.01/s
REGISTRY_WARNING, REGISTRY_CRITICAL = 0.01, 0.5  # SchemaRegistrationFailures: 0.01/s
DISK_WARNING, DISK_CRITICAL = 0.85, 0.90  # DiskSpaceLow (<15 % free), WALDiskSpaceLow (<10 %)


@dataclass(frozen=True)
class Panel:
    """One row of the digest's status table: what it reads now and how that looks."""

    key: str
    title: str
    value: str  # "closed", "12% throttled", "no data"
    threshold: str  # when the panel turns warning / critical, in words
    status: Status
    note: str | None = None  # why the panel is unknown


@dataclass(frozen=True)
class PanelSpec:
    """How one panel is asked for and judged."""

    key: str
    title: str
    threshold: str
    query: Callable[[Profile], str | None]
    judge: Callable[[Sequence[Sample], Profile], tuple[Status, str]]


# -- queries ------------------------------------------------------------------------------
def breaker_query(profile: Profile) -> str | None:
    """Open on any agent, else the highest state (half-open over closed)."""
    state = profile.metric("circuit_breaker_state")
    return None if state is None else f"max({state} == 1) or max({state})"


def throttling_query(profile: Profile) -> str | None:
    """Throttle decisions per second over 5 min, by decision."""
    decisions = profile.metric("throttle_decisions_total")
    return None if decisions is None else f"sum by (decision) (rate({decisions}[5m]))"


def resources_query(profile: Profile) -> str | None:
    """The worst agent's memory share of its limit and CPU cores, labelled ``what``."""
    usage = f"container_memory_usage_bytes{AGENT_PODS}"
    limit = f"(container_spec_memory_limit_bytes{AGENT_PODS} > 0)"
    cpu = f"rate(container_cpu_usage_seconds_total{AGENT_PODS}[5m])"
    return (
        f'label_replace(max({usage} / on (pod, container) {limit}), "what", "memory", "", "")'
        f' or label_replace(max({cpu}), "what", "cpu", "", "")'
    )


def memory_share_query() -> str:
    """The worst agent's memory use as a share of its limit (the chart's series)."""
    usage = f"container_memory_usage_bytes{AGENT_PODS}"
    limit = f"(container_spec_memory_limit_bytes{AGENT_PODS} > 0)"
    return f"max({usage} / on (pod, container) {limit})"


def rate_query(runbook_name: str) -> Callable[[Profile], str | None]:
    """``sum(rate(family[5m]))`` in the profile's spelling (None: no such family)."""

    def query(profile: Profile) -> str | None:
        name = profile.metric(runbook_name)
        return None if name is None else f"sum(rate({name}[5m]))"

    return query


def disk_query(profile: Profile) -> str | None:
    """The fullest data volume's used share."""
    avail = f"node_filesystem_avail_bytes{DATA_VOLUME}"
    size = f"node_filesystem_size_bytes{DATA_VOLUME}"
    return f"max(1 - {avail} / {size})"


# -- judging ------------------------------------------------------------------------------
def level(value: float, warning: float, critical: float) -> Status:
    """OK below ``warning``, WARNING up to ``critical``, CRITICAL above."""
    if value > critical:
        return Status.CRITICAL
    return Status.WARNING if value > warning else Status.OK


def first_value(samples: Sequence[Sample]) -> float | None:
    """The first sample's value, None when there is none or it is not a number."""
    values = [s.value for s in samples if not math.isnan(s.value)]
    return values[0] if values else None


def judge_breaker(samples: Sequence[Sample], _profile: Profile) -> tuple[Status, str]:
    """Open is critical, half-open a warning, closed fine."""
    value = first_value(samples)
    if value is None:
        return Status.UNKNOWN, "no data"
    state = round(value)
    name = BREAKER_NAMES.get(state, f"state {state}")
    status = {1: Status.CRITICAL, 2: Status.WARNING}.get(state, Status.OK)
    return status, f"{name} on at least one agent" if state else "closed on every agent"


def judge_throttling(samples: Sequence[Sample], profile: Profile) -> tuple[Status, str]:
    """The share of PUTs the rate limiter held back."""
    by_decision = {s.labels.get("decision", "?"): s.value for s in samples}
    share = allowed_share(by_decision, profile.allowed_decision)
    if not samples:
        return Status.UNKNOWN, "no data"
    if share is None:  # no PUT reached the limiter (none sent, or the breaker rejects them)
        return Status.OK, "no PUT reached the rate limiter in 5 min"
    throttled = 1.0 - share
    return level(throttled, THROTTLED_WARNING, THROTTLED_CRITICAL), f"{throttled:.0%} throttled"


def judge_resources(samples: Sequence[Sample], _profile: Profile) -> tuple[Status, str]:
    """Memory against its limit, CPU against the alert's cores; the worse decides."""
    found = {s.labels.get("what"): s.value for s in samples if not math.isnan(s.value)}
    memory, cpu = found.get("memory"), found.get("cpu")
    if memory is None and cpu is None:
        return Status.UNKNOWN, "no data"
    statuses, parts = [], []
    if memory is not None:
        statuses.append(level(memory, MEMORY_WARNING, MEMORY_CRITICAL))
        parts.append(f"memory {memory:.0%} of limit")
    if cpu is not None:
        statuses.append(Status.WARNING if cpu > CPU_WARNING_CORES else Status.OK)
        parts.append(f"CPU {cpu:.2f} cores")
    return max(statuses, key=lambda s: s.rank), ", ".join(parts)


def judge_rate(warning: float, critical: float, unit: str) -> Callable[..., tuple[Status, str]]:
    """A judge for an events-per-second panel."""

    def judge(samples: Sequence[Sample], _profile: Profile) -> tuple[Status, str]:
        value = first_value(samples)
        if value is None:
            return Status.UNKNOWN, "no data"
        return level(value, warning, critical), f"{value:.3g} {unit}/s"

    return judge


def judge_disk(samples: Sequence[Sample], _profile: Profile) -> tuple[Status, str]:
    """The fullest data volume."""
    value = first_value(samples)
    if value is None:
        return Status.UNKNOWN, "no data"
    return level(value, DISK_WARNING, DISK_CRITICAL), f"{value:.0%} used (fullest volume)"


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "breaker",
        "Circuit breaker",
        "half-open: warning · open: critical",
        breaker_query,
        judge_breaker,
    ),
    PanelSpec(
        "throttling",
        "S3 throttling",
        f"warning over {THROTTLED_WARNING:.0%} · critical over {THROTTLED_CRITICAL:.0%}",
        throttling_query,
        judge_throttling,
    ),
    PanelSpec(
        "resources",
        "Memory / CPU",
        f"memory over {MEMORY_WARNING:.0%} of limit · CPU over {CPU_WARNING_CORES:g} cores",
        resources_query,
        judge_resources,
    ),
    PanelSpec(
        "leases",
        "Lease conflicts",
        f"warning over {LEASE_WARNING:g}/s · critical over {LEASE_CRITICAL:g}/s",
        rate_query("lease_conflicts_total"),
        judge_rate(LEASE_WARNING, LEASE_CRITICAL, "conflicts"),
    ),
    PanelSpec(
        "registry",
        "Schema registry errors",
        f"warning over {REGISTRY_WARNING:g}/s · critical over {REGISTRY_CRITICAL:g}/s",
        rate_query("schema_registry_errors_total"),
        judge_rate(REGISTRY_WARNING, REGISTRY_CRITICAL, "errors"),
    ),
    PanelSpec(
        "disk",
        "Disk usage",
        f"warning over {DISK_WARNING:.0%} · critical over {DISK_CRITICAL:.0%}",
        disk_query,
        judge_disk,
    ),
)


# -- reading --------------------------------------------------------------------------------
async def read_panel(spec: PanelSpec, prometheus: Prometheus, profile: Profile) -> Panel:
    """One panel: at most one query; ``unknown`` with the reason when it cannot be read."""
    query = spec.query(profile)
    if query is None:
        note = f"the {profile.name} profile has no such metric"
        return Panel(spec.key, spec.title, "no data", spec.threshold, Status.UNKNOWN, note)
    try:
        samples = await prometheus.instant(query)
    except SourceError as error:
        note = f"{error.source}: {error.detail}"
        return Panel(spec.key, spec.title, "no data", spec.threshold, Status.UNKNOWN, note)
    status, value = spec.judge(samples, profile)
    empty = None
    if status is Status.UNKNOWN:
        empty = "Prometheus has no series for it" if not samples else "no usable value"
    return Panel(spec.key, spec.title, value, spec.threshold, status, empty)


async def read_panels(prometheus: Prometheus, profile: Profile) -> list[Panel]:
    """Every panel, in the dashboard's order, queried concurrently (one query each)."""
    return list(await asyncio.gather(*(read_panel(s, prometheus, profile) for s in PANELS)))


def all_ok(panels: Sequence[Panel]) -> bool:
    """Whether every panel reads ok."""
    return all(panel.status is Status.OK for panel in panels)
