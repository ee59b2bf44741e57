"""PVCs, StorageClasses and the ``metrics.k8s.io`` pod metrics.

Growing a PVC (``spec.resources.requests.storage``) calls ``World.grow_volume`` for every
agent on the claim. Refusals are answered like Kubernetes: a StorageClass without
``allowVolumeExpansion`` is a 403 from admission, a smaller size a 422.
"""

from __future__ import annotations

from aiohttp import web

from lab.kubernetes.changes import Target, check_resource_version, pvc_size_change
from lab.kubernetes.cluster import STORAGE_CLASS, all_pvcs, find_pvc, storage_class
from lab.kubernetes.errors import forbidden, not_found
from lab.kubernetes.meta import Cluster, JsonObject, kind_list
from lab.kubernetes.metrics import metrics_list, pod_metrics
from lab.kubernetes.patches import apply_patch
from lab.kubernetes.routing import (
    dry_run,
    filtered,
    locked,
    require_namespace,
    respond,
    scoped,
)
from lab.world import Agent

PVCS = "/api/v1/namespaces/{namespace}/persistentvolumeclaims"
METRICS = "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"
STORAGE = "/apis/storage.k8s.io/v1/storageclasses"
_EXPANSION_REFUSED = (
    "only dynamically provisioned pvc can be resized and the storageclass "
    "that provisions the pvc must support resize"
)


async def list_pvcs(request: web.Request) -> web.Response:
    """``GET .../persistentvolumeclaims``."""
    with locked(request) as cluster:
        items = filtered(request, scoped(request, all_pvcs))
        return respond(kind_list(cluster, "PersistentVolumeClaim", "v1", items))


async def read_pvc(request: web.Request) -> web.Response:
    """``GET .../persistentvolumeclaims/{name}``."""
    with locked(request) as cluster:
        return respond(find_pvc(cluster, require_namespace(request, "persistentvolumeclaims"))[0])


def grow(cluster: Cluster, target: Target, agents: list[Agent], size: int) -> None:
    """Grow the claim's volume on every agent, or raise what Kubernetes would answer."""
    if not agents:
        raise target.unsupported("spec.resources.requests.storage")
    for agent in agents:
        reason = cluster.world.grow_volume(agent.pod, size)
        if reason is None:
            continue
        if "storage class" in reason:
            raise forbidden(target.resource, target.name, _EXPANSION_REFUSED)
        raise target.invalid(
            "spec.resources.requests.storage",
            "Forbidden: field can not be less than previous value",
        )


async def patch_pvc(request: web.Request) -> web.Response:
    """``PATCH .../persistentvolumeclaims/{name}``: resize."""
    raw = await request.read()
    with locked(request) as cluster:
        name = require_namespace(request, "persistentvolumeclaims")
        before, agents = find_pvc(cluster, name)
        target = Target("PersistentVolumeClaim", "persistentvolumeclaims", "", name)
        after = apply_patch(before, request.content_type, raw)
        check_resource_version(target, after, cluster.resource_version)
        size = pvc_size_change(target, before, after)
        if size is not None and not dry_run(request):
            grow(cluster, target, agents, size)
        return respond(after if dry_run(request) else find_pvc(cluster, name)[0])


async def list_storage_classes(request: web.Request) -> web.Response:
    """``GET /apis/storage.k8s.io/v1/storageclasses``."""
    with locked(request) as cluster:
        items = filtered(request, [storage_class(cluster)])
        return respond(kind_list(cluster, "StorageClass", "storage.k8s.io/v1", items))


async def read_storage_class(request: web.Request) -> web.Response:
    """``GET /apis/storage.k8s.io/v1/storageclasses/{name}``."""
    name = request.match_info["name"]
    with locked(request) as cluster:
        if name != STORAGE_CLASS:
            raise not_found("storageclasses", name, "storage.k8s.io")
        return respond(storage_class(cluster))


async def list_pod_metrics(request: web.Request) -> web.Response:
    """``GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods``."""
    with locked(request) as cluster:
        return respond(metrics_list(cluster, filtered(request, scoped(request, pod_metrics))))


async def read_pod_metrics(request: web.Request) -> web.Response:
    """``GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}``."""
    with locked(request) as cluster:
        name = require_namespace(request, "pods", "metrics.k8s.io")
        found: JsonObject | None = next(
            (item for item in pod_metrics(cluster) if item["metadata"]["name"] == name), None
        )
        if found is None:
            raise not_found("pods", name, "metrics.k8s.io")
        return respond(found)


def add_storage_routes(app: web.Application) -> None:
    """Register the PVC, StorageClass and metrics routes."""
    router = app.router
    router.add_get(PVCS, list_pvcs)
    router.add_get(f"{PVCS}/{{name}}", read_pvc)
    router.add_patch(f"{PVCS}/{{name}}", patch_pvc)
    router.add_get(STORAGE, list_storage_classes)
    router.add_get(f"{STORAGE}/{{name}}", read_storage_class)
    router.add_get(METRICS, list_pod_metrics)
    router.add_get(f"{METRICS}/{{name}}", read_pod_metrics)
