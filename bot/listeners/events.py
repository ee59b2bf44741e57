"""Events API listeners: mentions of the bot, and channel messages.

The bot subscribes to ``message.channels`` so it can read alert messages in the channels
listed in ``BOT_ALERT_CHANNELS``; until alert intake parses them, every channel message is
acknowledged and left alone, so Slack never sees an unhandled delivery.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.say.async_say import AsyncSay

from bot.ids import SLASH_COMMAND

SUBSCRIBED_EVENTS = ("app_mention", "message")


async def on_app_mention(event: dict[str, Any], say: AsyncSay) -> None:
    """Answer a mention in its thread with where to start."""
    await say(
        text=f"Hi! Type `{SLASH_COMMAND} help` to see what I can do.",
        thread_ts=event.get("thread_ts") or event.get("ts"),
    )


async def on_channel_message(event: dict[str, Any]) -> None:
    """Acknowledge channel messages; alert intake will read those in alert channels."""


def register_events(app: AsyncApp) -> None:
    """Attach the Events API listeners to ``app``."""
    app.event("app_mention")(on_app_mention)
    app.event("message")(on_channel_message)
