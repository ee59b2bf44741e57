"""What the agents' WAL log lines say (WAL-1): which partitions fail to recover and why.

Runbook wording and upstream's real messages (streamhouse-facts.md §6) both count. A line
that names no partition belongs to the last one named before it; a later recovery clears
earlier failures. Pure: reading the logs is the wal-recovery runbook's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.models import Status
from handlers.logs import EVIDENCE_LINES

_FAILURE = re.compile(
    r"recovery failed|failed to recover|corruption detected|file corrupted|crc mismatch"
    r"|corrupted wal record|failed to get writer|no space left|permission denied",
    re.IGNORECASE,
)
_SOFT = re.compile(r"partial record|failed to read stale wal|failed to scan", re.IGNORECASE)
_RECOVERED = re.compile(r"recovery complete|ready for writes|moved aside", re.IGNORECASE)
_PARTITION = (
    re.compile(r"/(?P<topic>[^/\s]+?)-(?P<partition>\d+)(?:-[^/\s]+)?\.wal"),
    re.compile(r"topic=(?P<topic>[^\s,]+)\s+partition=(?P<partition>\d+)"),
    re.compile(
        r"(?:partition|for)\s+(?P<topic>[A-Za-z][\w.]*(?:-[A-Za-z][\w.]*)*)-(?P<partition>\d+)"
    ),
)
_OFFSET = re.compile(r"offset (\d+)")
_CAUSES = (
    ("crc|corrupt", "corruption"),
    ("no space left", "disk-full"),
    ("permission", "permissions"),
)


def partition_in(line: str) -> str | None:
    """The ``topic-partition`` a log line names (path, fields or "partition orders-0")."""
    for pattern in _PARTITION:
        found = pattern.search(line)
        if found:
            return f"{found['topic']}-{found['partition']}"
    return None


@dataclass(frozen=True)
class WalLogFindings:
    """What one agent's WAL log lines say: failing partitions (None: unnamed) and lines."""

    failing: tuple[str | None, ...]
    recovered: tuple[str | None, ...]
    lines: tuple[str, ...]
    soft: tuple[str, ...]


def read_wal_lines(lines: Sequence[str]) -> WalLogFindings:
    """Follow one pod's WAL lines in order; a later recovery clears earlier failures.

    A line that names no partition belongs to the last one named before it.
    """
    failing: dict[str | None, list[str]] = {}
    recovered: set[str | None] = set()
    soft: list[str] = []
    current: str | None = None
    for line in (line for line in lines if "wal" in line.lower()):
        current = partition_in(line) or current
        if _RECOVERED.search(line):
            for key in [current] if current else list(failing):
                if failing.pop(key, None) is not None:
                    recovered.add(key)
        elif _FAILURE.search(line):
            failing.setdefault(current, []).append(line)
        elif _SOFT.search(line):
            soft.append(line)
    failures = tuple(line for found in failing.values() for line in found)
    return WalLogFindings(tuple(failing), tuple(recovered), failures, tuple(soft[-EVIDENCE_LINES:]))


def failing_partitions(findings: Mapping[str, WalLogFindings]) -> list[str]:
    """Every named partition whose WAL is failing, sorted."""
    return sorted({p for found in findings.values() for p in found.failing if p is not None})


def offsets_in(lines: Iterable[str]) -> list[int]:
    """The record offsets the lines mention, sorted."""
    return sorted({int(o) for line in lines for o in _OFFSET.findall(line)})


def cause_of_lines(lines: Iterable[str]) -> str | None:
    """The cause the failure lines name: corruption, disk-full or permissions."""
    text = " ".join(lines).lower()
    return next((label for words, label in _CAUSES if re.search(words, text)), None)


def wal_logs_verdict(
    findings: Mapping[str, WalLogFindings],
    failing: Mapping[str, WalLogFindings],
    named: Sequence[str],
    lines: Sequence[str],
    tail: int,
) -> tuple[Status, str]:
    """WAL-1's status and summary: failures, else recoveries, else warnings, else quiet."""
    if failing:
        where = ", ".join(named) or "an unnamed partition"
        return Status.CRITICAL, f"WAL recovery failing for {where} on {', '.join(failing)}: " + (
            lines[-1][:120] if lines else ""
        )
    recovered = sorted({str(p) for f in findings.values() for p in f.recovered})
    if recovered:
        return Status.WARNING, f"WAL recovered after errors for {', '.join(recovered)}"
    soft = [line for f in findings.values() for line in f.soft]
    if soft:
        return Status.WARNING, f"{len(soft)} WAL warning(s), no failure: {soft[-1][:120]}"
    return Status.OK, f"no WAL errors in the last {tail} lines of {len(findings)} agents"
