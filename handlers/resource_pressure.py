"""Runbook ``resource-pressure.md`` (matrix §6): memory, disk and CPU pressure on agents.

Checks RP-1..RP-6, actions RP-A1..RP-A4, guidance RP-G; verification (RP-V) re-runs RP-1,
RP-5 and RP-2. Thresholds, from the runbook:

- ``MEMORY_CRITICAL_RATIO`` = 85 % of the memory limit, or an OOMKill within
  ``OOM_WINDOW`` = 1 h, is critical; ``CPU_WARNING_CORES`` = 3 cores is a warning (RP-1).
- ``DISK_CRITICAL_RATIO`` = 90 % of the WAL volume used, or more than
  ``WAL_TOTAL_CRITICAL_BYTES`` = 10 GiB of WAL on one agent, is critical (RP-2).
- ``MIN_MEMORY_LIMIT_BYTES`` = 1 GiB and ``MIN_CPU_LIMIT_CORES`` = 1: lower or missing
  limits are a warning (RP-3); ``MAX_PARTITIONS_PER_AGENT`` = 100 (RP-4).
- Leak trend (RP-5) over ``LEAK_WINDOW`` = 3 h: memory up by ``LEAK_MIN_GROWTH`` = 20 %
  while load moved less than ``LOAD_FLAT_MAX_CHANGE`` = 10 %.
- ``CHANGE_WINDOW`` = 2 h: a rollout that close before the first termination (RP-6).
- Guard rails: a new memory limit is at most 2x the current one and at most
  ``MEMORY_LIMIT_CEILING_BYTES`` = 16 GiB; at most ``MAX_AGENT_REPLICAS`` = 10 agents.

Sources: memory comes from ``metrics.k8s.io`` and, for pods it does not report (a
crash-looping container), from cAdvisor's ``container_memory_usage_bytes`` (named
``prometheus:cadvisor``). Load for RP-5 is the producer rate (``producer_messages_sent_total``,
``streamhouse_producer_records_total`` upstream), else the agents' CPU as a proxy. Lease
counts (RP-4) come from the metadata DB, else from the per-partition buffer gauges. Disk
use (RP-2) comes from the kubelet's volume stats; the WAL's size from WAL-2's listing
(exec, else the WAL gauge), else it is bounded by the volume's use. RP-6 reads the rollout
history only: ConfigMaps carry no change time the API exposes. CPU (RP-1) is the
metrics.k8s.io reading, averaged over its short window, not a 5-minute rate.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from bot.models import CheckResult, Risk, Status
from bot.sources.base import Kubernetes, PodInfo, Prometheus, Series, SourceError
from handlers.base import ActionSpec, CheckContext, Results, Runbook, check, no_data
from handlers.wal_recovery import (
    GIB,
    WAL_TOTAL_CRITICAL_BYTES,
    kubernetes_of,
    loss_window,
    pod_volume,
    prometheus_of,
    size_text,
    wal_inventory,
)

MEMORY_CRITICAL_RATIO = 0.85
OOM_WINDOW = timedelta(hours=1)
CPU_WARNING_CORES = 3.0
DISK_CRITICAL_RATIO = 0.90
MIN_MEMORY_LIMIT_BYTES = 1 * GIB
MIN_CPU_LIMIT_CORES = 1.0
MAX_PARTITIONS_PER_AGENT = 100
LEAK_WINDOW = timedelta(hours=3)
LEAK_STEP = timedelta(minutes=5)
LEAK_MIN_GROWTH = 0.20
LOAD_FLAT_MAX_CHANGE = 0.10
CHANGE_WINDOW = timedelta(hours=2)
MEMORY_LIMIT_CEILING_BYTES = 16 * GIB
MAX_AGENT_REPLICAS = 10
CADVISOR = "prometheus:cadvisor"
TITLES = {
    "RP-1": "Agent CPU and memory against limits",
    "RP-2": "WAL volume and WAL size",
    "RP-3": "Resource requests and limits",
    "RP-4": "Memory breakdown and partitions per agent",
    "RP-5": "Memory leak trend",
    "RP-6": "Recent rollouts",
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


def _container_selector(pods: Sequence[PodInfo]) -> str:
    """The PromQL selector of the agents' containers (pod names are DNS labels)."""
    names = "|".join(pod.name.replace(".", "\\\\.") for pod in pods)
    return f'{{pod=~"{names}",container!="",container!="POD"}}'


