"""One alert as the bot receives it, whichever way it came in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

AlertStatus = Literal["firing", "resolved"]
AlertOrigin = Literal["webhook", "alertmanager-slack", "grafana", "shortcut"]


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id for an alert identified only by its labels (Slack messages carry no
    Alertmanager fingerprint): the first 16 hex digits of a SHA-256 of the sorted labels."""
    canonical = json.dumps(dict(sorted(labels.items())), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class IncomingAlert:
    """An alert: identity (fingerprint), state, and the untrusted text it carries.

    ``labels`` and ``annotations`` come from outside: render them escaped, never as mrkdwn.
    """

    alertname: str
    status: AlertStatus
    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str | None = None
    origin: AlertOrigin = "webhook"

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", label_fingerprint(self.labels))

    @property
    def severity(self) -> str:
        """``critical``, ``warning``… from the labels (or annotations), else ``unknown``."""
        value = self.labels.get("severity") or self.annotations.get("severity") or "unknown"
        return value.lower()


@dataclass(frozen=True)
class AlertLine:
    """One stored alert as the incident summary lists it."""

    alertname: str
    status: AlertStatus
    severity: str
    labels: Mapping[str, str]
    received_count: int


@dataclass(frozen=True)
class AlertSummary:
    """The alerts of an incident: how many fire, how many resolved, and the first few."""

    firing: int
    resolved: int
    received: int
    lines: tuple[AlertLine, ...]

    @property
    def total(self) -> int:
        """Distinct alerts (each fingerprint and start once)."""
        return self.firing + self.resolved
