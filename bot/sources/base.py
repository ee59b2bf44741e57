"""What the sources return, how they fail, and the interfaces handlers program against.

Sources (``bot/sources/*``) are the only code that does I/O. Each system has a Protocol
here and one real implementation; handlers receive a ``Sources`` bundle whose calls are
cached for the duration of one diagnosis, so a query two checks need runs once.

Errors (every one carries ``source`` and a human ``detail``; handlers turn them into an
``unknown`` check naming the source and the reason):

- ``SourceError``: base.
  - ``SourceNotConfigured``: the URL or bucket for this system is not set.
  - ``SourceUnreachable``: connection refused, DNS, TLS, timeout.
  - ``SourceForbidden``: the system refused the bot (HTTP 401/403, AccessDenied, RBAC).
  - ``SourceQueryError``: the system answered but rejected the request (bad PromQL with
    Prometheus' message, SQL error, 4xx with a body, unknown subject).

"No data" is not an error: Prometheus returns an empty list, the metadata DB an empty
readout with ``hidden_by_rls`` when row-level security hides rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol


class SourceError(Exception):
    """A system could not answer; ``detail`` says why in words an engineer understands."""

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(f"{source}: {detail}")
        self.source = source
        self.detail = detail


class SourceNotConfigured(SourceError):
    """The setting that points at this system is missing."""


class SourceUnreachable(SourceError):
    """Connection refused, name resolution, TLS or timeout."""


class SourceForbidden(SourceError):
    """The system refused the bot's identity or permissions."""


class SourceQueryError(SourceError):
    """The system answered and rejected the request; ``detail`` carries its message."""


# -- Prometheus ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """One series of an instant vector."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    """One series of a range query: ``(unix_seconds, value)`` points, ascending."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


