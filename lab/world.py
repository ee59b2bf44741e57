"""The simulated Streamhouse world: one shared, thread-safe state that every lab fake reads.

The Kubernetes fake, the metrics exporter, the S3 fault layer, the schema registry fake and
the metadata database seeder all *render* their view from this state on each request, so
every source tells the same story. Mutations that the bot can cause (deleting a pod, a
rollout restart, an env or resources patch, scaling, growing a PVC) go through the
``World`` methods below, which apply the world's physics: what the real system would do
next (a restarted agent closes its circuit breaker only if S3 is healthy again, a raised
memory limit stops the OOM kills, and so on).

Scenarios (``lab/scenarios.py``) build a ``World``; nothing here knows scenario names.
Times are timezone-aware UTC; ``now`` is injectable so tests can freeze time.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

Profile = Literal["runbook", "upstream"]
S3Fault = Literal[
    "SlowDown", "AccessDenied", "InvalidAccessKeyId", "NoSuchBucket", "ConnectionRefused", "Slow"
]
BreakerState = Literal[0, 1, 2]  # 0 closed, 1 open, 2 half-open (as the metric encodes it)

GIB = 1024**3
MIB = 1024**2
NAMESPACE = "streamhouse"
AGENT_WORKLOAD = "streamhouse-agent"
REGISTRY_WORKLOAD = "streamhouse-schema-registry"
ORG_ID = "5f0c6a9e-7d1b-4c2a-9a53-3b8f6f1d2e10"
DISK_FULL_RATIO = 0.9  # above it an agent's WAL flushes fail with ENOSPC
WAL_AFTER_FLUSH_BYTES = 64 * MIB  # what a WAL holds right after a successful flush


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass
class LogLine:
    """One line of a container log."""

    at: datetime
    text: str


@dataclass
class WalFile:
    """A WAL file of one partition on an agent's volume."""

    topic: str
    partition: int
    size_bytes: int
    modified_at: datetime
    corrupted: bool = False
    records_recovered: int = 0
    records_skipped: int = 0


@dataclass
class Agent:
    """One Streamhouse agent: its pod, container state, resources and internal state."""

    agent_id: str
    pod: str
    node: str
    ordinal: int
    phase: Literal["Running", "Pending", "CrashLoopBackOff", "Terminated"] = "Running"
    ready: bool = True
    restart_count: int = 0
    last_terminated_reason: str | None = None  # "OOMKilled", "Error", ...
    last_terminated_at: datetime | None = None
    started_at: datetime = field(default_factory=utc_now)
    memory_bytes: int = 1 * GIB
    cpu_cores: float = 0.5
    breaker_state: BreakerState = 0
    breaker_opened_at: datetime | None = None
    breaker_transitions_1h: int = 0
    wal_files: list[WalFile] = field(default_factory=list)
    # WAL files moved aside (quarantined or ``*.old``), by file name in the WAL directory:
    # still on the volume, but no longer the agent's WAL.
    wal_aside: dict[str, WalFile] = field(default_factory=dict)
    volume_capacity_bytes: int = 50 * GIB
    volume_used_bytes: int = 5 * GIB
    logs: list[LogLine] = field(default_factory=list)
    heartbeat_ok: bool = True  # False: the process is wedged, no heartbeats, pod still there
    partitions_owned: int = 4

    def log(self, text: str, at: datetime | None = None) -> None:
        """Append a log line (now by default)."""
        self.logs.append(LogLine(at or utc_now(), text))


@dataclass
class Resources:
    """Container resources of a workload's pod template."""

    cpu_request: float = 1.0
    cpu_limit: float | None = 2.0
    memory_request_bytes: int = 2 * GIB
    memory_limit_bytes: int | None = 4 * GIB


@dataclass
class Workload:
    """The agent workload (Deployment or StatefulSet) or the registry Deployment."""

    name: str
    kind: Literal["Deployment", "StatefulSet"]
    labels: dict[str, str]
    replicas: int
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    annotations: dict[str, str] = field(default_factory=dict)
    # The workload object's own annotations (metadata.annotations): notes, no rollout.
    notes: dict[str, str] = field(default_factory=dict)
    revision: int = 1
    revision_history: list[tuple[int, datetime, str]] = field(default_factory=list)


@dataclass
class Node:
    """A Kubernetes node with its conditions and clock offset (node_timex_offset_seconds)."""

    name: str
    clock_offset_seconds: float = 0.0
    disk_pressure: bool = False
    memory_pressure: bool = False
    ready: bool = True


