"""The HTTP surface: Slack's endpoint, health, readiness and metrics on one aiohttp app."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.alerts.intake import alertmanager_handler
from bot.deps import Deps
from bot.readiness import SlackIdentity, readiness_report

# Slack's largest payloads (view submissions) stay far below this; anything bigger is refused
# with 413 before it is read into memory.
MAX_BODY_BYTES = 256 * 1024

logger = logging.getLogger("bot.web")


def build_web_app(deps: Deps, bolt_app: AsyncApp, identity: SlackIdentity) -> web.Application:
    """Routes of the public contract: ``/slack/events``, ``/alertmanager``, ``/healthz``,
    ``/readyz``, ``/metrics``."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)

    async def slack_events(request: web.Request) -> web.Response:
        try:
            body = (await request.read()).decode("utf-8")
        except UnicodeDecodeError:
            return web.json_response({"error": "body is not UTF-8"}, status=400)
        try:
            bolt_request = AsyncBoltRequest(
                body=body,
                query=request.query_string,
                headers={key: list(request.headers.getall(key)) for key in request.headers},
            )
            bolt_response = await bolt_app.async_dispatch(bolt_request)
        except Exception:  # a malformed payload must not become a 500 or hurt the bot
            logger.warning("refused a malformed Slack request", exc_info=True)
            return web.json_response({"error": "malformed request"}, status=400)
        return await to_aiohttp_response(bolt_response)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ready, report = await readiness_report(deps.db, identity)
        return web.json_response(
            {"status": "ready" if ready else "not ready", **report}, status=200 if ready else 503
        )

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=deps.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    if deps.settings.slack_signing_secret is not None:
        app.router.add_post("/slack/events", slack_events)
    app.router.add_post("/alertmanager", alertmanager_handler(deps))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
