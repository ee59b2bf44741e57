"""Remediations of the resource-pressure runbook: RP-A1 (memory limit), RP-A2 (scale out),
RP-A3 (grow the WAL claims). RP-A4 (delete uploaded WAL files) is not automated here.

- RP-A1 sets the agent container's memory limit to ``raised_memory_limit`` of the current
  one (twice it, at most ``MEMORY_LIMIT_CEILING_BYTES``, in whole MiB): the guard rail's own
  arithmetic, so the approver sees the value the guard allowed. The patch rolls every agent
  pod, so it shares the agent restart's cooldown.
- RP-A2 adds one agent (never above ``MAX_AGENT_REPLICAS``); no pod is restarted.
- RP-A3 doubles each WAL claim whose volume is above ``DISK_CRITICAL_RATIO`` used, only
  where its StorageClass allows expansion; a claim never shrinks. The runbook profile's
  agents share one claim, upstream's StatefulSet has one per pod.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from bot.approvals import ActionRequest
from bot.errors import BotError
from bot.executors.base import (
    NO_COOLDOWN,
    ActionContext,
    Executor,
    Outcome,
    Preview,
    params_of,
)
from bot.executors.common import agent_replicas_moved, cluster, scale_to_previewed
from bot.settings import Settings
from bot.sources.base import Kubernetes, PodInfo, PvcInfo, WorkloadInfo
from handlers.resource_model import (
    DISK_CRITICAL_RATIO,
    MEMORY_LIMIT_CEILING_BYTES,
    proposed_claim_size,
)
from handlers.resource_pressure import MAX_AGENT_REPLICAS, raised_memory_limit
from handlers.sizes import GIB, MIB, size_text
from handlers.wal_files import pod_volume


def quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity: ``8Gi``, ``1536Mi``, else plain bytes."""
    if size % GIB == 0:
        return f"{size // GIB}Gi"
    if size % MIB == 0:
        return f"{size // MIB}Mi"
    return str(size)


def _names(pods: Sequence[PodInfo]) -> str:
    return ", ".join(sorted(pod.name for pod in pods)) or "none"


# -- RP-A1 -------------------------------------------------------------------------------------
def memory_limit_change(workload: WorkloadInfo) -> tuple[int, int]:
    """(current, new) memory limit in bytes, or ``BotError`` when it cannot be raised."""
    current = workload.memory_limit_bytes
    if current is None:
        raise BotError(
            f"{workload.kind} {workload.name} has no memory limit: there is nothing to double "
            "(set one by hand first)."
        )
    new = raised_memory_limit(current)
    if new <= current:
        ceiling = size_text(MEMORY_LIMIT_CEILING_BYTES)
        raise BotError(
            f"The memory limit {size_text(current)} is already at the ceiling ({ceiling})."
        )
    return current, new


