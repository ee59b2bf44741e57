"""Remediations of the schema-registry runbook: SR-A1 (a subject's mode), SR-A2 (restart).

SR-A1 chooses the new mode from the evidence, the way an engineer on call would:

1. With a candidate schema (``schema=`` in the target, SR-4) that the current mode refuses:
   the *strictest* mode under which the bot's Avro check accepts it. Modes are tried from
   strict to loose (``FULL_TRANSITIVE``, ``FULL``, the ``*_TRANSITIVE`` pair, the plain
   ``BACKWARD``/``FORWARD`` pair, ``NONE``), never stricter than the current one, the
   current direction first at each level. So a removed required field under ``BACKWARD``
   gives ``FORWARD`` (the runbook's own answer): one direction stays checked, instead of
   switching every check off. Transitive modes are checked against every version.
2. Without a candidate, but with registrations refused as incompatible (SR-1) for the
   subject: one step looser in the same direction (``FULL_TRANSITIVE`` → ``FULL`` →
   ``BACKWARD_TRANSITIVE`` → ``BACKWARD`` → ``NONE``; ``FORWARD_TRANSITIVE`` → ``FORWARD``
   → ``NONE``). From a plain mode that is ``NONE``, which is high risk (two approvers).
3. A subject already in ``NONE`` (a force-register is done; nothing is looser): checks
   back on, with the global default, or ``BACKWARD`` (the registry's default) when the
   global is ``NONE`` too.

The subject is the target topic's ``<topic>-value``, else the one SR-4, SR-1 or SR-2 names.
SR-A2 clears the registry's in-memory cache by restarting its Deployment (runbook profile);
upstream serves the registry inside the unified server and has no such workload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    params_of,
)
from bot.executors.common import cluster
from bot.models import Risk
from bot.settings import Settings
from bot.sources.base import SchemaRegistry
from handlers import avro_diff
from handlers.schema_registry import DANGEROUS_MODE, mode_change_risk, subject_of_topic

DEFAULT_MODE = "BACKWARD"  # the registry's own default (facts §4.3)
STRICTNESS = {
    "FULL_TRANSITIVE": 4,
    "FULL": 3,
    "BACKWARD_TRANSITIVE": 2,
    "FORWARD_TRANSITIVE": 2,
    "BACKWARD": 1,
    "FORWARD": 1,
    "NONE": 0,
}
ONE_STEP_LOOSER = {
    "FULL_TRANSITIVE": "FULL",
    "FULL": "BACKWARD_TRANSITIVE",
    "BACKWARD_TRANSITIVE": "BACKWARD",
    "BACKWARD": "NONE",
    "FORWARD_TRANSITIVE": "FORWARD",
    "FORWARD": "NONE",
}

Accepts = Callable[[str], bool]


# -- choosing the mode (pure) ------------------------------------------------------------------
def direction(mode: str) -> str:
    """``BACKWARD``, ``FORWARD``, ``FULL`` or ``NONE``: what a mode checks, not how far back."""
    return mode.removesuffix("_TRANSITIVE")


def looser_modes(current: str) -> list[str]:
    """Every mode an SR-A1 may move to from ``current``, strictest first: lower levels, and
    the other direction at the same level; the current direction, then BACKWARD, first."""
    level = STRICTNESS[current]
    options = [m for m in STRICTNESS if m != current and STRICTNESS[m] <= level]
    return sorted(
        options,
        key=lambda m: (
            -STRICTNESS[m],
            direction(m) != direction(current),
            direction(m) != DEFAULT_MODE,
        ),
    )


def mode_accepting(current: str, accepts: Accepts) -> str:
    """The strictest mode looser than ``current`` under which ``accepts`` holds (NONE last)."""
    return next((mode for mode in looser_modes(current) if accepts(mode)), DANGEROUS_MODE)


def restored_mode(global_mode: str) -> str:
    """The mode a subject in NONE goes back to: the global default unless that is NONE too."""
    return global_mode if global_mode != DANGEROUS_MODE else DEFAULT_MODE


def new_mode(
    current: str, global_mode: str, *, accepts: Accepts | None, refused: bool
) -> tuple[str, str]:
    """SR-A1's mode and why, or ``BotError`` when the evidence calls for no change.

    ``accepts``: whether a known candidate passes a mode; ``refused``: whether SR-1 saw
    registrations for the subject refused as incompatible.
    """
    if accepts is not None and not accepts(current):
        mode = mode_accepting(current, accepts)
        return mode, f"the strictest mode under which the candidate schema registers is {mode}"
    if current == DANGEROUS_MODE:  # nothing is looser: the change left is to check again
        mode = restored_mode(global_mode)
        return mode, "turn compatibility checks back on"
    if accepts is None and refused:
        mode = ONE_STEP_LOOSER[current]
        return mode, "registrations are refused as incompatible: one step looser than " + current
    if accepts is not None:
        raise BotError(f"The candidate schema already registers under {current}: no change needed.")
    raise BotError(
        "Nothing calls for a mode change: no registration is refused as incompatible (SR-1) "
        "and the subject is not in NONE. Give the candidate with `schema=` to test it."
    )


# -- reading the evidence ----------------------------------------------------------------------
def _evidence(ctx: ActionContext, check_id: str) -> Mapping[str, Any]:
    found = next((c for c in ctx.diagnosis.checks if c.id == check_id), None)
    return found.evidence if found is not None else {}


def refused_subjects(ctx: ActionContext) -> list[str]:
    """Subjects whose registrations SR-1 saw refused as incompatible."""
    subjects = _evidence(ctx, "SR-1").get("subjects") or {}
    return sorted(
        name for name, seen in subjects.items() if "incompatible" in seen.get("kinds", [])
    )


def subject_for(ctx: ActionContext) -> str:
    """The subject SR-A1 changes: the target topic's, else the one the evidence names."""
    if ctx.target.topic:
        return subject_of_topic(ctx.target.topic)
    candidate = _evidence(ctx, "SR-4").get("subject")
    if isinstance(candidate, str):
        return candidate
    modes = _evidence(ctx, "SR-2").get("subjects") or {}
    unchecked = sorted(name for name, mode in modes.items() if mode == DANGEROUS_MODE)
    for named in (refused_subjects(ctx), unchecked):
        if len(named) == 1:
            return named[0]
    raise BotError("Which subject? Diagnose again with `topic=<topic>` (its -value subject).")


