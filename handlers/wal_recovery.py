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

Sources, in both profiles unless noted (listing and loss window: ``handlers.wal_files``;
log lines: ``handlers.wal_logs``). WAL-2 lists the WAL directory with ``exec ls -l``
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
import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from bot.models import CheckResult, Risk, Status
from bot.sources.base import EventInfo, PodInfo
from handlers.base import ActionSpec, CheckContext, Results, Runbook, always_allowed, check
from handlers.logs import EVIDENCE_LINES, LOGS_SOURCE, PodLogs, agent_logs, cut, require_kubernetes
from handlers.results import TitledResults, first_cause_named
from handlers.sizes import GIB, MIB, size_text
from handlers.wal_files import (
    EXEC,
    KUBELET,
    LossWindow,
    PodWal,
    WalFileSeen,
    file_json,
    loss_window,
    pod_volume,
    wal_inventory,
    window_json,
)
from handlers.wal_logs import (
    WalLogFindings,
    cause_of_lines,
    failing_partitions,
    offsets_in,
    read_wal_lines,
    wal_logs_verdict,
)

LOG_TAIL_LINES = 200
WAL_TOTAL_CRITICAL_BYTES = 10 * GIB
WAL_OUTLIER_FACTOR = 10.0
WAL_OUTLIER_MIN_BYTES = 100 * MIB
FREE_CRITICAL_RATIO = 0.10
RESTART_WINDOW = timedelta(hours=1)
LOSS_WINDOW_CRITICAL_S = 60.0

TITLES = {
    "WAL-1": "WAL errors in agent logs",
    "WAL-2": "WAL files and sizes",
    "WAL-3": "WAL volume free space and claim",
    "WAL-4": "Recent restarts, kills and node pressure",
    "WAL-5": "Data-loss window per partition",
}
_result = TitledResults(TITLES)


# -- WAL-1: log lines ---------------------------------------------------------------------
async def wal_log_findings(ctx: CheckContext) -> tuple[dict[str, WalLogFindings], PodLogs]:
    """WAL findings per agent pod, from the last ``LOG_TAIL_LINES`` lines of each."""
    logs = await agent_logs(ctx.sources, tail=LOG_TAIL_LINES)
    return {pod: read_wal_lines(lines) for pod, lines in logs.lines.items()}, logs


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
        "offsets": offsets_in(lines),
        "lines": lines,
        **logs.problems(),
    }
    status, summary = wal_logs_verdict(findings, failing, named, lines, LOG_TAIL_LINES)
    cause = cause_of_lines(lines) or ("wal-failure" if failing else None)
    return _result("WAL-1", status, summary, evidence, [LOGS_SOURCE], cause)


# -- WAL-2: the WAL files -----------------------------------------------------------------
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
    # The outlier rule is about live WAL: a renamed file (``.old`` after WAL-A3) waits for
    # deletion (RP-A4) and only counts towards the total.
    live = [f for f in wal.files if not f.name.endswith(".old")]
    sizes = sorted(f.size_bytes for f in live)
    biggest = max(live, key=lambda f: f.size_bytes, default=None)
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
            "files": [file_json(f) for f in (wal.files or ())][:10],
        }
        for wal in inventory
    }
    cause = "wal-growth" if status in (Status.WARNING, Status.CRITICAL) else None
    extra = {"exec_unavailable": cut(fallback)} if fallback else {}
    found = {"pods": evidence, **extra}
    return _result("WAL-2", status, summary or "no agent pods", found, used, cause)


# -- WAL-3: the volume ----------------------------------------------------------------------
@check("WAL-3", TITLES["WAL-3"])
async def check_wal_volume(ctx: CheckContext) -> CheckResult:
    """Free space on every agent's WAL volume (kubelet stats) and the claims' phase."""
    kube = require_kubernetes(ctx.sources)
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
    kube = require_kubernetes(ctx.sources)
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
    evidence = {"partitions": {w.partition: window_json(w) for w in windows}}
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
CAUSE_ORDER = ("corruption", "disk-full", "permissions", "wal-growth", "wal-failure", "oom")


def _wal_cause(results: Results) -> str | None:
    return first_cause_named(results, CAUSE_ORDER)


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
            "Quarantine the corrupted WAL (move it aside, restart that agent)",
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
