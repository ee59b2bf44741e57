"""Pod templates of the two workloads: containers, env, resources, volumes, hashes.

The same template renders a Deployment's or StatefulSet's ``spec.template`` and every pod
of it, so a patch to the workload is visible in its pods. Container names are ``agent``
and ``schema-registry``; the WAL volume is mounted at ``/data/wal`` (runbook profile: the
shared PVC ``streamhouse-wal``; upstream: the claim template ``wal-data``, one PVC per pod).
"""

from __future__ import annotations

from typing import Any

from lab.kubernetes.meta import Cluster, JsonObject, short_hash
from lab.kubernetes.quantity import format_bytes, format_cpu
from lab.world import Agent, Resources, Workload

AGENT_CONTAINER = "agent"
REGISTRY_CONTAINER = "schema-registry"
AGENT_IMAGE = "streamhouse/streamhouse:0.1.0"
REGISTRY_IMAGE = "streamhouse/schema-registry:0.1.0"
WAL_MOUNT = "/data/wal"
RUNBOOK_CLAIM = "streamhouse-wal"
CLAIM_TEMPLATE = "wal-data"
CONFIG_MAP = "streamhouse-config"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def is_agent(cluster: Cluster, workload: Workload) -> bool:
    """Whether ``workload`` is the agent workload (not the schema registry)."""
    return workload is cluster.world.agent_workload


def wal_volume_name(cluster: Cluster) -> str:
    """The pod volume that holds the WAL."""
    return "wal" if cluster.world.agent_workload.kind == "Deployment" else CLAIM_TEMPLATE


def claim_name(cluster: Cluster, agent: Agent) -> str:
    """The PVC an agent's WAL lives on."""
    if cluster.world.agent_workload.kind == "Deployment":
        return RUNBOOK_CLAIM
    return f"{CLAIM_TEMPLATE}-{agent.pod}"


def template_hash(cluster: Cluster, workload: Workload) -> str:
    """``pod-template-hash`` / ``controller-revision-hash`` suffix of the current revision.

    The World names Deployment agent pods ``<workload>-<hash>-<suffix>``; the fake reuses
    that hash so pod names, their ReplicaSet and its owner reference agree.
    """
    if is_agent(cluster, workload) and workload.kind == "Deployment" and cluster.world.agents:
        prefix = cluster.world.agents[0].pod.rsplit("-", 1)[0]
        return prefix.removeprefix(f"{workload.name}-")
    return revision_hash(workload, workload.revision)


def revision_hash(workload: Workload, revision: int) -> str:
    """The hash of an older (or the current, for the registry) revision."""
    return short_hash(workload.name, workload.kind, revision, length=10)


def resources_json(resources: Resources) -> JsonObject:
    """``resources`` of a container, quantities formatted like the API server's."""
    limits: JsonObject = {}
    if resources.cpu_limit is not None:
        limits["cpu"] = format_cpu(resources.cpu_limit)
    if resources.memory_limit_bytes is not None:
        limits["memory"] = format_bytes(resources.memory_limit_bytes)
    requests = {
        "cpu": format_cpu(resources.cpu_request),
        "memory": format_bytes(resources.memory_request_bytes),
    }
    return {"limits": limits, "requests": requests} if limits else {"requests": requests}


def _container(
    name: str, image: str, workload: Workload, ports: list[tuple[str, int]]
) -> JsonObject:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": port, "containerPort": number, "protocol": "TCP"} for port, number in ports
        ],
        "env": [{"name": key, "value": value} for key, value in workload.env.items()],
        "resources": resources_json(workload.resources),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def agent_container(cluster: Cluster) -> JsonObject:
    """The agent container of the template."""
    workload = cluster.world.agent_workload
    ports = [("grpc", 9090)] if workload.kind == "Deployment" else [("grpc", 9090), ("http", 8080)]
    container = _container(AGENT_CONTAINER, AGENT_IMAGE, workload, ports)
    container["envFrom"] = [{"configMapRef": {"name": CONFIG_MAP}}]
    container["volumeMounts"] = [{"name": wal_volume_name(cluster), "mountPath": WAL_MOUNT}]
    return container


def registry_container(cluster: Cluster) -> JsonObject:
    """The schema-registry container of its template."""
    workload = cluster.world.registry_workload
    return _container(REGISTRY_CONTAINER, REGISTRY_IMAGE, workload, [("http", 8081)])


def pod_template(cluster: Cluster, workload: Workload) -> JsonObject:
    """``spec.template`` of ``workload``."""
    agent = is_agent(cluster, workload)
    spec: JsonObject = {
        "containers": [agent_container(cluster) if agent else registry_container(cluster)],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "streamhouse",
        "schedulerName": "default-scheduler",
        "securityContext": {},
    }
    if agent and workload.kind == "Deployment":
        claim = {"claimName": RUNBOOK_CLAIM}
        spec["volumes"] = [{"name": wal_volume_name(cluster), "persistentVolumeClaim": claim}]
    metadata: dict[str, Any] = {"labels": dict(workload.labels)}
    if workload.annotations:
        metadata["annotations"] = dict(workload.annotations)
    return {"metadata": metadata, "spec": spec}
