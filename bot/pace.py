"""Slack's pace per channel, shared by every worker of every replica.

Slack accepts about one ``chat.postMessage`` per second per channel and answers bursts
with 429. Each poster (the audit outbox, the alert poster) takes a slot in the
``channel_pace`` table before posting: one atomic upsert that only succeeds when the
channel's next slot is due, so the bot as a whole keeps to the pace however many replicas
run. A 429 pushes the channel's next slot back by its ``Retry-After``. In an alert storm
the incidents' roots take the slots first; thread posts wait until no root is waiting.
"""

from __future__ import annotations

from bot.store.db import Database

_TAKE = """
    INSERT INTO channel_pace (channel, next_post_at)
    VALUES (%s, now() + make_interval(secs => %s))
    ON CONFLICT (channel) DO UPDATE SET next_post_at = EXCLUDED.next_post_at
    WHERE channel_pace.next_post_at <= now()
    RETURNING channel
"""
# A thread post (audit line, diagnosis, storm note) waits while an alert incident of the
# channel opened in the last minutes still lacks its summary: roots go first in a storm.
_TAKE_UNLESS_ROOTS_WAIT = """
    INSERT INTO channel_pace (channel, next_post_at)
    SELECT %s, now() + make_interval(secs => %s)
    WHERE NOT EXISTS (
        SELECT 1 FROM incidents
        WHERE channel = %s AND origin <> 'command' AND summary_ts IS NULL
          AND state <> 'resolved' AND opened_at > now() - interval '5 minutes'
    )
    ON CONFLICT (channel) DO UPDATE SET next_post_at = EXCLUDED.next_post_at
    WHERE channel_pace.next_post_at <= now()
    RETURNING channel
"""
_PUSH_BACK = """
    INSERT INTO channel_pace (channel, next_post_at)
    VALUES (%s, now() + make_interval(secs => %s))
    ON CONFLICT (channel) DO UPDATE
    SET next_post_at = greatest(channel_pace.next_post_at, EXCLUDED.next_post_at)
"""


class ChannelPace:
    """Slots of ``interval_s`` per channel, in ``db``."""

    def __init__(self, db: Database, interval_s: float) -> None:
        self._db = db
        self.interval_s = interval_s

    async def take(self, channel: str, *, root: bool = False) -> bool:
        """Take the channel's next slot if it is due now (committed at once). Only an
        incident's root (``root=True``) may take it while other roots are waiting."""
        if self.interval_s <= 0:
            return True
        async with self._db.pool.connection() as conn, conn.transaction():
            if root:
                cursor = await conn.execute(_TAKE, (channel, self.interval_s))
            else:
                params = (channel, self.interval_s, channel)
                cursor = await conn.execute(_TAKE_UNLESS_ROOTS_WAIT, params)
            return await cursor.fetchone() is not None

    async def push_back(self, channel: str, seconds: float) -> None:
        """Nothing more in ``channel`` for ``seconds`` (Slack said so with a 429)."""
        async with self._db.pool.connection() as conn, conn.transaction():
            await conn.execute(_PUSH_BACK, (channel, seconds))
