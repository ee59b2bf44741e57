"""Pods rendered from the World: one per agent, plus the schema-registry replicas.

An agent's ``phase`` maps to what the kubelet reports: ``CrashLoopBackOff`` is a Running
pod whose container waits with that reason, ``Pending`` waits in ``ContainerCreating``,
``Terminated`` is a Failed pod. ``lastState.terminated`` carries the World's last
termination reason (``OOMKilled`` exits with 137). A pod's uid changes whenever the World
restarts it, so a StatefulSet pod that comes back under the same name is a new object.
"""

from __future__ import annotations

from datetime import datetime

from lab.kubernetes.errors import not_found
from lab.kubernetes.meta import Cluster, JsonObject, object_meta, rfc3339, short_hash, uid_for
from lab.kubernetes.templates import (
    AGENT_CONTAINER,
    AGENT_IMAGE,
    REGISTRY_CONTAINER,
    REGISTRY_IMAGE,
    claim_name,
    pod_template,
    template_hash,
    wal_volume_name,
)
from lab.world import Agent

_PHASES = {"Running": "Running", "CrashLoopBackOff": "Running", "Pending": "Pending"}


def pod_uid(agent: Agent) -> str:
    """An agent pod's uid: new whenever the World (re)starts the pod."""
    return uid_for(agent.pod, "Pod", agent.started_at.isoformat())


def owner_reference(kind: str, name: str) -> JsonObject:
    """The controller reference a pod (or ReplicaSet) carries."""
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": name,
        "uid": uid_for(name, kind),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def replica_set_name(cluster: Cluster) -> str:
    """The current ReplicaSet of a Deployment-managed agent workload."""
    workload = cluster.world.agent_workload
    return f"{workload.name}-{template_hash(cluster, workload)}"


def registry_replica_set_name(cluster: Cluster) -> str:
    """The current ReplicaSet of the schema-registry Deployment."""
    workload = cluster.world.registry_workload
    return f"{workload.name}-{template_hash(cluster, workload)}"


def registry_started_at(cluster: Cluster) -> datetime:
    """When the current registry pods started: at its last rollout, else at cluster creation."""
    history = cluster.world.registry_workload.revision_history
    return history[-1][1] if history else cluster.created_at


def _agent_metadata(cluster: Cluster, agent: Agent) -> JsonObject:
    workload = cluster.world.agent_workload
    labels = dict(workload.labels)
    if workload.kind == "Deployment":
        owner = owner_reference("ReplicaSet", replica_set_name(cluster))
        labels["pod-template-hash"] = template_hash(cluster, workload)
    else:
        owner = owner_reference("StatefulSet", workload.name)
        labels["controller-revision-hash"] = f"{workload.name}-{template_hash(cluster, workload)}"
        labels["statefulset.kubernetes.io/pod-name"] = agent.pod
        labels["apps.kubernetes.io/pod-index"] = str(agent.ordinal)
    meta = object_meta(
        cluster,
        agent.pod,
        agent.started_at,
        labels=labels,
        annotations=pod_template(cluster, workload)["metadata"].get("annotations"),
    )
    meta["uid"] = pod_uid(agent)
    if workload.kind == "Deployment":
        meta["generateName"] = f"{owner['name']}-"
    meta["ownerReferences"] = [owner]
    return meta


def _agent_state(agent: Agent) -> JsonObject:
    if agent.phase == "CrashLoopBackOff":
        message = f"back-off 5m0s restarting failed container={AGENT_CONTAINER} pod={agent.pod}"
        return {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
    if agent.phase == "Pending":
        return {"waiting": {"reason": "ContainerCreating"}}
    if agent.phase == "Terminated":
        finished = rfc3339(agent.last_terminated_at or agent.started_at)
        return {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "finishedAt": finished,
                "startedAt": rfc3339(agent.started_at),
            }
        }
    return {"running": {"startedAt": rfc3339(agent.started_at)}}


def _last_state(agent: Agent) -> JsonObject:
    if agent.last_terminated_reason is None:
        return {}
    oom = agent.last_terminated_reason == "OOMKilled"
    finished = agent.last_terminated_at or agent.started_at
    return {
        "terminated": {
            "exitCode": 137 if oom else 1,
            "reason": agent.last_terminated_reason,
            "startedAt": rfc3339(finished),
            "finishedAt": rfc3339(finished),
            "containerID": f"containerd://{short_hash(agent.pod, 'previous', length=32)}",
        }
    }


