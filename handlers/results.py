"""Building check results and reading them back: for probable causes and guard rails."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.models import CheckResult, Status
from handlers.base import Results


@dataclass(frozen=True)
class TitledResults:
    """Builds a runbook's check results, each titled by its check id."""

    titles: Mapping[str, str]

    def __call__(
        self,
        check_id: str,
        status: Status,
        summary: str,
        evidence: Mapping[str, object],
        sources: Sequence[str],
        cause: str | None = None,
    ) -> CheckResult:
        """A result of ``check_id`` with the runbook's title for it."""
        title = self.titles[check_id]
        return CheckResult(check_id, title, status, summary, evidence, tuple(sources), cause)


def failing(result: CheckResult | None) -> bool:
    """Whether a check ran and found a problem (a warning or worse)."""
    return result is not None and result.status in (Status.WARNING, Status.CRITICAL)


def cause_of(results: Results, check_id: str) -> str | None:
    """The cause ``check_id`` named, if it ran and named one."""
    result = results.get(check_id)
    return result.cause if result is not None else None


def first_failing_cause(results: Results, check_ids: Sequence[str]) -> str | None:
    """The cause of the first check in ``check_ids`` that is failing and names one."""
    for check_id in check_ids:
        result = results.get(check_id)
        if failing(result) and result is not None and result.cause:
            return result.cause
    return None


def first_cause_named(results: Results, order: Sequence[str]) -> str | None:
    """The first cause label in ``order`` that any check named."""
    labels = {result.cause for result in results.values() if result.cause}
    return next((label for label in order if label in labels), None)
