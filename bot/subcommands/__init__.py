"""The subcommands of ``/streamhouse`` and the router that holds them.

Registration is explicit: each subcommand module is imported here and registered once;
a duplicate name raises when the router is built.
"""

from __future__ import annotations

from bot.commands import CommandContext, CommandRouter, Invocation, SubcommandSpec
from bot.ids import Subcommand
from bot.render.help import help_reply
from bot.replies import Reply
from bot.subcommands.diagnose import run_diagnose, validate_diagnose
from bot.subcommands.digest import run_digest, validate_digest
from bot.subcommands.freeze import run_freeze, validate_freeze
from bot.subcommands.incident import run_incident, validate_incident
from bot.subcommands.ping import run_ping


def build_router() -> CommandRouter:
    """A router with every subcommand the bot offers, in the order help lists them."""
    router = CommandRouter()

    async def run_help(context: CommandContext, invocation: Invocation) -> Reply | None:
        return help_reply(router, context.deps.settings.runbook_base_url)

    router.register(
        SubcommandSpec(
            name=Subcommand.HELP,
            summary="list every subcommand with an example",
            example="help",
            handler=run_help,
            instant=True,
        )
    )
    router.register(
        SubcommandSpec(
            name=Subcommand.DIAGNOSE,
            summary="run a runbook's checks (or all six) and post what is wrong, live",
            example="diagnose leases topic=orders partition=1",
            handler=run_diagnose,
            validate=validate_diagnose,
        )
    )
    router.register(
        SubcommandSpec(
            name=Subcommand.INCIDENT,
            summary="list, show, acknowledge or resolve incidents (`list | show ID | ack ID "
            "| resolve ID [note]`)",
            example="incident ack SH-1",
            handler=run_incident,
            validate=validate_incident,
        )
    )
    router.register(
        SubcommandSpec(
            name=Subcommand.FREEZE,
            summary="stop (`on`) or allow again (`off`) every action execution; approvers only",
            example="freeze on",
            handler=run_freeze,
            validate=validate_freeze,
        )
    )
    router.register(
        SubcommandSpec(
            name="digest",
            summary="post a health digest on a schedule (`subscribe daily 09:00 Europe/Berlin "
            '[channel]`, `hourly`, `weekdays 08:30`, `cron "0 */4 * * *"`; `list | '
            "unsubscribe ID | now`)",
            example="digest subscribe daily 09:00 Europe/Berlin",
            handler=run_digest,
            validate=validate_digest,
        )
    )
    router.register(
        SubcommandSpec(
            name=Subcommand.PING,
            summary="check that the bot, its database and Slack answer, with round-trip times",
            example="ping",
            handler=run_ping,
        )
    )
    return router
