"""Bolt global middleware: dependencies into the context, Slack retries dropped.

Each request gets a delivery key (the event id, else the trigger id). First deliveries
are noted in the ``DeliveryLog`` (written to PostgreSQL in batches, off the
acknowledgement path); a delivery that carries ``X-Slack-Retry-Num`` is checked against it
and acknowledged without running any listener when it was already handled, by this
replica or another.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.deps import Deps

Next = Callable[[], Awaitable[BoltResponse]]
Middleware = Callable[[AsyncBoltRequest, BoltResponse, Next], Awaitable[BoltResponse]]

logger = logging.getLogger("bot.listeners")


def delivery_key(body: dict[str, Any]) -> str | None:
    """A key that is the same for a delivery and Slack's retries of it."""
    event_id = body.get("event_id")
    if isinstance(event_id, str) and event_id:
        return f"event:{event_id}"
    trigger_id = body.get("trigger_id")
    if isinstance(trigger_id, str) and trigger_id:
        return f"trigger:{trigger_id}"
    return None


def listener_name(body: dict[str, Any]) -> str:
    """A low-cardinality name for metrics: the command, action, view or event type."""
    if isinstance(body.get("command"), str):
        return str(body["command"])
    kind = body.get("type")
    if kind == "block_actions" and body.get("actions"):
        return f"action:{body['actions'][0].get('action_id', '?')}"
    if kind in ("view_submission", "view_closed"):
        return f"view:{body.get('view', {}).get('callback_id', '?')}"
    if kind == "event_callback":
        return f"event:{body.get('event', {}).get('type', '?')}"
    return str(kind or "other")


def retry_number(request: AsyncBoltRequest) -> int:
    """Slack's retry count for this delivery (0 for a first delivery)."""
    values = request.headers.get("x-slack-retry-num") or ["0"]
    try:
        return int(values[0])
    except ValueError:
        return 0


def build_middleware(deps: Deps) -> list[Middleware]:
    """The global middleware chain, outermost first."""

    async def inject_deps(
        request: AsyncBoltRequest, response: BoltResponse, next_: Next
    ) -> BoltResponse:
        request.context["deps"] = deps
        await next_()
        return response

    async def drop_retries(
        request: AsyncBoltRequest, response: BoltResponse, next_: Next
    ) -> BoltResponse:
        key = delivery_key(request.body)
        if key is None:
            await next_()
            return response
        if retry_number(request) == 0:
            deps.deliveries.note(key)
            await next_()
            return response
        if await deps.deliveries.first_time(key):
            await next_()
            return response
        logger.info("dropped Slack retry of an already handled delivery %s", key)
        request.context["duplicate"] = True
        return BoltResponse(status=200, body="")

    return [inject_deps, drop_retries]
