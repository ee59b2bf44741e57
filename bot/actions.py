"""Executing approved actions: previews, the last checks before a write, and the write.

An ``Executor`` knows one action of the matrix: its target, an exact preview (target,
current → new, the API call, rollback, blast radius) and how to perform it through a
source. ``execute_request`` runs an approved request, refusing it (with the reason, which
is audited) when executions are frozen, in dry run, within the target's cooldown, or when
the runbook's guard rail no longer allows the action on freshly read data.

Implemented: CB-A2 (rollout restart of the agent workload).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.approvals import ActionRequest, ApprovalStore
from bot.deps import Deps
from bot.engine import run_runbook
from bot.errors import BotError
from bot.profiles import Profile, profile_named
from bot.settings import Settings
from bot.sources.base import SourceError, Sources
from bot.sources.kubernetes_actions import RESTARTED_AT, KubernetesActions
from handlers.base import CheckContext
from handlers.registry import RUNBOOKS

log = logging.getLogger("bot.actions")


class Executor(Protocol):
    """One action of the matrix that the bot can perform."""

    def target(self, profile: Profile) -> str:
        """What the action changes, the key of its cooldown: ``Deployment/name``."""
        ...

    async def preview(self, sources: Sources, writer: KubernetesActions) -> dict[str, Any]:
        """What executing would do, read now: target, current, new, call, rollback, pods."""
        ...

    async def execute(self, request: ActionRequest, writer: KubernetesActions) -> dict[str, Any]:
        """Perform the action; the result says what was done (``text``)."""
        ...

    def cooldown(self, settings: Settings) -> timedelta:
        """How long after an execution the same target may not be acted on again."""
        ...


@dataclass(frozen=True)
class RestartAgents:
    """CB-A2: ``kubectl rollout restart`` of the agent Deployment (runbook) or StatefulSet."""

    def cooldown(self, settings: Settings) -> timedelta:
        return timedelta(seconds=settings.bot_restart_cooldown_s)

    def target(self, profile: Profile) -> str:
        return f"{profile.agent_workload_kind}/{profile.agent_workload}"

    async def preview(self, sources: Sources, writer: KubernetesActions) -> dict[str, Any]:
        kubernetes = sources.kubernetes
        if kubernetes is None:
            raise BotError("The bot has no Kubernetes API configured, so it cannot run actions.")
        workload = await kubernetes.agent_workload()
        pods = sorted(pod.name for pod in await kubernetes.agent_pods())
        current = workload.annotations.get(RESTARTED_AT) or "never restarted"
        return {
            "target": f"{workload.kind} {writer.namespace}/{workload.name}",
            "current": f"{RESTARTED_AT}: {current}",
            "new": f"{RESTARTED_AT}: the time of execution (UTC)",
            "call": writer.restart_call(),
            "rollback": "none needed: the pods are recreated from an unchanged spec; a "
            "rollout cannot be undone, only waited out",
            "blast_radius": f"{len(pods)} pods restarted one by one: {', '.join(pods) or 'none'}",
            "pods": pods,
        }

    async def execute(self, request: ActionRequest, writer: KubernetesActions) -> dict[str, Any]:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        await writer.restart_agent_workload(stamp)
        return {"text": f"restarted {request.target} ({RESTARTED_AT}={stamp})", "stamp": stamp}


EXECUTORS: Mapping[tuple[str, str], Executor] = {("circuit-breaker", "CB-A2"): RestartAgents()}


def executor_for(runbook: str, action_id: str) -> Executor:
    """The executor of ``action_id``, or a ``BotError`` saying it is not automated yet."""
    found = EXECUTORS.get((runbook, action_id))
    if found is None:
        raise BotError(
            f"{action_id} cannot be run from Slack yet; follow the runbook link for the manual "
            "steps."
        )
    return found


def writer_of(deps: Deps) -> KubernetesActions:
    """The Kubernetes writer, or a ``BotError`` when the bot has no cluster configured."""
    if deps.writer is None:
        raise BotError("The bot has no Kubernetes API configured, so it cannot run actions.")
    return deps.writer


async def fresh_guard(deps: Deps, request: ActionRequest) -> tuple[bool, str | None]:
    """The runbook's checks re-run on uncached sources, and the action's guard on them."""
    runbook = RUNBOOKS[request.runbook]
    profile = profile_named(deps.settings.streamhouse_profile)
    ctx = CheckContext(deps.sources.sources, profile, now=datetime.now(UTC))
    diagnosis = await run_runbook(runbook, ctx, runbook_base_url=deps.settings.runbook_base_url)
    option = next((a for a in diagnosis.actions if a.id == request.action_id), None)
    if option is None:
        return False, f"{request.action_id} is no longer offered by {runbook.id}"
    return option.allowed, option.blocked_reason


async def why_not_now(deps: Deps, store: ApprovalStore, request: ActionRequest) -> str | None:
    """Why an approved request must not run now, or None: freeze, dry run, cooldown, guard."""
    if await store.frozen():
        return "executions are frozen (`/streamhouse freeze off` lifts it)"
    if deps.settings.bot_dry_run:
        return "dry run (BOT_DRY_RUN=true): preview only, nothing executed"
    executor = executor_for(request.runbook, request.action_id)
    cooldown = executor.cooldown(deps.settings)
    last = await store.last_execution(request)
    if last is not None and last + cooldown > datetime.now(UTC):
        ends = last + cooldown
        return (
            f"{request.target} was already acted on at {last:%H:%M:%S} UTC; the cooldown ends "
            f"at {ends:%H:%M:%S} UTC"
        )
    allowed, reason = await fresh_guard(deps, request)
    if not allowed:
        return f"the state changed since the request: {reason}"
    return None


async def execute_request(deps: Deps, request: ActionRequest) -> ActionRequest:
    """Run an approved request once: refused (and why), succeeded or failed."""
    store = ApprovalStore(deps.db)
    why = await why_not_now(deps, store, request)
    if why is not None:
        refused = await store.refuse(request.id, why, {"preview": request.preview})
        return refused or await store.get(request.id)
    started = await store.start(request.id)
    if started is None:  # another replica or click is already executing it
        return await store.get(request.id)
    executor = executor_for(started.runbook, started.action_id)
    try:
        result = await executor.execute(started, writer_of(deps))
    except (SourceError, BotError) as error:
        log.warning("%s failed on %s: %s", started.action_id, started.target, error)
        finished = await store.finish(started.id, False, {"text": str(error)})
    else:
        finished = await store.finish(started.id, True, result)
    return finished or await store.get(started.id)
