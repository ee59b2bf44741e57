"""The ``/streamhouse`` slash command: parse, acknowledge within Slack's 3 s, then work."""

from __future__ import annotations

from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.commands import CommandContext, parse_command_text
from bot.deps import Deps
from bot.errors import UsageError
from bot.ids import SLASH_COMMAND
from bot.render.help import usage_error_reply


async def on_streamhouse_command(
    ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any], context: AsyncBoltContext
) -> None:
    """Answer usage errors and instant subcommands in the ack; run the rest after it."""
    deps: Deps = context["deps"]
    try:
        invocation = parse_command_text(str(command.get("text", "")))
        spec = deps.router.resolve(invocation)
        if spec.validate is not None:
            spec.validate(invocation)
    except UsageError as error:
        await ack(**usage_error_reply(error, deps.router).to_slack())
        return
    command_context = CommandContext(
        deps=deps, user_id=command.get("user_id"), channel_id=command.get("channel_id")
    )
    if spec.instant:
        reply = await spec.handler(command_context, invocation)
        await ack(**(reply.to_slack() if reply else {}))
        return
    await ack()
    reply = await spec.handler(command_context, invocation)
    if reply is not None:
        await respond(**reply.to_slack())


def register_commands(app: AsyncApp) -> None:
    """Attach the slash command listener to ``app``."""
    app.command(SLASH_COMMAND)(on_streamhouse_command)
