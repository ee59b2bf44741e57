"""Pieces several executors share: the Kubernetes reader and writer of an action, and the
agent workload's env (read it, say what moved, describe and apply a rolling env change)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.approvals import ActionRequest
from bot.errors import BotError
from bot.executors.base import ActionContext, Outcome, params_of
from bot.sources.base import Kubernetes, WorkloadInfo
from bot.sources.kubernetes_actions import KubernetesActions

UNSET = "unset"


# -- the cluster -------------------------------------------------------------------------------
def cluster(ctx: ActionContext) -> tuple[KubernetesActions, Kubernetes]:
    """The Kubernetes writer and reader (a configured writer implies a configured cluster)."""
    writer = ctx.writers.require_kubernetes()
    kubernetes = ctx.sources.kubernetes
    assert kubernetes is not None  # noqa: S101 -- a writer implies a configured cluster
    return writer, kubernetes


def kubernetes_of(ctx: ActionContext) -> Kubernetes:
    """The Kubernetes reader (a configured writer implies a configured cluster)."""
    ctx.writers.require_kubernetes()
    kubernetes = ctx.sources.kubernetes
    if kubernetes is None:
        raise BotError("The bot has no Kubernetes API configured, so it cannot run this.")
    return kubernetes


def pods_text(pods: Sequence[str]) -> str:
    """``3 pods: a, b, c``."""
    return f"{len(pods)} pods: {', '.join(pods) or 'none'}"


async def agent_pod_names(kubernetes: Kubernetes) -> list[str]:
    """The agent pods running now, sorted."""
    return sorted(pod.name for pod in await kubernetes.agent_pods())


# -- the agent workload's env ------------------------------------------------------------------
def env_moved(before: Mapping[str, str | None], env: Mapping[str, str]) -> str | None:
    """What moved in ``env`` since ``before`` was read ("THROTTLE_PUT_RATE is now 2800, was
    3000"), or None."""
    for name, value in sorted(before.items()):
        if env.get(name) != value:
            return f"{name} is now {env.get(name) or UNSET}, was {value or UNSET}"
    return None


def env_text(env: Mapping[str, str | None]) -> str:
    """``A=1, B=unset``."""
    return ", ".join(f"{name}={value or UNSET}" for name, value in sorted(env.items()))


def env_rollback(workload: WorkloadInfo, before: Mapping[str, str | None]) -> str:
    """How to put the env back (and that it rolls the pods again)."""
    kind = workload.kind.lower()
    restore = [f"{name}={value}" for name, value in sorted(before.items()) if value is not None]
    remove = [f"{name}-" for name, value in sorted(before.items()) if value is None]
    command = " ".join(restore + remove)
    return f"kubectl set env {kind}/{workload.name} {command} (rolls the agent pods again)"


async def agent_env_moved(ctx: ActionContext, request: ActionRequest) -> str | None:
    """What moved in the agent workload's env since the preview read ``params["before"]``."""
    before = params_of(request).get("before") or {}
    workload = await kubernetes_of(ctx).agent_workload()
    return env_moved(before, workload.env)


async def set_previewed_env(
    ctx: ActionContext, request: ActionRequest
) -> tuple[dict[str, str], dict[str, Any]]:
    """Set the env the approver saw on the agent container: (env set, env before). Absolute
    values: a retry finds them set, and Kubernetes starts no second rollout."""
    params = params_of(request)
    env = {str(name): str(value) for name, value in (params.get("env") or {}).items()}
    await ctx.writers.require_kubernetes().set_agent_env(str(params["container"]), env)
    return env, dict(params.get("before") or {})


async def agent_replicas_moved(ctx: ActionContext, request: ActionRequest) -> str | None:
    """What moved in the agent workload's replica count since ``params["replicas_before"]``."""
    before = params_of(request).get("replicas_before")
    now = (await kubernetes_of(ctx).agent_workload()).replicas
    return None if now == before else f"the agent workload has {now} replicas now, was {before}"


async def scale_to_previewed(ctx: ActionContext, request: ActionRequest) -> Outcome:
    """Scale the agents to the count the approver saw. An absolute count: a retry scales to
    the same number and adds nothing twice."""
    params = params_of(request)
    replicas = int(params["replicas"])
    await ctx.writers.require_kubernetes().scale_agents(replicas)
    before = params.get("replicas_before")
    return Outcome(
        f"scaled {request.target} from {before} to {replicas} replicas",
        {"replicas_before": before, "replicas": replicas},
    )
