"""Remediations of the s3-throttling runbook: TH-A1 (wait out a burst), TH-A2 (raise the PUT
limit), TH-A3 (scale the agents out).

TH-A2 computes its new value with the runbook's own ``planned_raise`` (the guard rail uses
the same function), so what the approver sees is what the guard allowed. Upstream
Streamhouse ignores ``THROTTLE_PUT_RATE`` (facts §5.1): TH-A2 refuses there.
"""

from __future__ import annotations

from datetime import timedelta

from bot.approvals import ActionRequest
from bot.errors import BotError
from bot.executors.base import NO_COOLDOWN, ActionContext, Executor, Outcome, Preview
from bot.executors.circuit_breaker import THROTTLE_PUT_RATE, WatchChecks
from bot.executors.common import (
    UNSET,
    agent_env_moved,
    agent_pod_names,
    agent_replicas_moved,
    env_rollback,
    kubernetes_of,
    pods_text,
    scale_to_previewed,
    set_previewed_env,
)
from bot.models import Diagnosis
from bot.settings import Settings
from handlers.circuit_breaker import S3_PREFIX_PUT_LIMIT
from handlers.s3_throttling import PEAK_HEADROOM, LimitRaise, planned_raise

MIN_AGENTS = 3  # "replicas 3 or +1"
UPSTREAM_IGNORES_RATE = (
    "Upstream Streamhouse does not read THROTTLE_PUT_RATE (it is set only by the Helm chart), "
    "so raising it would change nothing but restart every agent. Scale the agents out "
    "(TH-A3) or shard the S3 prefixes instead."
)


def rate_text(value: float) -> str:
    """A PUT rate as the env variable holds it: ``3500``, ``3150.5``."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def refusal(diagnosis: Diagnosis, action_id: str) -> str | None:
    """Why the runbook's guard rail blocks ``action_id`` on this diagnosis, or None."""
    option = next((a for a in diagnosis.actions if a.id == action_id), None)
    if option is None:
        return f"{action_id} is not offered by {diagnosis.runbook} now"
    return None if option.allowed else option.blocked_reason or "its guard rail blocks it"


def raise_plan(diagnosis: Diagnosis) -> LimitRaise:
    """TH-A2's new limit from TH-3, or a ``BotError`` with the guard rail's reason."""
    blocked = refusal(diagnosis, "TH-A2")
    demand = diagnosis.check("TH-3")
    if blocked is not None or demand is None:
        raise BotError(f"TH-A2 cannot run now: {blocked or 'TH-3 did not run'}.")
    return planned_raise(demand)


def ceiling_text(plan: LimitRaise) -> str:
    """Where the ceiling comes from."""
    reasons = [f"S3 per-prefix {S3_PREFIX_PUT_LIMIT}/s"]
    if plan.peak is not None:
        reasons.append(f"{PEAK_HEADROOM:g} x last week's peak {plan.peak:.0f}/s")
    return f"ceiling {plan.ceiling:.0f}/s: {', '.join(reasons)}"


class RaisePutLimit:
    """TH-A2: ``THROTTLE_PUT_RATE`` one step up on the agent workload's env; the new pod
    template rolls the pods, which is the runbook's restart (no second one)."""

    def cooldown(self, settings: Settings) -> timedelta:
        return timedelta(seconds=settings.bot_restart_cooldown_s)  # it restarts every agent

    async def preview(self, ctx: ActionContext) -> Preview:
        if ctx.profile.name == "upstream":
            raise BotError(UPSTREAM_IGNORES_RATE)
        plan = raise_plan(ctx.diagnosis)
        writer = ctx.writers.require_kubernetes()
        kubernetes = kubernetes_of(ctx)
        workload = await kubernetes.agent_workload()
        container = await writer.agent_container()
        pods = await agent_pod_names(kubernetes)
        new = rate_text(plan.target)
        before = {THROTTLE_PUT_RATE: workload.env.get(THROTTLE_PUT_RATE)}
        source = "the workload's env" if before[THROTTLE_PUT_RATE] else "config map or default"
        return Preview(
            key=f"{workload.kind}/{workload.name}",
            target=f"{workload.kind} {writer.namespace}/{workload.name}, container {container}",
            current=f"{THROTTLE_PUT_RATE}={rate_text(plan.limit)} PUT/s per agent ({source})",
            new=f"{THROTTLE_PUT_RATE}={new} ({ceiling_text(plan)})",
            call=f"{writer.env_call(container, [THROTTLE_PUT_RATE])}; the new pod template "
            "rolls the pods, so no separate rollout restart",
            rollback=env_rollback(workload, before),
            blast_radius=f"every agent restarts one by one with the new limit, "
            f"{pods_text(pods)}; S3 sees up to {new} PUT/s per agent afterwards",
            params={"container": container, "env": {THROTTLE_PUT_RATE: new}, "before": before},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        return await agent_env_moved(ctx, request)

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        env, before = await set_previewed_env(ctx, request)
        return Outcome(
            f"{THROTTLE_PUT_RATE} {before.get(THROTTLE_PUT_RATE) or UNSET} -> "
            f"{env[THROTTLE_PUT_RATE]} on {request.target}; the agent pods roll with it",
            {"env": dict(env), "before": before},
        )


def scaled_replicas(replicas: int) -> int:
    """The matrix's "replicas 3 or +1": up to three agents, else one more."""
    return MIN_AGENTS if replicas < MIN_AGENTS else replicas + 1


class ScaleOutAgents:
    """TH-A3: ``kubectl scale`` of the agent workload to 3 replicas, or one more."""

    def cooldown(self, settings: Settings) -> timedelta:
        return NO_COOLDOWN  # the matrix sets none; each step is previewed with its own count

    async def preview(self, ctx: ActionContext) -> Preview:
        writer = ctx.writers.require_kubernetes()
        kubernetes = kubernetes_of(ctx)
        workload = await kubernetes.agent_workload()
        pods = await agent_pod_names(kubernetes)
        new = scaled_replicas(workload.replicas)
        added = new - workload.replicas
        kind = workload.kind.lower()
        return Preview(
            key=f"{workload.kind}/{workload.name}",
            target=f"{workload.kind} {writer.namespace}/{workload.name}",
            current=f"{workload.replicas} replicas ({workload.ready_replicas} ready)",
            new=f"{new} replicas",
            call=writer.scale_call(),
            rollback=f"kubectl scale {kind}/{workload.name} --replicas={workload.replicas} "
            "(the removed agents' partitions move back to the others)",
            blast_radius=f"{added} new agent pod(s); the {pods_text(pods)} keep running; "
            "partition leases may move to the new agents, each move pauses that partition's "
            "writes for a moment",
            params={"replicas_before": workload.replicas, "replicas": new},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        return await agent_replicas_moved(ctx, request)

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        return await scale_to_previewed(ctx, request)


EXECUTORS: dict[str, Executor] = {
    "TH-A1": WatchChecks(
        ("TH-2",),
        600.0,
        "the share of S3 PUTs the agents' rate limiter allows",
        "the limiter allows at least 95% of PUTs again",
    ),
    "TH-A2": RaisePutLimit(),
    "TH-A3": ScaleOutAgents(),
}
