"""``streamhouse-bot audit``: check the audit chain and export a postmortem draft.

Exit codes: 0 ok, 1 the chain is broken (or the incident has no events), 2 usage or
configuration error, 3 the check could not run (database unreachable or not migrated).
"""

from __future__ import annotations

import asyncio
import os
import sys

import psycopg

from bot.audit import AuditLog, export_markdown
from bot.store.db import Database
from bot.store.errors import StoreError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3
DATABASE_URL_ENV = "BOT_DATABASE_URL"


def run_audit_cli(action: str, *, incident_id: str | None = None, fmt: str = "markdown") -> int:
    """Run ``audit verify`` or ``audit export``; print the result and return the exit code."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not url:
        _error(f"{DATABASE_URL_ENV} is not set; point it at the bot's PostgreSQL database")
        return EXIT_USAGE
    if action == "export" and (not incident_id or fmt != "markdown"):
        _error("audit export needs an INCIDENT_ID and --format markdown")
        return EXIT_USAGE
    try:
        return asyncio.run(_run(url, action, incident_id or ""))
    except (StoreError, psycopg.Error) as error:
        _error(f"cannot read the audit trail: {' '.join(str(error).split())}")
        return EXIT_UNKNOWN


async def _run(url: str, action: str, incident_id: str) -> int:
    async with await Database.connect(url, max_size=1) as database:
        log = AuditLog(database)
        if action == "verify":
            result = await log.verify()
            if result.ok:
                print(f"audit chain holds: {result.checked} event(s) checked")
                return EXIT_OK
            _error(
                f"audit chain broken at event id {result.first_broken_id}: {result.reason} "
                f"({result.checked} event(s) before it are intact)"
            )
            return EXIT_FAILED
        events = await log.timeline(incident_id)
        if not events:
            _error(f"no audit events for incident {incident_id!r}")
            return EXIT_FAILED
        sys.stdout.write(export_markdown(events))
        return EXIT_OK


def _error(message: str) -> None:
    print(f"streamhouse-bot audit: {message}", file=sys.stderr)