# -- RP-1: usage against limits -------------------------------------------------------------
async def _memory_by_pod(
    ctx: CheckContext, pods: Sequence[PodInfo]
) -> tuple[dict[str, int], dict[str, float], list[str]]:
    """Memory and CPU per pod: metrics.k8s.io first, cAdvisor for the pods it omits."""
    kube = kubernetes_of(ctx)
    sources = ["kubernetes"]
    try:
        wanted = {pod.name for pod in pods}
        usage = {u.pod: u for u in await kube.pod_usage() if u.pod in wanted}
    except SourceError:
        usage = {}
    sources += ["kubernetes:metrics"] if usage else []
    memory = {name: u.memory_bytes for name, u in usage.items()}
    cpu = {name: u.cpu_cores for name, u in usage.items()}
    missing = [pod for pod in pods if pod.name not in memory]
    if missing and ctx.sources.prometheus is not None:
        query = f"max by (pod) (container_memory_usage_bytes{_container_selector(missing)})"
        try:
            found = await ctx.sources.prometheus.instant(query)
        except SourceError:
            found = []
        memory.update({s.labels.get("pod", ""): int(s.value) for s in found})
        sources += [CADVISOR] if found else []
    return memory, cpu, sources


def pod_pressure(
    pod: PodInfo, memory: int | None, cpu: float | None, now: datetime
) -> tuple[Status, str]:
    """One agent: OOMKilled within the hour or memory >= 85 % critical, CPU > 3 a warning."""
    killed = pod.last_terminated_reason == "OOMKilled" and (
        pod.last_terminated_at is None or now - pod.last_terminated_at < OOM_WINDOW
    )
    limit = pod.memory_limit_bytes
    ratio = memory / limit if memory is not None and limit else None
    shown = f"{ratio:.0%} of {size_text(limit or 0)}" if ratio is not None else "memory unknown"
    if killed or (ratio is not None and ratio >= MEMORY_CRITICAL_RATIO):
        return Status.CRITICAL, f"{pod.name}: {'OOMKilled, ' if killed else ''}memory {shown}"
    if cpu is not None and cpu > CPU_WARNING_CORES:
        return Status.WARNING, f"{pod.name}: CPU {cpu:.1f} cores"
    return (Status.OK if ratio is not None else Status.UNKNOWN), f"{pod.name}: memory {shown}"


@check("RP-1", TITLES["RP-1"])
async def check_pod_usage(ctx: CheckContext) -> CheckResult:
    """Memory and CPU per agent against its limits, and OOMKilled in the last state."""
    pods = await kubernetes_of(ctx).agent_pods()
    memory, cpu, sources = await _memory_by_pod(ctx, pods)
    verdicts = [pod_pressure(p, memory.get(p.name), cpu.get(p.name), ctx.now) for p in pods]
    status = Status.worst([s for s, _ in verdicts])
    worst = [text for s, text in verdicts if s is status]
    evidence = {
        pod.name: {
            "memory_bytes": memory.get(pod.name),
            "memory_limit_bytes": pod.memory_limit_bytes,
            "cpu_cores": cpu.get(pod.name),
            "last_terminated": pod.last_terminated_reason,
        }
        for pod in pods
    }
    oom = any("OOMKilled" in text for _, text in verdicts)
    cause = "oom" if oom else {Status.CRITICAL: "memory", Status.WARNING: "cpu"}.get(status)
    summary = "; ".join(worst[:3]) + (f" (+{len(worst) - 3} more)" if len(worst) > 3 else "")
    return _result("RP-1", status, summary or "no agent pods", {"pods": evidence}, sources, cause)


