"""Circuit-breaker remediations: CB-A1 (watch recovery), CB-A2 (restart), CB-A3 (throttle)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.approvals import ActionRequest
from bot.executors.base import ActionContext, Executor, Outcome, Preview, params_of
from bot.settings import Settings
from bot.sources.kubernetes_actions import RESTARTED_AT


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


EXECUTORS: dict[str, Executor] = {"CB-A2": RestartAgents()}
