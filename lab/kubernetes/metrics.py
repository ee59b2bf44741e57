"""Resource usage: ``metrics.k8s.io`` PodMetrics and the kubelet's stats summary.

PodMetrics are reported like metrics-server does: CPU in nanocores (``"500000000n"``),
memory in KiB (``"1048576Ki"``), only for pods whose container runs (a pod in
CrashLoopBackOff or Pending has no metrics). The stats summary of a node lists the agent
pods on it with the WAL volume's ``capacityBytes`` / ``usedBytes`` / ``availableBytes``.
"""

from __future__ import annotations

from lab.kubernetes.meta import Cluster, JsonObject, rfc3339
from lab.kubernetes.pods import pod_uid, registry_pods
from lab.kubernetes.quantity import format_kibibytes, format_nanocores
from lab.kubernetes.templates import (
    AGENT_CONTAINER,
    REGISTRY_CONTAINER,
    claim_name,
    wal_volume_name,
)
from lab.world import GIB, MIB, Agent, Node

METRICS_API = "metrics.k8s.io/v1beta1"
_REGISTRY_CPU, _REGISTRY_MEMORY = 0.05, 256 * MIB


def _pod_metrics(
    cluster: Cluster, pod: str, labels: dict[str, str], container: str, cpu: float, memory: int
) -> JsonObject:
    now = cluster.now()
    return {
        "kind": "PodMetrics",
        "apiVersion": METRICS_API,
        "metadata": {
            "name": pod,
            "namespace": cluster.namespace,
            "labels": labels,
            "creationTimestamp": rfc3339(now),
        },
        "timestamp": rfc3339(now),
        "window": "15s",
        "containers": [
            {
                "name": container,
                "usage": {"cpu": format_nanocores(cpu), "memory": format_kibibytes(memory)},
            }
        ],
    }


def pod_metrics(cluster: Cluster) -> list[JsonObject]:
    """PodMetrics of every running pod in the namespace."""
    world = cluster.world
    items = [
        _pod_metrics(
            cluster,
            agent.pod,
            dict(world.agent_workload.labels),
            AGENT_CONTAINER,
            agent.cpu_cores,
            agent.memory_bytes,
        )
        for agent in world.agents
        if agent.phase == "Running"
    ]
    for pod in registry_pods(cluster):
        meta = pod["metadata"]
        items.append(
            _pod_metrics(
                cluster,
                meta["name"],
                meta["labels"],
                REGISTRY_CONTAINER,
                _REGISTRY_CPU,
                _REGISTRY_MEMORY,
            )
        )
    return items


def metrics_list(cluster: Cluster, items: list[JsonObject]) -> JsonObject:
    """A PodMetricsList."""
    return {
        "kind": "PodMetricsList",
        "apiVersion": METRICS_API,
        "metadata": {"resourceVersion": ""},
        "items": items,
    }


def _volume_stats(cluster: Cluster, agent: Agent) -> JsonObject:
    capacity, used = agent.volume_capacity_bytes, agent.volume_used_bytes
    inodes = capacity // (16 * 1024)
    return {
        "time": rfc3339(cluster.now()),
        "name": wal_volume_name(cluster),
        "pvcRef": {"name": claim_name(cluster, agent), "namespace": cluster.namespace},
        "capacityBytes": capacity,
        "usedBytes": used,
        "availableBytes": max(capacity - used, 0),
        "inodes": inodes,
        "inodesUsed": len(agent.wal_files) + 3,
        "inodesFree": inodes - len(agent.wal_files) - 3,
    }


def _agent_stats(cluster: Cluster, agent: Agent) -> JsonObject:
    now = rfc3339(cluster.now())
    running = agent.phase == "Running"
    container: JsonObject = {"name": AGENT_CONTAINER, "startTime": rfc3339(agent.started_at)}
    if running:
        container["cpu"] = {"time": now, "usageNanoCores": round(agent.cpu_cores * 1e9)}
        container["memory"] = {
            "time": now,
            "workingSetBytes": agent.memory_bytes,
            "usageBytes": agent.memory_bytes,
        }
    return {
        "podRef": {"name": agent.pod, "namespace": cluster.namespace, "uid": pod_uid(agent)},
        "startTime": rfc3339(agent.started_at),
        "containers": [container],
        "volume": [_volume_stats(cluster, agent)],
    }


def stats_summary(cluster: Cluster, node: Node) -> JsonObject:
    """The kubelet's ``/stats/summary`` of ``node``: node totals and its agent pods."""
    now = rfc3339(cluster.now())
    disk = 100 * GIB
    used = 95 * GIB if node.disk_pressure else 40 * GIB
    return {
        "node": {
            "nodeName": node.name,
            "startTime": rfc3339(cluster.created_at),
            "memory": {
                "time": now,
                "availableBytes": 2 * GIB if node.memory_pressure else 20 * GIB,
                "workingSetBytes": 12 * GIB,
            },
            "fs": {
                "time": now,
                "capacityBytes": disk,
                "usedBytes": used,
                "availableBytes": disk - used,
            },
        },
        "pods": [
            _agent_stats(cluster, agent)
            for agent in cluster.world.agents
            if agent.node == node.name and agent.phase != "Pending"
        ],
    }