# -- RP-2: disk -----------------------------------------------------------------------------
async def _claims(kube: Kubernetes, pods: Sequence[PodInfo]) -> dict[str, dict[str, object]]:
    """The agents' claims with phase, capacity, StorageClass and whether it can expand."""
    wanted = {claim for pod in pods for claim in pod.volume_claims}
    claims = [pvc for pvc in await kube.pvcs() if pvc.name in wanted]
    classes = sorted({pvc.storage_class for pvc in claims if pvc.storage_class})
    answers = await asyncio.gather(
        *(kube.storage_class_expandable(name) for name in classes), return_exceptions=True
    )
    expandable = {
        n: a if isinstance(a, bool) else None for n, a in zip(classes, answers, strict=True)
    }
    return {
        pvc.name: {
            "phase": pvc.phase,
            "capacity_bytes": pvc.capacity_bytes,
            "storage_class": pvc.storage_class,
            "expandable": expandable.get(pvc.storage_class or ""),
        }
        for pvc in claims
    }


async def _old_wal_files(ctx: CheckContext) -> list[dict[str, object]]:
    """``*.old`` WAL files seen by exec, each with whether S3 holds its data (WAL-5)."""
    found = []
    for wal in await wal_inventory(ctx):
        for seen in wal.files or ():
            if seen.name.endswith(".old") and seen.key is not None:
                window = await loss_window(ctx, seen.key, [seen])
                in_s3 = window.wal_modified is not None and window.seconds == 0
                found.append({"pod": wal.pod, "file": seen.name, "in_s3": in_s3})
    return found


def disk_verdict(used: tuple[int, int] | str, wal_bytes: int | None) -> tuple[Status, str]:
    """One agent's disk: volume (used, capacity) or why unknown, and its WAL size if seen."""
    if isinstance(used, str):
        if wal_bytes is not None and wal_bytes > WAL_TOTAL_CRITICAL_BYTES:
            return Status.CRITICAL, f"WAL {size_text(wal_bytes)}, truncation failing"
        return Status.UNKNOWN, f"volume stats unavailable: {used[:80]}"
    ratio = used[0] / used[1] if used[1] else 0.0
    wal = size_text(wal_bytes) if wal_bytes is not None else f"≤ {size_text(used[0])}"
    text = f"volume {ratio:.0%} used of {size_text(used[1])}, WAL {wal}"
    too_big = wal_bytes is not None and wal_bytes > WAL_TOTAL_CRITICAL_BYTES
    if ratio > DISK_CRITICAL_RATIO or too_big:
        return Status.CRITICAL, text
    if wal_bytes is None and used[0] > WAL_TOTAL_CRITICAL_BYTES:  # the bound proves nothing
        return Status.UNKNOWN, f"{text} (WAL files not visible)"
    return Status.OK, text


@check("RP-2", TITLES["RP-2"])
async def check_disk(ctx: CheckContext) -> CheckResult:
    """Use of each agent's WAL volume and the WAL's size (exec, the WAL gauge or a bound)."""
    kube = kubernetes_of(ctx)
    pods = await kube.agent_pods()
    volumes = await asyncio.gather(*(pod_volume(kube, pod) for pod in pods))
    inventory = {wal.pod: wal for wal in await wal_inventory(ctx)}
    claims, old = await asyncio.gather(_claims(kube, pods), _old_wal_files(ctx))
    verdicts = {}
    for pod, used in zip(pods, volumes, strict=True):
        wal = inventory.get(pod.name)
        status, text = disk_verdict(used, wal.total_bytes if wal else None)
        verdicts[pod.name] = (status, text)
    status = Status.worst([s for s, _ in verdicts.values()])
    worst = [f"{pod}: {text}" for pod, (s, text) in verdicts.items() if s is status]
    full = any(
        not isinstance(v, str) and v[1] and v[0] / v[1] > DISK_CRITICAL_RATIO for v in volumes
    )
    cause = "disk-full" if full else "wal-growth" if status is Status.CRITICAL else None
    sources = {"kubernetes:kubelet-stats"} | {
        w.source for w in inventory.values() if w.files is not None
    }
    evidence = {
        "pods": {pod: text for pod, (_, text) in verdicts.items()},
        "claims": claims,
        "old_wal_files": old,
    }
    return _result("RP-2", status, "; ".join(worst[:3]), evidence, sorted(sources), cause)


