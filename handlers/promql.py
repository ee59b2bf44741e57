"""Reading Prometheus from a check: the source, the profile's metric names, and sums.

Every runbook that queries Prometheus uses these, so that each says the same thing when
Prometheus is not configured or a metric does not exist in the active profile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from bot.sources.base import PodInfo, Prometheus, Sample, SourceNotConfigured, SourceQueryError
from handlers.base import CheckContext

PUT = 'operation=~"(?i)put"'  # the code spells it "PUT", the alert rules "put"


def prometheus_of(ctx: CheckContext) -> Prometheus:
    """The Prometheus source, or ``SourceNotConfigured``."""
    if ctx.sources.prometheus is None:
        raise SourceNotConfigured("prometheus", "PROMETHEUS_URL is not set")
    return ctx.sources.prometheus


def family(ctx: CheckContext, runbook_name: str) -> str:
    """The metric family in the active profile (a query error where it does not exist)."""
    name = ctx.profile.metric(runbook_name)
    if name is None:
        raise SourceQueryError("prometheus", f"no {runbook_name} in the {ctx.profile.name} profile")
    return name


def total(samples: Sequence[Sample]) -> float:
    """The sum of the samples' values, NaN counted as 0."""
    return sum(0.0 if math.isnan(s.value) else s.value for s in samples)


def agent_of(labels: Mapping[str, str]) -> str:
    """Which agent a series belongs to: pod, else agent id, else scrape target."""
    return labels.get("pod") or labels.get("agent_id") or labels.get("instance") or "fleet"


def container_selector(pods: Sequence[PodInfo]) -> str:
    """The PromQL selector of the agents' containers (pod names are DNS labels)."""
    names = "|".join(pod.name.replace(".", "\\\\.") for pod in pods)
    return f'{{pod=~"{names}",container!="",container!="POD"}}'
