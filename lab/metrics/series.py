"""Metric series derived from the lab World, named as the runbooks spell them.

``derive(world)`` is pure: it reads the World under its lock and returns every family the
lab exposes (Streamhouse agents and schema registry, cAdvisor, node-exporter and
kube-state-metrics), each series with a gauge value, or for a counter an absolute part
plus a growth rate per second. The exporter's ``CounterIntegrator`` turns those rates into
counter values that grow between scrapes, so ``rate(x[1m])`` in Prometheus returns the
scenario's numbers. The upstream spelling is applied afterwards by ``lab.metrics.spelling``.

The physics, in brief: PUT demand is split evenly over the running agents; each agent
allows up to its throttle rate (``THROTTLE_PUT_RATE`` halved per adaptive reduction, never
below 100/s) and rate-limits the rest, or rejects everything while its breaker is open.
S3 errors, lease conflicts, produced messages and schema errors are the scenario's
fleet-wide rates split over the series that carry them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal, NamedTuple

from lab.world import Agent, WalFile, World

Labels = tuple[tuple[str, str], ...]
Partition = tuple[str, int]  # (topic, partition)
Kind = Literal["counter", "gauge"]
Source = Literal["streamhouse", "cadvisor", "node-exporter", "kube-state-metrics"]


class Meta(NamedTuple):
    """What a family is: its type, who exposes it, and its help text."""

    kind: Kind
    source: Source
    help: str


_SH: Final = "streamhouse"
_CA: Final = "cadvisor"
_NE: Final = "node-exporter"
_KS: Final = "kube-state-metrics"
FAMILIES: dict[str, Meta] = {
    "circuit_breaker_state": Meta("gauge", _SH, "Breaker state: 0 closed, 1 open, 2 half-open"),
    "circuit_breaker_transitions_total": Meta("counter", _SH, "Circuit breaker state transitions"),
    "s3_requests_total": Meta("counter", _SH, "S3 requests (one per attempt)"),
    "s3_errors_total": Meta("counter", _SH, "S3 request errors"),
    "throttle_decisions_total": Meta("counter", _SH, "S3 throttle decisions"),
    "throttle_rate_current": Meta("gauge", _SH, "Current S3 rate limit (operations per second)"),
    "producer_messages_sent_total": Meta("counter", _SH, "Messages produced"),
    "lease_conflicts_total": Meta("counter", _SH, "Partition lease epoch conflicts"),
    "lease_renewals_total": Meta("counter", _SH, "Partition lease renewals"),
    "lease_acquisitions_total": Meta("counter", _SH, "Partition lease acquisitions"),
    "segment_buffer_size_bytes": Meta("gauge", _SH, "Bytes buffered in the open segment"),
    "wal_size_bytes": Meta("gauge", _SH, "WAL size on disk"),
    "wal_recoveries_total": Meta("counter", _SH, "WAL recoveries"),
    "wal_records_recovered_total": Meta("counter", _SH, "WAL records recovered"),
    "wal_records_skipped_total": Meta("counter", _SH, "Corrupted WAL records skipped"),
    "schema_registry_errors_total": Meta("counter", _SH, "Schema registry errors by type"),
    "schema_registrations_total": Meta("counter", _SH, "Schema registrations by result"),
    "schema_cache_hits_total": Meta("counter", _SH, "Schema cache hits"),
    "schema_cache_misses_total": Meta("counter", _SH, "Schema cache misses"),
    "schema_cache_entries": Meta("gauge", _SH, "Schemas held in the registry cache"),
    "container_memory_usage_bytes": Meta("gauge", _CA, "Current memory usage in bytes"),
    "container_spec_memory_limit_bytes": Meta("gauge", _CA, "Memory limit for the container"),
    "container_cpu_usage_seconds_total": Meta("counter", _CA, "Cumulative cpu time consumed"),
    "node_timex_offset_seconds": Meta("gauge", _NE, "Time offset from the reference clock"),
    "node_filesystem_avail_bytes": Meta("gauge", _NE, "Filesystem space available in bytes"),
    "node_filesystem_size_bytes": Meta("gauge", _NE, "Filesystem size in bytes"),
    "kube_pod_container_status_restarts_total": Meta("counter", _KS, "Container restarts"),
    "kube_pod_container_status_last_terminated_reason": Meta("gauge", _KS, "Last termination"),
}

AGENT_CONTAINER = "agent"
AGENT_JOB = "streamhouse-agent"
REGISTRY_JOB = "streamhouse-schema-registry"
DEFAULT_PUT_RATE = 3000.0
MIN_PUT_RATE = 100.0  # the rate limiter's min_rate for PUT
RENEWALS_PER_S = 0.1  # one renewal per owned partition every 10 s
FLUSH_INTERVAL_S = 5.0  # background segment flush tick: what a buffer holds at most
AVG_RECORD_BYTES = 1024  # converts buffered records to bytes and back
_SERVING_PHASES = frozenset({"Running"})
_CONTAINER_PHASES = frozenset({"Running", "CrashLoopBackOff"})
_OTHER_S3_ERROR = {
    "AccessDenied": "AccessDenied",
    "InvalidAccessKeyId": "InvalidAccessKeyId",
    "NoSuchBucket": "NoSuchBucket",
    "ConnectionRefused": "connection",
    "Slow": "timeout",
}


@dataclass(frozen=True)
class Sample:
    """One series: its labels, a gauge value (or a counter's absolute part) and growth.

    ``rate`` is a counter's growth per second; ``epoch`` is the start of the process that
    owns the counter (UNIX seconds): a new epoch restarts the integrated part at zero.
    """

    labels: Labels
    value: float = 0.0
    rate: float = 0.0
    epoch: float = 0.0


@dataclass(frozen=True)
class Family:
    """A metric family: name (counters end in ``_total``), type, help, source, series."""

    name: str
    kind: Kind
    help: str
    source: Source
    samples: tuple[Sample, ...] = ()

    def with_samples(self, samples: Iterable[Sample]) -> Family:
        """The same family with other series."""
        return replace(self, samples=tuple(samples))


class _Collector:
    """Collects series per family name and returns every known family, even empty ones."""

    def __init__(self) -> None:
        self._samples: defaultdict[str, list[Sample]] = defaultdict(list)

    def gauge(self, name: str, labels: Labels, value: float) -> None:
        self._add(name, "gauge", Sample(labels, value))

    def counter(
        self, name: str, labels: Labels, *, rate: float = 0.0, base: float = 0.0, epoch: float = 0.0
    ) -> None:
        self._add(name, "counter", Sample(labels, base, max(rate, 0.0), epoch))

    def _add(self, name: str, kind: Kind, sample: Sample) -> None:
        if FAMILIES[name].kind != kind:
            raise ValueError(f"{name} is a {FAMILIES[name].kind}, not a {kind}")
        self._samples[name].append(sample)

    def families(self) -> list[Family]:
        return [
            Family(name, meta.kind, meta.help, meta.source, tuple(self._samples.get(name, ())))
            for name, meta in FAMILIES.items()
        ]


def derive(world: World) -> list[Family]:
    """Every family the lab exposes, from the World's current state (runbook names)."""
    out = _Collector()
    with world.lock:
        _agent_series(world, out)
        _registry_series(world, out)
        _cadvisor_series(world, out)
        _node_series(world, out)
        _kube_state_series(world, out)
    return out.families()


# -- Streamhouse agents ------------------------------------------------------------------
def _agent_series(world: World, out: _Collector) -> None:
    serving = [agent for agent in world.agents if agent.phase in _SERVING_PHASES]
    owners = partition_owners(world, serving)
    owned_total = sum(len(parts) for parts in owners.values())
    for agent in serving:
        target = _agent_target(world, agent)
        epoch = agent.started_at.timestamp()
        _breaker_series(out, agent, target, epoch)
        _put_series(out, world, agent, target, epoch, len(serving))
        _producer_series(out, world, target, epoch, len(serving))
        parts = owners.get(agent.agent_id, [])
        _lease_series(out, world, parts, target, epoch, owned_total)
        _buffer_series(out, world, parts, target)
        _wal_series(out, agent, target)


def _agent_target(world: World, agent: Agent) -> Labels:
    return (
        ("namespace", world.namespace),
        ("pod", agent.pod),
        ("agent_id", agent.agent_id),
        ("instance", f"{agent.pod}:8080"),
        ("job", AGENT_JOB),
    )


def _breaker_series(out: _Collector, agent: Agent, target: Labels, epoch: float) -> None:
    put = (("operation", "put"), *target)
    out.gauge("circuit_breaker_state", put, agent.breaker_state)
    transitions = agent.breaker_transitions_1h / 3600.0
    out.counter("circuit_breaker_transitions_total", put, rate=transitions, epoch=epoch)


def put_rate_limit(world: World) -> float:
    """The agents' current PUT rate: the configured limit after adaptive reductions."""
    configured = _setting(world, "THROTTLE_PUT_RATE", str(DEFAULT_PUT_RATE))
    try:
        limit = float(configured)
    except ValueError:
        limit = DEFAULT_PUT_RATE
    return max(MIN_PUT_RATE, limit * 0.5**world.traffic.adaptive_reductions_15m)


def throttle_enabled(world: World) -> bool:
    """Whether the agents run their S3 rate limiter (``THROTTLE_ENABLED``)."""
    return _setting(world, "THROTTLE_ENABLED", "true").strip().lower() == "true"


def _setting(world: World, key: str, default: str) -> str:
    """An agent setting: the workload's env first, then the config map."""
    return world.agent_workload.env.get(key, world.config_map.get(key, default))


def _put_series(
    out: _Collector, world: World, agent: Agent, target: Labels, epoch: float, agents: int
) -> None:
    demand = world.traffic.put_demand_per_s / agents
    limit = put_rate_limit(world)
    if agent.breaker_state == 1:
        allowed, limited, rejected = 0.0, 0.0, demand
    else:
        allowed = min(demand, limit) if throttle_enabled(world) else demand
        limited, rejected = demand - allowed, 0.0
    put = (("operation", "put"), *target)
    decisions = (("allowed", allowed), ("rate_limited", limited), ("circuit_open", rejected))
    for decision, rate in decisions:
        labels = (("operation", "put"), ("decision", decision), *target)
        out.counter("throttle_decisions_total", labels, rate=rate, epoch=epoch)
    out.gauge("throttle_rate_current", put, limit)
    errors = s3_error_rates(world, agents)
    for error_type, rate in errors.items():
        labels = (("operation", "PUT"), ("error_type", error_type), *target)
        out.counter("s3_errors_total", labels, rate=rate, epoch=epoch)
    requests = max(allowed, sum(errors.values()))  # every failed attempt was a request
    out.counter("s3_requests_total", (("operation", "PUT"), *target), rate=requests, epoch=epoch)


def s3_error_rates(world: World, agents: int = 1) -> dict[str, float]:
    """S3 PUT error rates per ``error_type`` for one of ``agents`` agents.

    "503" (SlowDown) is always present so a healthy world reads 0, not "no data"; other
    errors are typed after the world's S3 fault (AccessDenied, connection, ...).
    """
    traffic = world.traffic
    rates = {"503": traffic.s3_503_per_s / agents}
    if traffic.s3_other_errors_per_s > 0:
        other = _OTHER_S3_ERROR.get(world.s3_fault or "", "InternalError")
        rates[other] = rates.get(other, 0.0) + traffic.s3_other_errors_per_s / agents
    return rates


def _producer_series(
    out: _Collector, world: World, target: Labels, epoch: float, agents: int
) -> None:
    partitions = sum(world.topics.values()) or 1
    for topic, count in sorted(world.topics.items()):
        rate = world.traffic.produce_messages_per_s / agents * count / partitions
        labels = (("topic", topic), *target)
        out.counter("producer_messages_sent_total", labels, rate=rate, epoch=epoch)


def partition_owners(world: World, agents: Sequence[Agent]) -> dict[str, list[Partition]]:
    """Which serving agent owns which (topic, partition), by ``agent_id``.

    The metadata leases decide when the world has any; otherwise partitions are dealt out
    round-robin. A partition whose holder is not serving has no owner (and no series).
    """
    owners: dict[str, list[Partition]] = {agent.agent_id: [] for agent in agents}
    if world.leases:
        for lease in world.leases:
            if lease.holder in owners:
                owners[lease.holder].append((lease.topic, lease.partition))
        return owners
    if not agents:
        return owners
    every = [(t, p) for t, count in sorted(world.topics.items()) for p in range(count)]
    for index, part in enumerate(every):
        owners[agents[index % len(agents)].agent_id].append(part)
    return owners


def _lease_series(
    out: _Collector,
    world: World,
    parts: Sequence[Partition],
    target: Labels,
    epoch: float,
    owned_total: int,
) -> None:
    traffic = world.traffic
    conflicts = traffic.lease_conflicts_per_s / owned_total if owned_total else 0.0
    failing = min(max(traffic.lease_renewal_failure_ratio, 0.0), 1.0)
    for topic, partition in parts:
        where = (("topic", topic), ("partition", str(partition)))
        out.counter("lease_conflicts_total", (*where, *target), rate=conflicts, epoch=epoch)
        for result, rate in (
            ("success", RENEWALS_PER_S * (1 - failing)),
            ("failure", RENEWALS_PER_S * failing),
        ):
            labels = (*where, ("result", result), *target)
            out.counter("lease_renewals_total", labels, rate=rate, epoch=epoch)
        success = (*where, ("result", "success"), *target)
        out.counter("lease_acquisitions_total", success, base=1.0, epoch=epoch)
        conflict = (*where, ("result", "conflict"), *target)
        out.counter("lease_acquisitions_total", conflict, rate=conflicts, epoch=epoch)


def _buffer_series(
    out: _Collector, world: World, parts: Sequence[Partition], target: Labels
) -> None:
    partitions = sum(world.topics.values()) or 1
    per_partition = world.traffic.produce_messages_per_s / partitions
    buffered = per_partition * FLUSH_INTERVAL_S * AVG_RECORD_BYTES
    for topic, partition in parts:
        labels = (("topic", topic), ("partition", str(partition)), *target)
        out.gauge("segment_buffer_size_bytes", labels, buffered)


def _wal_series(out: _Collector, agent: Agent, target: Labels) -> None:
    by_partition: defaultdict[Partition, list[WalFile]] = defaultdict(list)
    for wal in agent.wal_files:
        by_partition[(wal.topic, wal.partition)].append(wal)
    for (topic, partition), wals in sorted(by_partition.items()):
        where = (("topic", topic), ("partition", str(partition)), *target)
        out.gauge("wal_size_bytes", where, sum(wal.size_bytes for wal in wals))
        failed = sum(1 for wal in wals if wal.corrupted and wal.records_recovered == 0)
        for result, count in (("success", len(wals) - failed), ("error", failed)):
            labels = (*where[:2], ("result", result), *target)
            out.counter("wal_recoveries_total", labels, base=count)
        recovered = sum(wal.records_recovered for wal in wals)
        out.counter("wal_records_recovered_total", where, base=recovered)
        skipped = sum(wal.records_skipped for wal in wals)
        out.counter("wal_records_skipped_total", where, base=skipped)


# -- schema registry ---------------------------------------------------------------------
def _registry_series(world: World, out: _Collector) -> None:
    if world.registry_workload.replicas <= 0:
        return
    target = (
        ("namespace", world.namespace),
        ("instance", f"{REGISTRY_JOB}:8081"),
        ("job", REGISTRY_JOB),
    )
    traffic = world.traffic
    errors = {"registration": 0.0, "not_found": 0.0, **traffic.schema_errors_per_s}
    for kind, rate in sorted(errors.items()):
        out.counter("schema_registry_errors_total", (("type", kind), *target), rate=rate)
    out.counter("schema_cache_hits_total", target, rate=traffic.schema_cache_hits_per_s)
    out.counter("schema_cache_misses_total", target, rate=traffic.schema_cache_misses_per_s)
    entries = sum(len(subject.versions) for subject in world.subjects.values())
    out.gauge("schema_cache_entries", target, entries)
    _registration_series(world, out, errors, target)


def _registration_series(
    world: World, out: _Collector, errors: dict[str, float], target: Labels
) -> None:
    """Registration outcomes per subject (upstream only): failures go to the subject whose
    registration keeps failing (``world.pending_schema``), else spread over subjects."""
    failing = errors.get("registration", 0.0) + errors.get("incompatible", 0.0)
    subjects = sorted(world.subjects) or (["unknown"] if failing else [])
    pending = world.pending_schema[0] if world.pending_schema else None
    for subject in subjects:
        if pending in subjects:
            share = failing if subject == pending else 0.0
        else:
            share = failing / len(subjects)
        for result, rate in (("success", 0.0), ("incompatible", share)):
            labels = (("subject", subject), ("result", result), *target)
            out.counter("schema_registrations_total", labels, rate=rate)


# -- cAdvisor, node-exporter, kube-state-metrics -----------------------------------------
def _cadvisor_series(world: World, out: _Collector) -> None:
    limit = world.agent_workload.resources.memory_limit_bytes
    for agent in world.agents:
        if agent.phase not in _CONTAINER_PHASES:
            continue
        labels = (
            ("container", AGENT_CONTAINER),
            ("namespace", world.namespace),
            ("pod", agent.pod),
            ("node", agent.node),
            ("instance", agent.node),
            ("job", "kubelet"),
        )
        out.gauge("container_memory_usage_bytes", labels, agent.memory_bytes)
        out.gauge("container_spec_memory_limit_bytes", labels, limit or 0)  # 0: no limit
        epoch = agent.started_at.timestamp()
        out.counter("container_cpu_usage_seconds_total", labels, rate=agent.cpu_cores, epoch=epoch)


def _node_series(world: World, out: _Collector) -> None:
    for node in world.nodes:
        target = (("node", node.name), ("instance", node.name), ("job", "node-exporter"))
        out.gauge("node_timex_offset_seconds", target, node.clock_offset_seconds)
    for agent in world.agents:
        volume = (
            ("device", f"/dev/rbd{agent.ordinal}"),
            ("fstype", "ext4"),
            ("mountpoint", "/data"),
            ("node", agent.node),
            ("instance", agent.node),
            ("job", "node-exporter"),
        )
        free = max(agent.volume_capacity_bytes - agent.volume_used_bytes, 0)
        out.gauge("node_filesystem_avail_bytes", volume, free)
        out.gauge("node_filesystem_size_bytes", volume, agent.volume_capacity_bytes)


def _kube_state_series(world: World, out: _Collector) -> None:
    target = (("instance", "kube-state-metrics:8080"), ("job", "kube-state-metrics"))
    for agent in world.agents:
        container = (
            ("namespace", world.namespace),
            ("pod", agent.pod),
            ("container", AGENT_CONTAINER),
        )
        restarts = (*container, *target)
        out.counter("kube_pod_container_status_restarts_total", restarts, base=agent.restart_count)
        if agent.last_terminated_reason:
            labels = (*container, ("reason", agent.last_terminated_reason), *target)
            out.gauge("kube_pod_container_status_last_terminated_reason", labels, 1)
