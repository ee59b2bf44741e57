"""Builds the Bolt app: middleware, listeners and the one error handler, from ``Deps``."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.deps import Deps
from bot.listeners.actions import register_actions
from bot.listeners.alert_messages import register_alert_messages
from bot.listeners.commands import register_commands
from bot.listeners.errors import on_listener_error
from bot.listeners.events import register_events
from bot.listeners.middleware import build_middleware, listener_name
from bot.metrics import BotMetrics


class MeasuredAsyncApp(AsyncApp):
    """``AsyncApp`` that times every dispatch (HTTP and Socket Mode alike) until its ack.

    Bolt's global middleware runs before the listener rather than around it, so the time to
    acknowledge can only be taken around ``async_dispatch``.
    """

    def __init__(self, *, metrics: BotMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        started = time.perf_counter()
        response = await super().async_dispatch(req)
        if response.status == 401:  # not from Slack: nothing ran, nothing to measure
            return response
        name = listener_name(req.body)
        if req.context.get("duplicate"):
            outcome = "duplicate"
        else:
            outcome = "ok" if response.status < 400 else "error"
        self._metrics.ack_latency.labels(name).observe(time.perf_counter() - started)
        self._metrics.requests.labels(name, outcome).inc()
        return response


def build_app(deps: Deps) -> AsyncApp:
    """An ``AsyncApp`` wired to ``deps``; it holds no state of its own."""
    secret = deps.settings.slack_signing_secret
    app = MeasuredAsyncApp(
        metrics=deps.metrics,
        client=deps.slack,
        signing_secret=secret.get_secret_value() if secret else None,
        # Socket Mode deliveries are authenticated by the websocket itself.
        request_verification_enabled=secret is not None,
        logger=logging.getLogger("bot.bolt"),
    )
    for middleware in build_middleware(deps):
        app.middleware(middleware)
    register_commands(app)
    register_events(app)
    register_alert_messages(app)
    register_actions(app)
    app.error(on_listener_error)
    return app