@dataclass
class Lease:
    """A partition lease as the metadata DB holds it (expiry in ms since the epoch)."""

    topic: str
    partition: int
    holder: str
    epoch: int
    expires_at_ms: int
    acquired_at_ms: int


@dataclass
class KubeEvent:
    """A namespace event (reason, message, involved object)."""

    at: datetime
    reason: str
    message: str
    kind: str
    name: str
    type: Literal["Normal", "Warning"] = "Normal"


@dataclass
class Subject:
    """A schema registry subject: its versions (Avro JSON strings) and compatibility mode."""

    name: str
    versions: list[str]
    compatibility: str | None = None  # None: global default applies


@dataclass
class Traffic:
    """Producer demand and S3 behaviour that the throttle and breaker metrics derive from."""

    put_demand_per_s: float = 800.0  # segment PUTs the agents want to do, fleet-wide
    produce_messages_per_s: float = 20_000.0
    s3_503_per_s: float = 0.0
    s3_other_errors_per_s: float = 0.0
    lease_conflicts_per_s: float = 0.0
    lease_renewal_failure_ratio: float = 0.0
    schema_errors_per_s: dict[str, float] = field(default_factory=dict)  # by type
    schema_cache_hits_per_s: float = 200.0
    schema_cache_misses_per_s: float = 5.0
    adaptive_reductions_15m: int = 0


