"""Reading and matching agent logs, shared by the runbook checks.

Logs come through the Kubernetes API (``ctx.sources.kubernetes.logs``), one call per agent
pod, all at once. A pod whose log cannot be read is reported, not fatal; only when no
pod's log can be read does the ``SourceError`` reach the check (and make it ``unknown``).

Patterns given as strings match case-insensitively, because the runbooks grep with ``-i``
and the real messages (streamhouse-facts.md §6) differ from the runbooks' in case.
Evidence lines are cut to ``LINE_WIDTH`` characters and prefixed with their pod.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bot.sources.base import Kubernetes, SourceError, SourceNotConfigured, Sources

LOGS_SOURCE = "kubernetes:logs"
LINE_WIDTH = 200
EVIDENCE_LINES = 5

Pattern = str | re.Pattern[str]


def compiled(pattern: Pattern) -> re.Pattern[str]:
    """``pattern`` as a regex; strings compile case-insensitively."""
    return pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, re.IGNORECASE)


def cut(line: str, width: int = LINE_WIDTH) -> str:
    """``line`` without surrounding blanks, shortened to ``width`` characters with "…"."""
    line = line.strip()
    return line if len(line) <= width else line[: width - 1] + "…"


def matching_lines(lines: Iterable[str], pattern: Pattern, limit: int | None = None) -> list[str]:
    """The lines that match ``pattern``, oldest first; with ``limit``, only the newest ones."""
    regex = compiled(pattern)
    found = [line for line in lines if regex.search(line)]
    return found[-limit:] if limit is not None and limit > 0 else found


def require_kubernetes(sources: Sources) -> Kubernetes:
    """The Kubernetes source, or ``SourceNotConfigured`` when the bot has none."""
    if sources.kubernetes is None:
        raise SourceNotConfigured("kubernetes", "KUBERNETES_API_URL is not set")
    return sources.kubernetes


@dataclass(frozen=True)
class PodLogs:
    """Log lines per agent pod (oldest first) and the pods whose log could not be read."""

    lines: Mapping[str, Sequence[str]] = field(default_factory=dict)
    unreadable: Mapping[str, str] = field(default_factory=dict)

    @property
    def pods(self) -> tuple[str, ...]:
        """The pods whose log was read."""
        return tuple(self.lines)

    def matching(self, pattern: Pattern) -> dict[str, list[str]]:
        """Per pod, the lines matching ``pattern`` (pods without a match left out)."""
        found = {pod: matching_lines(lines, pattern) for pod, lines in self.lines.items()}
        return {pod: lines for pod, lines in found.items() if lines}

    def count(self, pattern: Pattern) -> int:
        """How many lines of all pods match ``pattern``."""
        return sum(len(lines) for lines in self.matching(pattern).values())

    def evidence(self, pattern: Pattern, limit: int = EVIDENCE_LINES) -> list[str]:
        """The newest matching lines over all pods, as ``"pod: line"``, cut for evidence."""
        tagged = [
            f"{pod}: {cut(line)}"
            for pod, lines in self.matching(pattern).items()
            for line in lines[-limit:]
        ]
        return tagged[-limit:]

    def problems(self) -> dict[str, dict[str, str]]:
        """``{"logs_unreadable": {pod: reason}}`` for evidence, or ``{}`` when all were read."""
        return {"logs_unreadable": dict(self.unreadable)} if self.unreadable else {}


async def agent_logs(
    sources: Sources, *, tail: int = 200, since_seconds: int | None = None
) -> PodLogs:
    """Every agent pod's log (``tail`` lines, optionally only the last ``since_seconds``)."""
    kubernetes = require_kubernetes(sources)
    pods = [pod.name for pod in await kubernetes.agent_pods()]
    answers = await asyncio.gather(
        *(kubernetes.logs(pod, tail=tail, since_seconds=since_seconds) for pod in pods),
        return_exceptions=True,
    )
    lines: dict[str, list[str]] = {}
    unreadable: dict[str, str] = {}
    for pod, answer in zip(pods, answers, strict=True):
        if isinstance(answer, SourceError):
            unreadable[pod] = answer.detail
        elif isinstance(answer, BaseException):
            raise answer
        else:
            lines[pod] = answer
    if pods and not lines:
        first = next(a for a in answers if isinstance(a, SourceError))
        raise first
    return PodLogs(lines, unreadable)


async def agent_logs_or_note(
    sources: Sources, *, tail: int = 200, since_seconds: int | None = None
) -> PodLogs:
    """Like ``agent_logs``, for checks whose logs are a supplement: a failure to read any
    log becomes ``unreadable["*"]`` (the reason) instead of an exception."""
    try:
        return await agent_logs(sources, tail=tail, since_seconds=since_seconds)
    except SourceError as error:
        return PodLogs(unreadable={"*": f"{error.source}: {error.detail}"})
