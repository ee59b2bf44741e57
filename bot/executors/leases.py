"""Remediations of the lease-conflicts runbook: LC-A1..LC-A3.

- LC-A1 expires one lease held by a dead agent, guarded by the holder and epoch the
  approver saw: a lease that moved since is left alone and the execution says so.
- LC-A2 deletes the conflicting agent's pod (its workload recreates it); one agent pod
  per ``BOT_RESTART_COOLDOWN_S`` per workload.
- LC-A3 has two phases on one button: with N > 1 replicas it records N on the agent
  workload (annotation ``SCALED_DOWN_FROM``) and scales to one; with one replica and N
  recorded it scales back to N and removes the record, once ownership is stable (the
  runbook's guard rail refuses the scale-back until then).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.approvals import ActionRequest
from bot.errors import BotError
from bot.executors.base import (
    NO_COOLDOWN,
    ActionContext,
    Executor,
    Outcome,
    Preview,
    StateChanged,
    params_of,
)
from bot.models import CheckResult
from bot.settings import Settings
from bot.sources.base import Kubernetes, LeaseRow, MetadataDb, WorkloadInfo
from bot.sources.metadata_actions import ResetResult
from handlers.lease_conflicts import SCALED_DOWN_FROM


def _check(ctx: ActionContext, check_id: str) -> CheckResult:
    """A check of the fresh diagnosis, or a ``BotError`` when it did not run."""
    found = ctx.diagnosis.check(check_id)
    if found is None:
        raise BotError(f"{check_id} did not run, so the bot cannot tell what to act on.")
    return found


def _kubernetes(ctx: ActionContext) -> Kubernetes:
    kubernetes = ctx.sources.kubernetes
    assert kubernetes is not None  # noqa: S101 -- a writer implies a configured cluster
    return kubernetes


def _metadata(ctx: ActionContext) -> MetadataDb:
    metadata = ctx.sources.metadata
    assert metadata is not None  # noqa: S101 -- a writer implies a configured database
    return metadata


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S UTC")


# -- LC-A1: force lease reset ---------------------------------------------------------------
def pick_reset_candidate(
    candidates: Sequence[Mapping[str, Any]], topic: str | None, partition: int | None
) -> Mapping[str, Any]:
    """The one dead-holder lease to reset: the target's, or LC-1's only candidate."""
    wanted = [
        lease
        for lease in candidates
        if topic in (None, lease["topic"]) and partition in (None, lease["partition"])
    ]
    if len(wanted) == 1:
        return wanted[0]
    if not wanted and topic is not None and partition is not None:
        raise BotError(
            f"LC-1 does not show {topic}/{partition} held by a dead agent, so there is no lease "
            "of it to reset."
        )
    if not wanted:
        raise BotError("LC-1 shows no lease held by a dead agent, so there is nothing to reset.")
    names = ", ".join(f"{lease['topic']}/{lease['partition']}" for lease in wanted)
    first = wanted[0]
    raise BotError(
        f"LC-1 shows {len(wanted)} leases held by dead agents ({names}); the reset expires one. "
        f"Diagnose again with `topic={first['topic']} partition={first['partition']}` to pick it."
    )


async def _lease_now(ctx: ActionContext, topic: str, partition: int) -> LeaseRow | None:
    readout = await _metadata(ctx).leases(topic, partition)
    return next(iter(readout.rows), None)


def _moved(params: Mapping[str, Any], holder: str | None, epoch: int | None) -> str | None:
    """How the lease differs from the approved holder and epoch, or None."""
    where = f"{params['topic']}/{params['partition']}"
    if holder is None:
        return f"the lease of {where} no longer exists (or is no longer visible to the bot)"
    if (holder, epoch) == (params["holder"], params["epoch"]):
        return None
    return (
        f"the lease of {where} is now held by {holder} at epoch {epoch}, "
        f"was {params['holder']} at epoch {params['epoch']}"
    )


class ForceLeaseReset:
    """LC-A1: expire one (topic, partition)'s lease held by a dead agent."""

    def cooldown(self, settings: Settings) -> timedelta:
        return NO_COOLDOWN  # the holder/epoch guard already makes a second reset a no-op

    async def preview(self, ctx: ActionContext) -> Preview:
        writer = ctx.writers.require_metadata()
        holders = _check(ctx, "LC-1")
        candidates = list(holders.evidence.get("reset_candidates") or [])
        chosen = pick_reset_candidate(candidates, ctx.target.topic, ctx.target.partition)
        topic, partition = str(chosen["topic"]), int(chosen["partition"])
        holder, epoch = str(chosen["holder"]), int(chosen["epoch"])
        lease = await _lease_now(ctx, topic, partition)
        if lease is None or (lease.holder, lease.epoch) != (holder, epoch):
            raise BotError(
                f"The lease of {topic}/{partition} moved while the bot was reading it; "
                "diagnose again."
            )
        return Preview(
            key=f"lease {topic}/{partition}",
            target=f"lease {topic}/{partition} in partition_leases",
            current=f"held by {holder} (dead) at epoch {epoch}, "
            f"expires {_when(lease.expires_at_ms)}",
            new=f"expired now; a live agent takes it at its next round (epoch {epoch + 1} or more)",
            call=writer.expire_lease_call(topic, partition, holder, epoch),
            rollback="none: a dead agent cannot hold the lease again; a live agent acquires it "
            "within seconds",
            blast_radius=f"1 partition ({topic}/{partition}): its writes fail with 'No lease "
            "exists' until a live agent takes it",
            params={"topic": topic, "partition": partition, "holder": holder, "epoch": epoch},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        params = params_of(request)
        lease = await _lease_now(ctx, str(params["topic"]), int(params["partition"]))
        return _moved(params, lease.holder if lease else None, lease.epoch if lease else None)

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        params = params_of(request)
        topic, partition = str(params["topic"]), int(params["partition"])
        result = await ctx.writers.require_metadata().expire_lease(
            topic, partition, str(params["holder"]), int(params["epoch"])
        )
        if not result.expired:
            current = result.current
            moved = _moved(
                params, current.holder if current else None, current.epoch if current else None
            )
            raise StateChanged(f"state changed, nothing updated: {moved or 'the lease moved'}")
        return Outcome(
            f"expired the lease of {topic}/{partition} held by {params['holder']} at epoch "
            f"{params['epoch']}; a live agent takes it at its next round",
            _reset_details(result),
        )


def _reset_details(result: ResetResult) -> dict[str, Any]:
    current = result.current
    return {
        "expires_at_ms": current.expires_at_ms if current else None,
        "db_now_ms": result.db_now_ms,
    }


# -- LC-A2: restart the conflicting agent ---------------------------------------------------
def pick_conflicting_pod(pods: Sequence[Mapping[str, Any]], agent: str | None) -> Mapping[str, Any]:
    """The pod to delete: the target agent's, else the one logging the most conflicts."""
    if agent:
        wanted = [pod for pod in pods if agent in (pod["pod"], pod["agent_id"])]
        if not wanted:
            raise BotError(f"No agent pod runs as {agent}; diagnose again with `agent=<pod>`.")
        return wanted[0]
    noisy = [pod for pod in pods if pod.get("conflicts")]
    if not noisy:
        raise BotError("No agent logs lease conflicts, so there is no conflicting agent.")
    return max(noisy, key=lambda pod: (pod["conflicts"], pod["pod"]))


class RestartConflictingAgent:
    """LC-A2: delete the conflicting agent's pod; its Deployment/StatefulSet recreates it."""

    def cooldown(self, settings: Settings) -> timedelta:
        return timedelta(seconds=settings.bot_restart_cooldown_s)

    async def preview(self, ctx: ActionContext) -> Preview:
        writer = ctx.writers.require_kubernetes()
        logs = _check(ctx, "LC-2")
        chosen = pick_conflicting_pod(list(logs.evidence.get("pods") or []), ctx.target.agent)
        workload = ctx.profile.agent_workload
        if not chosen.get("in_workload"):
            raise BotError(f"Pod {chosen['pod']} does not belong to {workload}; the bot only "
                           "restarts agent pods.")  # fmt: skip
        kind = ctx.profile.agent_workload_kind
        pod, agent_id = str(chosen["pod"]), str(chosen["agent_id"])
        replaced = (
            "a new pod with a new name and agent id"
            if kind == "Deployment"
            else (f"{pod} again, with a fresh process")
        )
        return Preview(
            key=f"{kind}/{workload}",
            target=f"pod {writer.namespace}/{pod} (agent {agent_id})",
            current=f"running, {chosen.get('conflicts') or 0} lease conflict lines in its log",
            new=f"deleted; {kind} {workload} starts {replaced}",
            call=writer.delete_pod_call(pod),
            rollback="none needed: the workload recreates the pod from an unchanged spec",
            blast_radius=f"1 agent pod ({pod}); its partitions move to the other agents until "
            "it is back",
            params={"pod": pod, "agent_id": agent_id},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        pod = str(params_of(request)["pod"])
        names = sorted(p.name for p in await _kubernetes(ctx).agent_pods())
        if pod in names:
            return None
        return f"pod {pod} was already replaced (agent pods now: {', '.join(names) or 'none'})"

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        pod = str(params_of(request)["pod"])
        deleted = await ctx.writers.require_kubernetes().delete_pod(pod)
        if not deleted:  # a retry: the first attempt already deleted it
            return Outcome(f"pod {pod} was already gone; nothing deleted", {"deleted": False})
        return Outcome(f"deleted pod {pod}; its workload recreates it", {"deleted": True})


# -- LC-A3: scale the agents to one, then back to N -----------------------------------------
def restore_target(workload: WorkloadInfo) -> int | None:
    """The N recorded by an earlier scale-down, when the workload still runs one replica."""
    recorded = workload.annotations.get(SCALED_DOWN_FROM, "")
    if workload.replicas == 1 and recorded.isdigit() and int(recorded) > 1:
        return int(recorded)
    return None


class ScaleAgentsToOne:
    """LC-A3: scale the agents to one (recording N), later back to N."""

    def cooldown(self, settings: Settings) -> timedelta:
        return NO_COOLDOWN  # the two phases follow each other by design

    async def preview(self, ctx: ActionContext) -> Preview:
        writer = ctx.writers.require_kubernetes()
        workload = await _kubernetes(ctx).agent_workload()
        pods = sorted(p.name for p in await _kubernetes(ctx).agent_pods())
        key = f"{workload.kind}/{workload.name} replicas"
        target = f"{workload.kind} {writer.namespace}/{workload.name}"
        scale_back_to = restore_target(workload)
        if scale_back_to is not None:
            return Preview(
                key=key,
                target=target,
                current=f"1 replica ({SCALED_DOWN_FROM}: {scale_back_to})",
                new=f"{scale_back_to} replicas; the {SCALED_DOWN_FROM} annotation removed",
                call=f"{writer.scale_call()}; {writer.annotate_call([SCALED_DOWN_FROM])}",
                rollback="click LC-A3 again to scale down to one",
                blast_radius=f"{scale_back_to - 1} new agent pods; partitions rebalance over "
                f"{scale_back_to} agents",
                params={"phase": "restore", "replicas": scale_back_to},
            )
        if workload.replicas <= 1:
            raise BotError(f"{target} already runs {workload.replicas} replica(s) and no earlier "
                           "scale-down is recorded, so there is nothing to scale.")  # fmt: skip
        # A StatefulSet stops its highest ordinals; a Deployment's ReplicaSet picks.
        removed = pods[1:] if workload.kind == "StatefulSet" else ["chosen by the ReplicaSet"]
        return Preview(
            key=key,
            target=target,
            current=f"{workload.replicas} replicas",
            new=f"1 replica; {SCALED_DOWN_FROM}: {workload.replicas} recorded so LC-A3 can "
            "scale back once ownership is stable",
            call=f"{writer.annotate_call([SCALED_DOWN_FROM])}; {writer.scale_call()}",
            rollback=f"click LC-A3 again (scale back to {workload.replicas}), or "
            f"kubectl scale --replicas={workload.replicas}",
            blast_radius=f"{workload.replicas - 1} agent pods stopped ({', '.join(removed)}); "
            "one agent serves every partition, taking over leases as they expire",
            params={"phase": "down", "replicas": 1, "from": workload.replicas},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        params = params_of(request)
        workload = await _kubernetes(ctx).agent_workload()
        if params.get("phase") == "restore":
            if restore_target(workload) == params["replicas"]:
                return None
            return (
                f"the agents run {workload.replicas} replicas and "
                f"{SCALED_DOWN_FROM} is {workload.annotations.get(SCALED_DOWN_FROM) or 'unset'}"
            )
        if workload.replicas == params["from"]:
            return None
        return f"the agents run {workload.replicas} replicas, was {params['from']}"

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        params = params_of(request)
        writer = ctx.writers.require_kubernetes()
        replicas = int(params["replicas"])
        if params.get("phase") == "restore":
            await writer.scale_agents(replicas)
            await writer.annotate_agent_workload({SCALED_DOWN_FROM: None})
            return Outcome(f"scaled the agents back to {replicas}", {"replicas": replicas})
        before = int(params["from"])
        # Record N first: a failure between the two writes leaves N known, never lost.
        await writer.annotate_agent_workload({SCALED_DOWN_FROM: str(before)})
        await writer.scale_agents(replicas)
        return Outcome(
            f"scaled the agents from {before} to 1; click LC-A3 again to scale back to "
            f"{before} once ownership is stable",
            {"replicas": replicas, "from": before},
        )


EXECUTORS: dict[str, Executor] = {
    "LC-A1": ForceLeaseReset(),
    "LC-A2": RestartConflictingAgent(),
    "LC-A3": ScaleAgentsToOne(),
}
