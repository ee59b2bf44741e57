"""``streamhouse-bot digest``: the digest's health panels in a terminal, without Slack."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from bot.cli_diagnose import EXIT_BY_STATUS, EXIT_USAGE
from bot.digests.panels import Panel, read_panels
from bot.models import Status
from bot.profiles import profile_named
from bot.settings import SettingsError, StreamhouseSettings, load_streamhouse_settings
from bot.sources.factory import build_sources

MARK = {Status.OK: "ok", Status.WARNING: "WARN", Status.CRITICAL: "CRIT", Status.UNKNOWN: "??"}


def run_digest_cli(*, as_json: bool) -> int:
    """Read the six panels once and print them; the exit code follows the worst one."""
    try:
        settings = load_streamhouse_settings()
    except SettingsError as error:
        print(f"streamhouse-bot: {error}", file=sys.stderr)
        return EXIT_USAGE
    panels = asyncio.run(_read(settings))
    worst = Status.worst([panel.status for panel in panels])
    if as_json:
        rows = [{**asdict(panel), "status": panel.status.value} for panel in panels]
        print(json.dumps({"status": worst.value, "panels": rows}, indent=2))
    else:
        print(panels_text(panels))
    return EXIT_BY_STATUS[worst]


def panels_text(panels: Sequence[Panel]) -> str:
    """One aligned line per panel: status, title, value, and why when unknown."""
    width = max(len(panel.title) for panel in panels)
    lines = []
    for panel in panels:
        line = f"{MARK[panel.status]:>4}  {panel.title:<{width}}  {panel.value}"
        if panel.note:
            line += f"  ({panel.note})"
        lines.append(line)
    return "\n".join(lines)


async def _read(settings: StreamhouseSettings) -> list[Panel]:
    source_set = build_sources(settings)
    try:
        prometheus = source_set.sources.prometheus
        assert prometheus is not None  # noqa: S101 -- build_sources always sets every source
        return await read_panels(prometheus, profile_named(settings.streamhouse_profile))
    finally:
        await source_set.close()
