"""Digest subscriptions and the claim rows that make each scheduled run post once.

Every replica schedules every subscription; before posting, a replica claims the runs it
found due with one ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` under a transaction-level
advisory lock, so of several replicas exactly one gets each run, and the runs of one
minute go to one of them together (one digest build for all of that minute's channels).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from bot.digests.model import DueDigest, Subscription
from bot.errors import ConflictError
from bot.store.db import Connection, Database

# One key for every replica: ASCII "SHDIGS" read as an integer.
_CLAIM_LOCK_KEY = 0x5348_4449_4753

_COLUMNS = "id, channel, schedule, timezone, created_by, created_at, last_posted_at"
_SUBSCRIBE = f"""
    INSERT INTO digest_subscriptions (channel, schedule, timezone, created_by)
    VALUES (%s, %s, %s, %s)
    ON CONFLICT (channel, schedule) WHERE active DO NOTHING
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list, values are parameters
_ACTIVE_WITH = f"""
    SELECT {_COLUMNS} FROM digest_subscriptions
    WHERE active AND channel = %s AND schedule = %s
"""  # noqa: S608 -- fixed column list
_GET = f"SELECT {_COLUMNS} FROM digest_subscriptions WHERE id = %s AND active"  # noqa: S608
_LIST = f"SELECT {_COLUMNS} FROM digest_subscriptions WHERE active ORDER BY id"  # noqa: S608
_LIST_CHANNEL = f"""
    SELECT {_COLUMNS} FROM digest_subscriptions WHERE active AND channel = %s ORDER BY id
"""  # noqa: S608 -- fixed column list
_UNSUBSCRIBE = f"""
    UPDATE digest_subscriptions SET active = false, removed_by = %s, removed_at = now()
    WHERE id = %s AND active
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list, values are parameters
_CLAIM = """
    INSERT INTO digest_runs (subscription_id, run_at)
    SELECT s.id, due.run_at
    FROM unnest(%s::bigint[], %s::timestamptz[]) AS due (subscription_id, run_at)
    JOIN digest_subscriptions s ON s.id = due.subscription_id AND s.active
    ORDER BY s.id
    ON CONFLICT (subscription_id, run_at) DO NOTHING
    RETURNING subscription_id, run_at
"""
_CLAIMED_SUBSCRIPTIONS = f"""
    SELECT {_COLUMNS} FROM digest_subscriptions WHERE id = ANY(%s)
"""  # noqa: S608 -- fixed column list
_MARK_POSTED = """
    WITH posted AS (
        UPDATE digest_runs r SET posted_at = now()
        FROM unnest(%s::bigint[], %s::timestamptz[]) AS p (subscription_id, run_at)
        WHERE r.subscription_id = p.subscription_id AND r.run_at = p.run_at
        RETURNING r.subscription_id, r.claimed_at
    )
    UPDATE digest_subscriptions s
    SET last_posted_at = GREATEST(s.last_posted_at, posted.claimed_at)
    FROM posted WHERE s.id = posted.subscription_id
"""
_RELEASE = """
    DELETE FROM digest_runs r
    USING unnest(%s::bigint[], %s::timestamptz[]) AS p (subscription_id, run_at)
    WHERE r.subscription_id = p.subscription_id AND r.run_at = p.run_at
      AND r.posted_at IS NULL
"""
_RECORD_POSTED = """
    UPDATE digest_subscriptions SET last_posted_at = GREATEST(last_posted_at, %s)
    WHERE id = ANY(%s)
"""
_RUNS_OF = """
    SELECT run_at, posted_at FROM digest_runs WHERE subscription_id = %s ORDER BY run_at
