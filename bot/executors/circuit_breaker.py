"""Circuit-breaker remediations: CB-A1 (watch recovery), CB-A2 (restart), CB-A3 (throttle).

Also the pieces the s3-throttling executors share: ``WatchChecks`` (a read-only watch of
some checks) and the agent-env helpers (read the workload's env, say what moved, describe
a rolling env change).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.approvals import ActionRequest
from bot.errors import BotError
from bot.executors.base import (
    NO_COOLDOWN,
    ActionContext,
    Executor,
    Outcome,
    Preview,
    Watch,
    params_of,
)
from bot.profiles import Profile
from bot.settings import Settings
from bot.sources.base import Kubernetes, WorkloadInfo
from bot.sources.kubernetes_actions import RESTARTED_AT
from handlers.base import CheckContext
from handlers.circuit_breaker import S3_PREFIX_PUT_LIMIT, TUNED_PUT_RATE
from handlers.s3_throttling import configured_put_limit

THROTTLE_ENABLED = "THROTTLE_ENABLED"
THROTTLE_PUT_RATE = "THROTTLE_PUT_RATE"
UNSET = "unset"


# -- shared: watches --------------------------------------------------------------------------
@dataclass(frozen=True)
class WatchChecks:
    """A watch action: changes nothing; the verification worker polls ``checks`` every
    ``BOT_WATCH_INTERVAL_S`` for ``window_s`` and reports the first time they are all ok."""

    checks: tuple[str, ...]
    window_s: float
    target: str  # what is watched, as the approver reads it
    until: str  # what "recovered" means, e.g. "every breaker is closed"

    def cooldown(self, settings: Settings) -> timedelta:
        return NO_COOLDOWN  # reading changes nothing

    async def preview(self, ctx: ActionContext) -> Preview:
        window = ctx.settings.bot_watch_window_s or self.window_s
        now = "; ".join(
            f"{result.id} {result.status.value}: {result.summary}"
            for check_id in self.checks
            if (result := ctx.diagnosis.check(check_id)) is not None
        )
        return Preview(
            key=f"watch {'+'.join(self.checks)}",
            target=self.target,
            current=now or "not read yet",
            new=f"nothing changes; {', '.join(self.checks)} read every "
            f"{ctx.settings.bot_watch_interval_s:g} s for {_duration(window)}, until {self.until}",
            call=f"none: read-only ({', '.join(self.checks)} as the diagnosis reads them)",
            rollback="none needed: nothing is changed",
            blast_radius="none: read-only",
            params={"checks": list(self.checks), "window_s": window},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        return None  # a watch applies to whatever the checks read now

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        window = ctx.settings.bot_watch_window_s or self.window_s
        text = (
            f"watching {', '.join(self.checks)} for {_duration(window)}: this thread hears "
            f"when {self.until}"
        )
        return Outcome(text, {"checks": list(self.checks)}, Watch(self.checks, self.window_s))


def _duration(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 60 else f"{seconds / 60:g} min"


# -- shared: the agent workload's env ---------------------------------------------------------
def kubernetes_of(ctx: ActionContext) -> Kubernetes:
    """The Kubernetes reader (a configured writer implies a configured cluster)."""
    ctx.writers.require_kubernetes()
    kubernetes = ctx.sources.kubernetes
    if kubernetes is None:
        raise BotError("The bot has no Kubernetes API configured, so it cannot run this.")
    return kubernetes


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


def pods_text(pods: Sequence[str]) -> str:
    """``3 pods: a, b, c``."""
    return f"{len(pods)} pods: {', '.join(pods) or 'none'}"


async def agent_pod_names(kubernetes: Kubernetes) -> list[str]:
    """The agent pods running now, sorted."""
    return sorted(pod.name for pod in await kubernetes.agent_pods())


# -- CB-A2 ------------------------------------------------------------------------------------


class RestartAgents:
    """CB-A2: ``kubectl rollout restart`` of the agent Deployment (runbook) or StatefulSet."""

    def cooldown(self, settings: Settings) -> timedelta:
        return timedelta(seconds=settings.bot_restart_cooldown_s)

    async def preview(self, ctx: ActionContext) -> Preview:
        writer = ctx.writers.require_kubernetes()
        kubernetes = ctx.sources.kubernetes
        assert kubernetes is not None  # noqa: S101 -- a writer implies a configured cluster
        workload = await kubernetes.agent_workload()
        pods = sorted(pod.name for pod in await kubernetes.agent_pods())
        current = workload.annotations.get(RESTARTED_AT) or "never restarted"
        return Preview(
            key=f"{workload.kind}/{workload.name}",
            target=f"{workload.kind} {writer.namespace}/{workload.name}",
            current=f"{RESTARTED_AT}: {current}",
            new=f"{RESTARTED_AT}: the time of execution (UTC)",
            call=writer.restart_call(),
            rollback="none needed: the pods are recreated from an unchanged spec; a rollout "
            "cannot be undone, only waited out",
            blast_radius=f"{len(pods)} pods restarted one by one: {', '.join(pods) or 'none'}",
            params={"pods": pods},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        return None  # a restart applies to whatever pods run now

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        # The stamp is the request's: a retried execution writes the same annotation again,
        # which changes nothing and starts no second rollout.
        stamp = (request.executed_at or datetime.now(UTC)).isoformat(timespec="seconds")
        await ctx.writers.require_kubernetes().restart_agent_workload(stamp)
        pods = params_of(request).get("pods") or []
        return Outcome(
            f"restarted {request.target} ({RESTARTED_AT}={stamp})",
            {"stamp": stamp, "pods_before": list(pods)},
        )


# -- CB-A3 ------------------------------------------------------------------------------------
def throttle_changes(profile: Profile, env: Mapping[str, str], limit: float) -> dict[str, str]:
    """The env CB-A3 sets: ``THROTTLE_ENABLED=true`` unless already so, and the PUT rate
    tuned down to ``TUNED_PUT_RATE`` when the configured ``limit`` is above it (never raised:
    S3 is already throttling). Upstream reads only ``THROTTLE_ENABLED``, which Rust parses
    as exactly ``true``/``false`` and defaults to true (facts §5.1): only ``false`` needs it."""
    if TUNED_PUT_RATE > S3_PREFIX_PUT_LIMIT:  # the matrix's ceiling, whatever the tuning says
        raise BotError(
            f"{TUNED_PUT_RATE}/s is above the S3 per-prefix limit {S3_PREFIX_PUT_LIMIT}/s"
        )
    if profile.name == "upstream":
        return {THROTTLE_ENABLED: "true"} if env.get(THROTTLE_ENABLED) == "false" else {}
    changes = {} if env.get(THROTTLE_ENABLED) == "true" else {THROTTLE_ENABLED: "true"}
    if limit > TUNED_PUT_RATE:
        changes[THROTTLE_PUT_RATE] = str(TUNED_PUT_RATE)
    return changes


def nothing_to_throttle(profile: Profile, env: Mapping[str, str], limit: float) -> str:
    """Why CB-A3 has nothing to change."""
    if profile.name == "upstream":
        enabled = env.get(THROTTLE_ENABLED) or "unset (default true)"
        return (
            f"Upstream Streamhouse already throttles S3 PUTs (THROTTLE_ENABLED={enabled}) and "
            "ignores THROTTLE_PUT_RATE, so CB-A3 has nothing to change. Sustained throttling "
            "on one prefix needs prefix sharding (see the guidance)."
        )
    return (
        f"The agents already throttle S3 PUTs at {limit:.0f}/s, at or under the tuned "
        f"{TUNED_PUT_RATE}/s, so CB-A3 has nothing to change. If S3 still answers 503 at this "
        "rate, one prefix is too hot: see the guidance on prefix sharding."
    )


class EnableThrottling:
    """CB-A3: ``THROTTLE_ENABLED=true`` and ``THROTTLE_PUT_RATE`` tuned down on the agent
    workload; the new pod template rolls the pods (no separate restart)."""

    def cooldown(self, settings: Settings) -> timedelta:
        return timedelta(seconds=settings.bot_restart_cooldown_s)  # it restarts every agent

    async def preview(self, ctx: ActionContext) -> Preview:
        writer = ctx.writers.require_kubernetes()
        kubernetes = kubernetes_of(ctx)
        workload = await kubernetes.agent_workload()
        checks = CheckContext(ctx.sources, ctx.profile, ctx.target)
        limit, limit_from = await configured_put_limit(checks)
        changes = throttle_changes(ctx.profile, workload.env, limit)
        if not changes:
            raise BotError(nothing_to_throttle(ctx.profile, workload.env, limit))
        container = await writer.agent_container()
        pods = await agent_pod_names(kubernetes)
        before = {name: workload.env.get(name) for name in changes}
        return Preview(
            key=f"{workload.kind}/{workload.name}",
            target=f"{workload.kind} {writer.namespace}/{workload.name}, container {container}",
            current=f"{env_text(before)} (PUT limit {limit:.0f}/s from {limit_from})",
            new=f"{env_text(changes)} (at most the S3 per-prefix {S3_PREFIX_PUT_LIMIT}/s)",
            call=f"{writer.env_call(container, sorted(changes))}; the new pod template rolls the "
            "pods, no separate restart",
            rollback=env_rollback(workload, before),
            blast_radius=f"every agent restarts one by one with the new env, {pods_text(pods)}; "
            "their partitions move while each pod restarts",
            params={"container": container, "env": dict(changes), "before": dict(before)},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        before = params_of(request).get("before") or {}
        workload = await kubernetes_of(ctx).agent_workload()
        return env_moved(before, workload.env)

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        params = params_of(request)
        env = {str(name): str(value) for name, value in (params.get("env") or {}).items()}
        # Absolute values: a retry finds them set, and Kubernetes starts no second rollout.
        await ctx.writers.require_kubernetes().set_agent_env(str(params["container"]), env)
        return Outcome(
            f"set {env_text(env)} on {request.target}; the agent pods roll with it",
            {"env": dict(env), "before": dict(params.get("before") or {})},
        )


EXECUTORS: dict[str, Executor] = {
    "CB-A1": WatchChecks(
        ("CB-1",), 180.0, "the S3 circuit breakers of every agent", "every breaker is closed"
    ),
    "CB-A2": RestartAgents(),
    "CB-A3": EnableThrottling(),
}
