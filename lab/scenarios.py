"""Scenarios: named states of the simulated Streamhouse, each consistent across every source.

A scenario builds a ``World`` in place (``world.reset()`` first); the fakes render from it,
and the world's physics make it react to remediations as the real system would. Log lines
follow the profile: the runbooks' wording in ``runbook``, the real Streamhouse messages
(streamhouse-facts.md §6) in ``upstream``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from lab.world import GIB, Agent, KubeEvent, Lease, LogLine, Subject, WalFile, World

Builder = Callable[[World, str], None]


@dataclass(frozen=True)
class Scenario:
    """A named world state with its variants (the first one is the default)."""

    name: str
    summary: str
    variants: tuple[str, ...]
    build: Builder


class UnknownScenarioError(ValueError):
    """The scenario or variant name is not one of ours."""


ORDERS_V1 = {
    "type": "record",
    "name": "Order",
    "namespace": "io.streamhouse.demo",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "email", "type": "string"},
    ],
}
ORDERS_V2_COMPATIBLE = {
    **ORDERS_V1,
    "fields": [*ORDERS_V1["fields"], {"name": "currency", "type": "string", "default": "EUR"}],
}
ORDERS_V2_INCOMPATIBLE = {**ORDERS_V1, "fields": ORDERS_V1["fields"][:2]}
PAYMENTS_V1 = {
    "type": "record",
    "name": "Payment",
    "namespace": "io.streamhouse.demo",
    "fields": [{"name": "id", "type": "string"}, {"name": "status", "type": "string"}],
}


def _schema(record: Mapping[str, object]) -> str:
    return json.dumps(record, separators=(",", ":"))


def _upstream(world: World) -> bool:
    return world.profile == "upstream"


def healthy_baseline(world: World, agents: int = 3) -> None:
    """Three healthy agents owning every partition, compatible schemas, quiet S3."""
    world.add_agents(agents)
    now_ms = int(world.now().timestamp() * 1000)
    partitions = [(t, p) for t, count in sorted(world.topics.items()) for p in range(count)]
    for index, (topic, partition) in enumerate(partitions):
        holder = world.agents[index % len(world.agents)]
        world.leases.append(
            Lease(
                topic, partition, holder.agent_id, 40 + index, now_ms + world.lease_ttl_ms, now_ms
            )
        )
    for agent in world.agents:
        agent.partitions_owned = sum(1 for lease in world.leases if lease.holder == agent.agent_id)
        _log_lease_acquired(world, agent)
    world.subjects = {
        "orders-value": Subject(
            "orders-value", [_schema(ORDERS_V1), _schema(ORDERS_V2_COMPATIBLE)]
        ),
        "payments-value": Subject("payments-value", [_schema(PAYMENTS_V1)]),
    }
    world.s3_5xx_per_minute = _cloudwatch(world, [0.0] * 60)


def _log_lease_acquired(world: World, agent: Agent) -> None:
    for lease in world.leases:
        if lease.holder == agent.agent_id:
            text = (
                f"Acquired partition lease topic={lease.topic} partition={lease.partition} "
                f"epoch={lease.epoch}"
                if _upstream(world)
                else f"Acquired lease for partition {lease.topic}-{lease.partition}, "
                f"epoch: {lease.epoch}"
            )
            agent.log(text, world.now() - timedelta(minutes=30))


def _cloudwatch(world: World, per_minute: list[float]) -> list[tuple[datetime, float]]:
    start = world.now() - timedelta(minutes=len(per_minute))
    return [(start + timedelta(minutes=i), value) for i, value in enumerate(per_minute)]


def build_healthy(world: World, variant: str) -> None:
    """Everything fine."""
    healthy_baseline(world)


def build_no_metrics(world: World, variant: str) -> None:
    """Prometheus up, Streamhouse families registered but never updated (upstream today)."""
    healthy_baseline(world)
    world.prometheus_instrumented = False


def build_circuit_breaker_open(world: World, variant: str) -> None:
    """S3 failures opened the breaker on every agent (cause and age from the variant)."""
    cause, _, age = variant.rpartition("-")
    healthy_baseline(world)
    opened_at = world.now() - (timedelta(minutes=1) if age == "1m" else timedelta(minutes=10))
    fault = {"throttling": "SlowDown", "credentials": "AccessDenied", "recovered": None}[cause]
    world.s3_fault = fault  # type: ignore[assignment]
    if cause == "throttling":
        world.traffic.s3_503_per_s = 40.0
        world.slowdown_above_put_rate = 2500.0  # the runbook's tuned-down PUT rate helps
        world.s3_5xx_per_minute = _cloudwatch(
            world, [0.0] * 45 + [30.0 + 12 * i for i in range(15)]
        )
    elif cause == "credentials":
        world.traffic.s3_other_errors_per_s = 25.0
    for agent in world.agents:
        agent.breaker_state, agent.breaker_opened_at = 1, opened_at
        agent.breaker_transitions_1h = 1
        _log_breaker_opened(world, agent, cause, opened_at)


def _log_breaker_opened(world: World, agent: Agent, cause: str, opened_at: datetime) -> None:
    error = {
        "throttling": "503 SlowDown: Please reduce your request rate",
        "credentials": "403 AccessDenied: Access Denied",
        "recovered": "503 SlowDown: Please reduce your request rate",
    }[cause]
    since = opened_at - timedelta(seconds=5)
    if _upstream(world):
        for attempt in (1, 2, 3):
            agent.log(
                f"WARN S3 upload failed, retrying key=org-{world.org_id}/data/orders/0/"
                f'00000000000000001200.seg attempt={attempt} error="{error}" '
                f"is_throttle_error={str(cause == 'throttling').lower()}",
                since,
            )
        agent.log("ERROR S3 circuit breaker open - rejecting request", since)
        return
    for count in (3, 4):
        agent.log(f"WARN S3 error: {error}", since)
        agent.log(f"WARN Circuit breaker failure count: {count}", since)
    agent.log("ERROR Circuit breaker opened after 5 failures", since)
    agent.log("INFO Circuit state transitioned: Closed -> Open", since)
    agent.log("ERROR S3 circuit breaker open", since)


def build_s3_throttling(world: World, variant: str) -> None:
    """Producer demand above the PUT limit: a short burst, or a sustained overload."""
    healthy_baseline(world)
    limit = 3000.0
    world.traffic.put_demand_per_s = 3600.0 if variant == "burst" else 4800.0
    world.traffic.adaptive_reductions_15m = 2
    world.traffic.produce_messages_per_s = 90_000.0 if variant == "sustained" else 60_000.0
    for agent in world.agents:
        if _upstream(world):
            agent.log("WARN S3 PUT rate limited - backpressure applied")
        else:
            agent.log("WARN Rate limiter: No tokens available for PUT operation")
            agent.log(f"INFO Current rates: PUT={limit:.1f}, GET=5000.0, DELETE=3000.0")
            agent.log(f"INFO Adaptive rate reduced: {limit:.1f} -> {limit / 2:.1f} ops/sec")


def build_wal_corruption(world: World, variant: str) -> None:
    """One agent cannot start: a corrupted WAL for orders-2; its last upload 90 s before."""
    healthy_baseline(world)
    broken = world.agents[1]
    broken.phase, broken.ready, broken.restart_count = "CrashLoopBackOff", False, 6
    broken.last_terminated_reason = "Error"
    broken.last_terminated_at = world.now() - timedelta(seconds=40)
    now = world.now()
    broken.wal_files = [
        WalFile("orders", 2, 180 * 1024**2, now - timedelta(seconds=30), corrupted=True),
        WalFile("orders", 3, 12 * 1024**2, now - timedelta(seconds=31)),
    ]
    world.last_uploads[("orders", 2)] = now - timedelta(seconds=120)
    if _upstream(world):
        broken.log("INFO Recovering unflushed records from WAL from_own_wal=1 total=1")
        broken.log("WARN Corrupted WAL record (CRC mismatch), skipping path=/data/wal/orders-2.wal")
        broken.log("ERROR Failed to get writer: WAL I/O error topic=orders partition=2")
    else:
        broken.log("INFO  Starting WAL recovery for orders-2")
        broken.log("ERROR WAL recovery failed: CRC mismatch at offset 4096")
        broken.log(
            "ERROR Failed to recover WAL for partition orders-2: CRC mismatch at offset 4096"
        )
    world.events.append(
        KubeEvent(
            now, "BackOff", "Back-off restarting failed container", "Pod", broken.pod, "Warning"
        )
    )


def build_lease_conflict(world: World, variant: str) -> None:
    """Lease trouble: a dead holder, two agents fighting, or clock skew between nodes."""
    healthy_baseline(world)
    world.traffic.lease_conflicts_per_s = 0.5
    if variant == "dead-holder":
        dead = world.agents[2]
        dead.phase, dead.ready, dead.heartbeat_ok = "Terminated", False, False
        # The holder died moments ago: its leases stay valid for a while (5 min here, so the
        # scenario lasts long enough to investigate even with the runbooks' 30 s TTL).
        for lease in world.leases:
            if lease.holder == dead.agent_id:
                lease.expires_at_ms = int(world.now().timestamp() * 1000) + 300_000
        world.traffic.lease_renewal_failure_ratio = 0.3
    elif variant == "fighting":
        world.fighting_partitions = [("orders", 1)]
        world.traffic.lease_renewal_failure_ratio = 0.25
        world.traffic.lease_conflicts_per_s = 2.0
    else:  # clock-skew
        world.nodes[2].clock_offset_seconds = 7.5
        world.traffic.lease_renewal_failure_ratio = 0.1
    holder = world.agents[0].agent_id
    for agent in world.agents[1:]:
        agent.log(
            "WARN Failed to acquire partition (may be held by another agent) error=Metadata "
            "error: Conflict: Partition orders/1 is already leased to another agent"
            if _upstream(world)
            else f"ERROR Failed to acquire lease for orders-1: Already held by {holder}"
        )


def build_schema_incompatible(world: World, variant: str) -> None:
    """Producers try to register an orders-value schema that drops a required field."""
    healthy_baseline(world)
    world.traffic.schema_errors_per_s = {"registration": 0.5}
    world.pending_schema = ("orders-value", _schema(ORDERS_V2_INCOMPATIBLE))
    if not _upstream(world):  # upstream's registry logs nothing on failures
        world.registry_logs.append(
            LogLine(
                world.now() - timedelta(minutes=2),
                "ERROR Schema registration failed: Incompatible schema for subject orders-value",
            )
        )


def build_oom(world: World, variant: str) -> None:
    """Agents need more memory than their limit: OOMKilled and restarting."""
    healthy_baseline(world)
    world.memory_working_set_bytes = 5 * GIB
    limit = world.agent_workload.resources.memory_limit_bytes or 4 * GIB
    for agent in world.agents:
        agent.phase, agent.ready = "CrashLoopBackOff", False
        agent.last_terminated_reason = "OOMKilled"
        agent.last_terminated_at = world.now() - timedelta(minutes=2)
        agent.restart_count = 4
        agent.memory_bytes = int(limit * 0.97)
        world.events.append(
            KubeEvent(
                world.now(),
                "OOMKilling",
                "Memory cgroup out of memory",
                "Pod",
                agent.pod,
                "Warning",
            )
        )


def build_disk_full(world: World, variant: str) -> None:
    """The WAL volume of every agent is nearly full: a growing WAL beside rotated ``*.old``
    WALs nobody deleted (8 GiB each, uploaded hours ago), and one ``payments-1.wal.old``
    set aside after its partition's last upload, so S3 does not hold its data yet."""
    healthy_baseline(world)
    now = world.now()
    for agent in world.agents:
        agent.volume_used_bytes = int(agent.volume_capacity_bytes * 0.96)
        agent.wal_files = [WalFile("orders", agent.ordinal, 4 * GIB, now)]
        old = WalFile("orders", agent.ordinal, 8 * GIB, now - timedelta(hours=3))
        agent.wal_aside[world.wal_file_name(agent, "orders", agent.ordinal) + ".old"] = old
        agent.log(
            "ERROR Failed to flush partition writer error=No space left on device (os error 28)"
        )
    last = world.agents[-1]
    unflushed = WalFile("payments", 1, 256 * 1024**2, now - timedelta(minutes=1))
    last.wal_aside[world.wal_file_name(last, "payments", 1) + ".old"] = unflushed
    world.last_uploads[("payments", 1)] = now - timedelta(minutes=10)
    world.nodes[0].disk_pressure = True


