"""Circuit-breaker remediations: CB-A1 (watch recovery), CB-A2 (restart), CB-A3 (throttle).

Also ``WatchChecks`` (a read-only watch of some checks), which the s3-throttling executors
share; the agent-env helpers are in ``bot.executors.common``.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from bot.executors.common import (
    agent_env_moved,
    agent_pod_names,
    cluster,
    env_rollback,
    env_text,
    kubernetes_of,
    pods_text,
    set_previewed_env,
)
from bot.executors.common import env_moved as env_moved  # tests read it here
from bot.profiles import Profile
from bot.settings import Settings
from bot.sources.kubernetes_actions import RESTARTED_AT
from handlers.base import CheckContext
from handlers.circuit_breaker import S3_PREFIX_PUT_LIMIT, TUNED_PUT_RATE
from handlers.s3_throttling import configured_put_limit

THROTTLE_ENABLED = "THROTTLE_ENABLED"
THROTTLE_PUT_RATE = "THROTTLE_PUT_RATE"


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


# -- CB-A2 ------------------------------------------------------------------------------------


class RestartAgents:
    """CB-A2: ``kubectl rollout restart`` of the agent Deployment (runbook) or StatefulSet."""

    def cooldown(self, settings: Settings) -> timedelta:
        return timedelta(seconds=settings.bot_restart_cooldown_s)

    async def preview(self, ctx: ActionContext) -> Preview:
        writer, kubernetes = cluster(ctx)
        workload = await kubernetes.agent_workload()
        pods = await agent_pod_names(kubernetes)
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
        return await agent_env_moved(ctx, request)

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        env, before = await set_previewed_env(ctx, request)
        return Outcome(
            f"set {env_text(env)} on {request.target}; the agent pods roll with it",
            {"env": dict(env), "before": before},
        )


EXECUTORS: dict[str, Executor] = {
    "CB-A1": WatchChecks(
        ("CB-1",), 180.0, "the S3 circuit breakers of every agent", "every breaker is closed"
    ),
    "CB-A2": RestartAgents(),
    "CB-A3": EnableThrottling(),
}
