"""What follows a decision: execute, show the outcome, mark the incident, schedule the
verification; and the recovery of requests a stopped bot left half-way.

A bot can stop between approving a request and executing it, or in the middle of an
execution. ``OrphanSweeper`` finds both on any replica: an ``approved`` request untouched
for ``ORPHAN_AFTER_S`` is executed now (its guard rails are evaluated again on fresh data,
as always), unless its approval is older than the request TTL, in which case it is refused
as stale; an ``executing`` request older than that is marked failed with an honest "outcome
unknown", because the write may or may not have reached the system.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from slack_sdk.errors import SlackApiError

from bot.approvals import ActionRequest, ApprovalStore, RequestState
from bot.deps import Deps
from bot.errors import BotError
from bot.executors.execution import execute_request
from bot.incidents import IncidentStore
from bot.render.approval import outcome_message
from bot.subcommands.incident import refresh_root_message
from bot.verification import BOT_ACTOR, schedule

log = logging.getLogger("bot.executors")

ORPHAN_AFTER_S = 60.0
SWEEP_INTERVAL_S = 15.0
UNDECIDED = (RequestState.PENDING, RequestState.APPROVED, RequestState.EXECUTING)


async def run_approved(deps: Deps, approved: ActionRequest) -> None:
    """Execute, show the outcome, and on success mark the incident mitigating and verify."""
    done = await execute_request(deps, approved)
    await show_outcome(deps, done)
    if done.state is not RequestState.SUCCEEDED:
        return
    try:
        incident = await IncidentStore(deps.db).mitigate(done.incident_id, BOT_ACTOR)
    except BotError:  # already mitigating (or resolved meanwhile): nothing to move
        pass
    else:
        await refresh_root_message(deps, incident)
    await schedule(deps.db, done, deps.settings)


async def show_outcome(deps: Deps, request: ActionRequest) -> None:
    """Replace the request message (and its buttons) with where the request stands."""
    if request.state in UNDECIDED:
        return
    incident = await IncidentStore(deps.db).get(request.incident_id)
    message_ts = (await ApprovalStore(deps.db).get(request.id)).message_ts
    if incident is None or message_ts is None:
        return
    try:
        await deps.slack.chat_update(
            channel=incident.channel, ts=message_ts, **outcome_message(request).to_message()
        )
    except SlackApiError as error:  # the audit trail in the thread still has the outcome
        log.warning("could not show the outcome of %s: %s", request.id, error.response)


class OrphanSweeper:
    """Finishes what a stopped bot left: approved requests never run, executions cut off."""

    def __init__(self, deps: Deps, *, orphan_after_s: float = ORPHAN_AFTER_S) -> None:
        self._deps = deps
        self._orphan_after_s = orphan_after_s

    async def run(self, stop: asyncio.Event, interval_s: float = SWEEP_INTERVAL_S) -> None:
        """Sweep now and then every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:  # a failed sweep must not end the sweeping
                log.exception("sweeping orphaned action requests failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)

    async def sweep(self) -> None:
        """One pass over both kinds of orphan."""
        store = ApprovalStore(self._deps.db)
        ttl_s = self._deps.settings.bot_request_ttl_s
        for request in await store.abandon_executing(self._orphan_after_s):
            await show_outcome(self._deps, request)
        for request in await store.stale_approved(self._orphan_after_s):
            if request.decided_at is not None and request.age_of_decision_s() > ttl_s:
                why = "the bot stopped before executing and the approval is now stale; ask again"
                refused = await store.refuse(request.id, why, {"preview": request.preview})
                if refused is not None:
                    await show_outcome(self._deps, refused)
                continue
            log.info(
                "resuming %s (%s), approved before the bot stopped", request.id, request.action_id
            )
            await run_approved(self._deps, request)