class World:
    """All state of the simulated deployment, guarded by one re-entrant lock.

    Readers call ``snapshot``-style accessors under ``with world.lock``; mutators are the
    methods below. ``version`` increases on every change so caches can notice.
    """

    def __init__(self, profile: Profile = "runbook", *, now: Callable[[], datetime] = utc_now):
        self.profile: Profile = profile
        self.now = now
        self.lock = threading.RLock()
        self.version = 0
        self.scenario = "empty"
        self.namespace = NAMESPACE
        self.org_id = ORG_ID
        self.bucket = "streamhouse-data" if profile == "runbook" else "streamhouse"
        self.agent_workload = _agent_workload(profile)
        self.registry_workload = Workload(
            name=REGISTRY_WORKLOAD,
            kind="Deployment",
            labels={"app": REGISTRY_WORKLOAD}
            if profile == "runbook"
            else {
                "app.kubernetes.io/name": "streamhouse",
                "app.kubernetes.io/component": "schema-registry",
            },
            replicas=1,
        )
        self.agents: list[Agent] = []
        self.registry_logs: list[LogLine] = []
        self.nodes: list[Node] = [Node("node-a"), Node("node-b"), Node("node-c")]
        self.storage_class_expandable = True
        self.config_map: dict[str, str] = {"THROTTLE_ENABLED": "true", "THROTTLE_PUT_RATE": "3000"}
        self.events: list[KubeEvent] = []
        self.leases: list[Lease] = []
        self.topics: dict[str, int] = {"orders": 4, "payments": 4}
        self.subjects: dict[str, Subject] = {}
        self.global_compatibility = "BACKWARD"
        self.traffic = Traffic()
        self.s3_fault: S3Fault | None = None
        self.s3_5xx_per_minute: list[tuple[datetime, float]] = []  # CloudWatch series
        self.prometheus_instrumented = True  # False: families exist, no samples (upstream today)
        self.exec_allowed = False  # the Kubernetes fake answers exec with 403 unless True
        self.memory_working_set_bytes = 1 * GIB  # what an agent needs; above the limit → OOM
        # Two agents claiming the same partitions (the lease simulator makes them collide).
        self.fighting_partitions: list[tuple[str, int]] = []
        # When each partition's newest segment reached S3 (default: one flush interval ago).
        self.last_uploads: dict[tuple[str, int], datetime] = {}
        # A schema producers keep trying to register: (subject, Avro JSON).
        self.pending_schema: tuple[str, str] | None = None
        self.lease_ttl_ms = 30_000 if profile == "runbook" else 300_000
        # S3 answers SlowDown while the agents may PUT faster than this (None: the fault has
        # another cause); throttling the agents at or under it makes S3 recover.
        self.slowdown_above_put_rate: float | None = None
        self._replaced = 0

    def reset(self) -> None:
        """Back to an empty world of the same profile, keeping the lock, clock and version.

        Fakes hold a reference to this object, so a new scenario is built in place.
        """
        with self.lock:
            lock, version = self.lock, self.version
            self.__init__(self.profile, now=self.now)  # type: ignore[misc]
            self.lock, self.version = lock, version + 1

    # -- helpers -------------------------------------------------------------------------
    def touch(self) -> None:
        """Record that the world changed."""
        self.version += 1

    @property
    def selector(self) -> dict[str, str]:
        """The label selector of the agent pods in this profile."""
        return dict(self.agent_workload.labels)

    def agent_by_pod(self, pod: str) -> Agent | None:
        """The agent whose pod is ``pod``."""
        return next((agent for agent in self.agents if agent.pod == pod), None)

    def add_agents(self, count: int) -> None:
        """Create ``count`` healthy agents spread over the nodes."""
        with self.lock:
            for _ in range(count):
                ordinal = len(self.agents)
                pod = self._pod_name(ordinal)
                node = self.nodes[ordinal % len(self.nodes)].name
                agent = Agent(agent_id=_agent_id(pod), pod=pod, node=node, ordinal=ordinal)
                agent.started_at = self.now() - timedelta(days=2)
                agent.log("Agent started", agent.started_at)
                self.agents.append(agent)
            self.agent_workload.replicas = len(self.agents)
            self.touch()

    def _pod_name(self, ordinal: int) -> str:
        if self.agent_workload.kind == "StatefulSet":
            return f"{AGENT_WORKLOAD}-{ordinal}"
        return f"{AGENT_WORKLOAD}-{self.template_hash}-{secrets.token_hex(3)[:5]}"

    @property
    def template_hash(self) -> str:
        """The pod-template hash of the agent Deployment's current revision."""
        digest = hashlib.sha256(f"{AGENT_WORKLOAD}/{self.agent_workload.revision}".encode())
        return digest.hexdigest()[:9]

    # -- physics: what the bot's actions do ------------------------------------------------
    def delete_pod(self, pod: str) -> str | None:
        """Delete an agent pod; its workload brings a replacement. Returns the new pod name."""
        with self.lock:
            agent = self.agent_by_pod(pod)
            if agent is None:
                return None
            self._restart(agent)
            self.touch()
            return agent.pod

    def rollout_restart(self, workload: str) -> bool:
        """``kubectl rollout restart``: every pod of ``workload`` is replaced."""
        with self.lock:
            target = self._workload(workload)
            if target is None:
                return False
            stamp = self.now().isoformat()
            target.annotations["kubectl.kubernetes.io/restartedAt"] = stamp
            self._new_revision(target, "restart")
            if target is self.agent_workload:
                self._roll_agents()
            else:
                self.registry_logs = [LogLine(self.now(), "Schema registry started; cache empty")]
                self.traffic.schema_cache_misses_per_s = 0.0
            self.touch()
            return True

    def set_env(self, workload: str, env: dict[str, str]) -> bool:
        """Patch the workload's env; pods roll with the new values."""
        with self.lock:
            target = self._workload(workload)
            if target is None:
                return False
            target.env.update(env)
            self._new_revision(target, f"env {sorted(env)}")
            if target is self.agent_workload:
                self._s3_recovers_when_throttled_enough()
                self._roll_agents()
            self.touch()
            return True

    def set_resources(self, workload: str, resources: Resources) -> bool:
        """Patch requests/limits; pods roll; an agent fits again once the limit covers it."""
        with self.lock:
            target = self._workload(workload)
            if target is None:
                return False
            target.resources = resources
            self._new_revision(target, "resources")
            if target is self.agent_workload:
                self._roll_agents()
            self.touch()
            return True

    def scale(self, workload: str, replicas: int) -> bool:
        """Change the number of pods of ``workload``."""
        with self.lock:
            target = self._workload(workload)
            if target is None or replicas < 0:
                return False
            if target is self.agent_workload:
                before = len(self.agents)
                while len(self.agents) > replicas:
                    self.agents.pop()
                if len(self.agents) < replicas:
                    self.add_agents(replicas - len(self.agents))
                if 0 < before < replicas:
                    self._spread_memory(before / replicas)
            target.replicas = replicas
            self.touch()
            return True

    def grow_volume(self, agent_pod: str, new_capacity_bytes: int) -> str | None:
        """Grow an agent's WAL volume; returns an error reason when Kubernetes would refuse."""
        with self.lock:
            agent = self.agent_by_pod(agent_pod)
            if agent is None:
                return "not found"
            if not self.storage_class_expandable:
                return "storage class does not allow volume expansion"
            if new_capacity_bytes < agent.volume_capacity_bytes:
                return "field can not be less than previous value"
            was_full = agent.volume_used_bytes > DISK_FULL_RATIO * agent.volume_capacity_bytes
            agent.volume_capacity_bytes = new_capacity_bytes
            if was_full and agent.volume_used_bytes < DISK_FULL_RATIO * new_capacity_bytes:
                self._flush_wal(agent)
            self.touch()
            return None

    def _flush_wal(self, agent: Agent) -> None:
        """With room on the volume again, the flush that failed with ENOSPC succeeds: the
        segments reach S3 and the WAL is truncated down to what arrived since."""
        for wal in agent.wal_files:
            freed = max(wal.size_bytes - WAL_AFTER_FLUSH_BYTES, 0)
            wal.size_bytes -= freed
            wal.modified_at = self.now()
            agent.volume_used_bytes = max(agent.volume_used_bytes - freed, 0)
            where = f"topic={wal.topic} partition={wal.partition}"
            agent.log(f"INFO Segment uploaded, WAL truncated {where}")

    def agent_setting(self, key: str, default: str) -> str:
        """An agent setting: the workload's env first, then the config map."""
        return self.agent_workload.env.get(key, self.config_map.get(key, default))

    def _roll_agents(self) -> None:
        """Every agent restarts. New processes start their rate limiters at the configured
        rate: the adaptive cuts are gone unless S3 still answers 503 (they come right back)."""
        for agent in list(self.agents):
            self._restart(agent)
        if self.traffic.s3_503_per_s == 0:
            self.traffic.adaptive_reductions_15m = 0

    def _s3_recovers_when_throttled_enough(self) -> None:
        """S3 stops answering SlowDown once the agents throttle at or under what it takes."""
        ceiling = self.slowdown_above_put_rate
        if self.s3_fault != "SlowDown" or ceiling is None:
            return
        enabled = self.agent_setting("THROTTLE_ENABLED", "true").strip().lower() == "true"
        try:
            rate = float(self.agent_setting("THROTTLE_PUT_RATE", "3000"))
        except ValueError:
            rate = 3000.0
        if enabled and rate <= ceiling:
            self.s3_fault = None
            self.traffic.s3_503_per_s = 0.0

    def _spread_memory(self, share: float) -> None:
        """More agents share the partitions, so each needs ``share`` of the memory; an agent
        crash-looping on OOM restarts in place and stays up once its limit covers that (its
        last termination stays OOMKilled, as on a real container restart)."""
        self.memory_working_set_bytes = int(self.memory_working_set_bytes * share)
        limit = self.agent_workload.resources.memory_limit_bytes
        fits = limit is None or limit >= self.memory_working_set_bytes
        for agent in self.agents:
            crashed = (
                agent.phase == "CrashLoopBackOff" and agent.last_terminated_reason == "OOMKilled"
            )
            if crashed and fits:
                agent.phase, agent.ready = "Running", True
                agent.restart_count += 1
                agent.started_at = self.now()
            agent.memory_bytes = min(agent.memory_bytes, self.memory_working_set_bytes)

    def _workload(self, name: str) -> Workload | None:
        for workload in (self.agent_workload, self.registry_workload):
            if workload.name == name:
                return workload
        return None

    def _new_revision(self, workload: Workload, change: str) -> None:
        workload.revision += 1
        workload.revision_history.append((workload.revision, self.now(), change))

    def _restart(self, agent: Agent) -> None:
        """A fresh process: new pod name for a Deployment, same name for a StatefulSet."""
        now = self.now()
        if self.agent_workload.kind == "Deployment":
            self._replaced += 1
            agent.pod = self._pod_name(agent.ordinal)
            agent.agent_id = _agent_id(agent.pod)
            agent.restart_count = 0
            agent.last_terminated_reason = None
            agent.logs = []
        agent.started_at = now
        agent.phase, agent.ready, agent.heartbeat_ok = "Running", True, True
        agent.log("Agent started", now)
        limit = self.agent_workload.resources.memory_limit_bytes
        if any(wal.corrupted for wal in agent.wal_files):
            agent.phase, agent.ready = "CrashLoopBackOff", False
            agent.last_terminated_reason = "Error"
            agent.restart_count += 1
            agent.log("ERROR WAL recovery failed: CRC mismatch", now)
        elif limit is not None and limit < self.memory_working_set_bytes:
            agent.phase, agent.ready = "CrashLoopBackOff", False
            agent.last_terminated_reason = "OOMKilled"
            agent.restart_count += 1
        else:
            agent.memory_bytes = min(agent.memory_bytes, self.memory_working_set_bytes)
            self._log_wal_recovered(agent, now)
        if self.s3_fault is None:
            agent.breaker_state, agent.breaker_opened_at = 0, None
            agent.log("S3 circuit breaker closed", now)
        else:
            agent.breaker_state, agent.breaker_opened_at = 1, now
            agent.log("S3 circuit breaker open - rejecting request", now)

    def _log_wal_recovered(self, agent: Agent, now: datetime) -> None:
        """A clean start replays each WAL (corrupted records skipped) and opens for writes."""
        for wal in agent.wal_files:
            key, done = f"{wal.topic}-{wal.partition}", wal.records_recovered
            if self.profile == "upstream":
                agent.log(
                    f"INFO WAL recovery complete recovered={done} topic={wal.topic} "
                    f"partition={wal.partition}",
                    now,
                )
                continue
            skipped = f", {wal.records_skipped} records skipped" if wal.records_skipped else ""
            agent.log(
                f"INFO WAL recovery completed for {key}: {done} records recovered{skipped}", now
            )
            agent.log(f"INFO Partition {key} ready for writes", now)

    def wal_file_name(self, agent: Agent, topic: str, partition: int) -> str:
        """A partition's WAL file name: ``<topic>-<partition>.wal`` in the runbooks,
        ``<topic>-<partition>-<agent_id>.wal`` upstream."""
        if self.profile == "upstream":
            return f"{topic}-{partition}-{agent.agent_id}.wal"
        return f"{topic}-{partition}.wal"

    def quarantine_wal(
        self, pod: str, topic: str, partition: int, aside_name: str | None = None
    ) -> bool:
        """Move a partition's WAL aside on ``pod``: renamed to ``aside_name`` in the same
        directory (kept on the volume) or, without a name, kept as ``.wal.bak``."""
        with self.lock:
            agent = self.agent_by_pod(pod)
            if agent is None:
                return False
            moved = next(
                (w for w in agent.wal_files if (w.topic, w.partition) == (topic, partition)), None
            )
            if moved is None:
                return False
            agent.wal_files.remove(moved)
            name = aside_name or self.wal_file_name(agent, topic, partition) + ".bak"
            agent.wal_aside[name] = moved
            agent.log(f"INFO WAL for {topic}-{partition} moved aside (kept as {name})")
            self.touch()
            return True

    def delete_aside_wal(self, pod: str, name: str) -> bool:
        """Delete a WAL file that was moved aside (``rm``); its space is freed."""
        with self.lock:
            agent = self.agent_by_pod(pod)
            removed = agent.wal_aside.pop(name, None) if agent is not None else None
            if agent is None or removed is None:
                return False
            agent.volume_used_bytes = max(0, agent.volume_used_bytes - removed.size_bytes)
            self.touch()
            return True

    # -- S3 ------------------------------------------------------------------------------
    def set_s3_fault(self, fault: S3Fault | None) -> None:
        """Make S3 fail (or recover) for every client of the lab's S3 endpoint."""
        with self.lock:
            self.s3_fault = fault
            if fault is None:
                self._breakers_recover()
            self.touch()

    def _breakers_recover(self) -> None:
        """S3 is healthy again: its errors stop, and every open breaker's next half-open
        probe succeeds, so it closes by itself (auto-recovery, no restart needed)."""
        self.traffic.s3_503_per_s = self.traffic.s3_other_errors_per_s = 0.0
        now = self.now()
        for agent in self.agents:
            if agent.breaker_state == 0:
                continue
            agent.breaker_state, agent.breaker_opened_at = 0, None
            agent.breaker_transitions_1h += 2  # open -> half-open -> closed
            if self.profile == "runbook":
                agent.log("INFO Circuit state transitioned: Open -> HalfOpen", now)
                agent.log("INFO Circuit state transitioned: HalfOpen -> Closed", now)
            else:
                agent.log("INFO S3 circuit breaker closed", now)


def _agent_workload(profile: Profile) -> Workload:
    if profile == "runbook":
        return Workload(
            name=AGENT_WORKLOAD,
            kind="Deployment",
            labels={"app": AGENT_WORKLOAD},
            replicas=0,
            env={"THROTTLE_ENABLED": "true", "THROTTLE_PUT_RATE": "3000"},
        )
    return Workload(
        name=AGENT_WORKLOAD,
        kind="StatefulSet",
        labels={
            "app.kubernetes.io/name": "streamhouse",
            "app.kubernetes.io/instance": "streamhouse",
            "app.kubernetes.io/component": "agent",
        },
        replicas=0,
        env={"THROTTLE_ENABLED": "true", "WAL_DIR": "/data/wal"},
    )


def _agent_id(pod: str) -> str:
    return f"agent-{pod}"
