"""The emulator's HTTP side: routes, request decoding, and the thread it runs in.

The server owns a private event loop in a daemon thread, so neither the test's loop nor
the bot's loop ever runs emulator code. Routes:
    GET|POST /api/{method}        Web API (JSON, form or query parameters)
    POST     /upload/v1/{file_id} upload URLs from files.getUploadURLExternal
    POST     /response/{id}       response_urls
    GET      /socket-mode         Socket Mode WebSocket
"""

from __future__ import annotations

import json
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
