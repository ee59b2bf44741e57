"""apps/v1 objects rendered from the World: Deployments, StatefulSets, their history, Scale.

Rollout history comes from ``Workload.revision_history``: a Deployment has one ReplicaSet
per revision (older ones scaled to 0, ``deployment.kubernetes.io/revision`` annotated, the
change as ``kubernetes.io/change-cause``); a StatefulSet has one ControllerRevision per
revision. Revision 1 dates from cluster creation.
"""

from __future__ import annotations

from datetime import datetime

from lab.kubernetes.errors import not_found
from lab.kubernetes.meta import Cluster, JsonObject, object_meta, rfc3339, selector_string
from lab.kubernetes.pods import agent_pod, owner_reference, registry_pods
from lab.kubernetes.templates import is_agent, pod_template, revision_hash, template_hash
from lab.world import Workload

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"


def workloads_of_kind(cluster: Cluster, kind: str) -> list[Workload]:
    """The World's workloads that are of ``kind`` (``Deployment`` or ``StatefulSet``)."""
    world = cluster.world
    return [w for w in (world.agent_workload, world.registry_workload) if w.kind == kind]


def find_workload(cluster: Cluster, kind: str, name: str) -> Workload:
    """A workload of ``kind`` by name, or a 404 ``ApiError``."""
    for workload in workloads_of_kind(cluster, kind):
        if workload.name == name:
            return workload
    raise not_found(f"{kind.lower()}s", name, "apps")


def workload_pods(cluster: Cluster, workload: Workload) -> list[JsonObject]:
    """The pods ``workload`` currently owns."""
    if is_agent(cluster, workload):
        return [agent_pod(cluster, agent) for agent in cluster.world.agents]
    return registry_pods(cluster)


def _revision_time(cluster: Cluster, workload: Workload, revision: int) -> datetime:
    for number, at, _change in workload.revision_history:
        if number == revision:
            return at
    return cluster.created_at


def _revision_change(workload: Workload, revision: int) -> str | None:
    return next((change for n, _at, change in workload.revision_history if n == revision), None)


def _counts(pods: list[JsonObject]) -> tuple[int, int]:
    ready = sum(1 for pod in pods if pod["status"]["containerStatuses"][0]["ready"])
    return len(pods), ready


def _workload_meta(cluster: Cluster, workload: Workload) -> JsonObject:
    meta = object_meta(
        cluster,
        workload.name,
        cluster.created_at,
        labels=workload.labels,
        uid_parts=(workload.kind,),
    )
    meta["generation"] = workload.revision
    annotations = dict(workload.notes)
    if workload.kind == "Deployment":
        annotations[REVISION] = str(workload.revision)
    if annotations:
        meta["annotations"] = annotations
    return meta


def deployment(cluster: Cluster, workload: Workload) -> JsonObject:
    """A Deployment with spec, template and status counts from its pods."""
    total, ready = _counts(workload_pods(cluster, workload))
    since = rfc3339(_revision_time(cluster, workload, workload.revision))
    available = "True" if ready >= workload.replicas else "False"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _workload_meta(cluster, workload),
        "spec": {
            "replicas": workload.replicas,
            "selector": {"matchLabels": dict(workload.labels)},
            "template": pod_template(cluster, workload),
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {
            "observedGeneration": workload.revision,
            "replicas": total,
            "updatedReplicas": total,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(total - ready, 0),
            "conditions": [
                {
                    "type": "Available",
                    "status": available,
                    "lastUpdateTime": since,
                    "lastTransitionTime": since,
                    "reason": "MinimumReplicasAvailable",
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "lastUpdateTime": since,
                    "lastTransitionTime": since,
                    "reason": "NewReplicaSetAvailable",
                },
            ],
        },
    }


