"""The values the digest scheduler and the digest builder exchange."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Subscription:
    """A channel's digest schedule as stored; ``schedule`` is the normalised spelling the
    user sees (``daily 09:00 Europe/Berlin``, ``hourly``, ``cron "0 */4 * * *" UTC``)."""

    id: int
    channel: str
    schedule: str
    timezone: str
    created_by: str
    created_at: datetime
    last_posted_at: datetime | None


@dataclass(frozen=True)
class DueDigest:
    """One digest to post now: for ``subscription``, the run scheduled at ``run_at``,
    covering what changed since ``since`` (the channel's last digest; None: the first)."""

    subscription: Subscription
    run_at: datetime
    since: datetime | None
