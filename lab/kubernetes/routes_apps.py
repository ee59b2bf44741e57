"""apps/v1 routes: Deployments and StatefulSets (get, list, patch, scale), their history.

A PATCH is applied to the rendered object (``lab.kubernetes.patches``); a PUT replaces it.
The result is validated and turned into World calls (``lab.kubernetes.changes``) under the
World's lock, then the object is rendered again. ``dryRun`` validates without calling the
World.
"""

from __future__ import annotations

import json

from aiohttp import web

from lab.kubernetes.changes import (
    Target,
    WorkloadChange,
    check_resource_version,
    replicas_value,
    workload_change,
)
from lab.kubernetes.errors import bad_request
from lab.kubernetes.meta import Cluster, JsonObject, kind_list
from lab.kubernetes.patches import apply_patch
from lab.kubernetes.routing import (
    dry_run,
    filtered,
    locked,
    require_namespace,
    respond,
    scoped,
)
from lab.kubernetes.workloads import (
    controller_revisions,
    find_workload,
    render_workload,
    replica_sets,
    scale,
    workloads_of_kind,
)
from lab.world import Workload

APPS = "/apis/apps/v1/namespaces/{namespace}"
_KINDS = {"deployments": "Deployment", "statefulsets": "StatefulSet"}


def _kind(request: web.Request) -> str:
    return _KINDS[request.match_info["resource"]]


def _target(request: web.Request, name: str) -> Target:
    return Target(_kind(request), request.match_info["resource"], "apps", name)


def _lookup(request: web.Request, cluster: Cluster) -> Workload:
    name = require_namespace(request, request.match_info["resource"], "apps")
    return find_workload(cluster, _kind(request), name)


def apply_change(cluster: Cluster, workload: Workload, change: WorkloadChange) -> None:
    """Make the World do what the patch asked (resources and env roll the pods)."""
    world = cluster.world
    if change.resources is not None:
        world.set_resources(workload.name, change.resources)
    if change.env:
        world.set_env(workload.name, change.env)
    if change.restart:
        world.rollout_restart(workload.name)
    if change.replicas is not None:
        world.scale(workload.name, change.replicas)
    if change.notes is not None:
        with world.lock:
            workload.notes = dict(change.notes)
            world.touch()


async def list_workloads(request: web.Request) -> web.Response:
    """``GET .../deployments`` or ``.../statefulsets``."""
    kind = _kind(request)

    def render(cluster: Cluster) -> list[JsonObject]:
        return [render_workload(cluster, w) for w in workloads_of_kind(cluster, kind)]

    with locked(request) as cluster:
        items = filtered(request, scoped(request, render))
        return respond(kind_list(cluster, kind, "apps/v1", items))


async def read_workload(request: web.Request) -> web.Response:
    """``GET .../deployments/{name}``."""
    with locked(request) as cluster:
        return respond(render_workload(cluster, _lookup(request, cluster)))


async def write_workload(request: web.Request) -> web.Response:
    """``PATCH`` (or ``PUT``) ``.../deployments/{name}``: restart, env, resources, replicas."""
    raw = await request.read()
    with locked(request) as cluster:
        workload = _lookup(request, cluster)
        target = _target(request, workload.name)
        before = render_workload(cluster, workload)
        after = (
            apply_patch(before, request.content_type, raw)
            if request.method == "PATCH"
            else _json_object(raw)
        )
        check_resource_version(target, after, cluster.resource_version)
        change = workload_change(target, workload, before, after)
        if dry_run(request):
            return respond(after)
        apply_change(cluster, workload, change)
        return respond(render_workload(cluster, workload))


async def read_scale(request: web.Request) -> web.Response:
    """``GET .../{name}/scale``."""
    with locked(request) as cluster:
        return respond(scale(cluster, _lookup(request, cluster)))


async def write_scale(request: web.Request) -> web.Response:
    """``PATCH`` or ``PUT .../{name}/scale``: set the replica count."""
    raw = await request.read()
    with locked(request) as cluster:
        workload = _lookup(request, cluster)
        target = _target(request, workload.name)
        before = scale(cluster, workload)
        after = (
            apply_patch(before, request.content_type, raw)
            if request.method == "PATCH"
            else _json_object(raw)
        )
        check_resource_version(target, after, cluster.resource_version)
        replicas = replicas_value(target, after.get("spec", {}).get("replicas", 0))
        if dry_run(request):
            return respond(after)
        if replicas != workload.replicas:
            cluster.world.scale(workload.name, replicas)
        return respond(scale(cluster, workload))


def _json_object(raw: bytes) -> JsonObject:
    """The body of a PUT, which must be a JSON object."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"error decoding body: {exc}") from exc
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


async def list_replica_sets(request: web.Request) -> web.Response:
    """``GET .../replicasets``: one per Deployment revision."""
    with locked(request) as cluster:
        items = filtered(request, scoped(request, replica_sets))
        return respond(kind_list(cluster, "ReplicaSet", "apps/v1", items))


async def list_controller_revisions(request: web.Request) -> web.Response:
    """``GET .../controllerrevisions``: one per StatefulSet revision."""
    with locked(request) as cluster:
        items = filtered(request, scoped(request, controller_revisions))
        return respond(kind_list(cluster, "ControllerRevision", "apps/v1", items))


async def list_daemon_sets(request: web.Request) -> web.Response:
    """``GET .../daemonsets``: Streamhouse runs none."""
    with locked(request) as cluster:
        filtered(request, [])
        return respond(kind_list(cluster, "DaemonSet", "apps/v1", []))


def add_apps_routes(app: web.Application) -> None:
    """Register the apps/v1 routes."""
    router = app.router
    resource = "{resource:deployments|statefulsets}"
    router.add_get(f"{APPS}/{resource}", list_workloads)
    router.add_get(f"{APPS}/{resource}/{{name}}", read_workload)
    router.add_patch(f"{APPS}/{resource}/{{name}}", write_workload)
    router.add_put(f"{APPS}/{resource}/{{name}}", write_workload)
    router.add_get(f"{APPS}/{resource}/{{name}}/scale", read_scale)
    router.add_patch(f"{APPS}/{resource}/{{name}}/scale", write_scale)
    router.add_put(f"{APPS}/{resource}/{{name}}/scale", write_scale)
    router.add_get(f"{APPS}/replicasets", list_replica_sets)
    router.add_get(f"{APPS}/controllerrevisions", list_controller_revisions)
    router.add_get(f"{APPS}/daemonsets", list_daemon_sets)