def stateful_set(cluster: Cluster, workload: Workload) -> JsonObject:
    """A StatefulSet with its WAL volumeClaimTemplate and status counts."""
    total, ready = _counts(workload_pods(cluster, workload))
    revision = f"{workload.name}-{template_hash(cluster, workload)}"
    storage = {"requests": {"storage": "50Gi"}}
    claim = {
        "metadata": {"name": "wal-data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": storage},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _workload_meta(cluster, workload),
        "spec": {
            "replicas": workload.replicas,
            "selector": {"matchLabels": dict(workload.labels)},
            "serviceName": f"{workload.name}-headless",
            "template": pod_template(cluster, workload),
            "volumeClaimTemplates": [claim],
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "revisionHistoryLimit": 10,
        },
        "status": {
            "observedGeneration": workload.revision,
            "replicas": total,
            "readyReplicas": ready,
            "currentReplicas": total,
            "updatedReplicas": total,
            "availableReplicas": ready,
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
        },
    }


def render_workload(cluster: Cluster, workload: Workload) -> JsonObject:
    """The Deployment or StatefulSet object of ``workload``."""
    if workload.kind == "Deployment":
        return deployment(cluster, workload)
    return stateful_set(cluster, workload)


def _history_meta(cluster: Cluster, workload: Workload, revision: int, kind: str) -> JsonObject:
    current = revision == workload.revision
    suffix = template_hash(cluster, workload) if current else revision_hash(workload, revision)
    labels = dict(workload.labels)
    labels["pod-template-hash" if kind == "ReplicaSet" else "controller-revision-hash"] = suffix
    annotations = {REVISION: str(revision)} if kind == "ReplicaSet" else {}
    if change := _revision_change(workload, revision):
        annotations[CHANGE_CAUSE] = change
    meta = object_meta(
        cluster,
        f"{workload.name}-{suffix}",
        _revision_time(cluster, workload, revision),
        labels=labels,
        annotations=annotations,
        uid_parts=(kind,),
    )
    meta["ownerReferences"] = [owner_reference(workload.kind, workload.name)]
    return meta


def replica_sets(cluster: Cluster) -> list[JsonObject]:
    """One ReplicaSet per revision of every Deployment; only the current one has replicas."""
    items = []
    for workload in workloads_of_kind(cluster, "Deployment"):
        total, ready = _counts(workload_pods(cluster, workload))
        for revision in range(1, workload.revision + 1):
            meta = _history_meta(cluster, workload, revision, "ReplicaSet")
            replicas = workload.replicas if revision == workload.revision else 0
            live = revision == workload.revision
            items.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": meta,
                    "spec": {
                        "replicas": replicas,
                        "selector": {"matchLabels": meta["labels"]},
                        "template": pod_template(cluster, workload),
                    },
                    "status": {
                        "replicas": total if live else 0,
                        "readyReplicas": ready if live else 0,
                        "availableReplicas": ready if live else 0,
                        "observedGeneration": 1,
                    },
                }
            )
    return items


def controller_revisions(cluster: Cluster) -> list[JsonObject]:
    """One ControllerRevision per revision of every StatefulSet."""
    items = []
    for workload in workloads_of_kind(cluster, "StatefulSet"):
        for revision in range(1, workload.revision + 1):
            meta = _history_meta(cluster, workload, revision, "ControllerRevision")
            data = {"spec": {"template": {"$patch": "replace", **pod_template(cluster, workload)}}}
            items.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "ControllerRevision",
                    "metadata": meta,
                    "data": data,
                    "revision": revision,
                }
            )
    return items


def scale(cluster: Cluster, workload: Workload) -> JsonObject:
    """The ``autoscaling/v1`` Scale subresource of ``workload``."""
    meta = object_meta(cluster, workload.name, cluster.created_at, uid_parts=(workload.kind,))
    total = len(workload_pods(cluster, workload))
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": meta,
        "spec": {"replicas": workload.replicas},
        "status": {"replicas": total, "selector": selector_string(workload.labels)},
    }
