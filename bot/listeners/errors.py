"""The single Bolt error handler: expected errors are explained, unexpected ones get an id."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.errors import BotError, UsageError
from bot.render.help import error_reply

logger = logging.getLogger("bot.listeners")


def new_error_id() -> str:
    """A short id a user can quote and an operator can grep for in the log."""
    return uuid.uuid4().hex[:10]


async def on_listener_error(
    error: Exception, body: dict[str, Any], respond: AsyncRespond | None
) -> None:
    """Tell the user what went wrong, ephemerally; log the unexpected with its id."""
    if isinstance(error, BotError):
        message = error.user_message
        if isinstance(error, UsageError) and error.hint:
            message = f"{message} {error.hint}"
        logger.info("listener refused a request: %s", message)
    else:
        error_id = new_error_id()
        logger.error("unexpected error %s in a Slack listener", error_id, exc_info=error)
        message = (
            f"Something went wrong on my side (error id {error_id}). "
            "The team can find it in the bot's log."
        )
    if respond is not None:
        try:
            await respond(**error_reply(message).to_slack())
        except Exception:  # the user cannot be told; the log already has it
            logger.warning("could not tell the user about an error", exc_info=True)
