"""Pure conversions from the official client's models (and raw JSON) to ``bot.sources.base``.

Quantities ("2Gi", "500m", "1048576Ki", "500000000n") become bytes or cores; timestamps
become timezone-aware UTC datetimes; the first container of a pod is the one that matters
(the agent or the registry). Nearly every model field is optional, so models are read
defensively as ``Any``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes.utils.quantity import parse_quantity as _parse_quantity

from bot.sources.base import EventInfo, NodeInfo, PodInfo, PodUsage, PvcInfo, VolumeStat

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
# The parser carries no annotations; a typed alias keeps mypy --strict meaningful.
parse_quantity: Callable[[object], object] = _parse_quantity


# -- scalars ----------------------------------------------------------------------------------
def quantity(raw: object) -> Decimal | None:
    """A Kubernetes quantity as a number, or ``None`` when absent or malformed."""
    if raw is None or raw == "":
        return None
    try:
        return Decimal(str(parse_quantity(raw)))
    except (ValueError, TypeError, InvalidOperation):
        return None


def to_bytes(raw: object) -> int | None:
    """``"2Gi"`` → 2147483648; ``"1048576Ki"`` → 1073741824."""
    value = quantity(raw)
    return int(value) if value is not None else None


def to_cores(raw: object) -> float | None:
    """``"500m"`` → 0.5; ``"500000000n"`` → 0.5; ``"2"`` → 2.0."""
    value = quantity(raw)
    return float(value) if value is not None else None


def utc(value: object) -> datetime | None:
    """A datetime (model field) or RFC 3339 string as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def str_map(value: Mapping[Any, Any] | None) -> dict[str, str]:
    """A label/annotation/data map with string keys and values (``None`` → empty)."""
    return {str(key): str(item) for key, item in (value or {}).items()}


# -- containers -------------------------------------------------------------------------------
def container_env(container: Any) -> dict[str, str]:
    """Literal ``env`` values of a container (``valueFrom`` references are skipped)."""
    return {e.name: e.value for e in (container.env or []) if e.value is not None}


def container_resources(
    container: Any,
) -> tuple[int | None, int | None, float | None, float | None]:
    """(memory limit, memory request, CPU limit, CPU request) of a container."""
    resources = container.resources
    limits = (resources.limits if resources else None) or {}
    requests = (resources.requests if resources else None) or {}
    return (
        to_bytes(limits.get("memory")),
        to_bytes(requests.get("memory")),
        to_cores(limits.get("cpu")),
        to_cores(requests.get("cpu")),
    )


def _first(items: list[Any] | None) -> Any:
    return items[0] if items else None


# -- pods -------------------------------------------------------------------------------------
def pod_info(pod: Any) -> PodInfo:
    """A ``V1Pod`` as ``PodInfo`` (first container)."""
    meta, spec, status = pod.metadata, pod.spec, pod.status
    container = _first(spec.containers)
    state = _first(status.container_statuses) if status else None
    owner = _first(meta.owner_references)
    memory_limit, memory_request, cpu_limit, cpu_request = container_resources(container)
    waiting = state.state.waiting if state and state.state else None
    last = state.last_state.terminated if state and state.last_state else None
    running = state.state.running if state and state.state else None
    return PodInfo(
        name=meta.name,
        node=spec.node_name,
        phase=(status.phase if status else None) or "Unknown",
        ready=bool(state.ready) if state else False,
        restart_count=int(state.restart_count or 0) if state else 0,
        waiting_reason=waiting.reason if waiting else None,
        last_terminated_reason=last.reason if last else None,
        last_terminated_at=utc(last.finished_at) if last else None,
        started_at=utc(running.started_at) if running else utc(status.start_time),
        labels=str_map(meta.labels),
        owner_kind=owner.kind if owner else None,
        owner_name=owner.name if owner else None,
        env=container_env(container),
        memory_limit_bytes=memory_limit,
        memory_request_bytes=memory_request,
        cpu_limit_cores=cpu_limit,
        cpu_request_cores=cpu_request,
        volume_claims=tuple(
            volume.persistent_volume_claim.claim_name
            for volume in spec.volumes or []
            if volume.persistent_volume_claim is not None
        ),
    )


