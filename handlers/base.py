"""The shape of a runbook: checks that read sources and return evidence, actions with guard
rails, and how the probable cause is named. No Slack code lives in ``handlers/``.

A check is ``async def check_x(ctx: CheckContext) -> CheckResult``. It never lets a
``SourceError`` escape: ``@check`` turns one into an ``unknown`` result that names the
source and the reason (and the engine does the same for anything else, and for timeouts).
"No data" (an empty PromQL result, zero visible rows) is ``unknown`` too, never ``ok``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from bot.models import CheckResult, Risk, Status
from bot.profiles import Profile
from bot.sources.base import SourceError, Sources

CheckFn = Callable[["CheckContext"], Awaitable[CheckResult]]
Results = Mapping[str, CheckResult]
# A guard rail: (allowed, reason when blocked), from the checks' results.
GuardFn = Callable[[Results, "CheckContext"], tuple[bool, str | None]]
CauseFn = Callable[[Results], str | None]


@dataclass(frozen=True)
class Target:
    """What the engineer asked about (``topic=… partition=… agent=…``); all optional."""

    topic: str | None = None
    partition: int | None = None
    agent: str | None = None
    schema: str | None = None  # a candidate schema to test (SR-4)


@dataclass(frozen=True)
class CheckContext:
    """Everything a check may use: cached sources, the profile's names, the target, now."""

    sources: Sources
    profile: Profile
    target: Target = field(default_factory=Target)
    now: datetime = field(default_factory=lambda: datetime.now().astimezone())


ALL_PROFILES = ("runbook", "upstream")


@dataclass(frozen=True)
class CheckSpec:
    """A check of the matrix: stable id, title, and the function that runs it.

    ``profiles`` lists where the check can run at all: a check whose only source does not
    exist in a profile (e.g. the schema cache metrics upstream) is left out there, and the
    diagnosis says so, rather than reporting a permanent ``unknown``.
    """

    id: str
    title: str
    run: CheckFn
    profiles: tuple[str, ...] = ALL_PROFILES
    needs: tuple[str, ...] = ()  # Target fields without which the check does not apply

    def applies(self, ctx: CheckContext) -> bool:
        """Whether the check can run for this profile and target."""
        wanted = all(getattr(ctx.target, name) is not None for name in self.needs)
        return ctx.profile.name in self.profiles and wanted


@dataclass(frozen=True)
class ActionSpec:
    """An action of the matrix: risk, guard rails, and which checks verify it afterwards."""

    id: str
    title: str
    risk: Risk
    guard: GuardFn
    verification: tuple[str, ...] = ()


@dataclass(frozen=True)
class Runbook:
    """One runbook as the bot automates it."""

    id: str
    title: str
    file: str  # e.g. "circuit-breaker-open.md", for links
    checks: tuple[CheckSpec, ...]
    actions: tuple[ActionSpec, ...]
    probable_cause: CauseFn
    guidance: tuple[str, ...] = ()  # written advice without a button (the matrix's *-G rows)
    leads_to: tuple[str, ...] = ()  # runbook ids this problem commonly causes

    def checks_for(self, ctx: CheckContext) -> tuple[CheckSpec, ...]:
        """The checks that apply to this profile and target."""
        return tuple(spec for spec in self.checks if spec.applies(ctx))


def check(
    check_id: str,
    title: str,
    *,
    profiles: tuple[str, ...] = ALL_PROFILES,
    needs: tuple[str, ...] = (),
) -> Callable[[CheckFn], CheckSpec]:
    """Declare a check; a ``SourceError`` inside becomes ``unknown`` naming the source."""

    def declare(run: CheckFn) -> CheckSpec:
        @functools.wraps(run)
        async def guarded(ctx: CheckContext) -> CheckResult:
            try:
                return await run(ctx)
            except SourceError as error:
                return unknown(check_id, title, error)

        return CheckSpec(check_id, title, guarded, profiles, needs)

    return declare


def unknown(check_id: str, title: str, error: SourceError) -> CheckResult:
    """A check that could not run because a source failed."""
    return CheckResult(
        id=check_id,
        title=title,
        status=Status.UNKNOWN,
        summary=f"{error.source} unavailable: {error.detail}",
        evidence={"source": error.source, "error": error.detail},
        sources=(error.source,),
    )


def no_data(check_id: str, title: str, what: str, source: str = "prometheus") -> CheckResult:
    """A check whose source answered with nothing (not instrumented, no series, no rows)."""
    return CheckResult(
        id=check_id,
        title=title,
        status=Status.UNKNOWN,
        summary=f"no data: {what}",
        evidence={"source": source, "no_data": what},
        sources=(source,),
    )


def always_allowed(results: Results, ctx: CheckContext) -> tuple[bool, str | None]:
    """A guard rail that never blocks (read-only or self-healing actions)."""
    return True, None
