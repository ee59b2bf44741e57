"""Runbook ``schema-registry-errors.md`` (schema-registry, severity MEDIUM).

Checks SR-1..SR-6, actions SR-A1..SR-A2, guidance SR-G; SR-V verifies with SR-1, SR-3 and
SR-4. Subjects looked at: the target topic's (``<topic>-value``), else every subject.
Thresholds (module constants):

- SR-1: any registry error (``schema_registry_errors_total`` by ``type``; upstream also
  ``streamhouse_schema_registrations_total`` by ``subject``/``result``; ``error|failed`` in
  the registry's last ``LOG_TAIL`` = 200 log lines) is a warning; registration errors
  above ``REGISTRATION_ERRORS_PER_S`` = 0.01/s or not-found errors above
  ``NOT_FOUND_ERRORS_PER_S`` = 0.05/s (the alerts' thresholds) are critical.
- SR-2: a subject or the global default in mode ``NONE`` is a warning.
- SR-3: a breaking change between a subject's latest two versions (required field
  removed, type changed, field added without a default) is a warning.
- SR-4: a candidate the registry would refuse is critical; upstream has no compatibility
  route, so ``handlers.avro_diff`` predicts the registry's verdict.
- SR-5: a missing ``schema_registry_*`` table is critical, orphaned versions a warning.
- SR-6 (runbook profile only; upstream has no cache metrics): cache miss rate above
  ``CACHE_MISS_WARNING`` = 20 % is a warning.
- SR-A1: a change to ``NONE`` is high risk (two approvers), any other change medium.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bot.models import CheckResult, Risk, Status
from bot.sources.base import SchemaRegistry, SourceNotConfigured
from handlers import avro_diff
from handlers.base import ActionSpec, CheckContext, Results, Runbook, always_allowed, check, no_data
from handlers.logs import cut
from handlers.promql import prometheus_of
from handlers.registry_errors import (
    error_kind,
    error_rates,
    failing_subjects_in,
    registry_error_lines,
)
from handlers.results import failing, first_failing_cause
from handlers.sources import metadata_of

LOG_TAIL = 200
REGISTRATION_ERRORS_PER_S = 0.01
NOT_FOUND_ERRORS_PER_S = 0.05
CACHE_MISS_WARNING = 0.20
DANGEROUS_MODE = "NONE"
EVIDENCE_LINES = 5
SOURCE = "schema-registry"


def _registry(ctx: CheckContext) -> SchemaRegistry:
    if ctx.sources.registry is None:
        raise SourceNotConfigured(SOURCE, "SCHEMA_REGISTRY_URL is not set")
    return ctx.sources.registry


def subject_of_topic(topic: str) -> str:
    """The value subject of a topic (a name already ending in -value/-key is kept)."""
    return topic if topic.endswith(("-value", "-key")) else f"{topic}-value"


async def _subjects(ctx: CheckContext) -> list[str]:
    """The registered subjects to look at: the target topic's (if registered), else all."""
    registered = await _registry(ctx).subjects()
    if ctx.target.topic:
        wanted = subject_of_topic(ctx.target.topic)
        return [wanted] if wanted in registered else []
    return registered


def _no_subjects(check_id: str, title: str, ctx: CheckContext) -> CheckResult:
    where = subject_of_topic(ctx.target.topic) if ctx.target.topic else "any subject"
    return no_data(check_id, title, f"the registry has no versions of {where}", SOURCE)


# -- SR-1: failing subject, version and error type ------------------------------------------
ERRORS_TITLE = "Registry errors: failing subject, version and error type"


@check("SR-1", ERRORS_TITLE)
async def check_registry_errors(ctx: CheckContext) -> CheckResult:
    """Error rates by type and subject, and the registry's error log lines."""
    rates, failed_registrations = await error_rates(ctx)
    lines, unreadable = await registry_error_lines(ctx, LOG_TAIL)
    subjects = failing_subjects_in(lines)
    for subject, kinds in failed_registrations.items():
        entry = subjects.setdefault(subject, {"version": None, "kinds": []})
        entry["kinds"] += [kind for kind in kinds if kind not in entry["kinds"]]
    evidence = {
        "errors_per_s": {kind: round(rate, 4) for kind, rate in sorted(rates.items())},
        "subjects": subjects,
        "lines": [cut(line) for line in lines[-EVIDENCE_LINES:]],
        "logs_unreadable": unreadable,
    }
    sources = ("prometheus", "kubernetes:logs")
    if not rates and not lines:
        why = "schema_registry_errors_total has no series and the registry logged no error"
        if unreadable:
            why += f" (logs unreadable: {unreadable})"
        return replace(no_data("SR-1", ERRORS_TITLE, why), sources=sources)
    status, summary = _judge_errors(rates, len(lines), subjects)
    kinds = [kind for entry in subjects.values() for kind in entry["kinds"]]
    kinds += [error_kind(kind) for kind, rate in rates.items() if rate > 0]
    cause = next(iter(kinds), None) if status is not Status.OK else None
    return CheckResult("SR-1", ERRORS_TITLE, status, summary, evidence, sources, cause)


