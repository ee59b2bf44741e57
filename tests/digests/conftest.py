"""A real bot (HTTP mode, its own database) on a lab, with a counting Prometheus for digests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from bot.digests.model import DueDigest, Subscription
from bot.runtime import BotRuntime
from lab.query_count import counted as counted  # the digest tests count queries with it
from lab.slack import SlackEmulator
from lab.stack import Lab
from tests.fixtures.bot import make_settings

CHANNELS = ("C0GENERAL", "C0ALERTS", "C0INCIDENTS")


def due(channel: str, number: int, since: datetime | None = None) -> DueDigest:
    """A digest due now for ``channel`` (subscription id ``number``)."""
    now = datetime.now(UTC)
    subscription = Subscription(number, channel, "daily 09:00 UTC", "UTC", "U0ALICE", now, since)
    return DueDigest(subscription, now, since)


@asynccontextmanager
async def digest_bot(
    emulator: SlackEmulator, database_url: str, lab: Lab | None, **overrides: Any
) -> AsyncIterator[BotRuntime]:
    """A running bot on ``lab`` (its Streamhouse settings), posting to ``emulator``."""
    env = lab.env() if lab is not None else {}
    values = {k.lower(): v for k, v in env.items() if not k.startswith("AWS_")}
    values.update(overrides)
    async with BotRuntime(make_settings(emulator, database_url, **values)) as bot:
        yield bot