# -- RP-3: requests and limits --------------------------------------------------------------
@check("RP-3", TITLES["RP-3"])
async def check_limits(ctx: CheckContext) -> CheckResult:
    """The agent workload's requests and limits: present, and not below 1Gi / 1 CPU."""
    workload = await kubernetes_of(ctx).agent_workload()
    memory, cpu = workload.memory_limit_bytes, workload.cpu_limit_cores
    problems = []
    if memory is None or cpu is None:
        problems.append(
            "no "
            + " or ".join(k for k, v in (("memory", memory), ("CPU", cpu)) if v is None)
            + " limit"
        )
    if memory is not None and memory < MIN_MEMORY_LIMIT_BYTES:
        problems.append(f"memory limit {size_text(memory)} < 1 GiB")
    if cpu is not None and cpu < MIN_CPU_LIMIT_CORES:
        problems.append(f"CPU limit {cpu:g} < 1 core")
    evidence = {
        "workload": f"{workload.kind}/{workload.name}",
        "replicas": workload.replicas,
        "memory_limit_bytes": memory,
        "memory_request_bytes": workload.memory_request_bytes,
        "cpu_limit_cores": cpu,
        "cpu_request_cores": workload.cpu_request_cores,
    }
    requests = f"{size_text(workload.memory_request_bytes or 0)} / {workload.cpu_request_cores}"
    limits = f"limits {size_text(memory or 0)} / {cpu} CPU, requests {requests} CPU"
    status = Status.WARNING if problems else Status.OK
    return _result("RP-3", status, "; ".join(problems) or limits, evidence, ["kubernetes"])


# -- RP-4: memory breakdown -----------------------------------------------------------------
async def _sum_by_pod(prometheus: Prometheus, family: str | None) -> dict[str, float]:
    if family is None:
        return {}
    samples = await prometheus.instant(f"sum by (pod) ({family})")
    return {s.labels.get("pod", "-"): s.value for s in samples}


async def _leases_per_agent(ctx: CheckContext) -> tuple[dict[str, int] | None, str]:
    """Leases per holder from the metadata DB, or None and why it cannot see them."""
    if ctx.sources.metadata is None:
        return None, "metadata DB not configured"
    try:
        readout = await ctx.sources.metadata.leases()
    except SourceError as error:
        return None, error.detail
    if readout.hidden_by_rls:
        return None, readout.note or "row-level security hides the lease rows"
    return dict(Counter(row.holder for row in readout.rows)), "metadata"


@check("RP-4", TITLES["RP-4"])
async def check_memory_breakdown(ctx: CheckContext) -> CheckResult:
    """Segment buffers, WAL and schema cache per agent; partitions held per agent."""
    prometheus = prometheus_of(ctx)
    names = ("segment_buffer_size_bytes", "wal_size_bytes", "schema_cache_entries")
    families = [ctx.profile.metric(name) for name in names]
    buffers, wal, cache = await asyncio.gather(*(_sum_by_pod(prometheus, f) for f in families))
    leases, counted_by = await _leases_per_agent(ctx)
    sources = ["prometheus"] + (["metadata"] if leases is not None else [])
    partitions = leases or {}
    if leases is None:  # one buffer gauge per partition an agent writes
        counted = await prometheus.instant(f"count by (pod) ({families[0]})") if families[0] else []
        partitions = {s.labels.get("pod", "-"): int(s.value) for s in counted}
    evidence = {
        "buffers_by_pod": {pod: round(value) for pod, value in sorted(buffers.items())},
        "buffer_family": families[0],
        "wal_bytes_by_pod": {pod: round(value) for pod, value in sorted(wal.items())},
        "schema_cache_entries": sum(cache.values()) if cache else None,
        "partitions_per_agent": partitions,
        "partitions_from": counted_by,
    }
    crowded = sorted(
        f"{agent} holds {n}" for agent, n in partitions.items() if n > MAX_PARTITIONS_PER_AGENT
    )
    if crowded:
        summary = f"too many partitions: {', '.join(crowded)} (> {MAX_PARTITIONS_PER_AGENT})"
        return _result("RP-4", Status.WARNING, summary, evidence, sources, "too-many-partitions")
    if not (buffers or wal or cache):
        missing = "segment buffer, WAL and schema cache gauges have no series"
        empty = no_data("RP-4", TITLES["RP-4"], missing)
        return _result(
            "RP-4", Status.UNKNOWN, empty.summary, {**evidence, **empty.evidence}, sources
        )
    most = max(partitions.values(), default=0)
    held = f"at most {most} partitions per agent" if partitions else "partitions per agent unknown"
    summary = f"{held}; {len(buffers)} agents report segment buffers"
    return _result("RP-4", Status.OK, summary, evidence, sources)


