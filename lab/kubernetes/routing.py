"""Helpers every route shares: the cluster in the app, JSON answers, list filters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from lab.kubernetes.errors import bad_request, not_found
from lab.kubernetes.meta import Cluster, JsonObject
from lab.kubernetes.selectors import COMMON_FIELDS, parse_field_selector, parse_label_selector

CLUSTER = web.AppKey("cluster", Cluster)


def cluster_of(request: web.Request) -> Cluster:
    """The cluster the app serves."""
    return request.app[CLUSTER]


@contextmanager
def locked(request: web.Request) -> Iterator[Cluster]:
    """The cluster, with the World's lock held for a consistent read (or read-modify-write)."""
    cluster = cluster_of(request)
    with cluster.world.lock:
        yield cluster


def respond(obj: Any, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.json_response(obj, status=status)


def is_served_namespace(request: web.Request) -> bool:
    """Whether the path's namespace is the World's (every other namespace is empty)."""
    return request.match_info.get("namespace") == cluster_of(request).namespace


def require_namespace(request: web.Request, resource: str, group: str = "") -> str:
    """The object name of the path, or a 404 when it is in another namespace."""
    name = request.match_info["name"]
    if not is_served_namespace(request):
        raise not_found(resource, name, group)
    return name


def reject_watch(request: web.Request) -> None:
    """The fake serves lists, not watch streams."""
    if request.query.get("watch", "").lower() in ("true", "1"):
        raise bad_request("the lab Kubernetes fake does not support watch")


def filtered(
    request: web.Request, items: list[JsonObject], fields: frozenset[str] = COMMON_FIELDS
) -> list[JsonObject]:
    """The items matching the request's ``labelSelector`` and ``fieldSelector``."""
    reject_watch(request)
    labels = parse_label_selector(request.query.get("labelSelector"))
    selected = parse_field_selector(request.query.get("fieldSelector"), fields)
    return [
        item
        for item in items
        if labels(item.get("metadata", {}).get("labels") or {}) and selected(item)
    ]


def scoped(request: web.Request, render: Callable[[Cluster], list[JsonObject]]) -> list[JsonObject]:
    """Rendered items in the served namespace; nothing anywhere else."""
    return render(cluster_of(request)) if is_served_namespace(request) else []


def dry_run(request: web.Request) -> bool:
    """Whether the write is ``dryRun=All`` (validated, not applied)."""
    return bool(request.query.get("dryRun"))
