"""``streamhouse-bot lab up | down | scenarios``: the simulated Streamhouse from the shell.

``lab up`` runs in the foreground: it starts the lab, prints ``export NAME=value`` lines
for the bot (also written to ``--env-file``), and serves until SIGINT/SIGTERM or
``lab down`` (which signals the process recorded in the pid file).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from lab.scenarios import SCENARIOS, UnknownScenarioError

PID_FILE = Path(
    os.environ.get("STREAMHOUSE_LAB_PID_FILE", Path(tempfile.gettempdir()) / "streamhouse-lab.pid")
)


def add_lab_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``lab`` and its subcommands on the CLI."""
    lab = commands.add_parser("lab", help="run the simulated Streamhouse world")
    actions = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start the lab and print the bot's environment")
    up.add_argument("--scenario", default="healthy", help="see `lab scenarios`")
    up.add_argument("--variant", default=None, help="a variant of the scenario")
    up.add_argument("--profile", choices=["runbook", "upstream"], default="runbook")
    up.add_argument("--env-file", type=Path, default=None, help="also write the exports here")
    up.add_argument("--no-prometheus", action="store_true", help="skip Prometheus/Alertmanager")
    up.add_argument("--webhook-url", default=None, help="Alertmanager's receiver (the bot)")
    actions.add_parser("down", help="stop the lab started by `lab up`")
    actions.add_parser("scenarios", help="list the scenarios and their variants")


def run_lab(args: argparse.Namespace) -> int:
    """Carry out ``lab ...``; returns the exit code."""
    if args.lab_command == "scenarios":
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<22} {scenario.summary}  [{', '.join(scenario.variants)}]")
        return 0
    if args.lab_command == "down":
        return lab_down()
    return lab_up(args)


def lab_up(args: argparse.Namespace) -> int:
    """Start the lab, print its environment, serve until told to stop."""
    from lab.prometheus import LabComponentError
    from lab.stack import Lab

    lab = Lab(args.profile, prometheus=not args.no_prometheus, webhook_url=args.webhook_url)
    try:
        seconds = lab.start(args.scenario, args.variant)
    except UnknownScenarioError as error:
        print(f"streamhouse-bot lab: {error}", file=sys.stderr)
        return 2
    except LabComponentError as error:
        print(f"streamhouse-bot lab: {error}", file=sys.stderr)
        return 1
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(lab.env().items()))
    print(exports, end="", flush=True)
    if args.env_file is not None:
        args.env_file.write_text(exports)
    PID_FILE.write_text(str(os.getpid()))
    print(
        f"lab up in {seconds:.1f}s: {lab.world.scenario} ({lab.profile} profile); "
        "Ctrl-C or `streamhouse-bot lab down` stops it",
        file=sys.stderr,
        flush=True,
    )
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        stopped.wait()
    finally:
        lab.stop()
        PID_FILE.unlink(missing_ok=True)
    return 0


def lab_down() -> int:
    """Signal the running ``lab up`` and wait for it to finish."""
    try:
        pid = int(PID_FILE.read_text())
    except (OSError, ValueError):
        print("streamhouse-bot lab: no lab is running (no pid file)", file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        PID_FILE.unlink(missing_ok=True)
        print("streamhouse-bot lab: the lab had already stopped", file=sys.stderr)
        return 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and PID_FILE.exists():
        time.sleep(0.1)
    return 0
