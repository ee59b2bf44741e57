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
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.approvals import ActionRequest
from bot.audit import append_event
from bot.deps import Deps
from bot.engine import run_runbook
from bot.errors import ConflictError
from bot.executors.execution import incident_target
from bot.incidents import IncidentStore
from bot.models import CheckResult, Status
from bot.profiles import profile_named
from bot.settings import Settings
from bot.sources.window import after
from bot.store.db import Database
from bot.subcommands.incident import refresh_root_message
from handlers.base import CheckContext
from handlers.registry import RUNBOOKS

log = logging.getLogger("bot.verification")

POLL_INTERVAL_S = 0.2
BOT_ACTOR = "streamhouse-bot"
FIXED = (Status.OK,)

_SCHEDULE = """
    INSERT INTO action_verifications
        (request_id, incident_id, runbook, check_ids, due_at, final, stop_when_fixed)
    VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s), %s, %s)
"""
MAX_WATCH_POLLS = 120
# A run left 'running' by a stopped bot is claimed again once STALE_RUN_S have passed, by
# any replica (a live run finishes well within that: its checks share one deadline).
STALE_RUN_S = 120
_CLAIM = """
    UPDATE action_verifications SET state = 'running', claimed_at = now()
    WHERE id = (
        SELECT id FROM action_verifications
        WHERE due_at <= now()
          AND (state = 'pending'
               OR (state = 'running' AND claimed_at < now() - make_interval(secs => %s)))
        ORDER BY due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
    )
    RETURNING id, request_id, incident_id, runbook, check_ids, final, stop_when_fixed
"""
# A watch that saw the fix needs no more polls.
_CANCEL_REST = """
    UPDATE action_verifications SET state = 'cancelled'
    WHERE request_id = %s AND state = 'pending'
"""
_DONE = "UPDATE action_verifications SET state = 'done', fixed = %s WHERE id = %s"
_PLACE = "SELECT channel, thread_ts FROM incidents WHERE id = %s"
_EXECUTED_AT = "SELECT executed_at FROM action_requests WHERE id = %s"


@dataclass(frozen=True)
class DueVerification:
    """One claimed verification run."""

    id: int
    request_id: str
    incident_id: str
    runbook: str
    check_ids: tuple[str, ...]
    final: bool
    stop_when_fixed: bool = False


async def schedule(db: Database, request: ActionRequest, settings: Settings) -> None:
    """The follow-up of an executed request: a watch's polls, or the runbook's verification
    (one run per ``BOT_VERIFY_DELAYS_S`` delay, the last one decides)."""
    watch = (request.result or {}).get("watch")
    if isinstance(watch, dict):
        checks = tuple(str(check) for check in watch.get("checks", ()))
        window = settings.bot_watch_window_s or float(watch.get("window_s", 0))
        interval = settings.bot_watch_interval_s
        polls = max(1, min(MAX_WATCH_POLLS, math.ceil(window / interval)))
        delays = [interval * (n + 1) for n in range(polls)]
        await _insert(db, request, checks, delays, stop_when_fixed=True)
        return
    runbook = RUNBOOKS[request.runbook]
    spec = next(a for a in runbook.actions if a.id == request.action_id)
    if spec.verification:
        delays = sorted(settings.bot_verify_delays_s)
        await _insert(db, request, spec.verification, delays, stop_when_fixed=False)


async def _insert(
    db: Database,
    request: ActionRequest,
    checks: Sequence[str],
    delays_s: Sequence[float],
    *,
    stop_when_fixed: bool,
) -> None:
    if not checks:
        return
    async with db.pool.connection() as conn, conn.transaction():
        for index, delay in enumerate(delays_s):
            params = (
                request.id,
                request.incident_id,
                request.runbook,
                list(checks),
                delay,
                index == len(delays_s) - 1,
                stop_when_fixed,
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
        """Poll for due runs (and runs a stopped bot left behind) until ``stop``."""
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
            cursor = await conn.execute(_CLAIM, (STALE_RUN_S,))
            row = await cursor.fetchone()
        if row is None:
            return None
        return DueVerification(
            row[0], row[1], row[2], row[3], tuple(row[4]), bool(row[5]), bool(row[6])
        )

    async def _verify(self, due: DueVerification) -> None:
        deps = self._deps
        runbook = RUNBOOKS[due.runbook]
        profile = profile_named(deps.settings.streamhouse_profile)
        # The incident's target, and logs only from the execution on: a conflict line written
        # before the fix is no evidence that it did not hold.
        target = await incident_target(deps, due.incident_id)
        executed_at = await self._executed_at(due.request_id)
        sources = deps.sources.sources
        if executed_at is not None:
            sources = after(sources, executed_at)
        ctx = CheckContext(sources, profile, target, now=datetime.now(UTC))
        diagnosis = await run_runbook(runbook, ctx, runbook_base_url=deps.settings.runbook_base_url)
        results = [c for c in diagnosis.checks if c.id in due.check_ids]
        fixed = is_fixed(results)
        decided = due.final or (due.stop_when_fixed and fixed)
        await self._record(due, fixed, decided, results)
        if decided and fixed:
            await self._resolve(due)

    async def _executed_at(self, request_id: str) -> datetime | None:
        async with self._deps.db.pool.connection() as conn:
            cursor = await conn.execute(_EXECUTED_AT, (request_id,))
            row = await cursor.fetchone()
        return None if row is None or row[0] is None else row[0].astimezone(UTC)

    async def _record(
        self, due: DueVerification, fixed: bool, decided: bool, results: list[CheckResult]
    ) -> None:
        what = "watch" if due.stop_when_fixed else "verification"
        verdict = "fixed" if fixed else "not fixed"
        if due.stop_when_fixed and not decided:
            verdict = "not yet recovered, still watching"
        if decided and not fixed:
            verdict = ":rotating_light: NOT FIXED after the last check; the incident stays open"
        details = "; ".join(f"{r.id} {r.status.value}: {r.summary}" for r in results)
        body = {
            "text": f"{what} of {due.request_id}: {verdict} ({details})",
            "fixed": fixed,
            "final": decided,
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
            if decided:
                await conn.execute(_CANCEL_REST, (due.request_id,))

    async def _resolve(self, due: DueVerification) -> None:
        note = f"verified fixed after {due.request_id}"
        try:
            incident = await IncidentStore(self._deps.db).resolve(due.incident_id, BOT_ACTOR, note)
        except ConflictError:  # someone resolved it already
            return
        await refresh_root_message(self._deps, incident)