class Prometheus(Protocol):
    """PromQL over HTTP. An empty list means no such series (not instrumented)."""

    async def instant(self, query: str) -> list[Sample]:
        """``/api/v1/query`` at now."""
        ...

    async def range(
        self, query: str, *, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        """``/api/v1/query_range``."""
        ...


# -- Kubernetes ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PodInfo:
    """What the checks need of a pod (first container = the agent/registry container)."""

    name: str
    node: str | None
    phase: str
    ready: bool
    restart_count: int
    waiting_reason: str | None  # e.g. CrashLoopBackOff
    last_terminated_reason: str | None  # e.g. OOMKilled
    last_terminated_at: datetime | None
    started_at: datetime | None
    labels: Mapping[str, str]
    owner_kind: str | None
    owner_name: str | None
    env: Mapping[str, str]
    memory_limit_bytes: int | None
    memory_request_bytes: int | None
    cpu_limit_cores: float | None
    cpu_request_cores: float | None
    volume_claims: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventInfo:
    """A namespace event."""

    at: datetime | None
    type: str
    reason: str
    message: str
    kind: str
    name: str


@dataclass(frozen=True)
class WorkloadInfo:
    """The agent (or registry) Deployment/StatefulSet."""

    kind: str
    name: str
    replicas: int
    ready_replicas: int
    env: Mapping[str, str]
    memory_limit_bytes: int | None
    memory_request_bytes: int | None
    cpu_limit_cores: float | None
    cpu_request_cores: float | None
    annotations: Mapping[str, str]
    revisions: tuple[tuple[int, datetime | None], ...] = ()  # (revision, created), ascending


@dataclass(frozen=True)
class PvcInfo:
    """A persistent volume claim."""

    name: str
    phase: str
    capacity_bytes: int | None
    requested_bytes: int | None
    storage_class: str | None


@dataclass(frozen=True)
class NodeInfo:
    """A node's conditions."""

    name: str
    ready: bool
    disk_pressure: bool
    memory_pressure: bool


@dataclass(frozen=True)
class VolumeStat:
    """Kubelet stats for one pod volume."""

    pod: str
    volume: str
    used_bytes: int
    capacity_bytes: int
    available_bytes: int


@dataclass(frozen=True)
class PodUsage:
    """``metrics.k8s.io`` usage of a pod."""

    pod: str
    cpu_cores: float
    memory_bytes: int


class Kubernetes(Protocol):
    """The Kubernetes API in the Streamhouse namespace (names from the profile)."""

    async def agent_pods(self) -> list[PodInfo]:
        """Pods matching the profile's agent selector."""
        ...

    async def registry_pods(self) -> list[PodInfo]:
        """Pods of the schema-registry workload."""
        ...

    async def logs(
        self, pod: str, *, tail: int = 200, since_seconds: int | None = None
    ) -> list[str]:
        """The pod's log lines (oldest first)."""
        ...

    async def events(self) -> list[EventInfo]:
        """Events in the namespace."""
        ...

    async def agent_workload(self) -> WorkloadInfo:
        """The agent Deployment or StatefulSet, with its rollout history."""
        ...

    async def pod_usage(self) -> list[PodUsage]:
        """``metrics.k8s.io`` usage of every pod in the namespace."""
        ...

    async def pvcs(self) -> list[PvcInfo]:
        """Persistent volume claims in the namespace."""
        ...

    async def storage_class_expandable(self, name: str) -> bool:
        """Whether the StorageClass allows volume expansion."""
        ...

    async def nodes(self) -> list[NodeInfo]:
        """Every node with its conditions."""
        ...

    async def volume_stats(self, node: str) -> list[VolumeStat]:
        """Kubelet summary (through the node proxy) of the volumes of pods on ``node``."""
        ...

    async def exec(self, pod: str, command: Sequence[str]) -> str:
        """Run a read-only command in the pod; ``SourceForbidden`` where RBAC refuses."""
        ...

    async def config_map(self, name: str) -> Mapping[str, str]:
        """A ConfigMap's data."""
        ...


# -- Streamhouse metadata PostgreSQL ------------------------------------------------------
@dataclass(frozen=True)
class LeaseRow:
    """A row of ``partition_leases`` (times in ms since the epoch)."""

    topic: str
    partition: int
    holder: str
    epoch: int
    expires_at_ms: int
    acquired_at_ms: int | None


@dataclass(frozen=True)
class LeaseReadout:
    """What the bot could see of the lease table.

    ``hidden_by_rls`` is True when row-level security hides rows from the bot's role (zero
    visible rows while the table is RLS-protected and the role is neither owner nor
    BYPASSRLS, or while ``agents`` has rows): an empty ``rows`` then means "cannot see",
    never "no leases". ``note`` explains, naming the role and ``app.current_organization_id``.
    """

    rows: tuple[LeaseRow, ...]
    db_now_ms: int
    role: str
    hidden_by_rls: bool = False
    note: str | None = None


@dataclass(frozen=True)
class AgentRow:
    """A row of ``agents`` (upstream only)."""

    agent_id: str
    address: str
    last_heartbeat_ms: int | None


@dataclass(frozen=True)
class DbHealth:
    """LC-5: connections, slow queries and lock waits on the metadata database."""

    connections: int
    max_connections: int
    long_queries: tuple[tuple[int, float, str], ...]  # (pid, seconds, query text, cut short)
    lease_lock_waits: int


@dataclass(frozen=True)
class RegistryTables:
    """SR-5: which ``schema_registry_*`` tables exist, their row counts, orphaned versions."""

    present: tuple[str, ...]
    missing: tuple[str, ...]
    counts: Mapping[str, int]
    orphaned_versions: int


class MetadataDb(Protocol):
    """Read-mostly access to the Streamhouse metadata database (columns from the profile)."""

    async def leases(self, topic: str | None = None, partition: int | None = None) -> LeaseReadout:
        """Lease rows (expired ones included), optionally for one topic/partition."""
        ...

    async def agents(self) -> list[AgentRow] | None:
        """Registered agents, or ``None`` where the profile has no ``agents`` table."""
        ...

    async def health(self) -> DbHealth:
        """Connection count, long-running queries and lock waits on the lease table."""
        ...

    async def registry_tables(self) -> RegistryTables:
        """The schema registry tables' presence, counts and orphans."""
        ...

    async def last_segment_upload(self, topic: str, partition: int) -> datetime | None:
        """``max(created_at)`` of ``segments`` (upstream), or ``None`` without that table."""
        ...


# -- S3 / CloudWatch / STS ----------------------------------------------------------------
@dataclass(frozen=True)
class S3Probe:
    """CB-3: the bucket from the bot's own vantage point; ``errors`` maps call → AWS code."""

    bucket: str
    head_ok: bool
    list_ok: bool
    identity_ok: bool
    errors: Mapping[str, str] = field(default_factory=dict)
    latency_ms: float | None = None

    @property
    def healthy(self) -> bool:
        """Every call succeeded."""
        return self.head_ok and self.list_ok and self.identity_ok


@dataclass(frozen=True)
class S3Object:
    """One object's key and when it was written."""

    key: str
    last_modified: datetime


class ObjectStore(Protocol):
    """S3, CloudWatch and STS for the Streamhouse bucket (``S3_BUCKET``)."""

    async def probe(self) -> S3Probe:
        """head_bucket, list_objects_v2 and get_caller_identity; S3 errors are recorded,
        only an unreachable endpoint raises."""
        ...

    async def newest_object(self, prefix: str) -> S3Object | None:
        """The newest object under ``prefix`` (keys sort in offset order)."""
        ...

    async def s3_5xx_per_minute(self, minutes: int = 60) -> list[tuple[datetime, float]]:
        """CloudWatch ``AWS/S3 5xxErrors`` sums per minute for the bucket, oldest first."""
        ...


# -- Schema registry ----------------------------------------------------------------------
@dataclass(frozen=True)
class SchemaVersion:
    """A registered schema version."""

    subject: str
    version: int
    id: int
    schema: str


class SchemaRegistry(Protocol):
    """The schema registry REST API in the profile's spelling (mount point, org header)."""

    async def subjects(self) -> list[str]:
        """Every subject."""
        ...

    async def versions(self, subject: str) -> list[int]:
        """The subject's version numbers, ascending."""
        ...

    async def version(self, subject: str, version: int | str = "latest") -> SchemaVersion:
        """One version (``latest`` or a number)."""
        ...

    async def compatibility(self, subject: str | None = None) -> str:
        """The subject's mode (falling back to global), or the global mode; upper case."""
        ...

    async def check_compatibility(self, subject: str, schema: str) -> bool | None:
        """The registry's verdict on ``schema`` against the latest version, or ``None``
        where the registry has no compatibility route (upstream)."""
        ...


@dataclass(frozen=True)
class Sources:
    """Everything a check may read; any member may be missing (not configured)."""

    prometheus: Prometheus | None = None
    kubernetes: Kubernetes | None = None
    metadata: MetadataDb | None = None
    objects: ObjectStore | None = None
    registry: SchemaRegistry | None = None
