"""Runbook ``resource-pressure.md`` (matrix §6): memory, disk and CPU pressure on agents.

Checks RP-1..RP-6, actions RP-A1..RP-A4, guidance RP-G; verification (RP-V) re-runs RP-1,
RP-5 and RP-2. Thresholds, from the runbook (those of the pure verdicts, marked *, live in
``handlers.resource_model``):

- ``MEMORY_CRITICAL_RATIO``* = 85 % of the memory limit, or an OOMKill within
  ``OOM_WINDOW``* = 1 h, is critical; ``CPU_WARNING_CORES``* = 3 cores is a warning (RP-1).
- ``DISK_CRITICAL_RATIO``* = 90 % of the WAL volume used, or more than
  ``WAL_TOTAL_CRITICAL_BYTES`` = 10 GiB of WAL on one agent, is critical (RP-2).
- ``MIN_MEMORY_LIMIT_BYTES`` = 1 GiB and ``MIN_CPU_LIMIT_CORES`` = 1: lower or missing
  limits are a warning (RP-3); ``MAX_PARTITIONS_PER_AGENT`` = 100 (RP-4).
- Leak trend (RP-5) over ``LEAK_WINDOW``* = 3 h: memory up by ``LEAK_MIN_GROWTH``* = 20 %
  while load moved less than ``LOAD_FLAT_MAX_CHANGE``* = 10 %.
- ``CHANGE_WINDOW`` = 2 h: a rollout that close before the first termination (RP-6).
- Guard rails: a new memory limit is at most 2x the current one and at most
  ``MEMORY_LIMIT_CEILING_BYTES``* = 16 GiB; at most ``MAX_AGENT_REPLICAS`` = 10 agents.

Sources: memory, load and lease counts as ``handlers.resource_readings`` reads them; lease
counts (RP-4) fall back to the per-partition buffer gauges. Disk use (RP-2) comes from the
kubelet's volume stats; the WAL's size from WAL-2's listing (exec, else the WAL gauge),
else it is bounded by the volume's use. RP-6 reads the rollout history only: ConfigMaps
carry no change time the API exposes. CPU (RP-1) is the metrics.k8s.io reading, averaged
over its short window, not a 5-minute rate.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.models import CheckResult, Risk, Status
from handlers.base import ActionSpec, CheckContext, Results, Runbook, check, no_data
from handlers.logs import require_kubernetes
from handlers.promql import prometheus_of
from handlers.resource_model import (
    DISK_CRITICAL_RATIO,
    LEAK_WINDOW,
    MEMORY_CRITICAL_RATIO,
    MEMORY_LIMIT_CEILING_BYTES,
    disk_verdict,
    is_leak,
    pod_pressure,
    proposed_memory_limit,
)
from handlers.resource_readings import (
    CADVISOR,
    agent_claims,
    leases_per_agent,
    load_trend,
    memory_by_pod,
    memory_trends,
    old_wal_files,
    sum_by_pod,
)
from handlers.results import TitledResults, first_cause_named
from handlers.sizes import GIB, MIB, size_text
from handlers.wal_files import pod_volume, wal_inventory

MIN_MEMORY_LIMIT_BYTES = 1 * GIB
MIN_CPU_LIMIT_CORES = 1.0
MAX_PARTITIONS_PER_AGENT = 100
CHANGE_WINDOW = timedelta(hours=2)
MAX_AGENT_REPLICAS = 10
TITLES = {
    "RP-1": "Agent CPU and memory against limits",
    "RP-2": "WAL volume and WAL size",
    "RP-3": "Resource requests and limits",
    "RP-4": "Memory breakdown and partitions per agent",
    "RP-5": "Memory leak trend",
    "RP-6": "Recent rollouts",
}
_result = TitledResults(TITLES)


# -- RP-1: usage against limits -------------------------------------------------------------
@check("RP-1", TITLES["RP-1"])
async def check_pod_usage(ctx: CheckContext) -> CheckResult:
    """Memory and CPU per agent against its limits, and OOMKilled in the last state."""
    pods = await require_kubernetes(ctx.sources).agent_pods()
    memory, cpu, sources = await memory_by_pod(ctx, pods)
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
@check("RP-2", TITLES["RP-2"])
async def check_disk(ctx: CheckContext) -> CheckResult:
    """Use of each agent's WAL volume and the WAL's size (exec, the WAL gauge or a bound)."""
    kube = require_kubernetes(ctx.sources)
    pods = await kube.agent_pods()
    volumes = await asyncio.gather(*(pod_volume(kube, pod) for pod in pods))
    inventory = {wal.pod: wal for wal in await wal_inventory(ctx)}
    claims, old = await asyncio.gather(agent_claims(kube, pods), old_wal_files(ctx))
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
    workload = await require_kubernetes(ctx.sources).agent_workload()
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
@check("RP-4", TITLES["RP-4"])
async def check_memory_breakdown(ctx: CheckContext) -> CheckResult:
    """Segment buffers, WAL and schema cache per agent; partitions held per agent."""
    prometheus = prometheus_of(ctx)
    names = ("segment_buffer_size_bytes", "wal_size_bytes", "schema_cache_entries")
    families = [ctx.profile.metric(name) for name in names]
    buffers, wal, cache = await asyncio.gather(*(sum_by_pod(prometheus, f) for f in families))
    leases, counted_by = await leases_per_agent(ctx)
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
@check("RP-5", TITLES["RP-5"])
async def check_leak_trend(ctx: CheckContext) -> CheckResult:
    """Memory over the last hours against load: rising memory on flat load is a leak."""
    pods = await require_kubernetes(ctx.sources).agent_pods()
    changes, latest = await memory_trends(ctx, pods) if pods else ({}, {})
    if not changes:
        missing = "container_memory_usage_bytes has no series for the agents"
        return no_data("RP-5", TITLES["RP-5"], missing, CADVISOR)
    load_change, load_source = await load_trend(ctx, pods)
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
    kube = require_kubernetes(ctx.sources)
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
Guard = tuple[bool, str | None]


def raised_memory_limit(current: int) -> int:
    """RP-A1's new limit: twice the current one, at most the ceiling, in whole MiB (the unit
    the patch is written in), so the guard, the preview and the write name the same value."""
    return proposed_memory_limit(current) // MIB * MIB


def raise_memory_guard(results: Results, ctx: CheckContext) -> Guard:
    """RP-A1: memory pressure shown by RP-1; new limit ≤ 2x current and ≤ the ceiling."""
    pressure, limits = results.get("RP-1"), results.get("RP-3")
    if pressure is None or pressure.cause not in ("oom", "memory"):
        return False, "RP-1 shows no memory pressure (no OOMKill, memory below 85 % of the limit)"
    current = limits.evidence.get("memory_limit_bytes") if limits else None
    if not isinstance(current, int):
        return False, "the current memory limit is unknown (RP-3), so a new one cannot be bounded"
    new = raised_memory_limit(current)
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


CAUSE_ORDER = (
    "oom",
    "memory-leak",
    "disk-full",
    "memory",
    "wal-growth",
    "cpu",
    "too-many-partitions",
    "recent-change",
)


def _resource_cause(results: Results) -> str | None:
    return first_cause_named(results, CAUSE_ORDER)


VERIFICATION = ("RP-1", "RP-5", "RP-2")
ACTIONS = (
    ActionSpec("RP-A1", "Raise the agents' memory limit (at most 2x)", Risk.MEDIUM,
               raise_memory_guard, VERIFICATION),
    ActionSpec("RP-A2", "Scale the agents out by one", Risk.MEDIUM, scale_guard, VERIFICATION),
    ActionSpec("RP-A3", "Grow the WAL volume claim", Risk.MEDIUM, grow_claim_guard, VERIFICATION),
    ActionSpec("RP-A4", "Delete WAL files already uploaded (*.old)", Risk.HIGH,
               delete_uploaded_guard, VERIFICATION),
)  # fmt: skip
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
    actions=ACTIONS,
    probable_cause=_resource_cause,
    guidance=(
        "Smaller segments (SEGMENT_MAX_SIZE) flush sooner and hold less memory, at more S3 PUTs.",
        "The schema cache is already bounded (10 000 entries, 1 h TTL); look elsewhere first.",
        "Keep RUST_LOG at info and let the kubelet rotate container logs.",
        "A lighter compression level trades CPU for S3 storage and bandwidth.",
    ),
    leads_to=("wal-recovery", "lease-conflicts"),
)
