"""Namespace and cluster objects: nodes, events, the config map, PVCs, storage classes.

PVCs: the runbook profile has one claim ``streamhouse-wal`` (capacity of the first agent's
volume; every agent mounts it); upstream has ``wal-data-<pod>`` per StatefulSet pod. The
single StorageClass ``gp3`` allows expansion when ``world.storage_class_expandable``.
"""

from __future__ import annotations

from lab.kubernetes.errors import not_found
from lab.kubernetes.meta import (
    Cluster,
    JsonObject,
    object_meta,
    rfc3339,
    rfc3339_micro,
    short_hash,
    uid_for,
)
from lab.kubernetes.quantity import format_bytes
from lab.kubernetes.templates import CONFIG_MAP, RUNBOOK_CLAIM, claim_name
from lab.world import GIB, Agent, KubeEvent, Node

STORAGE_CLASS = "gp3"
_SOURCES = {
    "Pod": "kubelet",
    "Node": "kubelet",
    "Deployment": "deployment-controller",
    "StatefulSet": "statefulset-controller",
    "ReplicaSet": "replicaset-controller",
    "PersistentVolumeClaim": "persistentvolume-controller",
}
_GROUPS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "ReplicaSet": "apps/v1"}


def _condition(kind: str, on: bool, reason: str, message: str, cluster: Cluster) -> JsonObject:
    at = rfc3339(cluster.created_at)
    return {
        "type": kind,
        "status": "True" if on else "False",
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": rfc3339(cluster.now()),
        "lastTransitionTime": at,
    }


def node(cluster: Cluster, source: Node) -> JsonObject:
    """A node with its Ready / DiskPressure / MemoryPressure / PIDPressure conditions."""
    labels = {
        "kubernetes.io/hostname": source.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/zone": "us-east-1a",
    }
    capacity = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    info = {
        "architecture": "amd64",
        "bootID": uid_for(source.name, "boot"),
        "containerRuntimeVersion": "containerd://1.7.20",
        "kernelVersion": "6.1.0-25-amd64",
        "kubeProxyVersion": "v1.30.4",
        "kubeletVersion": "v1.30.4",
        "machineID": short_hash(source.name, length=32),
        "operatingSystem": "linux",
        "osImage": "Debian GNU/Linux 12 (bookworm)",
        "systemUUID": uid_for(source.name),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": object_meta(
            cluster,
            source.name,
            cluster.created_at,
            namespaced=False,
            labels=labels,
            uid_parts=("Node",),
        ),
        "spec": {"providerID": f"aws:///us-east-1a/i-{short_hash(source.name, length=17)}"},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "nodeInfo": info,
            "addresses": [
                {"type": "InternalIP", "address": _node_ip(cluster, source)},
                {"type": "Hostname", "address": source.name},
            ],
            "conditions": [
                _condition(
                    "MemoryPressure",
                    source.memory_pressure,
                    "KubeletHasSufficientMemory"
                    if not source.memory_pressure
                    else "KubeletHasInsufficientMemory",
                    "kubelet memory pressure",
                    cluster,
                ),
                _condition(
                    "DiskPressure",
                    source.disk_pressure,
                    "KubeletHasNoDiskPressure"
                    if not source.disk_pressure
                    else "KubeletHasDiskPressure",
                    "kubelet disk pressure",
                    cluster,
                ),
                _condition("PIDPressure", False, "KubeletHasSufficientPID", "", cluster),
                _condition(
                    "Ready",
                    source.ready,
                    "KubeletReady" if source.ready else "KubeletNotReady",
                    "kubelet status",
                    cluster,
                ),
            ],
        },
    }


def _node_ip(cluster: Cluster, source: Node) -> str:
    return f"10.0.0.{10 + cluster.world.nodes.index(source)}"


def find_node(cluster: Cluster, name: str) -> Node:
    """A World node by name, or a 404 ``ApiError``."""
    found = next((candidate for candidate in cluster.world.nodes if candidate.name == name), None)
    if found is None:
        raise not_found("nodes", name)
    return found


