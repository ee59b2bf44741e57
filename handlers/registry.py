"""Every runbook the bot automates, by id. Registration is explicit: import, then list.

A duplicate runbook, check or action id raises at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from handlers import (
    circuit_breaker,
    lease_conflicts,
    resource_pressure,
    s3_throttling,
    schema_registry,
    wal_recovery,
)
from handlers.base import Runbook

ORDER = (
    circuit_breaker.RUNBOOK,
    s3_throttling.RUNBOOK,
    wal_recovery.RUNBOOK,
    lease_conflicts.RUNBOOK,
    schema_registry.RUNBOOK,
    resource_pressure.RUNBOOK,
)


def _index(runbooks: tuple[Runbook, ...]) -> Mapping[str, Runbook]:
    seen_runbooks: dict[str, Runbook] = {}
    seen_steps: set[str] = set()
    for runbook in runbooks:
        if runbook.id in seen_runbooks:
            raise ValueError(f"runbook id {runbook.id!r} is registered twice")
        seen_runbooks[runbook.id] = runbook
        for step in [c.id for c in runbook.checks] + [a.id for a in runbook.actions]:
            if step in seen_steps:
                raise ValueError(f"check/action id {step!r} is declared twice")
            seen_steps.add(step)
    return MappingProxyType(seen_runbooks)


RUNBOOKS: Mapping[str, Runbook] = _index(ORDER)