def _judge_errors(
    rates: Mapping[str, float], error_lines: int, subjects: Mapping[str, Any]
) -> tuple[Status, str]:
    total = sum(rates.values())
    if total <= 0 and not error_lines:
        return Status.OK, "no registry errors in the last 5 min"
    alarming = (
        rates.get("registration", 0.0) > REGISTRATION_ERRORS_PER_S
        or rates.get("not_found", 0.0) > NOT_FOUND_ERRORS_PER_S
    )
    kinds = ", ".join(f"{kind} {rate:.2f}/s" for kind, rate in sorted(rates.items()) if rate > 0)
    named = f" for {', '.join(subjects)}" if subjects else ""
    logged = f"{error_lines} error lines" if error_lines else "no error lines"
    summary = f"registry errors{named}: {kinds or 'none in metrics'}; {logged}"
    return (Status.CRITICAL if alarming else Status.WARNING), summary


# -- SR-2: compatibility modes --------------------------------------------------------------
MODES_TITLE = "Compatibility mode of the subjects and the global default"


@check("SR-2", MODES_TITLE)
async def check_compatibility_modes(ctx: CheckContext) -> CheckResult:
    """``GET /config`` and ``GET /config/{subject}``; ``NONE`` disables every check."""
    registry = _registry(ctx)
    subjects = await _subjects(ctx)
    default = await registry.compatibility(None)
    modes = await asyncio.gather(*(registry.compatibility(subject) for subject in subjects))
    per_subject = dict(zip(subjects, modes, strict=True))
    unchecked = [name for name, mode in per_subject.items() if mode == DANGEROUS_MODE]
    if default == DANGEROUS_MODE:
        unchecked.insert(0, "the global default")
    evidence = {"global": default, "subjects": per_subject}
    if unchecked:
        summary = f"{', '.join(unchecked)} in mode NONE: breaking schemas register unchecked"
        return CheckResult(
            "SR-2", MODES_TITLE, Status.WARNING, summary, evidence, (SOURCE,), "mode-none"
        )
    used = f"{len(subjects)} subjects use {', '.join(sorted(set(modes)))}" if subjects else ""
    summary = f"global default {default}; {used or 'no registered subject to look at'}"
    return CheckResult("SR-2", MODES_TITLE, Status.OK, summary, evidence, (SOURCE,))


# -- SR-3: what changed between the latest two versions -------------------------------------
async def _latest_changes(registry: SchemaRegistry, subject: str) -> dict[str, Any]:
    versions = await registry.versions(subject)
    if len(versions) < 2:
        return {"versions": len(versions), "changes": [], "breaking": 0}
    before, after = await asyncio.gather(
        registry.version(subject, versions[-2]), registry.version(subject, versions[-1])
    )
    try:
        changes = avro_diff.field_changes(
            avro_diff.parse(before.schema), avro_diff.parse(after.schema)
        )
    except avro_diff.InvalidSchemaError as error:
        return {"versions": len(versions), "changes": [], "breaking": 0, "unreadable": str(error)}
    return {
        "from": before.version,
        "to": after.version,
        "changes": [change.to_json() for change in changes],
        "breaking": sum(1 for change in changes if change.breaking),
    }


DIFF_TITLE = "What changed between each subject's latest two versions"


@check("SR-3", DIFF_TITLE)
async def check_latest_changes(ctx: CheckContext) -> CheckResult:
    """A field-level diff of the latest two versions; breaking changes are a warning."""
    registry = _registry(ctx)
    subjects = await _subjects(ctx)
    if not subjects:
        return _no_subjects("SR-3", DIFF_TITLE, ctx)
    diffs = dict(
        zip(
            subjects,
            await asyncio.gather(*(_latest_changes(registry, s) for s in subjects)),
            strict=True,
        )
    )
    breaking = {name: diff for name, diff in diffs.items() if diff["breaking"]}
    if not breaking:
        summary = f"no breaking change between the latest two versions of {len(diffs)} subjects"
        return CheckResult("SR-3", DIFF_TITLE, Status.OK, summary, {"subjects": diffs}, (SOURCE,))
    name, diff = next(iter(breaking.items()))
    first = next(change for change in diff["changes"] if change["breaking"])
    summary = f"{name} v{diff['from']}→v{diff['to']}: {first['detail']} ({first['field']})" + (
        f"; {len(breaking) - 1} more subjects" if len(breaking) > 1 else ""
    )
    evidence = {"subjects": diffs}
    return CheckResult(
        "SR-3", DIFF_TITLE, Status.WARNING, summary, evidence, (SOURCE,), "breaking-change"
    )