"""

RunKey = tuple[int, datetime]


class DigestStore:
    """Subscriptions (subscribe, list, unsubscribe) and run claims, in PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def subscribe(
        self, channel: str, schedule: str, timezone: str, created_by: str
    ) -> Subscription:
        """Store a new active subscription; the same schedule twice in a channel conflicts."""
        async with self._db.pool.connection() as conn:
            row = await _one(conn, _SUBSCRIBE, (channel, schedule, timezone, created_by))
            if row is not None:
                return row
            existing = await _one(conn, _ACTIVE_WITH, (channel, schedule))
        number = f" (subscription {existing.id})" if existing else ""
        raise ConflictError(f"<#{channel}> already gets a digest `{schedule}`{number}.")

    async def get(self, subscription_id: int) -> Subscription | None:
        """The active subscription with this id, if there is one."""
        async with self._db.pool.connection() as conn:
            return await _one(conn, _GET, (subscription_id,))

    async def active(self, channel: str | None = None) -> list[Subscription]:
        """Every active subscription (or only ``channel``'s), oldest first."""
        async with self._db.pool.connection() as conn:
            if channel is None:
                return await _all(conn, _LIST, ())
            return await _all(conn, _LIST_CHANNEL, (channel,))

    async def unsubscribe(self, subscription_id: int, user: str) -> Subscription | None:
        """Deactivate a subscription; None when it is not (or no longer) active."""
        async with self._db.pool.connection() as conn:
            return await _one(conn, _UNSUBSCRIBE, (user, subscription_id))

    async def claim(self, runs: Mapping[int, datetime]) -> list[DueDigest]:
        """Claim the given runs (subscription id → scheduled time); return those won.

        A run already claimed (by this or another replica) or of a subscription no longer
        active is left out. ``since`` is read in the same transaction, so it is the time of
        the channel's latest digest whichever replica posted it.
        """
        if not runs:
            return []
        ids, times = list(runs), list(runs.values())
        async with self._db.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CLAIM_LOCK_KEY,))
            cursor = await conn.execute(_CLAIM, (ids, times))
            claimed = {int(row[0]): row[1] for row in await cursor.fetchall()}
            subscriptions = await _all(conn, _CLAIMED_SUBSCRIPTIONS, (list(claimed),))
        return [
            DueDigest(subscription, claimed[subscription.id], subscription.last_posted_at)
            for subscription in sorted(subscriptions, key=lambda item: item.id)
        ]

    async def mark_posted(self, runs: Iterable[RunKey]) -> None:
        """Record that these runs were posted; the channel's last digest is their claim time."""
        ids, times = _columns(runs)
        if ids:
            async with self._db.pool.connection() as conn:
                await conn.execute(_MARK_POSTED, (ids, times))

    async def release(self, runs: Iterable[RunKey]) -> None:
        """Drop the claims of runs that were not posted, so a restart may post them."""
        ids, times = _columns(runs)
        if ids:
            async with self._db.pool.connection() as conn:
                await conn.execute(_RELEASE, (ids, times))

    async def record_posted(self, subscription_ids: Sequence[int], at: datetime) -> None:
        """Record an unscheduled digest (``digest now``) as these subscriptions' latest."""
        if subscription_ids:
            async with self._db.pool.connection() as conn:
                await conn.execute(_RECORD_POSTED, (at, list(subscription_ids)))

    async def runs(self, subscription_id: int) -> list[tuple[datetime, datetime | None]]:
        """(run_at, posted_at) of every claimed run of a subscription, oldest first."""
        async with self._db.pool.connection() as conn:
            cursor = await conn.execute(_RUNS_OF, (subscription_id,))
            return [(row[0], row[1]) for row in await cursor.fetchall()]


def _columns(runs: Iterable[RunKey]) -> tuple[list[int], list[datetime]]:
    pairs = list(runs)
    return [pair[0] for pair in pairs], [pair[1] for pair in pairs]


def _subscription(row: Mapping[str, Any]) -> Subscription:
    return Subscription(
        id=int(row["id"]),
        channel=row["channel"],
        schedule=row["schedule"],
        timezone=row["timezone"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        last_posted_at=row["last_posted_at"],
    )


async def _one(conn: Connection, query: str, params: tuple[Any, ...]) -> Subscription | None:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, params)
        row = await cursor.fetchone()
    return None if row is None else _subscription(row)


async def _all(conn: Connection, query: str, params: tuple[Any, ...]) -> list[Subscription]:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, params)
        return [_subscription(row) for row in await cursor.fetchall()]
