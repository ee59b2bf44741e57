"""Alert messages in Slack channels, and the ``Diagnose this`` message shortcut.

A message posted by Alertmanager's Slack receiver or by Grafana in one of the channels of
``BOT_ALERT_CHANNELS`` is parsed (``bot.alerts.slack_messages``) and handed to alert
intake, which treats that message's thread as the incident thread. The shortcut does the
same for any message a person points at; a message that parses to nothing becomes one
``manual`` alert carrying the message's text, so intake still opens an incident and runs
``diagnose all`` in its thread.

The decisions are pure functions (``alert_message_of``, ``shortcut_alerts``); the
listeners only fetch their inputs and call intake.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot.alerts.model import IncomingAlert, label_fingerprint
from bot.alerts.slack_messages import message_plain_text, parse_alert_message
from bot.ids import CallbackId
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.deps import Deps

log = logging.getLogger("bot.listeners.alert_messages")

DIAGNOSE_THIS = CallbackId.DIAGNOSE_THIS.value
MANUAL_ALERTNAME = "manual"
# Plain posts and incoming-webhook posts; edits, deletions, joins and the like are not
# new alerts (an edit re-delivers the whole message as ``message_changed``).
_READ_SUBTYPES = frozenset({"", "bot_message"})
# A manual alert keeps this much of the message text: enough to read, bounded in the store.
MANUAL_TEXT_LIMIT = 3000


def alert_message_of(
    event: Mapping[str, Any],
    settings: Settings,
    *,
    own_bot_id: str | None = None,
    own_user_id: str | None = None,
) -> list[IncomingAlert] | None:
    """The alerts of a channel ``message`` event, or None when the bot does not read it.

    Read: top-level messages posted by an app or webhook (``bot_id`` set) in a channel of
    ``BOT_ALERT_CHANNELS``. Not read: other channels, thread replies, edits and other
    subtypes, messages people typed (the shortcut covers those) and the bot's own posts.
    A read message that is not an alert gives ``[]``.
    """
    if str(event.get("channel", "")) not in settings.bot_alert_channels:
        return None
    if str(event.get("subtype") or "") not in _READ_SUBTYPES or _is_reply(event):
        return None
    bot_id = str(event.get("bot_id") or "")
    if not bot_id or bot_id == own_bot_id:
        return None
    if own_user_id is not None and event.get("user") == own_user_id:
        return None
    return parse_alert_message(event)


def shortcut_alerts(message: Mapping[str, Any], channel: str) -> list[IncomingAlert]:
    """The alerts a ``Diagnose this`` shortcut hands to intake: the message's own alerts,
    else one firing ``manual`` alert that carries the message text."""
    alerts = parse_alert_message(message)
    return alerts or [manual_alert(message, channel)]


def manual_alert(message: Mapping[str, Any], channel: str) -> IncomingAlert:
    """A firing alert named ``manual`` for a message that is not an alert.

    Its fingerprint is the message's own (channel and ts), so two shortcuts on two messages
    are two alerts, and the same message twice is the same alert. The text is untrusted.
    """
    ts = message_thread_ts(message)
    labels = {"alertname": MANUAL_ALERTNAME, "channel": channel, "message_ts": ts}
    text = message_plain_text(message)[:MANUAL_TEXT_LIMIT]
    return IncomingAlert(
        alertname=MANUAL_ALERTNAME,
        status="firing",
        labels=labels,
        annotations={"description": text} if text else {},
        fingerprint=label_fingerprint(labels),
        origin="shortcut",
    )


def message_thread_ts(message: Mapping[str, Any]) -> str:
    """The ts of the thread a message belongs to: its parent's, else its own."""
    return str(message.get("thread_ts") or message.get("ts") or "")


def _is_reply(event: Mapping[str, Any]) -> bool:
    thread_ts = event.get("thread_ts")
    return bool(thread_ts) and thread_ts != event.get("ts")


async def on_alert_channel_message(event: dict[str, Any], context: AsyncBoltContext) -> None:
    """Hand the alerts of an alert-channel message to intake; ignore everything else."""
    deps: Deps = context["deps"]
    alerts = alert_message_of(
        event,
        deps.settings,
        own_bot_id=context.get("bot_id"),
        own_user_id=context.get("bot_user_id"),
    )
    if not alerts:
        return
    await _accept(deps, str(event["channel"]), str(event["ts"]), alerts)


async def on_diagnose_this(
    ack: AsyncAck, shortcut: dict[str, Any], context: AsyncBoltContext
) -> None:
    """``Diagnose this``: acknowledge, then hand the message's alerts (or a manual one) to
    intake, which opens the incident in that message's thread."""
    await ack()
    deps: Deps = context["deps"]
    message = shortcut.get("message") or {}
    channel = str((shortcut.get("channel") or {}).get("id", ""))
    ts = message_thread_ts(message)
    if not channel or not ts:
        log.warning("diagnose-this shortcut without a channel or message ts; ignored")
        return
    await _accept(deps, channel, ts, shortcut_alerts(message, channel))


async def _accept(deps: Deps, channel: str, ts: str, alerts: Sequence[IncomingAlert]) -> None:
    # Imported here, not at the top: intake pulls in the alert store and the posting queue,
    # which this module (imported by the app at start-up) does not otherwise need.
    from bot.alerts.intake import accept_channel_alerts

    log.info("%d alert(s) from message %s in %s", len(alerts), ts, channel)
    await accept_channel_alerts(deps, channel, ts, alerts)


def register_alert_messages(app: AsyncApp) -> None:
    """Attach the ``Diagnose this`` message shortcut to ``app``.

    Channel messages reach ``on_alert_channel_message`` through the one ``message``
    listener of ``bot.listeners.events`` (Bolt runs only the first matching listener).
    """
    app.shortcut(DIAGNOSE_THIS)(on_diagnose_this)
