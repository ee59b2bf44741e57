"""Running an approved request: the last checks before a write, and the write.

``execute_request`` re-runs the request's runbook on fresh (uncached) data for the
incident's target and refuses the request, with the reason (which is audited), when
executions are frozen, in dry run, within the target's cooldown, when the runbook's guard
rail no longer allows the action, or when what the approver saw has moved. Only then does
one atomic ``approved → executing`` move let exactly one caller perform the write.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bot.approvals import ActionRequest, ApprovalStore
from bot.deps import Deps
from bot.engine import run_runbook
from bot.errors import BotError
from bot.executors import executor_for
from bot.executors.base import ActionContext, Preview
from bot.incidents import IncidentStore
from bot.profiles import profile_named
from bot.sources.base import SourceError
from handlers.base import CheckContext, Target
from handlers.registry import RUNBOOKS

log = logging.getLogger("bot.executors")


async def incident_target(deps: Deps, incident_id: str) -> Target:
    """What the incident's diagnosis was about (an empty target when unknown)."""
    incident = await IncidentStore(deps.db).get(incident_id)
    return Target() if incident is None else incident.diagnosis_target()


async def action_context(deps: Deps, runbook_id: str, target: Target) -> ActionContext:
    """The runbook run now on uncached sources, with the writers: what executors read."""
    runbook = RUNBOOKS[runbook_id]
    profile = profile_named(deps.settings.streamhouse_profile)
    checks = CheckContext(deps.sources.sources, profile, target, now=datetime.now(UTC))
    diagnosis = await run_runbook(runbook, checks, runbook_base_url=deps.settings.runbook_base_url)
    return ActionContext(
        deps.sources.sources, deps.writers, deps.settings, profile, target, diagnosis
    )


async def preview_action(deps: Deps, incident_id: str, runbook_id: str, action_id: str) -> Preview:
    """What ``action_id`` would do now for the incident's target."""
    executor = executor_for(action_id)
    ctx = await action_context(deps, runbook_id, await incident_target(deps, incident_id))
    return await executor.preview(ctx)


def guard_refusal(ctx: ActionContext, action_id: str) -> str | None:
    """Why the runbook's guard rail blocks ``action_id`` on ``ctx``'s fresh diagnosis."""
    option = next((a for a in ctx.diagnosis.actions if a.id == action_id), None)
    if option is None:
        return f"{action_id} is no longer offered by {ctx.diagnosis.runbook}"
    if not option.allowed:
        return option.blocked_reason or "the runbook's guard rail no longer allows it"
    return None


async def why_not_now(
    deps: Deps, store: ApprovalStore, request: ActionRequest, ctx: ActionContext
) -> str | None:
    """Why an approved request must not run now, or None: freeze, dry run, cooldown,
    guard rail, or a changed state."""
    if await store.frozen():
        return "executions are frozen (`/streamhouse freeze off` lifts it)"
    if deps.settings.bot_dry_run:
        return "dry run (BOT_DRY_RUN=true): preview only, nothing executed"
    executor = executor_for(request.action_id)
    cooldown = executor.cooldown(deps.settings)
    last = await store.last_execution(request)
    if cooldown and last is not None and last + cooldown > datetime.now(UTC):
        ends = last + cooldown
        return (
            f"{request.target} was already acted on at {last:%H:%M:%S} UTC; the cooldown ends "
            f"at {ends:%H:%M:%S} UTC"
        )
    blocked = guard_refusal(ctx, request.action_id)
    if blocked is not None:
        return f"the state changed since the request: {blocked}"
    moved = await executor.changed(ctx, request)
    if moved is not None:
        return f"the state changed since the request: {moved}"
    return None


async def execute_request(deps: Deps, request: ActionRequest) -> ActionRequest:
    """Run an approved request once: refused (and why), succeeded or failed."""
    store = ApprovalStore(deps.db)
    try:
        target = await incident_target(deps, request.incident_id)
        ctx = await action_context(deps, request.runbook, target)
        why = await why_not_now(deps, store, request, ctx)
    except (SourceError, BotError) as error:
        why = f"the state could not be read again before executing: {error}"
    if why is not None:
        refused = await store.refuse(request.id, why, {"preview": request.preview})
        return refused or await store.get(request.id)
    started = await store.start(request.id)
    if started is None:  # another replica or click is already executing it
        return await store.get(request.id)
    executor = executor_for(started.action_id)
    try:
        outcome = await executor.execute(ctx, started)
    except (SourceError, BotError) as error:
        log.warning("%s failed on %s: %s", started.action_id, started.target, error)
        finished = await store.finish(started.id, False, {"text": str(error)})
    else:
        finished = await store.finish(started.id, True, outcome.to_json())
    return finished or await store.get(started.id)