# -- SR-4: would the registry accept the candidate ------------------------------------------
async def _subject_for(ctx: CheckContext, candidate: avro_diff.Schema) -> str | None:
    """The target topic's subject, else the one subject whose record name matches."""
    if ctx.target.topic:
        return subject_of_topic(ctx.target.topic)
    registry, wanted = _registry(ctx), avro_diff.record_name(candidate)
    subjects = await registry.subjects()
    latest = await asyncio.gather(*(registry.version(subject) for subject in subjects))
    matches = [
        version.subject
        for version in latest
        if wanted and _record_name_of(version.schema) == wanted
    ]
    return matches[0] if len(matches) == 1 else None


def _record_name_of(text: str) -> str | None:
    try:
        return avro_diff.record_name(avro_diff.parse(text))
    except avro_diff.InvalidSchemaError:
        return None


CANDIDATE_TITLE = "Compatibility of the candidate schema with the latest version"


@check("SR-4", CANDIDATE_TITLE, needs=("schema",))
async def check_candidate_schema(ctx: CheckContext) -> CheckResult:
    """The registry's compatibility route where it has one, else the bot's own Avro check."""
    registry, text = _registry(ctx), str(ctx.target.schema)
    try:
        candidate = avro_diff.parse(text)
    except avro_diff.InvalidSchemaError as error:
        summary = f"the candidate is not valid Avro ({error}): the registry answers 422"
        return CheckResult(
            "SR-4", CANDIDATE_TITLE, Status.CRITICAL, summary, {"invalid": str(error)}, (),
            "invalid-schema",
        )  # fmt: skip
    subject = await _subject_for(ctx, candidate)
    if subject is None:
        what = "no subject for the candidate: give topic=<topic> (its -value subject is used)"
        return no_data("SR-4", CANDIDATE_TITLE, what, SOURCE)
    if subject not in await registry.subjects():
        summary = f"{subject} has no version yet: any valid schema registers as version 1"
        return CheckResult(
            "SR-4", CANDIDATE_TITLE, Status.OK, summary, {"subject": subject}, (SOURCE,)
        )
    latest, mode = await asyncio.gather(registry.version(subject), registry.compatibility(subject))
    problems = avro_diff.compatibility_problems(mode, candidate, avro_diff.parse(latest.schema))
    verdict = await registry.check_compatibility(subject, text)
    judge = "registry" if verdict is not None else "bot's Avro check"
    compatible = verdict if verdict is not None else not problems
    evidence: dict[str, Any] = {
        "subject": subject,
        "against_version": latest.version,
        "mode": mode,
        "compatible": compatible,
        "judged_by": judge,
        "problems": problems,
    }
    if compatible:
        summary = f"compatible with {subject} v{latest.version} under {mode} ({judge})"
        return CheckResult("SR-4", CANDIDATE_TITLE, Status.OK, summary, evidence, (SOURCE,))
    why = problems[0] if problems else "the registry gives no detail"
    summary = f"incompatible with {subject} v{latest.version} under {mode}: {why} ({judge})"
    return CheckResult(
        "SR-4", CANDIDATE_TITLE, Status.CRITICAL, summary, evidence, (SOURCE,), "incompatible"
    )


# -- SR-5: registry tables ------------------------------------------------------------------
TABLES_TITLE = "Registry tables present, row counts, orphaned versions"


@check("SR-5", TABLES_TITLE)
async def check_registry_tables(ctx: CheckContext) -> CheckResult:
    """The four ``schema_registry_*`` tables, their counts and versions without a schema."""
    tables = await metadata_of(ctx).registry_tables()
    evidence = {
        "present": list(tables.present),
        "missing": list(tables.missing),
        "counts": dict(tables.counts),
        "orphaned_versions": tables.orphaned_versions,
    }
    counts = ", ".join(
        f"{t.removeprefix('schema_registry_')} {n}" for t, n in tables.counts.items()
    )
    if tables.missing:
        status, cause = Status.CRITICAL, "registry-database"
        summary = f"missing tables: {', '.join(tables.missing)}"
    elif tables.orphaned_versions:
        status, cause = Status.WARNING, "registry-database"
        summary = f"{tables.orphaned_versions} versions point at no schema; {counts}"
    else:
        status, cause, summary = Status.OK, None, f"all {len(tables.present)} tables; {counts}"
    return CheckResult("SR-5", TABLES_TITLE, status, summary, evidence, ("metadata-db",), cause)


