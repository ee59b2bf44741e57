"""``diagnose``: the words after it (Slack or CLI) → which runbooks, which target → a run.

Shared by the Slack listener and the CLI so both understand exactly the same input:
``diagnose [runbook|all] [topic=… partition=… agent=…]``, with short aliases and a
did-you-mean for typos.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from bot.commands import Invocation
from bot.engine import DEFAULT_DEADLINE_S, OnCheck, run_all, run_runbook
from bot.errors import UsageError
from bot.models import Diagnosis, Triage
from bot.profiles import Profile
from bot.sources.base import Sources
from handlers.base import CheckContext, Runbook, Target
from handlers.registry import ORDER, RUNBOOKS

ALL = "all"
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "cb": "circuit-breaker",
        "breaker": "circuit-breaker",
        "circuit-breaker-open": "circuit-breaker",
        "throttling": "s3-throttling",
        "high-s3-throttling-rate": "s3-throttling",
        "wal": "wal-recovery",
        "wal-recovery-failures": "wal-recovery",
        "leases": "lease-conflicts",
        "lease": "lease-conflicts",
        "partition-lease-conflicts": "lease-conflicts",
        "schema": "schema-registry",
        "schema-registry-errors": "schema-registry",
        "resources": "resource-pressure",
        "memory": "resource-pressure",
        "disk": "resource-pressure",
    }
)
TARGET_KEYS = ("topic", "partition", "agent")


@dataclass(frozen=True)
class DiagnoseRequest:
    """What to diagnose: one runbook or all of them, about an optional target."""

    runbooks: tuple[Runbook, ...]
    target: Target
    everything: bool

    @property
    def label(self) -> str:
        """``all`` or the runbook id, for messages."""
        return ALL if self.everything else self.runbooks[0].id


def parse_diagnose(invocation: Invocation) -> DiagnoseRequest:
    """``diagnose`` words → a request; ``UsageError`` with a hint for anything unclear."""
    if len(invocation.args) > 1:
        raise UsageError(
            "Diagnose one runbook or `all` at a time.",
            hint="Example: `/streamhouse diagnose leases topic=orders partition=1`.",
        )
    name = invocation.args[0].lower() if invocation.args else ALL
    target = parse_target(invocation.options)
    if name == ALL:
        return DiagnoseRequest(ORDER, target, everything=True)
    return DiagnoseRequest((resolve_runbook(name),), target, everything=False)


def resolve_runbook(name: str) -> Runbook:
    """A runbook by id or alias; a typo gets the closest name as a suggestion."""
    runbook_id = ALIASES.get(name, name)
    if runbook_id in RUNBOOKS:
        return RUNBOOKS[runbook_id]
    known = sorted({*RUNBOOKS, *ALIASES, ALL})
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"Did you mean `{close[0]}`?" if close else None
    listing = ", ".join(f"`{rid}`" for rid in RUNBOOKS)
    raise UsageError(f"`{name}` is not a runbook I know. Runbooks: {listing}, or `all`.", hint=hint)


def parse_target(options: Mapping[str, str]) -> Target:
    """``topic=… partition=… agent=…`` → a ``Target``; unknown keys and bad numbers refused."""
    unknown = sorted(set(options) - set(TARGET_KEYS))
    if unknown:
        raise UsageError(
            f"I don't know the option `{unknown[0]}=`.",
            hint="Options: `topic=`, `partition=`, `agent=`.",
        )
    partition: int | None = None
    if "partition" in options:
        raw = options["partition"]
        if not raw.isdigit():
            raise UsageError(
                f"`partition={raw}` is not a partition number.", hint="Use e.g. `partition=0`."
            )
        partition = int(raw)
    return Target(
        topic=options.get("topic") or None, partition=partition, agent=options.get("agent") or None
    )


async def run_request(
    request: DiagnoseRequest,
    sources: Sources,
    profile: Profile,
    *,
    runbook_base_url: str,
    deadline_s: float = DEFAULT_DEADLINE_S,
    on_check: OnCheck | None = None,
) -> Diagnosis | Triage:
    """Run one runbook (a ``Diagnosis``) or all of them (a ``Triage``)."""
    ctx = CheckContext(sources, profile, request.target, datetime.now(UTC))
    if request.everything:
        return await run_all(
            request.runbooks,
            ctx,
            runbook_base_url=runbook_base_url,
            deadline_s=deadline_s,
            on_check=on_check,
        )
    return await run_runbook(
        request.runbooks[0],
        ctx,
        runbook_base_url=runbook_base_url,
        deadline_s=deadline_s,
        on_check=on_check,
    )


def runbook_ids(runbooks: Sequence[Runbook]) -> list[str]:
    """The ids of ``runbooks``, in order."""
    return [runbook.id for runbook in runbooks]
