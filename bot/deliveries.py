"""Which Slack deliveries were handled already, so Slack's retries never run anything twice.

First deliveries are only *noted* on the acknowledgement path (no I/O); a flusher writes
the noted keys to PostgreSQL in one batched insert every ``flush_interval`` seconds. A
retry (``X-Slack-Retry-Num`` > 0) is checked against the keys still waiting in memory and
then against the table with an atomic insert, so of several replicas exactly one handles
it. Slack retries after seconds to minutes, far longer than a flush interval.
"""

from __future__ import annotations

import asyncio
import logging

from bot.store.db import Database

logger = logging.getLogger("bot.deliveries")


class DeliveryLog:
    """Batches delivery records off the hot path and answers "was this handled?"."""

    def __init__(self, db: Database, *, flush_interval: float = 0.05) -> None:
        self._db = db
        self._flush_interval = flush_interval
        self._pending: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None

    def note(self, key: str) -> None:
        """Remember a first delivery; written to the database shortly after."""
        self._pending.add(key)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    async def first_time(self, key: str) -> bool:
        """For a retried delivery: True if nobody handled ``key`` yet (and claim it)."""
        if key in self._pending:
            return False
        return await self._db.remember_delivery(key)

    async def flush(self) -> None:
        """Write every noted key now."""
        keys, self._pending = self._pending, set()
        if not keys:
            return
        try:
            await self._db.remember_deliveries(sorted(keys))
        except BaseException:
            self._pending |= keys  # kept for the next flush
            raise

    async def close(self) -> None:
        """Flush what is left; called before the database closes."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.flush()

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._flush_interval)
        try:
            await self.flush()
        except Exception as error:  # the next note() tries again; nothing is lost in memory
            logger.warning("could not record Slack deliveries: %s", error)
