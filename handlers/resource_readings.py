"""What the resource-pressure checks read about the agents, beyond one source call each.

Memory comes from ``metrics.k8s.io`` and, for pods it does not report (a crash-looping
container), from cAdvisor's ``container_memory_usage_bytes`` (named ``CADVISOR``). Load is
the producer rate (``producer_messages_sent_total``, ``streamhouse_producer_records_total``
upstream), else the agents' CPU as a proxy. Lease counts come from the metadata DB, which
may hide them behind row-level security.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

from bot.sources.base import Kubernetes, PodInfo, Prometheus, Series, SourceError
from handlers.base import CheckContext
from handlers.logs import require_kubernetes
from handlers.promql import container_selector, prometheus_of
from handlers.resource_model import LEAK_STEP, LEAK_WINDOW, relative_change
from handlers.wal_files import loss_window, wal_inventory

CADVISOR = "prometheus:cadvisor"


async def memory_by_pod(
    ctx: CheckContext, pods: Sequence[PodInfo]
) -> tuple[dict[str, int], dict[str, float], list[str]]:
    """Memory and CPU per pod: metrics.k8s.io first, cAdvisor for the pods it omits."""
    kube = require_kubernetes(ctx.sources)
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
        query = f"max by (pod) (container_memory_usage_bytes{container_selector(missing)})"
        try:
            found = await ctx.sources.prometheus.instant(query)
        except SourceError:
            found = []
        memory.update({s.labels.get("pod", ""): int(s.value) for s in found})
        sources += [CADVISOR] if found else []
    return memory, cpu, sources


async def agent_claims(kube: Kubernetes, pods: Sequence[PodInfo]) -> dict[str, dict[str, object]]:
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


async def old_wal_files(ctx: CheckContext) -> list[dict[str, object]]:
    """``*.old`` WAL files seen by exec, each with whether S3 holds its data (WAL-5)."""
    found = []
    for wal in await wal_inventory(ctx):
        for seen in wal.files or ():
            if seen.name.endswith(".old") and seen.key is not None:
                window = await loss_window(ctx, seen.key, [seen])
                in_s3 = window.wal_modified is not None and window.seconds == 0
                found.append({"pod": wal.pod, "file": seen.name, "in_s3": in_s3})
    return found


async def sum_by_pod(prometheus: Prometheus, family: str | None) -> dict[str, float]:
    """Each pod's sum of ``family`` (empty when the profile has no such family)."""
    if family is None:
        return {}
    samples = await prometheus.instant(f"sum by (pod) ({family})")
    return {s.labels.get("pod", "-"): s.value for s in samples}


async def leases_per_agent(ctx: CheckContext) -> tuple[dict[str, int] | None, str]:
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


async def load_trend(ctx: CheckContext, pods: Sequence[PodInfo]) -> tuple[float | None, str]:
    """The producer rate's change, else the agents' CPU as a proxy for load."""
    prometheus, now = prometheus_of(ctx), ctx.now
    producer = ctx.profile.metric("producer_messages_sent_total")
    cpu = f"sum(rate(container_cpu_usage_seconds_total{container_selector(pods)}[5m]))"
    candidates = [(f"sum(rate({producer}[5m]))", "prometheus")] if producer else []
    for query, source in [*candidates, (cpu, CADVISOR)]:
        found: list[Series] = await prometheus.range(
            query, start=now - LEAK_WINDOW, end=now, step=LEAK_STEP
        )
        if found and found[0].points:
            return relative_change(found[0].points), source
    return None, "none"


async def memory_trends(
    ctx: CheckContext, pods: Sequence[PodInfo]
) -> tuple[dict[str, float | None], dict[str, float]]:
    """Per pod: memory's relative change over ``LEAK_WINDOW`` and its latest value."""
    query = f"sum by (pod) (container_memory_usage_bytes{container_selector(pods)})"
    now = ctx.now
    series = await prometheus_of(ctx).range(query, start=now - LEAK_WINDOW, end=now, step=LEAK_STEP)
    changes = {s.labels.get("pod", "-"): relative_change(s.points) for s in series}
    latest = {s.labels.get("pod", "-"): s.points[-1][1] for s in series if s.points}
    return changes, latest