async def candidate_check(
    registry: SchemaRegistry, subject: str, text: str | None
) -> Accepts | None:
    """Whether the candidate passes a mode, per the bot's Avro check (None: no candidate)."""
    if text is None:
        return None
    try:
        candidate = avro_diff.parse(text)
    except avro_diff.InvalidSchemaError as error:
        raise BotError(f"The candidate is not valid Avro ({error}); no mode accepts it.") from None
    versions = [
        avro_diff.parse((await registry.version(subject, number)).schema)
        for number in await registry.versions(subject)
    ]
    if not versions:
        raise BotError(f"{subject} has no version yet: any valid schema registers.")

    def accepts(mode: str) -> bool:
        against: Sequence[avro_diff.Schema] = (
            versions if mode.endswith("_TRANSITIVE") else versions[-1:]
        )
        return not any(avro_diff.compatibility_problems(mode, candidate, v) for v in against)

    return accepts


def _registry(ctx: ActionContext) -> SchemaRegistry:
    if ctx.sources.registry is None:
        raise BotError("Set SCHEMA_REGISTRY_URL so the bot can read the registry.")
    return ctx.sources.registry


def _blast_radius(subject: str, versions: int, mode: str) -> str:
    scope = f"subject {subject} only ({versions} versions registered); other subjects keep theirs"
    if mode == DANGEROUS_MODE:
        return (
            f"{scope}. NONE checks nothing: any schema registers, and consumers may fail to "
            "read what producers then write"
        )
    return f"{scope}. Only new registrations are judged differently; stored schemas stay"