class RaiseMemoryLimit:
    """RP-A1: the agent container's memory limit, doubled up to the ceiling."""

    def cooldown(self, settings: Settings) -> timedelta:
        return timedelta(seconds=settings.bot_restart_cooldown_s)  # it rolls every agent pod

    async def preview(self, ctx: ActionContext) -> Preview:
        writer, kubernetes = cluster(ctx)
        workload, pods = await asyncio.gather(kubernetes.agent_workload(), kubernetes.agent_pods())
        current, new = memory_limit_change(workload)
        container = await writer.agent_container()
        ceiling = size_text(MEMORY_LIMIT_CEILING_BYTES)
        return Preview(
            key=f"{workload.kind}/{workload.name}",
            target=f"{workload.kind} {writer.namespace}/{workload.name}, container {container}",
            current=f"memory limit {quantity(current)}",
            new=f"memory limit {quantity(new)} (at most 2x and at most {ceiling})",
            call=writer.memory_limit_call(container),
            rollback=f"set the limit back to {quantity(current)} with the same call (another "
            "rollout)",
            blast_radius=f"a rollout: {len(pods)} agent pods restarted one by one "
            f"({_names(pods)}); each node must fit the higher limit",
            params={
                "container": container,
                "from_bytes": current,
                "limit": quantity(new),
                "limit_bytes": new,
            },
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        was = int(params_of(request)["from_bytes"])
        now = (await cluster(ctx)[1].agent_workload()).memory_limit_bytes
        if now == was:
            return None
        shown = quantity(now) if now is not None else "unset"
        return f"the agents' memory limit is now {shown}, was {quantity(was)}"

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        params = params_of(request)
        limit = str(params["limit"])
        await ctx.writers.require_kubernetes().set_agent_memory_limit(
            str(params["container"]), limit
        )
        was = quantity(int(params["from_bytes"]))
        return Outcome(
            f"memory limit of {request.target}: {was} → {limit}; the agent pods roll",
            {"from": was, "limit": limit},
        )


# -- RP-A2 -------------------------------------------------------------------------------------
class ScaleAgentsOut:
    """RP-A2: one more agent replica, never above ``MAX_AGENT_REPLICAS``."""

    def cooldown(self, settings: Settings) -> timedelta:
        return NO_COOLDOWN  # an absolute count; ``changed`` refuses a second +1 on the same count

    async def preview(self, ctx: ActionContext) -> Preview:
        writer, kubernetes = cluster(ctx)
        workload = await kubernetes.agent_workload()
        replicas = workload.replicas
        if replicas + 1 > MAX_AGENT_REPLICAS:
            raise BotError(
                f"Already {replicas} agents; the configured maximum is {MAX_AGENT_REPLICAS}."
            )
        return Preview(
            key=f"{workload.kind}/{workload.name}",
            target=f"{workload.kind} {writer.namespace}/{workload.name}",
            current=f"{replicas} replicas",
            new=f"{replicas + 1} replicas (at most {MAX_AGENT_REPLICAS})",
            call=writer.scale_call(),
            rollback=f"scale back to {replicas} with the same call; the removed agent's leases "
            "move to the others once they expire",
            blast_radius=f"one new agent pod; the {replicas} running agents are not restarted",
            params={"replicas_before": replicas, "replicas": replicas + 1},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        return await agent_replicas_moved(ctx, request)

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        return await scale_to_previewed(ctx, request)


# -- RP-A3 -------------------------------------------------------------------------------------
def claim_size(claim: PvcInfo) -> int | None:
    """What the claim holds now: its capacity, else what it requests."""
    return claim.capacity_bytes or claim.requested_bytes


def grown_size(current: int) -> int:
    """RP-A3's new size: twice the current one, rounded up to whole MiB."""
    doubled = proposed_claim_size(current)
    return -(-doubled // MIB) * MIB


async def full_claims(kubernetes: Kubernetes) -> list[PvcInfo]:
    """The agents' claims whose volume (kubelet stats) is above ``DISK_CRITICAL_RATIO`` used."""
    pods = await kubernetes.agent_pods()
    volumes = await asyncio.gather(*(pod_volume(kubernetes, pod) for pod in pods))
    full = {
        claim
        for pod, used in zip(pods, volumes, strict=True)
        if not isinstance(used, str) and used[1] and used[0] / used[1] > DISK_CRITICAL_RATIO
        for claim in pod.volume_claims
    }
    return [pvc for pvc in await kubernetes.pvcs() if pvc.name in full]


async def refuse_unexpandable(kubernetes: Kubernetes, claims: Sequence[PvcInfo]) -> None:
    """``BotError`` unless every claim's StorageClass allows volume expansion."""
    classes = sorted({claim.storage_class or "" for claim in claims})
    for name in classes:
        if not name or not await kubernetes.storage_class_expandable(name):
            owners = ", ".join(c.name for c in claims if (c.storage_class or "") == name)
            shown = f"StorageClass {name}" if name else "no StorageClass"
            raise BotError(
                f"{owners}: {shown} does not allow volume expansion, so the claim cannot grow."
            )


def planned_growth(claims: Sequence[PvcInfo]) -> list[dict[str, Any]]:
    """Each claim with its size now and the size to request (``BotError`` if unknown)."""
    plan = []
    for claim in claims:
        size = claim_size(claim)
        if size is None:
            raise BotError(f"The size of claim {claim.name} is unknown, so it cannot be doubled.")
        new = grown_size(size)
        plan.append({"name": claim.name, "from_bytes": size, "size": quantity(new)})
    return plan


class GrowWalClaims:
    """RP-A3: double every full WAL claim (where its StorageClass allows expansion)."""

    def cooldown(self, settings: Settings) -> timedelta:
        return NO_COOLDOWN  # absolute sizes; ``changed`` refuses growing a claim twice

    async def preview(self, ctx: ActionContext) -> Preview:
        writer, kubernetes = cluster(ctx)
        claims = await full_claims(kubernetes)
        if not claims:
            raise BotError(
                f"No agent WAL volume is above {DISK_CRITICAL_RATIO:.0%} used: nothing to grow."
            )
        await refuse_unexpandable(kubernetes, claims)
        plan = planned_growth(claims)
        names = [entry["name"] for entry in plan]
        return Preview(
            key="PersistentVolumeClaim/" + ",".join(names),
            target=f"PersistentVolumeClaim {writer.namespace}/{', '.join(names)}",
            current=_sizes(plan, "from"),
            new=_sizes(plan, "size"),
            call="; ".join(writer.pvc_call(name) for name in names),
            rollback="none: a claim cannot shrink. The larger volume stays (and is billed) "
            "until the claim is replaced",
            blast_radius=f"{len(plan)} claims grow online; no pod restarts where the CSI driver "
            "resizes the file system in place (EBS does)",
            params={"claims": plan},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        sizes = {pvc.name: claim_size(pvc) for pvc in await cluster(ctx)[1].pvcs()}
        for entry in params_of(request)["claims"]:
            now, was = sizes.get(entry["name"]), int(entry["from_bytes"])
            if now != was:
                shown = quantity(now) if now is not None else "gone"
                return f"claim {entry['name']} is now {shown}, was {quantity(was)}"
        return None

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        writer = ctx.writers.require_kubernetes()
        plan: Sequence[Mapping[str, Any]] = params_of(request)["claims"]
        for entry in plan:
            await writer.grow_claim(str(entry["name"]), str(entry["size"]))
        return Outcome(f"grew {_sizes(plan, 'to')}", {"claims": [dict(e) for e in plan]})


def _sizes(plan: Sequence[Mapping[str, Any]], which: str) -> str:
    """``claim 50Gi`` (sizes before), ``claim 100Gi`` (after) or ``claim 50Gi → 100Gi``."""

    def one(entry: Mapping[str, Any]) -> str:
        was = quantity(int(entry["from_bytes"]))
        shown = {"from": was, "size": entry["size"]}.get(which, f"{was} → {entry['size']}")
        return f"{entry['name']} {shown}"

    return ", ".join(one(entry) for entry in plan)


EXECUTORS: dict[str, Executor] = {
    "RP-A1": RaiseMemoryLimit(),
    "RP-A2": ScaleAgentsOut(),
    "RP-A3": GrowWalClaims(),
}
