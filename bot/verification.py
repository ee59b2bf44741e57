"""Closed-loop verification: after an action ran, did it fix the problem?

``schedule`` stores one row per delay of ``BOT_VERIFY_DELAYS_S`` in
``action_verifications``; the ``VerificationWorker`` claims due rows (``FOR UPDATE SKIP
LOCKED``), runs the action's verification checks on fresh data and audits "fixed" or "not
fixed" (the outbox mirrors it into the incident thread). The last run decides: fixed
resolves the incident, not fixed says so loudly and leaves it open. Rows live in
PostgreSQL, so a restarted bot resumes where the old one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.approvals import ActionRequest
from bot.audit import append_event
from bot.deps import Deps
from bot.engine import run_runbook
from bot.errors import ConflictError
from bot.incidents import IncidentStore
from bot.models import CheckResult, Status
from bot.profiles import profile_named
from bot.store.db import Database
from bot.subcommands.incident import refresh_root_message
from handlers.base import CheckContext
from handlers.registry import RUNBOOKS

log = logging.getLogger("bot.verification")

POLL_INTERVAL_S = 0.2
BOT_ACTOR = "streamhouse-bot"
FIXED = (Status.OK,)

_SCHEDULE = """
    INSERT INTO action_verifications (request_id, incident_id, runbook, check_ids, due_at, final)
    VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s), %s)
"""
_CLAIM = """
    UPDATE action_verifications SET state = 'running'
    WHERE id = (
        SELECT id FROM action_verifications
        WHERE state = 'pending' AND due_at <= now()
        ORDER BY due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
    )
    RETURNING id, request_id, incident_id, runbook, check_ids, final
"""
_DONE = "UPDATE action_verifications SET state = 'done', fixed = %s WHERE id = %s"
# A run interrupted by a stop is run again on the next start.
_RESUME = "UPDATE action_verifications SET state = 'pending' WHERE state = 'running'"
_PLACE = "SELECT channel, thread_ts FROM incidents WHERE id = %s"


@dataclass(frozen=True)
class DueVerification:
    """One claimed verification run."""

    id: int
    request_id: str
    incident_id: str
    runbook: str
    check_ids: tuple[str, ...]
    final: bool


async def schedule(db: Database, request: ActionRequest, delays_s: Sequence[float]) -> None:
    """One verification run per delay after ``request`` executed; the last one decides."""
    runbook = RUNBOOKS[request.runbook]
    spec = next(a for a in runbook.actions if a.id == request.action_id)
    if not spec.verification:
        return
    ordered = sorted(delays_s)
    async with db.pool.connection() as conn, conn.transaction():
        for index, delay in enumerate(ordered):
            params = (
                request.id,
                request.incident_id,
                request.runbook,
                list(spec.verification),
                delay,
                index == len(ordered) - 1,
            )
            await conn.execute(_SCHEDULE, params)


def is_fixed(results: Sequence[CheckResult]) -> bool:
    """Fixed: every verification check is ``ok`` (unknown is not evidence of a fix)."""
    return bool(results) and all(result.status in FIXED for result in results)


class VerificationWorker:
    """Runs due verifications until ``stop`` is set."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def run(self, stop: asyncio.Event) -> None:
        """Resume interrupted runs, then poll for due ones."""
        async with self._deps.db.pool.connection() as conn:
            await conn.execute(_RESUME)
        while not stop.is_set():
            try:
                due = await self._claim()
                if due is not None:
                    await self._verify(due)
                    continue
            except Exception:  # one failed run must not stop verification for good
                log.exception("a verification run failed")
            with contextlib.suppress(TimeoutError):  # nothing due yet: poll again
                await asyncio.wait_for(stop.wait(), timeout=POLL_INTERVAL_S)

    async def _claim(self) -> DueVerification | None:
        async with self._deps.db.pool.connection() as conn:
            cursor = await conn.execute(_CLAIM)
            row = await cursor.fetchone()
        if row is None:
            return None
        return DueVerification(row[0], row[1], row[2], row[3], tuple(row[4]), bool(row[5]))

    async def _verify(self, due: DueVerification) -> None:
        deps = self._deps
        runbook = RUNBOOKS[due.runbook]
        profile = profile_named(deps.settings.streamhouse_profile)
        ctx = CheckContext(deps.sources.sources, profile, now=datetime.now(UTC))
        diagnosis = await run_runbook(runbook, ctx, runbook_base_url=deps.settings.runbook_base_url)
        results = [c for c in diagnosis.checks if c.id in due.check_ids]
        fixed = is_fixed(results)
        await self._record(due, fixed, results)
        if due.final and fixed:
            await self._resolve(due)

    async def _record(self, due: DueVerification, fixed: bool, results: list[CheckResult]) -> None:
        verdict = "fixed" if fixed else "not fixed"
        if due.final and not fixed:
            verdict = ":rotating_light: NOT FIXED after the last check; the incident stays open"
        details = "; ".join(f"{r.id} {r.status.value}: {r.summary}" for r in results)
        body = {
            "text": f"verification of {due.request_id}: {verdict} ({details})",
            "fixed": fixed,
            "final": due.final,
            "checks": {r.id: r.status.value for r in results},
        }
        async with self._deps.db.pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(_PLACE, (due.incident_id,))
            place = await cursor.fetchone()
            channel, thread_ts = (place[0], place[1]) if place else ("", None)
            await append_event(
                conn,
                due.incident_id,
                "action.verification",
                body,
                actor=None,
                channel=channel,
                thread_ts=thread_ts,
            )
            await conn.execute(_DONE, (fixed, due.id))

    async def _resolve(self, due: DueVerification) -> None:
        note = f"verified fixed after {due.request_id}"
        try:
            incident = await IncidentStore(self._deps.db).resolve(due.incident_id, BOT_ACTOR, note)
        except ConflictError:  # someone resolved it already
            return
        await refresh_root_message(self._deps, incident)
