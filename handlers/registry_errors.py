"""The schema registry's errors (SR-1): read from its metrics and its pods' logs, and
classified by kind and by the subject and version they name.

Kinds, tried in order: ``incompatible``, ``registration``, ``not-found``, ``database``,
``invalid-schema``, else ``other``. Upstream counts failed registrations only per subject
(``schema_registrations_total`` by ``subject``/``result``), without an error type.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from bot.sources.base import SourceError
from handlers.base import CheckContext
from handlers.logs import matching_lines
from handlers.promql import prometheus_of

ERROR_LOG = r"error|failed"
# Error kinds in the registry's log lines and metric labels → the check's cause label.
_KINDS = (
    ("incompatible", re.compile(r"incompatible|compatibility check failed", re.IGNORECASE)),
    ("registration", re.compile(r"registration", re.IGNORECASE)),
    ("not-found", re.compile(r"not[ _]found", re.IGNORECASE)),
    ("database", re.compile(r"database|connection", re.IGNORECASE)),
    ("invalid-schema", re.compile(r"invalid", re.IGNORECASE)),
)
_SUBJECT = re.compile(r"subject[= ]+['\"]?(?P<name>[\w.-]+)", re.IGNORECASE)
_VERSION = re.compile(r"version[= ]+(?P<number>\d+)", re.IGNORECASE)


def error_kind(text: str) -> str:
    """The kind of a registry error line or metric label value (``other`` if unknown)."""
    return next((kind for kind, pattern in _KINDS if pattern.search(text)), "other")


def failing_subjects_in(lines: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Subjects named by error lines, with the latest version mentioned and the error kinds."""
    found: dict[str, dict[str, Any]] = {}
    for line in lines:
        if not (named := _SUBJECT.search(line)):
            continue
        entry = found.setdefault(named["name"], {"version": None, "kinds": []})
        if version := _VERSION.search(line):
            entry["version"] = int(version["number"])
        if (kind := error_kind(line)) not in entry["kinds"]:
            entry["kinds"].append(kind)
    return found


async def registry_error_lines(ctx: CheckContext, tail: int) -> tuple[list[str], str | None]:
    """Error lines in the registry pods' last ``tail`` log lines, or why they could not be read."""
    if ctx.sources.kubernetes is None:
        return [], "kubernetes is not configured"
    k8s = ctx.sources.kubernetes
    try:
        pods = await k8s.registry_pods()
        logs = await asyncio.gather(*(k8s.logs(pod.name, tail=tail) for pod in pods))
    except SourceError as error:
        return [], f"{error.source}: {error.detail}"
    return [line for lines in logs for line in matching_lines(lines, ERROR_LOG)], None


async def error_rates(ctx: CheckContext) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Errors per second by type, and the subjects with failed registrations (upstream)."""
    prometheus = prometheus_of(ctx)
    errors = ctx.profile.metric("schema_registry_errors_total")
    by_type = await prometheus.instant(f"sum by (type) (rate({errors}[5m]))")
    registrations = ctx.profile.metric("schema_registrations_total")
    failed = await prometheus.instant(
        f'sum by (subject, result) (rate({registrations}{{result!="success"}}[5m])) > 0'
    )
    rates = {sample.labels.get("type", "?"): sample.value for sample in by_type}
    if failed and not by_type:  # registration failures counted only per subject
        rates["registration"] = sum(sample.value for sample in failed)
    kinds: dict[str, list[str]] = {}
    for sample in sorted(failed, key=lambda sample: -sample.value):
        kind = error_kind(sample.labels.get("result", ""))  # "incompatible" or "error"
        kinds.setdefault(sample.labels.get("subject", "?"), []).append(kind)
    return rates, kinds
