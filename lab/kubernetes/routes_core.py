"""core/v1 routes: pods (list, get, delete, log, exec), events, config maps, nodes.

Only the World's namespace has objects; any other namespace answers empty lists and 404s.
Deleting an agent pod calls ``World.delete_pod``: a Deployment brings a replacement under a
new name, a StatefulSet under the same name (with a new uid). Schema-registry pods cannot
be deleted one by one (the World has no such physics): that is a 405 saying so.
"""

from __future__ import annotations

from urllib.parse import unquote

from aiohttp import web

from lab.kubernetes.cluster import config_map, core_event, events_v1_event, find_node, node
from lab.kubernetes.errors import method_not_allowed, not_found, route_not_found
from lab.kubernetes.exec import exec_pod
from lab.kubernetes.logs import pod_log
from lab.kubernetes.meta import Cluster, JsonObject, kind_list, rfc3339
from lab.kubernetes.metrics import stats_summary
from lab.kubernetes.pods import all_pods, find_pod
from lab.kubernetes.routing import (
    cluster_of,
    dry_run,
    filtered,
    is_served_namespace,
    locked,
    require_namespace,
    respond,
    scoped,
)
from lab.kubernetes.selectors import EVENT_FIELDS, POD_FIELDS
from lab.kubernetes.templates import CONFIG_MAP

NS = "/api/v1/namespaces/{namespace}"


async def list_pods(request: web.Request) -> web.Response:
    """``GET .../pods`` (and ``/api/v1/pods`` across namespaces)."""
    with locked(request) as cluster:
        served = "namespace" not in request.match_info or is_served_namespace(request)
        pods = filtered(request, all_pods(cluster) if served else [], POD_FIELDS)
        return respond(kind_list(cluster, "Pod", "v1", pods))


async def read_pod(request: web.Request) -> web.Response:
    """``GET .../pods/{name}``."""
    with locked(request) as cluster:
        return respond(find_pod(cluster, require_namespace(request, "pods")))


async def delete_pod(request: web.Request) -> web.Response:
    """``DELETE .../pods/{name}``: the owning workload replaces the pod."""
    with locked(request) as cluster:
        name = require_namespace(request, "pods")
        pod = find_pod(cluster, name)
        if cluster.world.agent_by_pod(name) is None:
            raise method_not_allowed(
                f'pods "{name}": the lab World cannot delete a schema-registry pod; '
                "use a rollout restart of its Deployment"
            )
        if not dry_run(request):
            cluster.world.delete_pod(name)
        pod["metadata"]["deletionTimestamp"] = rfc3339(cluster.now())
        pod["metadata"]["deletionGracePeriodSeconds"] = 30
        return respond(pod)


async def read_log(request: web.Request) -> web.Response:
    """``GET .../pods/{name}/log`` as ``text/plain``."""
    with locked(request) as cluster:
        text = pod_log(cluster, require_namespace(request, "pods"), request.query)
    return web.Response(text=text, content_type="text/plain")


async def exec_in_pod(request: web.Request) -> web.StreamResponse:
    """``GET|POST .../pods/{name}/exec``: 403 unless ``world.exec_allowed``."""
    with locked(request) as cluster:
        name = require_namespace(request, "pods")
        find_pod(cluster, name)
    return await exec_pod(request, cluster_of(request), name)


def _core_events(cluster: Cluster) -> list[JsonObject]:
    return [core_event(cluster, event, index) for index, event in enumerate(cluster.world.events)]


def _v1_events(cluster: Cluster) -> list[JsonObject]:
    return [events_v1_event(cluster, event, i) for i, event in enumerate(cluster.world.events)]


def _config_maps(cluster: Cluster) -> list[JsonObject]:
    return [config_map(cluster)]


async def list_events(request: web.Request) -> web.Response:
    """``GET .../events`` (core/v1)."""
    with locked(request) as cluster:
        events = filtered(request, scoped(request, _core_events), EVENT_FIELDS)
        return respond(kind_list(cluster, "Event", "v1", events))


async def list_events_v1(request: web.Request) -> web.Response:
    """``GET /apis/events.k8s.io/v1/namespaces/{ns}/events``."""
    with locked(request) as cluster:
        events = filtered(request, scoped(request, _v1_events))
        return respond(kind_list(cluster, "Event", "events.k8s.io/v1", events))


async def list_config_maps(request: web.Request) -> web.Response:
    """``GET .../configmaps``."""
    with locked(request) as cluster:
        items = filtered(request, scoped(request, _config_maps))
        return respond(kind_list(cluster, "ConfigMap", "v1", items))


async def read_config_map(request: web.Request) -> web.Response:
    """``GET .../configmaps/{name}``: only ``streamhouse-config`` exists."""
    with locked(request) as cluster:
        name = require_namespace(request, "configmaps")
        if name != CONFIG_MAP:
            raise not_found("configmaps", name)
        return respond(config_map(cluster))


async def list_nodes(request: web.Request) -> web.Response:
    """``GET /api/v1/nodes``."""
    with locked(request) as cluster:
        items = filtered(request, [node(cluster, n) for n in cluster.world.nodes])
        return respond(kind_list(cluster, "Node", "v1", items))


async def read_node(request: web.Request) -> web.Response:
    """``GET /api/v1/nodes/{name}``."""
    with locked(request) as cluster:
        return respond(node(cluster, find_node(cluster, request.match_info["name"])))


async def node_proxy(request: web.Request) -> web.Response:
    """``GET /api/v1/nodes/{name}/proxy/stats/summary``: the kubelet's volume and usage stats."""
    path = unquote(request.match_info["path"]).strip("/")
    with locked(request) as cluster:
        source = find_node(cluster, request.match_info["name"])
        if path != "stats/summary":
            raise route_not_found()
        return respond(stats_summary(cluster, source))


async def version(request: web.Request) -> web.Response:
    """``GET /version``."""
    return respond(
        {
            "major": "1",
            "minor": "30",
            "gitVersion": "v1.30.4",
            "platform": "linux/amd64",
            "gitCommit": "lab",
            "gitTreeState": "clean",
            "buildDate": "2024-08-14T00:00:00Z",
            "goVersion": "go1.22.5",
            "compiler": "gc",
        }
    )


def add_core_routes(app: web.Application) -> None:
    """Register the core/v1 routes."""
    router = app.router
    router.add_get("/version", version)
    router.add_get("/version/", version)
    router.add_get("/api/v1/pods", list_pods)
    router.add_get(f"{NS}/pods", list_pods)
    router.add_get(f"{NS}/pods/{{name}}", read_pod)
    router.add_delete(f"{NS}/pods/{{name}}", delete_pod)
    router.add_get(f"{NS}/pods/{{name}}/log", read_log)
    router.add_route("GET", f"{NS}/pods/{{name}}/exec", exec_in_pod)
    router.add_route("POST", f"{NS}/pods/{{name}}/exec", exec_in_pod)
    router.add_get(f"{NS}/events", list_events)
    router.add_get("/apis/events.k8s.io/v1/namespaces/{namespace}/events", list_events_v1)
    router.add_get(f"{NS}/configmaps", list_config_maps)
    router.add_get(f"{NS}/configmaps/{{name}}", read_config_map)
    router.add_get("/api/v1/nodes", list_nodes)
    router.add_get("/api/v1/nodes/{name}", read_node)
    router.add_get("/api/v1/nodes/{name}/proxy/{path:.*}", node_proxy)
