"""Runbook and upstream spellings of the lab's metric families.

The series are derived in the runbooks' spelling (``lab.metrics.series``). The
``upstream`` profile spells Streamhouse families as the current code registers them
(streamhouse-facts.md §1): a ``streamhouse_`` prefix, ``org_id`` as the first label, and
the code's label values: S3 ``error_type`` is only ``retry``/``failed``, the throttle
decision is ``allow``, breaker transitions carry ``from_state``/``to_state``. Some
families are renamed (``producer_messages_sent_total`` → ``streamhouse_producer_records_total``,
``segment_buffer_size_bytes`` → ``streamhouse_segment_buffer_records``, counted in
records), some exist on one side only (schema cache hits/misses only in the runbooks,
``streamhouse_schema_registrations_total`` only upstream). cAdvisor, node-exporter and
kube-state-metrics families read the same in both profiles.

When the world is not instrumented, Streamhouse families keep their ``# HELP``/``# TYPE``
lines and lose every sample, as upstream Streamhouse does today.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lab.metrics.series import AVG_RECORD_BYTES, Family, Labels, Sample
from lab.world import Profile

# One series becomes zero or more series, each carrying a share of the value.
Relabel = Callable[[Labels], list[tuple[Labels, float]]]
PREFIX = "streamhouse_"
# Of three attempts per segment upload, the first two failures are retried.
_S3_ERROR_SHARES = (("retry", 2 / 3), ("failed", 1 / 3))
_TRANSITIONS = (("closed", "open"), ("open", "half_open"), ("half_open", "closed"))


@dataclass(frozen=True)
class Spelling:
    """How one family is spelled in each profile (``None``: the profile has no such family)."""

    runbook: str | None
    upstream: str | None
    relabel: Relabel | None = None  # upstream label values from the runbook ones


def _set(labels: Labels, key: str, value: str) -> Labels:
    return tuple((k, value if k == key else v) for k, v in labels)


def _insert_after(labels: Labels, key: str, extra: Labels) -> Labels:
    index = next(i for i, (k, _) in enumerate(labels) if k == key) + 1
    return (*labels[:index], *extra, *labels[index:])


def _s3_error(labels: Labels) -> list[tuple[Labels, float]]:
    return [(_set(labels, "error_type", kind), share) for kind, share in _S3_ERROR_SHARES]


def _decision(labels: Labels) -> list[tuple[Labels, float]]:
    if ("decision", "allowed") in labels:
        labels = _set(labels, "decision", "allow")
    return [(labels, 1.0)]


def _transition(labels: Labels) -> list[tuple[Labels, float]]:
    share = 1 / len(_TRANSITIONS)
    return [
        (_insert_after(labels, "operation", (("from_state", a), ("to_state", b))), share)
        for a, b in _TRANSITIONS
    ]


def _to_records(labels: Labels) -> list[tuple[Labels, float]]:
    return [(labels, 1 / AVG_RECORD_BYTES)]


_EXCEPTIONS: dict[str, Spelling] = {
    "s3_errors_total": Spelling("s3_errors_total", PREFIX + "s3_errors_total", _s3_error),
    "throttle_decisions_total": Spelling(
        "throttle_decisions_total", PREFIX + "throttle_decisions_total", _decision
    ),
    "circuit_breaker_transitions_total": Spelling(
        "circuit_breaker_transitions_total",
        PREFIX + "circuit_breaker_transitions_total",
        _transition,
    ),
    "producer_messages_sent_total": Spelling(
        "producer_messages_sent_total", PREFIX + "producer_records_total"
    ),
    "segment_buffer_size_bytes": Spelling(
        "segment_buffer_size_bytes", PREFIX + "segment_buffer_records", _to_records
    ),
    "schema_cache_hits_total": Spelling("schema_cache_hits_total", None),
    "schema_cache_misses_total": Spelling("schema_cache_misses_total", None),
    "schema_registrations_total": Spelling(None, PREFIX + "schema_registrations_total"),
}


def spelling_of(family: Family) -> Spelling:
    """The spelling rule of a family (third-party exporters read the same everywhere)."""
    if family.source != "streamhouse":
        return Spelling(family.name, family.name)
    return _EXCEPTIONS.get(family.name, Spelling(family.name, PREFIX + family.name))


def metric_name(family: Family, profile: Profile) -> str | None:
    """The family's name in ``profile``, or ``None`` when that profile has no such family."""
    rule = spelling_of(family)
    return rule.runbook if profile == "runbook" else rule.upstream


def spell(
    families: Sequence[Family], profile: Profile, *, org_id: str, instrumented: bool = True
) -> list[Family]:
    """Families as ``profile`` exposes them; values must already be resolved (integrated)."""
    spelled = []
    for family in families:
        name = metric_name(family, profile)
        if name is None:
            continue
        renamed = Family(name, family.kind, family.help, family.source)
        if family.source == "streamhouse" and not instrumented:
            spelled.append(renamed)
        elif profile == "upstream" and family.source == "streamhouse":
            spelled.append(renamed.with_samples(_upstream_samples(family, org_id)))
        else:
            spelled.append(renamed.with_samples(family.samples))
    return spelled


def _upstream_samples(family: Family, org_id: str) -> list[Sample]:
    """Relabelled series with ``org_id`` first; series that end up identical are summed."""
    relabel = spelling_of(family).relabel
    merged: dict[Labels, float] = {}
    for sample in family.samples:
        pieces = relabel(sample.labels) if relabel else [(sample.labels, 1.0)]
        for labels, share in pieces:
            key = (("org_id", org_id), *labels)
            merged[key] = merged.get(key, 0.0) + sample.value * share
    return [Sample(labels, value) for labels, value in merged.items()]
