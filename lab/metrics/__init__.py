"""The lab's Prometheus metrics: series derived from the World, spelled per profile, served.

- ``series``: World → families in the runbooks' spelling (pure).
- ``spelling``: runbook ↔ upstream names, labels and values; the no-metrics exposure.
- ``exporter``: counter integration, text/OpenMetrics rendering and the HTTP endpoint.
"""

from lab.metrics.exporter import (
    CounterIntegrator,
    MetricsExporter,
    Timeline,
    history_instants,
    history_openmetrics,
    render_openmetrics,
    render_text,
    snapshot,
)
from lab.metrics.series import Family, Sample, derive
from lab.metrics.spelling import metric_name, spell

__all__ = [
    "CounterIntegrator",
    "Family",
    "MetricsExporter",
    "Sample",
    "Timeline",
    "derive",
    "history_instants",
    "history_openmetrics",
    "metric_name",
    "render_openmetrics",
    "render_text",
    "snapshot",
    "spell",
]
