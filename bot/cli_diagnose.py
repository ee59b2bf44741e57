"""``streamhouse-bot diagnose``: the diagnosis without Slack, for when Slack is the problem."""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import sys
from collections.abc import Sequence

from bot.commands import parse_command_text
from bot.diagnose import DiagnoseRequest, parse_diagnose, run_request
from bot.errors import UsageError
from bot.models import Diagnosis, Status, Triage
from bot.profiles import profile_named
from bot.render.terminal import diagnosis_text, triage_text
from bot.settings import SettingsError, StreamhouseSettings, load_streamhouse_settings
from bot.sources.cache import cached
from bot.sources.factory import build_sources

EXIT_BY_STATUS = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 1, Status.UNKNOWN: 3}
EXIT_USAGE = 2


def run_diagnose_cli(words: Sequence[str], *, as_json: bool, deadline_s: float) -> int:
    """Parse like Slack does, run, print; the exit code follows the overall status."""
    try:
        invocation = parse_command_text(shlex.join(["diagnose", *words]))
        request = parse_diagnose(invocation)
        settings = load_streamhouse_settings()
    except UsageError as error:
        hint = f" {error.hint}" if error.hint else ""
        print(
            f"streamhouse-bot diagnose: {error.user_message}{hint}".replace("`", ""),
            file=sys.stderr,
        )
        return EXIT_USAGE
    except SettingsError as error:
        print(f"streamhouse-bot: {error}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    outcome = asyncio.run(_run(request, settings, deadline_s))
    if as_json:
        print(json.dumps(outcome.to_json(), indent=2, default=str))
    else:
        print(diagnosis_text(outcome) if isinstance(outcome, Diagnosis) else triage_text(outcome))
    return EXIT_BY_STATUS[outcome.status]


async def _run(
    request: DiagnoseRequest, settings: StreamhouseSettings, deadline_s: float
) -> Diagnosis | Triage:
    source_set = build_sources(settings)
    try:
        return await run_request(
            request,
            cached(source_set.sources),
            profile_named(settings.streamhouse_profile),
            runbook_base_url=settings.runbook_base_url,
            deadline_s=deadline_s,
        )
    finally:
        await source_set.close()