# -- SR-6: cache health (runbook profile only) ----------------------------------------------
CACHE_TITLE = "Schema cache miss rate over 5 min"


@check("SR-6", CACHE_TITLE, profiles=("runbook",))
async def check_cache(ctx: CheckContext) -> CheckResult:
    """``schema_cache_misses_total`` against hits plus misses; upstream has no such metric."""
    prometheus = prometheus_of(ctx)
    hits_name = ctx.profile.metric("schema_cache_hits_total")
    misses_name = ctx.profile.metric("schema_cache_misses_total")
    hits, misses = await asyncio.gather(
        prometheus.instant(f"sum(rate({hits_name}[5m]))"),
        prometheus.instant(f"sum(rate({misses_name}[5m]))"),
    )
    if not hits or not misses:
        return no_data("SR-6", CACHE_TITLE, f"{hits_name}/{misses_name} have no series")
    lookups = hits[0].value + misses[0].value
    if lookups <= 0:
        return no_data("SR-6", CACHE_TITLE, "no schema cache lookups in the last 5 min")
    miss_rate = misses[0].value / lookups
    evidence = {"miss_rate": round(miss_rate, 4), "lookups_per_s": round(lookups, 2)}
    status = Status.WARNING if miss_rate > CACHE_MISS_WARNING else Status.OK
    summary = f"{miss_rate:.0%} of {lookups:.0f} lookups/s miss the cache"
    cause = "cache" if status is Status.WARNING else None
    return CheckResult("SR-6", CACHE_TITLE, status, summary, evidence, ("prometheus",), cause)


# -- actions --------------------------------------------------------------------------------
def mode_change_risk(new_mode: str) -> Risk:
    """SR-A1's risk for a given new mode: ``NONE`` needs a second approver."""
    return Risk.HIGH if new_mode.upper() == DANGEROUS_MODE else Risk.MEDIUM


def guard_mode_change(results: Results, ctx: CheckContext) -> tuple[bool, str | None]:
    """SR-A1: the confirmation shows current → new, so SR-2 must have read the current mode."""
    modes = results.get("SR-2")
    if modes is None or modes.status is Status.UNKNOWN:
        return False, "SR-2 could not read the current mode, so current → new cannot be shown"
    return True, None


VERIFICATION = ("SR-1", "SR-3", "SR-4")  # SR-V: errors fall, retrieval and compatibility work
ACTIONS = (
    ActionSpec("SR-A1", "Change a subject's compatibility mode (to NONE: two approvers)",
               Risk.MEDIUM, guard_mode_change, VERIFICATION),
    ActionSpec("SR-A2", "Clear the registry cache (rollout restart of the registry)",
               Risk.MEDIUM, always_allowed, VERIFICATION),
)  # fmt: skip
GUIDANCE = (
    "Fix the schema rather than the mode: SR-3 shows what changed; give a new field a "
    "default, and keep a field that old readers require (or give it a default first).",
    "Force-register only when you control every producer and consumer: set the subject to "
    "NONE (SR-A1, two approvers), register, restore the previous mode, redeploy consumers.",
    "Deleting and re-registering a subject loses its history (upstream deletes for good; "
    "?permanent=true is ignored): back up every version first. The bot offers no button.",
)
_CAUSE_LABELS = {
    "incompatible": "incompatible schema registration for {subjects}",
    "registration": "failed schema registrations for {subjects}",
    "not-found": "schema not found for {subjects}",
    "database": "registry database errors",
    "invalid-schema": "invalid schema submitted for {subjects}",
}


def probable_cause(results: Results) -> str | None:
    """SR-1's error kind and subjects, else the first other failing check's cause."""
    errors = results.get("SR-1")
    if failing(errors) and errors is not None:
        subjects = ", ".join(errors.evidence.get("subjects", {})) or "an unnamed subject"
        template = _CAUSE_LABELS.get(errors.cause or "", "schema registry errors ({subjects})")
        return template.format(subjects=subjects)
    return first_failing_cause(results, ("SR-4", "SR-5", "SR-2", "SR-3", "SR-6"))


RUNBOOK = Runbook(
    id="schema-registry",
    title="Schema registry errors",
    file="schema-registry-errors.md",
    checks=(
        check_registry_errors,
        check_compatibility_modes,
        check_latest_changes,
        check_candidate_schema,
        check_registry_tables,
        check_cache,
    ),
    actions=ACTIONS,
    probable_cause=probable_cause,
    guidance=GUIDANCE,
)