def build_cascade(world: World, variant: str) -> None:
    """Throttling first, then the breaker opens, then WAL grows on every agent."""
    build_s3_throttling(world, "sustained")
    world.s3_fault = "SlowDown"
    world.traffic.s3_503_per_s = 30.0
    world.s3_5xx_per_minute = _cloudwatch(world, [0.0] * 40 + [600.0 + 60 * i for i in range(20)])
    opened_at = world.now() - timedelta(minutes=8)
    now = world.now()
    for agent in world.agents:
        agent.breaker_state, agent.breaker_opened_at = 1, opened_at
        _log_breaker_opened(world, agent, "throttling", opened_at)
        agent.wal_files = [WalFile("orders", agent.ordinal, 6 * GIB, now)]
        agent.volume_used_bytes = int(agent.volume_capacity_bytes * 0.7)


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("healthy", "everything fine", ("default",), build_healthy),
        Scenario(
            "circuit-breaker-open",
            "S3 failures opened the circuit breaker on every agent",
            ("throttling-10m", "throttling-1m", "credentials-10m", "recovered-10m"),
            build_circuit_breaker_open,
        ),
        Scenario(
            "s3-throttling",
            "PUT demand above the rate limit",
            ("burst", "sustained"),
            build_s3_throttling,
        ),
        Scenario(
            "wal-corruption", "an agent cannot recover its WAL", ("default",), build_wal_corruption
        ),
        Scenario(
            "lease-conflict",
            "partition lease trouble",
            ("dead-holder", "fighting", "clock-skew"),
            build_lease_conflict,
        ),
        Scenario(
            "schema-incompatible",
            "an incompatible schema is being registered",
            ("default",),
            build_schema_incompatible,
        ),
        Scenario("oom", "agents are OOMKilled", ("default",), build_oom),
        Scenario("disk-full", "WAL volumes nearly full", ("default",), build_disk_full),
        Scenario("cascade", "throttling → breaker open → WAL growth", ("default",), build_cascade),
        Scenario(
            "no-metrics",
            "Streamhouse metrics registered but never updated",
            ("default",),
            build_no_metrics,
        ),
    )
}


def apply_scenario(world: World, name: str, variant: str | None = None) -> str:
    """Rebuild ``world`` as scenario ``name`` (variant or default); returns the variant used."""
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise UnknownScenarioError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    chosen = variant or scenario.variants[0]
    if chosen not in scenario.variants:
        raise UnknownScenarioError(
            f"scenario {name!r} has no variant {chosen!r}; known: {', '.join(scenario.variants)}"
        )
    with world.lock:
        world.reset()
        scenario.build(world, chosen)
        world.scenario = name if chosen == "default" else f"{name}/{chosen}"
        world.touch()
    return chosen
