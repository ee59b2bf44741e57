"""Posts audit events to their Slack threads, in order, exactly once, surviving outages.

``AuditLog.append`` queues each event in ``audit_outbox`` in the same transaction as the
event. ``AuditOutbox.drain_once`` posts the queued rows that are due:

- Order: a row is claimed only when no earlier row of the same thread is still unposted,
  so event N+1 never reaches a thread before event N.
- Once: the row stays locked (``FOR UPDATE SKIP LOCKED``) from claim until its
  ``posted_ts`` is set by ``UPDATE ... WHERE posted_ts IS NULL``, so two workers never
  post it twice; a worker that finds a thread's head locked moves on to other threads.
- Nothing lost: a failed post only increments ``attempts`` and pushes ``next_attempt_at``
  back (exponential, capped at 60 s, at least a 429's ``Retry-After``); the row stays.

A crash between Slack accepting a message and the commit repeats that one message:
delivery is at least once, and exactly once whenever the worker survives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC
from typing import Any

import aiohttp
import psycopg
from psycopg.rows import TupleRow
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import AuditEvent, describe
from bot.pace import ChannelPace
from bot.store.db import Connection, Database

_log = logging.getLogger("bot.outbox")

MAX_DELAY_S = 60.0
# Bounds one drain, so a worker facing a long backlog still checks its stop event.
_MAX_CLAIMS_PER_DRAIN = 200

_CLAIM_NEXT = """
    SELECT o.event_id, o.channel, o.thread_ts, o.attempts,
           e.incident_id, e.at, e.actor, e.kind, e.body, e.prev_hash, e.hash
    FROM audit_outbox o JOIN audit_events e ON e.id = o.event_id
    WHERE o.posted_ts IS NULL
      AND o.thread_ts IS NOT NULL
      AND o.next_attempt_at <= now()
      AND NOT EXISTS (  -- the channel's next posting slot (bot.pace) is due
          SELECT 1 FROM channel_pace p WHERE p.channel = o.channel AND p.next_post_at > now()
      )
      AND NOT EXISTS (
          SELECT 1 FROM audit_outbox earlier
          WHERE earlier.posted_ts IS NULL
            AND earlier.channel = o.channel
            AND earlier.thread_ts IS NOT DISTINCT FROM o.thread_ts
            AND earlier.event_id < o.event_id
      )
    ORDER BY o.event_id
    LIMIT 1
    FOR UPDATE OF o SKIP LOCKED
"""
_MARK_POSTED = """
    UPDATE audit_outbox SET posted_ts = %s, attempts = attempts + 1
    WHERE event_id = %s AND posted_ts IS NULL
"""
_MARK_FAILED = """
    UPDATE audit_outbox
    SET attempts = attempts + 1,
        next_attempt_at = now() + make_interval(secs => %s),
        last_error = %s
    WHERE event_id = %s AND posted_ts IS NULL
"""


_CHANNEL_OF = "SELECT channel FROM audit_outbox WHERE event_id = %s"


def retry_delay(
    attempts: int, retry_after: float | None, *, base_s: float = 1.0, max_s: float = MAX_DELAY_S
) -> float:
    """Seconds to wait after the ``attempts``-th failure: doubling from ``base_s``, capped
    at ``max_s``, but never less than what Slack asked for in ``Retry-After``."""
    backoff = min(max_s, base_s * 2.0 ** max(attempts - 1, 0))
    return max(backoff, retry_after or 0.0)


def slack_line(event: AuditEvent) -> str:
    """The thread message for one event, escaped for Slack (``&``, ``<``, ``>``)."""
    when = event.at.astimezone(UTC).strftime("%H:%M:%SZ")
    actor = event.actor or "bot"
    line = f"#{event.id} {when} {actor}: {describe(event)} ({event.hash[:8]})"
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class AuditOutbox:
    """Drains ``audit_outbox`` into Slack threads; run one or several per database."""

    def __init__(
        self,
        db: Database,
        slack_client: AsyncWebClient,
        *,
        base_delay_s: float = 1.0,
        pace: ChannelPace | None = None,
    ):
        self._db = db
        self._slack = slack_client
        self._base_delay_s = base_delay_s
        self._pace = pace or ChannelPace(db, 0.0)

    async def drain_once(self) -> int:
        """Post every due row (thread by thread, in order); return how many were posted."""
        posted = 0
        for _ in range(_MAX_CLAIMS_PER_DRAIN):
            outcome = await self._post_next()
            if outcome is None:
                break
            posted += outcome
        return posted

    async def run(self, stop_event: asyncio.Event, interval: float = 0.5) -> None:
        """Drain every ``interval`` s until ``stop_event`` is set; database errors are logged."""
        while not stop_event.is_set():
            try:
                await self.drain_once()
            except psycopg.Error as error:  # the database restarts: try again next round
                _log.warning("audit outbox: database error, retrying: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), timeout=interval)

    async def _post_next(self) -> bool | None:
        """Claim and post one row: None when nothing is due, else whether Slack took it."""
        async with self._db.pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(_CLAIM_NEXT)
            row = await cursor.fetchone()
            if row is None:
                return None
            event_id, channel, thread_ts, attempts = row[0], row[1], row[2], int(row[3])
            event = _event_from_claim(row)
            if not await self._pace.take(channel):  # another worker just posted there
                return None
            try:
                response = await self._slack.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, text=slack_line(event)
                )
            except (SlackClientError, aiohttp.ClientError, TimeoutError) as error:
                await self._mark_failed(conn, event_id, attempts + 1, error)
                return False
            await conn.execute(_MARK_POSTED, (str(response["ts"]), event_id))
            return True

    async def _mark_failed(
        self, conn: Connection, event_id: int, attempts: int, error: Exception
    ) -> None:
        retry_after = _retry_after(error)
        delay = retry_delay(attempts, retry_after, base_s=self._base_delay_s)
        if retry_after is not None:
            cursor = await conn.execute(_CHANNEL_OF, (event_id,))
            row = await cursor.fetchone()
            if row is not None:
                await self._pace.push_back(str(row[0]), retry_after)
        reason = _describe_error(error)
        _log.warning(
            "audit event %d not posted (attempt %d, next in %.1f s): %s",
            event_id,
            attempts,
            delay,
            reason,
        )
        await conn.execute(_MARK_FAILED, (delay, reason, event_id))


def _event_from_claim(row: TupleRow) -> AuditEvent:
    incident_id, at, actor, kind, body, prev_hash, digest = row[4:]
    return AuditEvent(incident_id, at, actor, kind, body, int(row[0]), prev_hash, digest)


def _retry_after(error: Exception) -> float | None:
    """A 429's ``Retry-After`` in seconds, or None."""
    if not isinstance(error, SlackApiError) or error.response.status_code != 429:
        return None
    headers: Mapping[str, Any] = error.response.headers or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


def _describe_error(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        code = error.response.get("error", "unknown")
        return f"HTTP {error.response.status_code}: {code}"
    return f"{type(error).__name__}: {error}"
