"""Where alerts come in: ``POST /alertmanager`` and alert messages in Slack channels.

Neither waits on Slack: both store the alerts and mark incidents changed in one
transaction, and the ``AlertPoster`` posts at Slack's pace afterwards.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from slack_sdk.errors import SlackApiError

from bot.alerts.model import IncomingAlert
from bot.alerts.store import AlertStore, Intake, Place
from bot.alerts.webhook import MAX_BODY_BYTES, WebhookRejected, parse_webhook
from bot.deps import Deps
from bot.incidents import IncidentStore
from bot.render.text import escape

log = logging.getLogger("bot.alerts")


def alert_store(deps: Deps) -> AlertStore:
    """The alert store with the configured grouping labels."""
    return AlertStore(deps.db, deps.settings.bot_alert_group_by)


async def read_limited(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The body, or None as soon as it is longer than ``limit`` (never all read in)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def authorised(request: web.Request, deps: Deps) -> bool:
    """Whether the request carries ``BOT_ALERTMANAGER_TOKEN`` (when one is set)."""
    token = deps.settings.bot_alertmanager_token
    if token is None:
        return True
    sent = request.headers.get("Authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    return hmac.compare_digest(sent.encode(), expected.encode())


def alertmanager_handler(deps: Deps) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``POST /alertmanager``: 200 once stored; 400/401/413/503 with a reason otherwise."""

    async def receive(request: web.Request) -> web.Response:
        if not authorised(request, deps):
            return _error(401, "missing or wrong bearer token (BOT_ALERTMANAGER_TOKEN)")
        raw = await read_limited(request)
        if raw is None:
            return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            alerts = parse_webhook(raw)
        except WebhookRejected as rejected:
            return _error(400, str(rejected))
        channel = deps.settings.bot_alert_channel
        if not channel:
            return _error(503, "BOT_ALERT_CHANNEL is not set: the bot has nowhere to post")
        intake = await alert_store(deps).accept(alerts, Place(channel))
        deps.metrics.alerts_received(len(alerts))
        return web.json_response(_report(intake))

    return receive


async def accept_channel_alerts(
    deps: Deps, channel: str, message_ts: str, alerts: Sequence[IncomingAlert]
) -> None:
    """Alerts read from a message in ``channel``: a new incident takes that message's thread;
    alerts joining an incident that lives elsewhere get a pointer to it in the thread."""
    intake = await alert_store(deps).accept(alerts, Place(channel, thread_ts=message_ts))
    for incident_id in sorted(intake.touched - set(intake.opened)):
        incident = await IncidentStore(deps.db).get(incident_id)
        if incident is None or incident.thread_ts == message_ts:
            continue
        text = f"Tracked in {incident.id}: {escape(incident.title)}"
        try:
            await deps.slack.chat_postMessage(channel=channel, thread_ts=message_ts, text=text)
        except SlackApiError as error:  # the alerts are stored; a pointer is a courtesy
            log.warning("could not point to %s: %s", incident.id, error.response.get("error"))


def _report(intake: Intake) -> dict[str, object]:
    return {
        "status": "stored",
        "stored": intake.stored,
        "repeats": intake.repeats,
        "changed": intake.changed,
        "opened": intake.opened,
    }


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
