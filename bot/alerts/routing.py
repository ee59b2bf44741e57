"""Which runbook an alert belongs to, and which incident it groups into.

Routing, first match wins:

1. the ``runbook`` or ``runbook_url`` annotation names a runbook file (also when a link to
   one sits inside ``description`` or ``summary``);
2. the alert name: the names of the runbooks' README and the names the Streamhouse code's
   own rule file uses (``../shared/reference/streamhouse-facts.md`` §2), see ``BY_NAME``;
3. otherwise the alert is *unrouted*: it still opens an incident, which shows its labels.

Grouping: alerts of one runbook that agree on the group-by label keys (default
``namespace`` and ``cluster``, ``BOT_ALERT_GROUP_BY``) share an incident; for runbooks
about one partition (leases, WAL) the topic and partition join the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from bot.alerts.model import IncomingAlert
from handlers.registry import RUNBOOKS

UNROUTED = "unrouted"

BY_NAME: Mapping[str, str] = MappingProxyType(
    {
        # circuit-breaker: the breaker and the S3 failures that open it
        "CircuitBreakerOpen": "circuit-breaker",
        "CircuitBreakerFlapping": "circuit-breaker",
        "HighS3ErrorRate": "circuit-breaker",
        "S3ErrorRateHigh": "circuit-breaker",
        "S3LatencyHigh": "circuit-breaker",
        # s3-throttling
        "HighThrottlingRate": "s3-throttling",
        "HighS3ThrottlingRate": "s3-throttling",
        # lease-conflicts (the README's LeaseConflicts is PartitionLeaseConflicts upstream)
        "LeaseConflicts": "lease-conflicts",
        "PartitionLeaseConflicts": "lease-conflicts",
        "LeaseRenewalFailures": "lease-conflicts",
        "LeaseAcquisitionFailures": "lease-conflicts",
        # wal-recovery
        "WALRecoveryFailures": "wal-recovery",
        "WALCorruptionRate": "wal-recovery",
        "WALSizeGrowing": "wal-recovery",
        "WALDiskSpaceLow": "wal-recovery",
        # schema-registry
        "SchemaRegistrationFailures": "schema-registry",
        "SchemaNotFoundErrors": "schema-registry",
        "SchemaCompatibilityCheckFailures": "schema-registry",
        # resource-pressure
        "HighMemoryUsage": "resource-pressure",
        "AgentOOMKilled": "resource-pressure",
        "DiskSpaceLow": "resource-pressure",
        "DiskSpaceCritical": "resource-pressure",
        "HighCPUUsage": "resource-pressure",
    }
)
PER_PARTITION = frozenset({"lease-conflicts", "wal-recovery"})
DEFAULT_GROUP_BY = ("namespace", "cluster")
_RUNBOOK_FILE = re.compile(r"([a-z0-9-]+)\.md\b")
_ANNOTATIONS = ("runbook", "runbook_url", "description", "summary", "message")


def _by_file() -> Mapping[str, str]:
    return MappingProxyType({runbook.file: runbook.id for runbook in RUNBOOKS.values()})


BY_FILE = _by_file()


def route(alert: IncomingAlert) -> str:
    """The runbook id ``alert`` belongs to, or ``UNROUTED``."""
    for key in _ANNOTATIONS:
        text = alert.annotations.get(key) or ""
        for match in _RUNBOOK_FILE.finditer(text):
            runbook = BY_FILE.get(f"{match[1]}.md")
            if runbook is not None:
                return runbook
    return BY_NAME.get(alert.alertname, UNROUTED)


def group_key(
    alert: IncomingAlert, runbook: str, group_by: Sequence[str] = DEFAULT_GROUP_BY
) -> str:
    """The incident an alert joins: ``runbook|key=value|…`` over the group-by labels (and
    topic/partition for per-partition runbooks); an unrouted alert groups by its name."""
    if alert.origin == "shortcut":  # "Diagnose this" on a message: that message's incident
        return f"shortcut|{alert.labels.get('channel', '')}|{alert.labels.get('message_ts', '')}"
    keys = list(group_by)
    if runbook in PER_PARTITION:
        keys += ["topic", "partition"]
    head = runbook if runbook != UNROUTED else f"{UNROUTED}:{alert.alertname}"
    parts = [f"{key}={alert.labels[key]}" for key in keys if alert.labels.get(key)]
    return "|".join([head, *parts])


def target_of(alert: IncomingAlert, runbook: str) -> dict[str, str | int]:
    """The diagnose target an alert names (topic, partition, agent), as incidents store it."""
    target: dict[str, str | int] = {}
    if runbook in PER_PARTITION and alert.labels.get("topic"):
        target["topic"] = alert.labels["topic"]
        partition = alert.labels.get("partition", "")
        if partition.isdigit():
            target["partition"] = int(partition)
    return target
