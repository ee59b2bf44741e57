"""Events API listeners: mentions of the bot, and channel messages.

The bot subscribes to ``message.channels`` so it can read alert messages (Alertmanager's
Slack receiver, Grafana) in the channels listed in ``BOT_ALERT_CHANNELS``; every other
channel message is acknowledged and left alone, so Slack never sees an unhandled delivery.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.say.async_say import AsyncSay

from bot.ids import SLASH_COMMAND
from bot.listeners.alert_messages import on_alert_channel_message

SUBSCRIBED_EVENTS = ("app_mention", "message")


async def on_app_mention(event: dict[str, Any], say: AsyncSay) -> None:
    """Answer a mention in its thread with where to start."""
    await say(
        text=f"Hi! Type `{SLASH_COMMAND} help` to see what I can do.",
        thread_ts=event.get("thread_ts") or event.get("ts"),
    )


async def on_channel_message(event: dict[str, Any], context: AsyncBoltContext) -> None:
    """Read alert messages in the alert channels; leave every other message alone."""
    await on_alert_channel_message(event, context)


def register_events(app: AsyncApp) -> None:
    """Attach the Events API listeners to ``app``."""
    app.event("app_mention")(on_app_mention)
    app.event("message")(on_channel_message)
