"""The bot's domain objects: what a diagnosis found, independent of Slack and of the CLI.

Handlers return these; the engine combines them; ``bot/render`` turns them into Block Kit
and the CLI into text or the JSON of the public contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

JSONValue = (
    Any  # evidence values must be JSON-serialisable (str, int, float, bool, None, lists, dicts)
)


class Status(StrEnum):
    """How a check, a runbook or the whole system looks."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        """Severity order used to combine statuses: ok < unknown < warning < critical.

        ``unknown`` outranks ``ok`` (no data is never healthy) and never hides a
        ``warning`` or ``critical`` found by another check.
        """
        return _RANK[self]

    @staticmethod
    def worst(statuses: Sequence[Status]) -> Status:
        """The most severe of ``statuses`` (``unknown`` for none: nothing was checked)."""
        return max(statuses, key=lambda status: status.rank, default=Status.UNKNOWN)


_RANK = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.CRITICAL: 3}


class Risk(StrEnum):
    """How dangerous an action is; ``high`` needs two different people."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True)
class CheckResult:
    """One investigation step's verdict, with the evidence behind it.

    ``summary`` is one line a human reads first; ``evidence`` is structured and
    JSON-serialisable (numbers, names, short log lines); ``sources`` names what was read
    (e.g. ``prometheus``, ``kubernetes:logs``, ``kubernetes:kubelet-stats`` when a fallback
    was used); ``cause`` is a short machine label when the check classifies a cause
    (e.g. CB-2 → ``throttling``).
    """

    id: str
    title: str
    status: Status
    summary: str
    evidence: Mapping[str, JSONValue] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    cause: str | None = None

    def to_json(self) -> dict[str, JSONValue]:
        """The check as the public JSON contract spells it."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class ActionOption:
    """A remediation the runbook offers, with its guard rails evaluated on the evidence."""

    id: str
    title: str
    risk: Risk
    allowed: bool
    blocked_reason: str | None = None
    verification: tuple[str, ...] = ()

    def to_json(self) -> dict[str, JSONValue]:
        """The action as the public JSON contract spells it."""
        return {
            "id": self.id,
            "title": self.title,
            "risk": self.risk.value,
            "allowed": self.allowed,
            "blocked_reason": self.blocked_reason,
        }


@dataclass(frozen=True)
class Diagnosis:
    """A runbook's investigation: every check, the overall status and the probable cause."""

    runbook: str
    title: str
    status: Status
    summary: str
    checks: tuple[CheckResult, ...]
    actions: tuple[ActionOption, ...]
    probable_cause: str | None
    runbook_url: str
    started_at: datetime
    finished_at: datetime
    guidance: tuple[str, ...] = ()

    def check(self, check_id: str) -> CheckResult | None:
        """The result of ``check_id``, if this diagnosis ran it."""
        return next((check for check in self.checks if check.id == check_id), None)

    def to_json(self) -> dict[str, JSONValue]:
        """``{"runbook", "status", "summary", "checks", "actions"}`` as in ARCHITECTURE.md."""
        return {
            "runbook": self.runbook,
            "status": self.status.value,
            "summary": self.summary,
            "probable_cause": self.probable_cause,
            "checks": [check.to_json() for check in self.checks],
            "actions": [action.to_json() for action in self.actions],
        }


@dataclass(frozen=True)
class Triage:
    """``diagnose all``: every runbook ranked, with the probable root and its consequences."""

    status: Status
    summary: str
    diagnoses: tuple[Diagnosis, ...]  # most severe first
    root: str | None
    consequences: tuple[str, ...]

    def to_json(self) -> dict[str, JSONValue]:
        """Every runbook's diagnosis plus the root-cause reading."""
        return {
            "status": self.status.value,
            "summary": self.summary,
            "root_cause": self.root,
            "consequences": list(self.consequences),
            "runbooks": [diagnosis.to_json() for diagnosis in self.diagnoses],
        }
