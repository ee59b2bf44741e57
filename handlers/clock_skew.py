"""Clock offsets of the nodes that run agents (LC-3), and how far apart they are.

node-exporter's ``node_timex_offset_seconds`` first (present even where Streamhouse is not
instrumented); where it has no series, one live agent pod per node runs ``date +%s`` and
its clock is compared with the bot's. A spread above ``SKEW_WARNING_S`` = 2 s is a warning,
above ``SKEW_CRITICAL_S`` = 5 s critical.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from bot.models import Status
from bot.sources.base import Kubernetes, PodInfo, SourceError
from handlers.base import CheckContext
from handlers.lease_model import pod_is_live
from handlers.promql import prometheus_of

SKEW_WARNING_S = 2.0
SKEW_CRITICAL_S = 5.0
NODE_EXPORTER = "prometheus:node-exporter"


def node_of(labels: Mapping[str, str]) -> str | None:
    """The node a node-exporter series describes (a node label, else the instance's host)."""
    for key in ("node", "kubernetes_node", "nodename"):
        if labels.get(key):
            return labels[key]
    instance = labels.get("instance")
    return instance.rsplit(":", 1)[0] if instance else None


def judge_skew(offsets: Mapping[str, float]) -> tuple[Status, float]:
    """The clock spread between nodes (max - min offset) and its verdict."""
    spread = max(offsets.values()) - min(offsets.values())
    if spread > SKEW_CRITICAL_S:
        return Status.CRITICAL, spread
    return (Status.WARNING if spread > SKEW_WARNING_S else Status.OK), spread


async def metric_offsets(ctx: CheckContext, nodes: set[str]) -> tuple[dict[str, float], str]:
    """Offsets of ``nodes`` from node-exporter, else why there are none."""
    metric = ctx.profile.metric("node_timex_offset_seconds")
    try:
        samples = await prometheus_of(ctx).instant(str(metric))
    except SourceError as error:
        return {}, f"{error.source}: {error.detail}"
    offsets = {node: s.value for s in samples if (node := node_of(s.labels)) in nodes}
    return offsets, "" if offsets else f"{metric} has no series for {', '.join(sorted(nodes))}"


async def exec_offsets(k8s: Kubernetes, pods: Sequence[PodInfo]) -> dict[str, float]:
    """One live pod per node runs ``date +%s``: its clock minus the bot's."""
    one_per_node = {pod.node: pod for pod in pods if pod.node and pod_is_live(pod)}

    async def offset(pod: PodInfo) -> float:
        output = await k8s.exec(pod.name, ["date", "+%s"])
        return float(output.strip()) - datetime.now(UTC).timestamp()

    values = await asyncio.gather(*(offset(pod) for pod in one_per_node.values()))
    return dict(zip(one_per_node, values, strict=True))