def event_info(event: Any) -> EventInfo:
    """A core/v1 ``Event`` as ``EventInfo`` (the latest of its timestamps)."""
    involved = event.involved_object
    at = (
        utc(event.last_timestamp)
        or utc(event.event_time)
        or utc(event.first_timestamp)
        or utc(event.metadata.creation_timestamp)
    )
    return EventInfo(
        at=at,
        type=event.type or "",
        reason=event.reason or "",
        message=event.message or "",
        kind=(involved.kind if involved else None) or "",
        name=(involved.name if involved else None) or "",
    )


def pvc_info(claim: Any) -> PvcInfo:
    """A ``V1PersistentVolumeClaim`` as ``PvcInfo``."""
    spec, status = claim.spec, claim.status
    requests = (spec.resources.requests if spec.resources else None) or {}
    capacity = (status.capacity if status else None) or {}
    return PvcInfo(
        name=claim.metadata.name,
        phase=(status.phase if status else None) or "Unknown",
        capacity_bytes=to_bytes(capacity.get("storage")),
        requested_bytes=to_bytes(requests.get("storage")),
        storage_class=spec.storage_class_name,
    )


def node_info(node: Any) -> NodeInfo:
    """A ``V1Node`` as ``NodeInfo`` from its conditions."""
    conditions = {c.type: c.status == "True" for c in (node.status.conditions or [])}
    return NodeInfo(
        name=node.metadata.name,
        ready=conditions.get("Ready", False),
        disk_pressure=conditions.get("DiskPressure", False),
        memory_pressure=conditions.get("MemoryPressure", False),
    )


# -- raw JSON: metrics.k8s.io and the kubelet summary -----------------------------------------
def pod_usage(item: Mapping[str, Any]) -> PodUsage:
    """A ``PodMetrics`` object (dict) as ``PodUsage``: container usage summed."""
    cpu, memory = 0.0, 0
    for container in item.get("containers") or []:
        usage = container.get("usage") or {}
        cpu += to_cores(usage.get("cpu")) or 0.0
        memory += to_bytes(usage.get("memory")) or 0
    return PodUsage(pod=str(item["metadata"]["name"]), cpu_cores=cpu, memory_bytes=memory)


def volume_stats(summary: Mapping[str, Any], namespace: str) -> list[VolumeStat]:
    """The volumes of ``namespace``'s pods in a kubelet ``/stats/summary`` document."""
    stats = []
    for pod in summary.get("pods") or []:
        ref = pod.get("podRef") or {}
        if ref.get("namespace") != namespace:
            continue
        for volume in pod.get("volume") or []:
            if "capacityBytes" not in volume:
                continue
            stats.append(
                VolumeStat(
                    pod=str(ref.get("name")),
                    volume=str(volume.get("name")),
                    used_bytes=int(volume.get("usedBytes") or 0),
                    capacity_bytes=int(volume["capacityBytes"]),
                    available_bytes=int(volume.get("availableBytes") or 0),
                )
            )
    return stats


# -- rollout history --------------------------------------------------------------------------
def owned_by(obj: Any, kind: str, name: str) -> bool:
    """Whether ``obj`` has an owner reference to the ``kind`` called ``name``."""
    return any(o.kind == kind and o.name == name for o in obj.metadata.owner_references or [])


def replica_set_revision(replica_set: Any) -> tuple[int, datetime | None] | None:
    """(revision, created) of a Deployment's ReplicaSet, from its revision annotation."""
    raw = (replica_set.metadata.annotations or {}).get(REVISION_ANNOTATION)
    if raw is None or not str(raw).isdigit():
        return None
    return int(raw), utc(replica_set.metadata.creation_timestamp)


def controller_revision(revision: Any) -> tuple[int, datetime | None]:
    """(revision, created) of a StatefulSet's ControllerRevision."""
    return int(revision.revision), utc(revision.metadata.creation_timestamp)
