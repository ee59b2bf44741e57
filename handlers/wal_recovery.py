"""Runbook ``wal-recovery-failures.md`` (matrix §3): an agent cannot recover its WAL.

Checks WAL-1..WAL-5, actions WAL-A1..WAL-A3, guidance WAL-G; verification (WAL-V) re-runs
WAL-4, WAL-1 and WAL-2. Thresholds, from the runbook:

- ``LOG_TAIL_LINES`` = 200: WAL-1 reads each agent's last 200 lines (``grep -i wal``).
- ``WAL_TOTAL_CRITICAL_BYTES`` = 10 GiB of WAL on one agent is critical (WAL-2); a file
  ``WAL_OUTLIER_FACTOR`` = 10 times the median of the agent's other WALs (and over
  ``WAL_OUTLIER_MIN_BYTES`` = 100 MiB) is "far larger than the rest" (warning).
- ``FREE_CRITICAL_RATIO`` = 10 % free on the WAL volume is critical (WAL-3).
- ``RESTART_WINDOW`` = 1 h: restarts in that window count (WAL-4).
- ``LOSS_WINDOW_CRITICAL_S`` = 60 s of unflushed data is critical (WAL-5).

Sources, in both profiles unless noted. WAL-2 lists the WAL directory with ``exec ls -l``
(``WAL_DIR``, the org sub-directory upstream); where RBAC forbids exec it falls back to
the ``wal_size_bytes`` gauge (an agent exporting its segment-buffer gauge but no WAL
gauge has no WAL backlog), then to the kubelet's volume stats, which show the volume but
not the files. WAL-5 takes the last upload from the ``segments`` table upstream
(authoritative) and from the newest object under ``<topic>/partition-<n>/`` in the
runbook profile, and the WAL's modification time from the listing; without it the window
is an upper bound (now - last upload). WAL-3 reads free space from the kubelet's volume
stats and the claims' phase; it does not test permissions (that needs exec).
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.models import CheckResult, Risk, Status
from bot.sources.base import (
    EventInfo,
    Kubernetes,
    MetadataDb,
    ObjectStore,
    PodInfo,
    Prometheus,
    SourceError,
    SourceNotConfigured,
)
from handlers.base import ActionSpec, CheckContext, Results, Runbook, always_allowed, check
from handlers.logs import EVIDENCE_LINES, LOGS_SOURCE, PodLogs, agent_logs, cut, require_kubernetes

LOG_TAIL_LINES = 200
GIB, MIB = 1024**3, 1024**2
WAL_TOTAL_CRITICAL_BYTES = 10 * GIB
WAL_OUTLIER_FACTOR = 10.0
WAL_OUTLIER_MIN_BYTES = 100 * MIB
FREE_CRITICAL_RATIO = 0.10
RESTART_WINDOW = timedelta(hours=1)
LOSS_WINDOW_CRITICAL_S = 60.0
DEFAULT_WAL_DIR = "/data/wal"
EXEC, PROMETHEUS, KUBELET = "kubernetes:exec", "prometheus", "kubernetes:kubelet-stats"

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
_WAL_NAME = re.compile(r"^(?P<topic>.+?)-(?P<partition>\d+)(?:-.+)?\.wal(?P<suffix>\..+)?$")
_MONTHS = {
    month: number
    for number, month in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_CAUSES = (
    ("crc|corrupt", "corruption"),
    ("no space left", "disk-full"),
    ("permission", "permissions"),
)


TITLES = {
    "WAL-1": "WAL errors in agent logs",
    "WAL-2": "WAL files and sizes",
    "WAL-3": "WAL volume free space and claim",
    "WAL-4": "Recent restarts, kills and node pressure",
    "WAL-5": "Data-loss window per partition",
}


def _result(
    check_id: str,
    status: Status,
    summary: str,
    evidence: Mapping[str, object],
    sources: Sequence[str],
    cause: str | None = None,
) -> CheckResult:
    return CheckResult(check_id, TITLES[check_id], status, summary, evidence, tuple(sources), cause)


# -- sources ------------------------------------------------------------------------------
def kubernetes_of(ctx: CheckContext) -> Kubernetes:
    """The Kubernetes source, or ``SourceNotConfigured``."""
    return require_kubernetes(ctx.sources)


def prometheus_of(ctx: CheckContext) -> Prometheus:
    """The Prometheus source, or ``SourceNotConfigured``."""
    if ctx.sources.prometheus is None:
        raise SourceNotConfigured("prometheus", "PROMETHEUS_URL is not set")
    return ctx.sources.prometheus


def _metadata_of(ctx: CheckContext) -> MetadataDb:
    if ctx.sources.metadata is None:
        raise SourceNotConfigured("metadata", "STREAMHOUSE_DATABASE_URL is not set")
    return ctx.sources.metadata


def _objects_of(ctx: CheckContext) -> ObjectStore:
    if ctx.sources.objects is None:
        raise SourceNotConfigured("s3", "S3_BUCKET is not set")
    return ctx.sources.objects


def size_text(size: float) -> str:
    """Bytes for humans: ``12.0 GiB``, ``180 MiB``."""
    return f"{size / GIB:.1f} GiB" if size >= GIB else f"{size / MIB:.0f} MiB"


# -- WAL-1: log lines ---------------------------------------------------------------------
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


async def wal_log_findings(ctx: CheckContext) -> tuple[dict[str, WalLogFindings], PodLogs]:
    """WAL findings per agent pod, from the last ``LOG_TAIL_LINES`` lines of each."""
    logs = await agent_logs(ctx.sources, tail=LOG_TAIL_LINES)
    return {pod: read_wal_lines(lines) for pod, lines in logs.lines.items()}, logs


def failing_partitions(findings: Mapping[str, WalLogFindings]) -> list[str]:
    """Every named partition whose WAL is failing, sorted."""
    return sorted({p for found in findings.values() for p in found.failing if p is not None})


def _cause_of(lines: Iterable[str]) -> str | None:
    text = " ".join(lines).lower()
    return next((label for words, label in _CAUSES if re.search(words, text)), None)


@check("WAL-1", TITLES["WAL-1"])
async def check_wal_errors(ctx: CheckContext) -> CheckResult:
    """Recovery failures and CRC mismatches per partition (runbook and upstream wording)."""
    findings, logs = await wal_log_findings(ctx)
    failing = {pod: f for pod, f in findings.items() if f.failing}
    lines = [f"{pod}: {cut(line)}" for pod, f in failing.items() for line in f.lines]
    lines = lines[-EVIDENCE_LINES:]
    named = failing_partitions(findings)
    evidence = {
        "failing_partitions": named,
        "pods": {pod: [p or "unnamed" for p in f.failing] for pod, f in failing.items()},
        "offsets": sorted({int(o) for line in lines for o in _OFFSET.findall(line)}),
        "lines": lines,
        **logs.problems(),
    }
    status, summary = _verdict_for_logs(findings, failing, named, lines)
    cause = _cause_of(lines) or ("wal-failure" if failing else None)
    return _result("WAL-1", status, summary, evidence, [LOGS_SOURCE], cause)


def _verdict_for_logs(
    findings: Mapping[str, WalLogFindings],
    failing: Mapping[str, WalLogFindings],
    named: Sequence[str],
    lines: Sequence[str],
) -> tuple[Status, str]:
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
    return Status.OK, f"no WAL errors in the last {LOG_TAIL_LINES} lines of {len(findings)} agents"


# -- WAL-2: the WAL files -----------------------------------------------------------------
@dataclass(frozen=True)
class WalFileSeen:
    """A WAL file (or a partition's WAL gauge): size, and mtime when a listing showed it."""

    name: str
    size_bytes: int
    topic: str | None = None
    partition: int | None = None
    modified_at: datetime | None = None
    mtime_slack_s: int = 0  # ``ls -l`` shows minutes: the true mtime is up to 59 s later

    @property
    def key(self) -> str | None:
        """``topic-partition``, when the name says it."""
        return f"{self.topic}-{self.partition}" if self.topic is not None else None


@dataclass(frozen=True)
class PodWal:
    """One agent's WAL as far as it could be seen, and through which source."""

    pod: str
    source: str  # EXEC, PROMETHEUS, KUBELET or "none"
    files: tuple[WalFileSeen, ...] | None  # None: the files are not visible
    volume_used_bytes: int | None = None
    note: str | None = None

    @property
    def total_bytes(self) -> int | None:
        """The WAL's total size, when the files are visible."""
        return None if self.files is None else sum(f.size_bytes for f in self.files)


def parse_ls(output: str, now: datetime) -> tuple[list[WalFileSeen], list[str]]:
    """``ls -l`` (plain or ``--time-style=+%s``) → (files, sub-directories)."""
    files, directories = [], []
    for line in output.splitlines():
        tokens = line.split()
        if len(tokens) < 7 or line.startswith("total"):
            continue
        if tokens[0].startswith("d"):
            directories.append(tokens[-1])
            continue
        modified, slack = _ls_time(tokens[5:-1], now)
        files.append(_wal_file(tokens[-1], int(tokens[4]), modified, slack))
    return files, directories


def _ls_time(fields: Sequence[str], now: datetime) -> tuple[datetime | None, int]:
    if len(fields) == 1 and fields[0].isdigit():
        return datetime.fromtimestamp(int(fields[0]), UTC), 0
    if len(fields) != 3 or fields[0] not in _MONTHS:
        return None, 0
    month, day, clock = _MONTHS[fields[0]], int(fields[1]), fields[2]
    if ":" not in clock:
        return datetime(int(clock), month, day, tzinfo=UTC), 86_399
    hour, minute = (int(part) for part in clock.split(":"))
    stamp = datetime(now.year, month, day, hour, minute, tzinfo=UTC)
    if stamp > now + timedelta(days=1):  # ``ls`` omits the year: it was last year
        stamp = stamp.replace(year=now.year - 1)
    return stamp, 59


def _wal_file(name: str, size: int, modified: datetime | None, slack: int) -> WalFileSeen:
    found = _WAL_NAME.match(name)
    topic = found["topic"] if found else None
    partition = int(found["partition"]) if found else None
    return WalFileSeen(name, size, topic, partition, modified, slack)


async def _list_by_exec(kube: Kubernetes, pod: PodInfo, now: datetime) -> PodWal | str:
    """The pod's WAL directory (one level of sub-directories), or why exec failed."""
    root = pod.env.get("WAL_DIR", DEFAULT_WAL_DIR).rstrip("/")
    command = ["ls", "-l", "--time-style=+%s"]
    try:
        files, directories = parse_ls(await kube.exec(pod.name, [*command, root]), now)
        for directory in directories:
            more, _ = parse_ls(await kube.exec(pod.name, [*command, f"{root}/{directory}"]), now)
            files.extend(more)
    except SourceError as error:
        return error.detail
    return PodWal(pod.name, EXEC, tuple(f for f in files if ".wal" in f.name))


async def _wal_by_metrics(ctx: CheckContext) -> dict[str, list[WalFileSeen]] | None:
    """WAL gauges per pod for pods whose write path is instrumented; None if unreadable."""
    wal_family = ctx.profile.metric("wal_size_bytes")
    buffer_family = ctx.profile.metric("segment_buffer_size_bytes")
    if ctx.sources.prometheus is None or wal_family is None or buffer_family is None:
        return None
    try:
        instrumented = await ctx.sources.prometheus.instant(f"count by (pod) ({buffer_family})")
        sizes = await ctx.sources.prometheus.instant(wal_family)
    except SourceError:
        return None
    by_pod: dict[str, list[WalFileSeen]] = {s.labels.get("pod", ""): [] for s in instrumented}
    for sample in sizes:
        topic, partition = sample.labels.get("topic"), sample.labels.get("partition", "")
        name = f"{topic}-{partition}"
        seen = WalFileSeen(name, int(sample.value), topic, int(partition or 0))
        by_pod.setdefault(sample.labels.get("pod", ""), []).append(seen)
    return by_pod


async def pod_volume(kube: Kubernetes, pod: PodInfo) -> tuple[int, int] | str:
    """(used, capacity) bytes of the pod's WAL volume from kubelet stats, or why not."""
    if pod.node is None:
        return "the pod is not scheduled on a node"
    try:
        stats = [s for s in await kube.volume_stats(pod.node) if s.pod == pod.name]
    except SourceError as error:
        return error.detail
    if not stats:
        return f"the kubelet of {pod.node} reports no volume for this pod"
    wal = [s for s in stats if "wal" in s.volume.lower()] or stats
    chosen = max(wal, key=lambda s: s.capacity_bytes)
    return chosen.used_bytes, chosen.capacity_bytes


async def wal_inventory(ctx: CheckContext) -> list[PodWal]:
    """Every agent's WAL: exec listing, else the WAL gauge, else kubelet volume stats."""
    kube = kubernetes_of(ctx)
    pods = await kube.agent_pods()
    listed = await asyncio.gather(*(_list_by_exec(kube, pod, ctx.now) for pod in pods))
    gauges = None if all(isinstance(x, PodWal) for x in listed) else await _wal_by_metrics(ctx)
    seen = []
    for pod, listing in zip(pods, listed, strict=True):
        if isinstance(listing, PodWal):
            seen.append(listing)
        elif gauges is not None and pod.name in gauges:
            seen.append(PodWal(pod.name, PROMETHEUS, tuple(gauges[pod.name]), note=listing))
        else:
            volume = await pod_volume(kube, pod)
            if isinstance(volume, str):
                seen.append(PodWal(pod.name, "none", None, note=f"{listing}; {volume}"))
            else:
                seen.append(PodWal(pod.name, KUBELET, None, volume[0], note=listing))
    return seen


def pod_wal_verdict(wal: PodWal) -> tuple[Status, str]:
    """One agent's WAL: > 10 GiB critical, one file far above the rest a warning."""
    total = wal.total_bytes
    if wal.files is None or total is None:
        used = wal.volume_used_bytes
        if used is not None and used > WAL_TOTAL_CRITICAL_BYTES:
            return Status.WARNING, f"files not visible; the volume holds {size_text(used)}"
        shown = f"volume holds {size_text(used)}" if used is not None else "nothing readable"
        return Status.UNKNOWN, f"files not visible ({shown})"
    if total > WAL_TOTAL_CRITICAL_BYTES:
        return (
            Status.CRITICAL,
            f"{size_text(total)} of WAL (> {size_text(WAL_TOTAL_CRITICAL_BYTES)})",
        )
    sizes = sorted(f.size_bytes for f in wal.files)
    biggest = max(wal.files, key=lambda f: f.size_bytes, default=None)
    if biggest and len(sizes) > 1 and biggest.size_bytes >= WAL_OUTLIER_MIN_BYTES:
        rest = statistics.median(sizes[:-1]) or 1
        if biggest.size_bytes > WAL_OUTLIER_FACTOR * rest:
            return (
                Status.WARNING,
                f"{biggest.name} is {size_text(biggest.size_bytes)}, far above the rest",
            )
    return (
        Status.OK,
        f"{len(wal.files)} WAL file(s), {size_text(total)}" if wal.files else "no WAL backlog",
    )


@check("WAL-2", TITLES["WAL-2"])
async def check_wal_files(ctx: CheckContext) -> CheckResult:
    """Which WAL files exist per agent, their sizes and ages, through the best source."""
    inventory = await wal_inventory(ctx)
    verdicts = {wal.pod: pod_wal_verdict(wal) for wal in inventory}
    status = Status.worst([status for status, _ in verdicts.values()])
    flagged = [f"{pod}: {text}" for pod, (s, text) in verdicts.items() if s is status]
    head = "; ".join(flagged[:2]) + (f" (+{len(flagged) - 2} more)" if len(flagged) > 2 else "")
    if status is Status.OK:
        head = f"{len(inventory)} agents: " + ", ".join(sorted({t for _, t in verdicts.values()}))
    fallbacks = sorted({wal.source for wal in inventory if wal.source != EXEC})
    used = sorted({wal.source for wal in inventory})
    summary = head + (f" (exec unavailable; used {' and '.join(fallbacks)})" if fallbacks else "")
    fallback = next((wal.note for wal in inventory if wal.source != EXEC and wal.note), None)
    evidence = {
        wal.pod: {
            "source": wal.source,
            "total_bytes": wal.total_bytes,
            "volume_used_bytes": wal.volume_used_bytes,
            "files": [_file_json(f) for f in (wal.files or ())][:10],
        }
        for wal in inventory
    }
    cause = "wal-growth" if status in (Status.WARNING, Status.CRITICAL) else None
    extra = {"exec_unavailable": cut(fallback)} if fallback else {}
    found = {"pods": evidence, **extra}
    return _result("WAL-2", status, summary or "no agent pods", found, used, cause)


def _file_json(wal: WalFileSeen) -> dict[str, object]:
    return {
        "name": wal.name,
        "size_bytes": wal.size_bytes,
        "modified_at": wal.modified_at.isoformat() if wal.modified_at else None,
    }


# -- WAL-3: the volume ----------------------------------------------------------------------
@check("WAL-3", TITLES["WAL-3"])
async def check_wal_volume(ctx: CheckContext) -> CheckResult:
    """Free space on every agent's WAL volume (kubelet stats) and the claims' phase."""
    kube = kubernetes_of(ctx)
    pods = await kube.agent_pods()
    volumes = await asyncio.gather(*(pod_volume(kube, pod) for pod in pods))
    claims = {pvc.name: pvc.phase for pvc in await kube.pvcs()}
    wanted = sorted({claim for pod in pods for claim in pod.volume_claims})
    unbound = [name for name in wanted if claims.get(name) != "Bound"]
    free = {
        pod.name: round(1 - vol[0] / vol[1], 3)
        for pod, vol in zip(pods, volumes, strict=True)
        if not isinstance(vol, str) and vol[1] > 0
    }
    low = {pod: ratio for pod, ratio in free.items() if ratio < FREE_CRITICAL_RATIO}
    problems = [f"{pod} {ratio:.0%} free" for pod, ratio in sorted(low.items())]
    problems += [f"claim {name} is {claims.get(name, 'missing')}" for name in unbound]
    if problems:
        status, summary = Status.CRITICAL, "; ".join(problems)
    elif len(free) < len(pods):
        status, summary = Status.UNKNOWN, f"volume stats for {len(free)} of {len(pods)} agents"
    else:
        status = Status.OK
        summary = f"{min(free.values(), default=1):.0%} free at least; claims Bound"
    evidence = {"free_ratio": free, "claims": {name: claims.get(name) for name in wanted}}
    cause = "disk-full" if low else None
    return _result("WAL-3", status, summary, evidence, [KUBELET, "kubernetes"], cause)


# -- WAL-4: restarts, kills, node pressure --------------------------------------------------
def _pod_troubles(pod: PodInfo, now: datetime) -> tuple[Status, str] | None:
    if pod.waiting_reason == "CrashLoopBackOff" or pod.last_terminated_reason in (
        "OOMKilled",
        "Evicted",
    ):
        reason = pod.waiting_reason or pod.last_terminated_reason
        return (
            Status.CRITICAL,
            f"{pod.name}: {reason}, {pod.restart_count} restarts"
            f" (last: {pod.last_terminated_reason})",
        )
    recent = pod.last_terminated_at is not None and now - pod.last_terminated_at < RESTART_WINDOW
    if pod.restart_count and recent:
        return (
            Status.WARNING,
            f"{pod.name}: restarted within the hour ({pod.last_terminated_reason})",
        )
    return None


def _warning_events(events: Sequence[EventInfo], names: set[str], now: datetime) -> list[str]:
    """Warning events of the last hour about the given pods and nodes, newest last."""
    recent = [e for e in events if e.at is None or now - e.at < RESTART_WINDOW]
    chosen = [e for e in recent if e.type == "Warning" and e.name in names]
    return [cut(f"{e.reason} {e.kind}/{e.name}: {e.message}") for e in chosen][-EVIDENCE_LINES:]


@check("WAL-4", TITLES["WAL-4"])
async def check_recent_events(ctx: CheckContext) -> CheckResult:
    """Restarts, CrashLoopBackOff, OOMKilled/Evicted and DiskPressure on the agents' nodes."""
    kube = kubernetes_of(ctx)
    pods, events, nodes = await asyncio.gather(kube.agent_pods(), kube.events(), kube.nodes())
    troubles = [t for t in (_pod_troubles(pod, ctx.now) for pod in pods) if t]
    agent_nodes = {pod.node for pod in pods if pod.node}
    pressed = [n.name for n in nodes if n.disk_pressure and n.name in agent_nodes]
    troubles += [(Status.CRITICAL, f"node {name}: DiskPressure") for name in pressed]
    status = Status.worst([s for s, _ in troubles]) if troubles else Status.OK
    quiet = f"{len(pods)} agents running, no restarts in the last hour"
    summary = "; ".join(text for _, text in troubles[:3]) or quiet
    evidence = {
        "restarts": {pod.name: pod.restart_count for pod in pods},
        "waiting": {pod.name: pod.waiting_reason for pod in pods if pod.waiting_reason},
        "last_terminated": {
            p.name: p.last_terminated_reason for p in pods if p.last_terminated_reason
        },
        "disk_pressure_nodes": pressed,
        "events": _warning_events(events, {pod.name for pod in pods} | agent_nodes, ctx.now),
    }
    oom = any(pod.last_terminated_reason == "OOMKilled" for pod in pods)
    cause = "disk-full" if pressed else "oom" if oom else None
    return _result("WAL-4", status, summary, evidence, ["kubernetes"], cause)


# -- WAL-5: the data-loss window ------------------------------------------------------------
@dataclass(frozen=True)
class LossWindow:
    """Unflushed time of one partition: WAL write time (or now) minus the last upload."""

    partition: str
    last_upload: datetime | None
    wal_modified: datetime | None
    seconds: float | None
    upper_bound: bool
    source: str

    def text(self) -> str:
        """``orders-2: ≤ 120 s unflushed``, for summaries and confirmations."""
        if self.seconds is None and self.source == "metadata:segments":
            return (
                f"{self.partition}: loss window unknown (no segment row visible: none uploaded"
                " yet, or row-level security hides it from this role)"
            )
        if self.seconds is None:
            return f"{self.partition}: loss window unknown (no upload found in {self.source})"
        if self.seconds == 0:
            return f"{self.partition}: nothing unflushed (uploaded after the last WAL write)"
        bound = "≤ " if self.upper_bound else ""
        return f"{self.partition}: {bound}{self.seconds:.0f} s of unflushed data"


async def last_upload(ctx: CheckContext, topic: str, partition: int) -> tuple[datetime | None, str]:
    """When the partition's newest segment reached S3: ``segments`` upstream, else S3."""
    if ctx.profile.has_segments_table:
        return await _metadata_of(ctx).last_segment_upload(topic, partition), "metadata:segments"
    newest = await _objects_of(ctx).newest_object(f"{topic}/partition-{partition}/")
    return (newest.last_modified if newest else None), "s3"


async def loss_window(ctx: CheckContext, key: str, files: Sequence[WalFileSeen]) -> LossWindow:
    """WAL-5 for one ``topic-partition``, from the WAL files seen for it (maybe none)."""
    topic, _, number = key.rpartition("-")
    uploaded, source = await last_upload(ctx, topic, int(number))
    stamps = [f.modified_at + timedelta(seconds=f.mtime_slack_s) for f in files if f.modified_at]
    modified = min(max(stamps), ctx.now) if stamps else None
    if uploaded is None:
        return LossWindow(key, None, modified, None, True, source)
    seconds = max(0.0, ((modified or ctx.now) - uploaded).total_seconds())
    exact = modified is not None and all(f.mtime_slack_s == 0 for f in files)
    return LossWindow(key, uploaded, modified, seconds, not exact, source)


async def partitions_at_risk(ctx: CheckContext) -> dict[str, list[WalFileSeen]]:
    """The target partition, else WAL-1's failing ones and every non-empty WAL seen."""
    inventory = await wal_inventory(ctx)
    files: dict[str, list[WalFileSeen]] = {}
    for wal in inventory:
        for seen in wal.files or ():
            if seen.key and seen.size_bytes > 0:
                files.setdefault(seen.key, []).append(seen)
    if ctx.target.topic is not None and ctx.target.partition is not None:
        key = f"{ctx.target.topic}-{ctx.target.partition}"
        return {key: files.get(key, [])}
    for key in failing_partitions((await wal_log_findings(ctx))[0]):
        files.setdefault(key, [])
    return files


@check("WAL-5", TITLES["WAL-5"])
async def check_loss_window(ctx: CheckContext) -> CheckResult:
    """Seconds of data only in the WAL: its last write versus the newest upload to S3."""
    at_risk = await partitions_at_risk(ctx)
    windows = await asyncio.gather(
        *(loss_window(ctx, key, f) for key, f in sorted(at_risk.items()))
    )
    sources = sorted({w.source for w in windows}) or [LOGS_SOURCE]
    evidence = {"partitions": {w.partition: _window_json(w) for w in windows}}
    if not windows:
        quiet = "no failing or non-empty WAL: nothing unflushed to lose"
        return _result("WAL-5", Status.OK, quiet, evidence, sources)
    status = Status.worst([_window_status(w) for w in windows])
    summary = "; ".join(w.text() for w in sorted(windows, key=lambda w: -(w.seconds or 0))[:3])
    return _result("WAL-5", status, summary, evidence, sources)


def _window_status(window: LossWindow) -> Status:
    if window.seconds is None:
        return Status.UNKNOWN
    return Status.CRITICAL if window.seconds > LOSS_WINDOW_CRITICAL_S else Status.OK


def _window_json(window: LossWindow) -> dict[str, object]:
    return {
        "window_s": None if window.seconds is None else round(window.seconds),
        "upper_bound": window.upper_bound,
        "last_upload": window.last_upload.isoformat() if window.last_upload else None,
        "wal_modified": window.wal_modified.isoformat() if window.wal_modified else None,
        "source": window.source,
    }


# -- actions --------------------------------------------------------------------------------
def named_partitions_only(results: Results, ctx: CheckContext) -> tuple[bool, str | None]:
    """WAL-A2/A3: only partitions WAL-1 names, with WAL-5's loss window in the reason."""
    wal1 = results.get("WAL-1")
    named = list(wal1.evidence.get("failing_partitions", [])) if wal1 else []
    if not named:
        return False, "WAL-1 names no partition whose WAL fails to recover; nothing to quarantine"
    if ctx.target.topic is not None and ctx.target.partition is not None:
        wanted = f"{ctx.target.topic}-{ctx.target.partition}"
        if wanted not in named:
            return False, f"WAL-1 names {', '.join(named)}, not {wanted}"
        named = [wanted]
    wal5 = results.get("WAL-5")
    windows = wal5.evidence.get("partitions", {}) if wal5 else {}
    shown = [_confirmation(key, windows.get(key)) for key in named]
    return True, "Unflushed data lost: " + "; ".join(shown)


def _confirmation(key: str, window: Mapping[str, object] | None) -> str:
    if not window or window.get("window_s") is None:
        return f"{key}: loss window unknown (WAL-5)"
    bound = "up to " if window.get("upper_bound") else ""
    return f"{key}: {bound}{window['window_s']} s (WAL-5)"


VERIFICATION = ("WAL-4", "WAL-1", "WAL-2")


def _wal_cause(results: Results) -> str | None:
    labels = {result.cause for result in results.values() if result.cause}
    order = ("corruption", "disk-full", "permissions", "wal-growth", "wal-failure", "oom")
    return next((label for label in order if label in labels), None)


RUNBOOK = Runbook(
    id="wal-recovery",
    title="WAL recovery failures",
    file="wal-recovery-failures.md",
    checks=(
        check_wal_errors,
        check_wal_files,
        check_wal_volume,
        check_recent_events,
        check_loss_window,
    ),
    actions=(
        ActionSpec(
            "WAL-A1",
            "Watch automatic recovery (corrupted records skipped)",
            Risk.LOW,
            always_allowed,
            VERIFICATION,
        ),
        ActionSpec(
            "WAL-A2",
            "Quarantine the corrupted WAL (scale to 0, move aside, scale back)",
            Risk.HIGH,
            named_partitions_only,
            VERIFICATION,
        ),
        ActionSpec(
            "WAL-A3",
            "Rebuild the partition from S3 (rename the WAL, restart the agent)",
            Risk.HIGH,
            named_partitions_only,
            VERIFICATION,
        ),
    ),
    probable_cause=_wal_cause,
    guidance=(
        "Keep the WAL sync policy at an interval (100 ms): 'never' loses data on a crash.",
        "Put the WAL on a replicated persistent volume (gp3), never emptyDir or hostPath.",
        "Alert on WAL volume free space below 10 % before writes start failing.",
        "WAL rotation is not implemented: the WAL only shrinks when segments reach S3.",
        "Truncation after each upload is the checkpoint: a WAL that keeps growing means"
        " uploads are failing.",
    ),
    leads_to=("lease-conflicts",),
)
