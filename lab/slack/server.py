"""The emulator's HTTP side: routes, request decoding, and the thread it runs in.

The server owns a private event loop in a daemon thread, so neither the test's loop nor
the bot's loop ever runs emulator code. Routes:
    GET|POST /api/{method}        Web API (JSON, form or query parameters)
    POST     /upload/v1/{file_id} upload URLs from files.getUploadURLExternal
    POST     /response/{id}       response_urls
    GET      /socket-mode         Socket Mode WebSocket
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import BodyPartReader, web

from lab.slack.api import ApiRequest
from lab.slack.methods import Dispatcher
from lab.slack.methods_files import store_upload
from lab.slack.responses import post_to_response_url
from lab.slack.socket_mode import SocketHub

_T = TypeVar("_T")
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class BadRequest(Exception):
    """The request body could not be decoded (answered as `invalid_json` etc.)."""


def build_app(dispatcher: Dispatcher, hub: SocketHub, base_url: str) -> web.Application:
    """Wire the emulator's routes to the dispatcher, the uploads and the socket hub."""
    workspace = dispatcher.workspace

    async def api(request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        try:
            params = await read_params(request)
        except BadRequest as exc:
            return web.json_response({"ok": False, "error": str(exc)})
        token = bearer_token(request) or _pop_token(params)
        result = dispatcher.dispatch(ApiRequest(method, params, token, base_url))
        return web.json_response(result.body, status=result.status, headers=result.headers)

    async def upload(request: web.Request) -> web.StreamResponse:
        content = await read_upload(request)
        with workspace.lock:
            stored = store_upload(workspace, request.match_info["file_id"], content)
        if not stored:
            return web.Response(status=404, text="file_not_found")
        return web.Response(text=f"OK - {len(content)}")

    async def response_url(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        with workspace.lock:
            status, body = post_to_response_url(workspace, request.match_info["id"], raw)
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("*", "/api/{method}", api)
    app.router.add_post("/upload/v1/{file_id}", upload)
    app.router.add_post("/response/{id}", response_url)
    app.router.add_get("/socket-mode", hub.handle)
    return app


def bearer_token(request: web.Request) -> str | None:
    """The token from `Authorization: Bearer ...`, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _pop_token(params: dict[str, Any]) -> str | None:
    token = params.pop("token", None)
    return str(token) if token else None


async def read_params(request: web.Request) -> dict[str, Any]:
    """Merge query-string and body parameters the way Slack reads them."""
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError as exc:
            raise BadRequest("invalid_json") from exc
        if not isinstance(body, dict):
            raise BadRequest("invalid_json")
        params.update(body)
    elif request.content_type in _FORM_TYPES:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


async def read_upload(request: web.Request) -> bytes:
    """The uploaded bytes: the raw body, or the first file part of a multipart body."""
    if request.content_type != "multipart/form-data":
        return await request.read()
    reader = await request.multipart()
    async for part in reader:
        if isinstance(part, BodyPartReader) and part.filename is not None:
            return bytes(await part.read())
    return b""


class ServerThread:
    """Runs an aiohttp application on 127.0.0.1:<free port> in its own thread and loop."""

    def __init__(self, make_app: Callable[[str], web.Application]) -> None:
        self._make_app = make_app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self.base_url = ""

    def start(self, timeout: float = 5.0) -> None:
        """Bind, start serving and return once the server accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run,
            args=(self._loop, sock, ready, failure),
            name="slack-emulator",
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the Slack emulator did not start in time")
        if failure:
            self._thread.join(timeout)
            self._loop = self._thread = None
            raise RuntimeError("the Slack emulator failed to start") from failure[0]

    def on_stop(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` on the server loop before the server shuts down."""
        self._on_stop.append(callback)

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        ready: threading.Event,
        failure: list[BaseException],
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(sock))
        except Exception as exc:  # handed to start(), which raises it in the caller
            failure.append(exc)
            ready.set()
            loop.close()
            return
        loop.call_soon(ready.set)
        loop.run_forever()
        loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        self._runner = web.AppRunner(self._make_app(self.base_url), shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def _require_loop(self, coro: Coroutine[Any, Any, Any]) -> asyncio.AbstractEventLoop:
        if self._loop is None or not self._loop.is_running():
            coro.close()
            raise RuntimeError("the Slack emulator is not running")
        return self._loop

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None) -> _T:
        """Run a coroutine on the server loop from another thread, blocking for it."""
        loop = self._require_loop(coro)
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    async def arun(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run a coroutine on the server loop and await it from the caller's loop."""
        loop = self._require_loop(coro)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def stop(self, timeout: float = 5.0) -> None:
        """Close sockets, stop serving and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._loop = self._thread = None

    async def _shutdown(self) -> None:
        for callback in self._on_stop:
            await callback()
        if self._runner is not None:
            await self._runner.cleanup()
