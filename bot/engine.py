"""Runs a runbook's checks concurrently under one deadline and combines their verdicts.

A check that raises or misses the deadline becomes ``unknown`` with the reason; the
runbook's status is the worst check (``unknown`` never hides a ``critical``, and never
passes for ``ok``); guard rails are evaluated on the results; ``run_all`` ranks the six
runbooks and follows their ``leads_to`` links to name the probable root.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from bot.models import ActionOption, CheckResult, Diagnosis, Status, Triage
from handlers.base import CheckContext, CheckSpec, Results, Runbook

log = logging.getLogger("bot.engine")

DEFAULT_DEADLINE_S = 8.0
OnCheck = Callable[[str, CheckResult], Awaitable[None]]


async def run_runbook(
    runbook: Runbook,
    ctx: CheckContext,
    *,
    runbook_base_url: str,
    deadline_s: float = DEFAULT_DEADLINE_S,
    on_check: OnCheck | None = None,
) -> Diagnosis:
    """Every check of ``runbook`` at once; the diagnosis is complete by the deadline."""
    started = datetime.now(UTC)
    specs = runbook.checks_for(ctx)
    results = await _run_checks(runbook.id, specs, ctx, deadline_s, on_check)
    ordered = tuple(results[spec.id] for spec in specs)
    status = Status.worst([result.status for result in ordered])
    cause = _probable_cause(runbook, results)
    return Diagnosis(
        runbook=runbook.id,
        title=runbook.title,
        status=status,
        summary=summarise(ordered, status, cause),
        checks=ordered,
        actions=evaluate_actions(runbook, results, ctx),
        probable_cause=cause,
        runbook_url=f"{runbook_base_url}/{runbook.file}",
        started_at=started,
        finished_at=datetime.now(UTC),
        guidance=runbook.guidance,
    )


async def _run_checks(
    runbook_id: str,
    specs: Sequence[CheckSpec],
    ctx: CheckContext,
    deadline_s: float,
    on_check: OnCheck | None,
) -> dict[str, CheckResult]:
    tasks = {asyncio.create_task(_run_one(spec, ctx)): spec for spec in specs}
    results: dict[str, CheckResult] = {}
    loop = asyncio.get_running_loop()
    ends = loop.time() + deadline_s
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(
            pending, timeout=max(0.0, ends - loop.time()), return_when=asyncio.FIRST_COMPLETED
        )
        if not done:
            break
        for task in done:
            spec = tasks[task]
            results[spec.id] = task.result()
            if on_check is not None:
                await on_check(runbook_id, results[spec.id])
    waiting = _waiting_on(ctx)
    for task in pending:
        task.cancel()
        spec = tasks[task]
        results[spec.id] = timed_out(spec, deadline_s, waiting)
        if on_check is not None:
            await on_check(runbook_id, results[spec.id])
    return results


async def _run_one(spec: CheckSpec, ctx: CheckContext) -> CheckResult:
    try:
        return await spec.run(ctx)
    except Exception as error:  # a bug in one check must not sink the diagnosis
        log.exception("check %s failed", spec.id)
        return CheckResult(
            id=spec.id,
            title=spec.title,
            status=Status.UNKNOWN,
            summary=f"the check failed: {type(error).__name__}: {error}",
            evidence={"error": f"{type(error).__name__}: {error}"},
        )


def _waiting_on(ctx: CheckContext) -> tuple[str, ...]:
    """The sources with calls still running (known when the sources are cached)."""
    waiting = getattr(ctx.sources, "waiting_on", None)
    return tuple(waiting()) if callable(waiting) else ()


def timed_out(spec: CheckSpec, deadline_s: float, waiting: tuple[str, ...] = ()) -> CheckResult:
    """The verdict of a check that did not finish in time, naming what was still awaited."""
    culprit = (
        f"still waiting for {', '.join(waiting)}" if waiting else "a source is slow or hanging"
    )
    return CheckResult(
        id=spec.id,
        title=spec.title,
        status=Status.UNKNOWN,
        summary=f"no answer within the {deadline_s:g} s deadline ({culprit})",
        evidence={"timeout_s": deadline_s, "waiting_on": list(waiting)},
        sources=waiting,
    )


def _probable_cause(runbook: Runbook, results: Results) -> str | None:
    try:
        return runbook.probable_cause(results)
    except Exception:  # naming a cause is a nicety; never fail the diagnosis for it
        log.exception("probable cause of %s failed", runbook.id)
        return None


def evaluate_actions(
    runbook: Runbook, results: Results, ctx: CheckContext
) -> tuple[ActionOption, ...]:
    """Every action with its guard rails decided on ``results``."""
    options = []
    for spec in runbook.actions:
        try:
            allowed, reason = spec.guard(results, ctx)
        except Exception as error:  # an unevaluable guard blocks: safety first
            log.exception("guard of %s failed", spec.id)
            allowed, reason = (
                False,
                f"the guard rail could not be evaluated ({type(error).__name__})",
            )
        options.append(
            ActionOption(
                id=spec.id,
                title=spec.title,
                risk=spec.risk,
                allowed=allowed,
                blocked_reason=None
                if allowed
                else (reason or "blocked by the runbook's guard rails"),
                verification=spec.verification,
            )
        )
    return tuple(options)


def summarise(checks: Sequence[CheckResult], status: Status, cause: str | None) -> str:
    """One line: how many checks are in which state, and the probable cause."""
    if status is Status.OK:
        return f"All {len(checks)} checks passed."
    counts = [
        f"{sum(1 for c in checks if c.status is s)} {s.value}"
        for s in (Status.CRITICAL, Status.WARNING, Status.UNKNOWN)
        if any(c.status is s for c in checks)
    ]
    line = ", ".join(counts) + f" of {len(checks)} checks"
    return f"{line}; probable cause: {cause}." if cause else f"{line}."


async def run_all(
    runbooks: Sequence[Runbook],
    ctx: CheckContext,
    *,
    runbook_base_url: str,
    deadline_s: float = DEFAULT_DEADLINE_S,
    on_check: OnCheck | None = None,
) -> Triage:
    """Every runbook concurrently, ranked, with the probable root and its consequences."""
    diagnoses = await asyncio.gather(
        *(
            run_runbook(
                runbook,
                ctx,
                runbook_base_url=runbook_base_url,
                deadline_s=deadline_s,
                on_check=on_check,
            )
            for runbook in runbooks
        )
    )
    ranked = tuple(sorted(diagnoses, key=_severity, reverse=True))
    root, consequences = find_root(runbooks, {d.runbook: d.status for d in diagnoses})
    status = Status.worst([d.status for d in diagnoses])
    return Triage(status, _triage_summary(ranked, root, consequences), ranked, root, consequences)


def _severity(diagnosis: Diagnosis) -> tuple[int, int, int]:
    critical = sum(1 for c in diagnosis.checks if c.status is Status.CRITICAL)
    warning = sum(1 for c in diagnosis.checks if c.status is Status.WARNING)
    return diagnosis.status.rank, critical, warning


def find_root(
    runbooks: Sequence[Runbook], statuses: dict[str, Status]
) -> tuple[str | None, tuple[str, ...]]:
    """The failing runbook that leads to other failing ones and is led to by none."""
    failing = {
        rid for rid, status in statuses.items() if status in (Status.WARNING, Status.CRITICAL)
    }
    links = {runbook.id: set(runbook.leads_to) & failing for runbook in runbooks}
    led_to = set().union(*links.values()) if links else set()
    roots = [rid for rid in failing if links.get(rid) and rid not in led_to]
    if not roots:
        return None, ()
    root = max(roots, key=lambda rid: (statuses[rid].rank, -len(links[rid])))
    reached: list[str] = []
    frontier = [root]
    while frontier:
        for nxt in sorted(links.get(frontier.pop(0), set())):
            if nxt not in reached and nxt != root:
                reached.append(nxt)
                frontier.append(nxt)
    return root, tuple(reached)


def _triage_summary(
    ranked: Sequence[Diagnosis], root: str | None, consequences: Sequence[str]
) -> str:
    failing = [d for d in ranked if d.status in (Status.WARNING, Status.CRITICAL)]
    unknown = [d for d in ranked if d.status is Status.UNKNOWN]
    if not failing and not unknown:
        return "All six runbooks look healthy."
    parts = []
    if root:
        follow = f", which explains {', '.join(consequences)}" if consequences else ""
        parts.append(f"Probable root: {root}{follow}.")
    elif failing:
        parts.append(
            "Problems: " + ", ".join(f"{d.runbook} ({d.status.value})" for d in failing) + "."
        )
    if unknown:
        parts.append("No data for: " + ", ".join(d.runbook for d in unknown) + ".")
    return " ".join(parts)