def _event_name(event: KubeEvent, index: int) -> str:
    return f"{event.name}.{short_hash(event.at.isoformat(), index, event.reason, length=16)}"


def core_event(cluster: Cluster, event: KubeEvent, index: int) -> JsonObject:
    """A ``v1`` Event."""
    source = _SOURCES.get(event.kind, "kubelet")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": object_meta(
            cluster, _event_name(event, index), event.at, uid_parts=("Event", index)
        ),
        "involvedObject": {
            "kind": event.kind,
            "name": event.name,
            "namespace": cluster.namespace,
            "apiVersion": _GROUPS.get(event.kind, "v1"),
        },
        "reason": event.reason,
        "message": event.message,
        "type": event.type,
        "source": {"component": source},
        "reportingComponent": source,
        "firstTimestamp": rfc3339(event.at),
        "lastTimestamp": rfc3339(event.at),
        "count": 1,
    }


def events_v1_event(cluster: Cluster, event: KubeEvent, index: int) -> JsonObject:
    """An ``events.k8s.io/v1`` Event."""
    source = _SOURCES.get(event.kind, "kubelet")
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": object_meta(
            cluster, _event_name(event, index), event.at, uid_parts=("Event", index)
        ),
        "eventTime": rfc3339_micro(event.at),
        "reason": event.reason,
        "note": event.message,
        "type": event.type,
        "action": event.reason,
        "reportingController": source,
        "reportingInstance": source,
        "regarding": {
            "kind": event.kind,
            "name": event.name,
            "namespace": cluster.namespace,
            "apiVersion": _GROUPS.get(event.kind, "v1"),
        },
    }


def config_map(cluster: Cluster) -> JsonObject:
    """``streamhouse-config`` from ``world.config_map``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(cluster, CONFIG_MAP, cluster.created_at, uid_parts=("ConfigMap",)),
        "data": dict(cluster.world.config_map),
    }


def claims(cluster: Cluster) -> dict[str, list[Agent]]:
    """Each WAL PVC name and the agents whose volume it is."""
    world = cluster.world
    if world.agent_workload.kind == "Deployment":
        return {RUNBOOK_CLAIM: list(world.agents)}
    return {claim_name(cluster, agent): [agent] for agent in world.agents}


def pvc(cluster: Cluster, name: str, agents: list[Agent]) -> JsonObject:
    """A bound PVC whose size is its agents' volume capacity."""
    size = format_bytes(agents[0].volume_capacity_bytes if agents else 50 * GIB)
    labels = dict(cluster.world.agent_workload.labels)
    meta = object_meta(cluster, name, cluster.created_at, labels=labels, uid_parts=("PVC",))
    meta["annotations"] = {
        "pv.kubernetes.io/bind-completed": "yes",
        "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
    }
    meta["finalizers"] = ["kubernetes.io/pvc-protection"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": STORAGE_CLASS,
            "resources": {"requests": {"storage": size}},
            "volumeMode": "Filesystem",
            "volumeName": f"pvc-{meta['uid']}",
        },
        "status": {
            "phase": "Bound",
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": size},
        },
    }


def all_pvcs(cluster: Cluster) -> list[JsonObject]:
    """Every WAL PVC in the namespace."""
    return [pvc(cluster, name, agents) for name, agents in claims(cluster).items()]


def find_pvc(cluster: Cluster, name: str) -> tuple[JsonObject, list[Agent]]:
    """One PVC and its agents, or a 404 ``ApiError``."""
    agents = claims(cluster).get(name)
    if agents is None:
        raise not_found("persistentvolumeclaims", name)
    return pvc(cluster, name, agents), agents


def storage_class(cluster: Cluster) -> JsonObject:
    """The EBS StorageClass the WAL claims use."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": object_meta(
            cluster,
            STORAGE_CLASS,
            cluster.created_at,
            namespaced=False,
            uid_parts=("StorageClass",),
        ),
        "provisioner": "ebs.csi.aws.com",
        "parameters": {"type": "gp3"},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": cluster.world.storage_class_expandable,
    }
