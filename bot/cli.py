"""``streamhouse-bot``: run the bot, check its configuration, or show the demo.

Exit codes: 0 success, 1 the job failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from pydantic import SecretStr

from bot import __version__
from bot.settings import Settings, SettingsError, load_settings
from lab.cli import add_lab_commands, run_lab

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar; later parts add subcommands here."""
    parser = argparse.ArgumentParser(
        prog="streamhouse-bot", description="Slack incident bot for Streamhouse."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="serve Slack (HTTP or Socket Mode) until stopped")
    commands.add_parser("check-config", help="validate the environment and print the settings")
    commands.add_parser(
        "demo", help="start the bot against a Slack emulator and show what a user sees"
    )
    diagnose = commands.add_parser(
        "diagnose",
        help="run a runbook's checks (or all) and print the diagnosis; needs no Slack",
        description="Same words as in Slack: diagnose [RUNBOOK|all] [topic=… partition=… agent=…]."
        " Exit code: 0 ok, 1 warning or critical, 2 usage or configuration error, 3 unknown.",
    )
    diagnose.add_argument("words", nargs="*", metavar="RUNBOOK|all|key=value")
    diagnose.add_argument("--json", action="store_true", help="print the JSON of the contract")
    diagnose.add_argument("--deadline", type=float, default=8.0, help="seconds for all checks")
    digest = commands.add_parser(
        "digest",
        help="print the health digest's six panels now; needs no Slack",
        description="Reads PROMETHEUS_URL. Exit code: 0 all ok, 1 warning or critical, 2"
        " configuration error, 3 a panel without data.",
    )
    digest.add_argument("--json", action="store_true", help="print the panels as JSON")
    audit = commands.add_parser(
        "audit",
        help="verify the tamper-evident audit chain or export an incident's timeline",
        description="Reads BOT_DATABASE_URL. Exit code: 0 ok, 1 chain broken or no events,"
        " 2 usage or configuration error, 3 the database could not be read.",
    )
    audit_actions = audit.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    audit_actions.add_parser("verify", help="recompute every hash; name the first broken row")
    export = audit_actions.add_parser("export", help="print an incident's postmortem draft")
    export.add_argument("incident_id", metavar="INCIDENT_ID")
    export.add_argument("--format", choices=["markdown"], default="markdown")
    add_lab_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.command == "lab":
        return run_lab(args)
    if args.command == "diagnose":
        from bot.cli_diagnose import run_diagnose_cli

        return run_diagnose_cli(args.words, as_json=args.json, deadline_s=args.deadline)
    if args.command == "digest":
        from bot.cli_digest import run_digest_cli

        return run_digest_cli(as_json=args.json)
    if args.command == "audit":
        from bot.cli_audit import run_audit_cli

        incident_id = getattr(args, "incident_id", None)
        return run_audit_cli(
            args.audit_action, incident_id=incident_id, fmt=getattr(args, "format", "markdown")
        )
    if args.command == "demo":
        from lab.demo import run_demo  # the lab is only needed for the demo

        return run_demo()
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"streamhouse-bot: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check-config":
        print(describe_settings(settings))
        return EXIT_OK
    configure_logging(settings.bot_log_level)
    return asyncio.run(serve(settings))


def configure_logging(level: str) -> None:
    """One line per record, with time and logger name."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )


async def serve(settings: Settings) -> int:
    """Run the bot until SIGINT or SIGTERM, then stop it cleanly."""
    from bot.runtime import BotRuntime  # imported here so check-config stays light

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with BotRuntime(settings):
            await stop.wait()
    except Exception as error:
        logging.getLogger("bot").error("the bot stopped: %s", error, exc_info=True)
        return EXIT_FAILED
    return EXIT_OK


def describe_settings(settings: Settings) -> str:
    """Every setting with its value; secrets shown only as set or not."""
    lines = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "(set, hidden)"
        elif value is None:
            shown = "(not set)"
        elif isinstance(value, list):
            shown = ",".join(str(item) for item in value) or "(empty)"
        else:
            shown = str(value)
        lines.append(f"{name.upper():<26} {shown}")
    return "\n".join(lines)