def _conditions(ready: bool, since: datetime, scheduled: bool = True) -> list[JsonObject]:
    at = rfc3339(since)

    def condition(kind: str, ok: bool) -> JsonObject:
        return {
            "type": kind,
            "status": "True" if ok else "False",
            "lastTransitionTime": at,
            "lastProbeTime": None,
        }

    return [
        condition("PodReadyToStartContainers", scheduled),
        condition("Initialized", True),
        condition("Ready", ready),
        condition("ContainersReady", ready),
        condition("PodScheduled", scheduled),
    ]


def _container_status(name: str, image: str, pod: str, ready: bool, restarts: int) -> JsonObject:
    return {
        "name": name,
        "image": image,
        "ready": ready,
        "restartCount": restarts,
        "imageID": f"docker.io/{image.split(':')[0]}@sha256:{short_hash(image, length=64)}",
        "containerID": f"containerd://{short_hash(pod, name, length=32)}",
        "started": ready,
    }


def _pod_ip(cluster: Cluster, node: str, index: int) -> str:
    nodes = [candidate.name for candidate in cluster.world.nodes]
    return f"10.244.{nodes.index(node) if node in nodes else 9}.{10 + index % 240}"


def _host_ip(cluster: Cluster, node: str) -> str:
    nodes = [candidate.name for candidate in cluster.world.nodes]
    return f"10.0.0.{10 + (nodes.index(node) if node in nodes else 99)}"


def agent_pod(cluster: Cluster, agent: Agent) -> JsonObject:
    """The pod of one agent."""
    workload = cluster.world.agent_workload
    spec = pod_template(cluster, workload)["spec"]
    spec["nodeName"] = agent.node
    if workload.kind == "StatefulSet":
        claim = {"claimName": claim_name(cluster, agent)}
        spec["volumes"] = [{"name": wal_volume_name(cluster), "persistentVolumeClaim": claim}]
        spec.update(hostname=agent.pod, subdomain=f"{workload.name}-headless")
    status = _container_status(
        AGENT_CONTAINER,
        AGENT_IMAGE,
        agent.pod,
        agent.ready and agent.phase == "Running",
        agent.restart_count,
    )
    status["state"], status["lastState"] = _agent_state(agent), _last_state(agent)
    ip = _pod_ip(cluster, agent.node, agent.ordinal)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _agent_metadata(cluster, agent),
        "spec": spec,
        "status": {
            "phase": _PHASES.get(agent.phase, "Failed"),
            "conditions": _conditions(status["ready"], agent.started_at),
            "hostIP": _host_ip(cluster, agent.node),
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": rfc3339(agent.started_at),
            "qosClass": "Burstable",
            "containerStatuses": [status],
        },
    }


def registry_pods(cluster: Cluster) -> list[JsonObject]:
    """The schema-registry replicas, renamed at every rollout of its Deployment."""
    workload = cluster.world.registry_workload
    owner = owner_reference("ReplicaSet", registry_replica_set_name(cluster))
    started, pods = registry_started_at(cluster), []
    for index in range(workload.replicas):
        name = f"{owner['name']}-{short_hash(owner['name'], index, length=5)}"
        labels = {**workload.labels, "pod-template-hash": template_hash(cluster, workload)}
        meta = object_meta(cluster, name, started, labels=labels, uid_parts=("Pod", started))
        meta.update(generateName=f"{owner['name']}-", ownerReferences=[owner])
        node = cluster.world.nodes[index % len(cluster.world.nodes)].name
        spec = {**pod_template(cluster, workload)["spec"], "nodeName": node}
        status = _container_status(REGISTRY_CONTAINER, REGISTRY_IMAGE, name, True, 0)
        status.update(state={"running": {"startedAt": rfc3339(started)}}, lastState={})
        ip = _pod_ip(cluster, node, 200 + index)
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": spec,
                "status": {
                    "phase": "Running",
                    "conditions": _conditions(True, started),
                    "hostIP": _host_ip(cluster, node),
                    "podIP": ip,
                    "podIPs": [{"ip": ip}],
                    "startTime": rfc3339(started),
                    "qosClass": "Burstable",
                    "containerStatuses": [status],
                },
            }
        )
    return pods


def all_pods(cluster: Cluster) -> list[JsonObject]:
    """Every pod in the namespace: agents first, then the registry."""
    return [agent_pod(cluster, agent) for agent in cluster.world.agents] + registry_pods(cluster)


def find_pod(cluster: Cluster, name: str) -> JsonObject:
    """One pod by name, or a 404 ``ApiError``."""
    agent = cluster.world.agent_by_pod(name)
    if agent is not None:
        return agent_pod(cluster, agent)
    for pod in registry_pods(cluster):
        if pod["metadata"]["name"] == name:
            return pod
    raise not_found("pods", name)
