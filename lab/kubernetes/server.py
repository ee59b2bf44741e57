"""``KubernetesFake``: the lab's Kubernetes API server, an aiohttp app in its own thread.

It serves the World (``lab.world``) to the official ``kubernetes`` client over plain HTTP
on ``127.0.0.1:<free port>``: every answer is rendered from the World on that request,
every write goes through the World's physics. Errors are real ``Status`` objects, so the
client raises ``ApiException`` with the status a cluster would give. Every request except
``/_lab/...`` is recorded in ``requests`` (also served at ``GET /_lab/requests``).

    with KubernetesFake(world) as fake:
        core = kubernetes.client.CoreV1Api(fake.api_client())
        core.list_namespaced_pod("streamhouse", label_selector="app=streamhouse-agent")
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from types import TracebackType
from typing import Any, NamedTuple

import kubernetes.client
from aiohttp import web

from lab.http import ServerThread
from lab.kubernetes.errors import ApiError, method_not_allowed, route_not_found
from lab.kubernetes.meta import Cluster
from lab.kubernetes.routes_apps import add_apps_routes
from lab.kubernetes.routes_core import add_core_routes
from lab.kubernetes.routes_storage import add_storage_routes
from lab.kubernetes.routing import CLUSTER
from lab.world import World

logger = logging.getLogger(__name__)

Handler = Any  # aiohttp's middleware handler type is not exported in a stable way


class RecordedRequest(NamedTuple):
    """One request the fake received: ``(method, path, query, body)``."""

    method: str
    path: str
    query: dict[str, str]
    body: Any  # the decoded JSON body, the text of any other body, or None


class RequestLog:
    """A thread-safe list of ``RecordedRequest``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def add(self, item: RecordedRequest) -> None:
        """Record one request."""
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[RecordedRequest]:
        """A copy of everything recorded so far."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget everything recorded."""
        with self._lock:
            self._items.clear()


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def build_app(cluster: Cluster, log: RequestLog) -> web.Application:
    """The aiohttp application: routes, the request log and the Status error answers."""

    @web.middleware
    async def record_and_answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/_lab/"):
            body = _decode(await request.read()) if request.can_read_body else None
            log.add(RecordedRequest(request.method, request.path, dict(request.query), body))
        try:
            response: web.StreamResponse = await handler(request)
        except ApiError as error:
            return web.json_response(error.status(), status=error.code)
        except web.HTTPNotFound:
            return web.json_response(route_not_found().status(), status=404)
        except web.HTTPMethodNotAllowed:
            refused = method_not_allowed(f"the server does not allow this method: {request.method}")
            return web.json_response(refused.status(), status=405)
        except Exception:
            logger.exception("kubernetes fake: %s %s failed", request.method, request.path)
            failed = ApiError(500, "InternalError", "an error on the server (lab fake) occurred")
            return web.json_response(failed.status(), status=500)
        return response

    async def recorded(_request: web.Request) -> web.Response:
        return web.json_response([list(item) for item in log.snapshot()])

    app = web.Application(middlewares=[record_and_answer])
    app[CLUSTER] = cluster
    app.router.add_get("/_lab/requests", recorded)
    add_core_routes(app)
    add_apps_routes(app)
    add_storage_routes(app)
    return app


class KubernetesFake:
    """The Kubernetes API for one World, served on 127.0.0.1:<port> from its own thread."""

    def __init__(self, world: World) -> None:
        self.world = world
        with world.lock:
            created = world.now() - timedelta(days=30)
        self._cluster = Cluster(world, created)
        self._log = RequestLog()
        self._server = ServerThread(
            lambda _base: build_app(self._cluster, self._log), name="the Kubernetes fake"
        )

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (``/_lab/`` excluded), oldest first."""
        return self._log.snapshot()

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._log.clear()

    def api_client(self) -> kubernetes.client.ApiClient:
        """An official client configured for this fake (plain HTTP, no auth)."""
        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        return kubernetes.client.ApiClient(configuration)

    def start(self, timeout: float = 5.0) -> None:
        """Bind a free port, serve, and return once the server accepts connections."""
        self._server.start(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and join the thread."""
        self._server.stop(timeout)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (empty before ``start``)."""
        return self._server.base_url

    def __enter__(self) -> KubernetesFake:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