# -- RP-5: leak trend -----------------------------------------------------------------------
def relative_change(points: Sequence[tuple[float, float]]) -> float | None:
    """Change from the first quarter's median to the last quarter's (None: too few points).

    Medians, because a range's first rate() point covers a partial window and reads low.
    """
    if len(points) < 4 or points[-1][0] - points[0][0] < 3600:
        return None
    quarter = max(1, len(points) // 4)
    first = statistics.median(v for _, v in points[:quarter])
    last = statistics.median(v for _, v in points[-quarter:])
    return (last - first) / first if first else None


async def _load_trend(ctx: CheckContext, pods: Sequence[PodInfo]) -> tuple[float | None, str]:
    """The producer rate's change, else the agents' CPU as a proxy for load."""
    prometheus, now = prometheus_of(ctx), ctx.now
    producer = ctx.profile.metric("producer_messages_sent_total")
    cpu = f"sum(rate(container_cpu_usage_seconds_total{_container_selector(pods)}[5m]))"
    candidates = [(f"sum(rate({producer}[5m]))", "prometheus")] if producer else []
    for query, source in [*candidates, (cpu, CADVISOR)]:
        found: list[Series] = await prometheus.range(
            query, start=now - LEAK_WINDOW, end=now, step=LEAK_STEP
        )
        if found and found[0].points:
            return relative_change(found[0].points), source
    return None, "none"


def is_leak(memory_change: float | None, load_change: float | None) -> bool:
    """Memory up by ``LEAK_MIN_GROWTH`` while load stayed within ``LOAD_FLAT_MAX_CHANGE``."""
    if memory_change is None or memory_change < LEAK_MIN_GROWTH:
        return False
    return load_change is None or abs(load_change) <= LOAD_FLAT_MAX_CHANGE


async def _memory_trends(
    ctx: CheckContext, pods: Sequence[PodInfo]
) -> tuple[dict[str, float | None], dict[str, float]]:
    """Per pod: memory's relative change over ``LEAK_WINDOW`` and its latest value."""
    query = f"sum by (pod) (container_memory_usage_bytes{_container_selector(pods)})"
    now = ctx.now
    series = await prometheus_of(ctx).range(query, start=now - LEAK_WINDOW, end=now, step=LEAK_STEP)
    changes = {s.labels.get("pod", "-"): relative_change(s.points) for s in series}
    latest = {s.labels.get("pod", "-"): s.points[-1][1] for s in series if s.points}
    return changes, latest


@check("RP-5", TITLES["RP-5"])
async def check_leak_trend(ctx: CheckContext) -> CheckResult:
    """Memory over the last hours against load: rising memory on flat load is a leak."""
    pods = await kubernetes_of(ctx).agent_pods()
    changes, latest = await _memory_trends(ctx, pods) if pods else ({}, {})
    if not changes:
        missing = "container_memory_usage_bytes has no series for the agents"
        return no_data("RP-5", TITLES["RP-5"], missing, CADVISOR)
    load_change, load_source = await _load_trend(ctx, pods)
    load = f"load ({load_source}) {load_change:+.0%}" if load_change is not None else "load unknown"
    evidence = {
        "memory_change": {p: None if c is None else round(c, 3) for p, c in changes.items()},
        "load_change": load_change,
        "load_source": load_source,
    }
    sources = sorted({CADVISOR, load_source} - {"none"})
    leaking = sorted(pod for pod, change in changes.items() if is_leak(change, load_change))
    if leaking:
        limits = {pod.name: pod.memory_limit_bytes or 0 for pod in pods}
        near = any(
            latest.get(p, 0) >= MEMORY_CRITICAL_RATIO * limits.get(p, 0) > 0 for p in leaking
        )
        top = max(leaking, key=lambda p: changes[p] or 0)
        hours = LEAK_WINDOW.total_seconds() / 3600
        summary = f"leak trend: {top} memory {changes[top]:+.0%} in {hours:g} h while {load}"
        status = Status.CRITICAL if near else Status.WARNING
        return _result("RP-5", status, summary, evidence, sources, "memory-leak")
    measured = [c for c in changes.values() if c is not None]
    if not measured:
        return _result("RP-5", Status.UNKNOWN, "memory history under an hour", evidence, sources)
    summary = f"no leak trend: memory {max(measured):+.0%} at most, {load}"
    return _result("RP-5", Status.OK, summary, evidence, sources)


# -- RP-6: recent changes -------------------------------------------------------------------
@check("RP-6", TITLES["RP-6"])
async def check_recent_changes(ctx: CheckContext) -> CheckResult:
    """Rollouts of the agent workload shortly before the agents started to be killed."""
    kube = kubernetes_of(ctx)
    workload, pods = await asyncio.gather(kube.agent_workload(), kube.agent_pods())
    rollouts = [(rev, at) for rev, at in workload.revisions if rev > 1 and at is not None]
    ends = [p.last_terminated_at for p in pods if p.last_terminated_at]
    onset = min((at for at in ends if ctx.now - at < 3 * CHANGE_WINDOW), default=None)
    suspects = [
        rev
        for rev, at in rollouts
        if onset is not None and timedelta(0) <= onset - at <= CHANGE_WINDOW
    ]
    evidence = {
        "revisions": [{"revision": rev, "at": at.isoformat()} for rev, at in rollouts[-5:]],
        "symptoms_since": onset.isoformat() if onset else None,
        "suspect_revisions": suspects,
    }
    if suspects:
        minutes = int((onset - dict(rollouts)[suspects[-1]]).total_seconds() // 60) if onset else 0
        summary = f"revision {suspects[-1]} rolled out {minutes} min before the first termination"
        return _result("RP-6", Status.WARNING, summary, evidence, ["kubernetes"], "recent-change")
    latest = (
        f"latest rollout: revision {rollouts[-1][0]}" if rollouts else "no rollout since creation"
    )
    return _result(
        "RP-6",
        Status.OK,
        f"no change shortly before the symptoms ({latest})",
        evidence,
        ["kubernetes"],
    )


# -- actions --------------------------------------------------------------------------------
def proposed_memory_limit(current: int) -> int:
    """The limit RP-A1 sets: twice the current one, capped at the ceiling."""
    return min(2 * current, MEMORY_LIMIT_CEILING_BYTES)


def proposed_claim_size(current: int) -> int:
    """The size RP-A3 requests: twice the current one (a claim only grows)."""
    return 2 * current


Guard = tuple[bool, str | None]


def raise_memory_guard(results: Results, ctx: CheckContext) -> Guard:
    """RP-A1: memory pressure shown by RP-1; new limit ≤ 2x current and ≤ the ceiling."""
    pressure, limits = results.get("RP-1"), results.get("RP-3")
    if pressure is None or pressure.cause not in ("oom", "memory"):
        return False, "RP-1 shows no memory pressure (no OOMKill, memory below 85 % of the limit)"
    current = limits.evidence.get("memory_limit_bytes") if limits else None
    if not isinstance(current, int):
        return False, "the current memory limit is unknown (RP-3), so a new one cannot be bounded"
    new = proposed_memory_limit(current)
    if new <= current:
        return (
            False,
            f"the limit {size_text(current)} is already at the ceiling "
            f"({size_text(MEMORY_LIMIT_CEILING_BYTES)})",
        )
    return True, f"memory limit {size_text(current)} -> {size_text(new)}"


def scale_guard(results: Results, ctx: CheckContext) -> Guard:
    """RP-A2: one more agent, never above ``MAX_AGENT_REPLICAS``."""
    limits = results.get("RP-3")
    replicas = limits.evidence.get("replicas") if limits else None
    if not isinstance(replicas, int):
        return False, "the agent replica count is unknown (RP-3)"
    if replicas + 1 > MAX_AGENT_REPLICAS:
        return False, f"already {replicas} agents; the configured maximum is {MAX_AGENT_REPLICAS}"
    return True, f"agents {replicas} -> {replicas + 1}"


def grow_claim_guard(results: Results, ctx: CheckContext) -> Guard:
    """RP-A3: only with a full disk and where the StorageClass allows expansion."""
    disk = results.get("RP-2")
    if disk is None or disk.cause != "disk-full":
        return (
            False,
            f"RP-2 shows no WAL volume above {DISK_CRITICAL_RATIO:.0%} used: no need to grow it",
        )
    claims = disk.evidence.get("claims", {})
    refusing = sorted(name for name, claim in claims.items() if claim.get("expandable") is not True)
    if not claims or refusing:
        return (
            False,
            f"the StorageClass of {', '.join(refusing) or 'the WAL claim'} does not allow"
            " volume expansion (or could not be read)",
        )
    return True, None


def delete_uploaded_guard(results: Results, ctx: CheckContext) -> Guard:
    """RP-A4: only ``*.old`` WAL files whose data WAL-5's comparison proves is in S3."""
    disk = results.get("RP-2")
    files = disk.evidence.get("old_wal_files", []) if disk else []
    proven = [f"{f['pod']}:{f['file']}" for f in files if f.get("in_s3")]
    if not files:
        return (
            False,
            "no *.old WAL file is visible (listing needs exec), so none is proven to be in S3",
        )
    if not proven:
        return (
            False,
            "S3 has no upload newer than any *.old WAL file: deleting them would lose data",
        )
    return True, "delete only " + ", ".join(proven)


def _resource_cause(results: Results) -> str | None:
    labels = {result.cause for result in results.values() if result.cause}
    order = (
        "oom",
        "memory-leak",
        "disk-full",
        "memory",
        "wal-growth",
        "cpu",
        "too-many-partitions",
        "recent-change",
    )
    return next((label for label in order if label in labels), None)


VERIFICATION = ("RP-1", "RP-5", "RP-2")
RUNBOOK = Runbook(
    id="resource-pressure",
    title="Memory and disk pressure",
    file="resource-pressure.md",
    checks=(
        check_pod_usage,
        check_disk,
        check_limits,
        check_memory_breakdown,
        check_leak_trend,
        check_recent_changes,
    ),
    actions=(
        ActionSpec(
            "RP-A1",
            "Raise the agents' memory limit (at most 2x)",
            Risk.MEDIUM,
            raise_memory_guard,
            VERIFICATION,
        ),
        ActionSpec("RP-A2", "Scale the agents out by one", Risk.MEDIUM, scale_guard, VERIFICATION),
        ActionSpec(
            "RP-A3", "Grow the WAL volume claim", Risk.MEDIUM, grow_claim_guard, VERIFICATION
        ),
        ActionSpec(
            "RP-A4",
            "Delete WAL files already uploaded (*.old)",
            Risk.HIGH,
            delete_uploaded_guard,
            VERIFICATION,
        ),
    ),
    probable_cause=_resource_cause,
    guidance=(
        "Smaller segments (SEGMENT_MAX_SIZE) flush sooner and hold less memory, at more S3 PUTs.",
        "The schema cache is already bounded (10 000 entries, 1 h TTL); look elsewhere first.",
        "Keep RUST_LOG at info and let the kubelet rotate container logs.",
        "A lighter compression level trades CPU for S3 storage and bandwidth.",
    ),
    leads_to=("wal-recovery", "lease-conflicts"),
)