# -- SR-A1 -------------------------------------------------------------------------------------
class ChangeCompatibility:
    """SR-A1: ``PUT /config/{subject}`` with the mode the evidence calls for (see module)."""

    def cooldown(self, settings: Settings) -> timedelta:
        return NO_COOLDOWN  # an absolute value, guarded by ``changed``

    async def preview(self, ctx: ActionContext) -> Preview:
        writer = ctx.writers.require_registry()
        registry = _registry(ctx)
        subject = subject_for(ctx)
        current, global_mode = await registry.compatibility(subject), await registry.compatibility()
        accepts = await candidate_check(registry, subject, ctx.target.schema)
        mode, why = new_mode(
            current, global_mode, accepts=accepts, refused=subject in refused_subjects(ctx)
        )
        versions = (
            len(await registry.versions(subject)) if subject in await registry.subjects() else 0
        )
        return Preview(
            key=f"subject {subject}",
            target=f"compatibility mode of subject {subject}",
            current=current,
            new=f"{mode} ({why})",
            call=writer.compatibility_call(subject, mode),
            rollback=f"set it back: {writer.compatibility_call(subject, current)}",
            blast_radius=_blast_radius(subject, versions, mode),
            params={"subject": subject, "from": current, "mode": mode},
            risk=Risk.HIGH if mode_change_risk(mode) is Risk.HIGH else None,
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        params = params_of(request)
        subject, was = str(params["subject"]), str(params["from"])
        now = await _registry(ctx).compatibility(subject)
        return None if now == was else f"{subject}'s mode is now {now}, was {was}"

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        params = params_of(request)
        subject, mode = str(params["subject"]), str(params["mode"])
        answered = await ctx.writers.require_registry().set_compatibility(subject, mode)
        return Outcome(
            f"compatibility of {subject}: {params['from']} → {answered}",
            {"subject": subject, "from": params["from"], "mode": answered},
        )


# -- SR-A2 -------------------------------------------------------------------------------------
UPSTREAM_HAS_NO_REGISTRY_WORKLOAD = (
    "Upstream Streamhouse serves the schema registry inside the unified server "
    "(SCHEMA_REGISTRY_URL ends in /schemas): there is no separate registry workload to "
    "restart, and restarting the server would restart every API with it. (The removed Helm "
    "chart's standalone registry keeps schemas in memory: restarting it would lose them.)"
)


class RestartRegistry:
    """SR-A2: ``kubectl rollout restart`` of the registry Deployment, which empties its
    in-memory cache (the registry has no cache-invalidation endpoint; schemas stay in
    PostgreSQL)."""

    def cooldown(self, settings: Settings) -> timedelta:
        return timedelta(seconds=settings.bot_restart_cooldown_s)

    async def preview(self, ctx: ActionContext) -> Preview:
        if ctx.profile.name == "upstream":
            raise BotError(UPSTREAM_HAS_NO_REGISTRY_WORKLOAD)
        writer, kubernetes = cluster(ctx)
        name = ctx.profile.registry_workload
        pods = sorted(pod.name for pod in await kubernetes.registry_pods())
        if not pods:
            selector = ",".join(f"{k}={v}" for k, v in ctx.profile.registry_selector.items())
            raise BotError(f"No pod matches the registry selector {selector}: nothing to restart.")
        return Preview(
            key=f"Deployment/{name}",
            target=f"Deployment {writer.namespace}/{name}",
            current=f"{len(pods)} pods with a warm cache: {', '.join(pods)}",
            new="new pods with an empty cache (filled again from PostgreSQL on demand)",
            call=writer.restart_call("Deployment", name),
            rollback="none needed: the pods are recreated from an unchanged spec",
            blast_radius=f"{len(pods)} registry pods replaced one by one; lookups are slower "
            "until the cache is warm again; producers and consumers keep running",
            params={"pods": pods},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        return None  # a restart applies to whatever pods run now

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        # The request's stamp: a retry writes the same annotation and starts no second rollout.
        stamp = (request.executed_at or datetime.now(UTC)).isoformat(timespec="seconds")
        name = ctx.profile.registry_workload
        await ctx.writers.require_kubernetes().restart("Deployment", name, stamp)
        pods = params_of(request).get("pods") or []
        return Outcome(
            f"restarted Deployment {name}: its schema cache starts empty",
            {"stamp": stamp, "pods_before": list(pods)},
        )


EXECUTORS: dict[str, Executor] = {"SR-A1": ChangeCompatibility(), "SR-A2": RestartRegistry()}
