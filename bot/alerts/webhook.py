"""Alertmanager's webhook (payload version 4), validated before anything is stored.

A body that is not JSON, not a version 4 payload, or has an alert without the fields
Alertmanager always sends is refused as a whole with a message that names the problem
(``WebhookRejected``), so nothing is half-stored.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.alerts.model import IncomingAlert

MAX_BODY_BYTES = 1024 * 1024
MAX_ALERTS = 2000
# Alertmanager's "zero" time for an alert that has not ended.
_ZERO_TIME_YEAR = 1


class WebhookRejected(Exception):
    """The body cannot be accepted; ``str()`` says why, for the 400 answer."""


class _Alert(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str | None = Field(default=None, alias="generatorURL")
    fingerprint: str = ""


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_key: str = Field(default="", alias="groupKey")
    alerts: list[_Alert] = Field(max_length=MAX_ALERTS)


def parse_webhook(raw: bytes) -> list[IncomingAlert]:
    """The alerts of a webhook body, or ``WebhookRejected`` naming the first problem."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise WebhookRejected(f"the body is not JSON: {error}") from None
    try:
        payload = _Payload.model_validate(body)
    except ValidationError as error:
        raise WebhookRejected(_first_problem(error)) from None
    return [_incoming(alert) for alert in payload.alerts]


def _incoming(alert: _Alert) -> IncomingAlert:
    ends_at = alert.ends_at
    if ends_at is not None and ends_at.year <= _ZERO_TIME_YEAR:
        ends_at = None
    return IncomingAlert(
        alertname=alert.labels.get("alertname", "unnamed"),
        status=alert.status,
        labels=alert.labels,
        annotations=alert.annotations,
        fingerprint=alert.fingerprint,
        starts_at=alert.starts_at,
        ends_at=ends_at,
        generator_url=alert.generator_url,
        origin="webhook",
    )


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the body"
    return f"not an Alertmanager webhook v4 payload: {where}: {first['msg']}"
