"""Alertmanager webhook v4 bodies, as Alertmanager builds them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

STARTS_AT = "2026-11-27T10:00:00.000Z"
ZERO_TIME = "0001-01-01T00:00:00Z"


def alert(
    name: str,
    status: str = "firing",
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    starts_at: str = STARTS_AT,
) -> dict[str, Any]:
    """One alert of a payload; its fingerprint is derived from its labels like Alertmanager."""
    all_labels = {"alertname": name, "namespace": "streamhouse", **(labels or {})}
    digest = hashlib.sha256(json.dumps(all_labels, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": all_labels,
        "annotations": dict(annotations or {}),
        "startsAt": starts_at,
        "endsAt": ZERO_TIME if status == "firing" else "2026-11-27T10:30:00.000Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": digest,
    }


def payload(*alerts: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    """A webhook v4 body carrying ``alerts``."""
    overall = status or ("firing" if any(a["status"] == "firing" for a in alerts) else "resolved")
    return {
        "version": "4",
        "groupKey": '{}:{alertname="x"}',
        "truncatedAlerts": 0,
        "status": overall,
        "receiver": "streamhouse-bot",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }
