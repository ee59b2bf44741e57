"""The bot's PostgreSQL connection pool and the queries every part of the bot shares.

Sessions run in UTC, so timestamps come back as timezone-aware UTC datetimes. Connections
are checked on checkout, so a database restart costs one reconnect, not an error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import timedelta
from types import TracebackType
from typing import Self

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from bot.store.errors import StoreConnectionError

_log = logging.getLogger("bot.store")

Connection = psycopg.AsyncConnection[TupleRow]

_REMEMBER_DELIVERY = """
    INSERT INTO slack_deliveries (key) VALUES (%s)
    ON CONFLICT (key) DO NOTHING
    RETURNING key
"""
_REMEMBER_DELIVERIES = """
    INSERT INTO slack_deliveries (key) SELECT unnest(%s::text[])
    ON CONFLICT (key) DO NOTHING
"""
_FORGET_DELIVERIES = "DELETE FROM slack_deliveries WHERE seen_at < now() - %s"


class Database:
    """A pool of connections to the bot's database; build it with ``await Database.connect``."""

    def __init__(self, pool: AsyncConnectionPool[Connection], target: str) -> None:
        self._pool = pool
        self._target = target

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        # A budget shared by the retries and the pool's own waits; asyncio.timeout would
        # cancel the pool half-open instead of failing with a clear message.
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> Database:
        """Open a pool once the database accepts connections, retrying up to ``timeout`` s.

        Raises ``StoreConnectionError`` naming the host and database (never the password).
        """
        target, password = describe_conninfo(url)
        deadline = time.monotonic() + timeout
        await _wait_for_database(url, target, password, deadline)
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            name="bot-store",
            configure=_configure_session,
            check=AsyncConnectionPool.check_connection,
        )
        try:
            await pool.open(wait=True, timeout=max(deadline - time.monotonic(), 1.0))
        except PoolTimeout:
            raise StoreConnectionError(
                f"connected to {target}, but the pool could not open {min_size} connection(s) "
                f"within {timeout:g} s"
            ) from None
        _log.info("connected to %s (pool of %d-%d)", target, min_size, max_size)
        return cls(pool, target)

    @property
    def pool(self) -> AsyncConnectionPool[Connection]:
        """The underlying psycopg pool, for modules that run their own queries."""
        return self._pool

    @property
    def target(self) -> str:
        """Where this database is, for messages: host, port, database, user; no password."""
        return self._target

    async def close(self) -> None:
        """Close every connection; the Database cannot be used afterwards."""
        await self._pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def ping(self) -> float:
        """Seconds a ``SELECT 1`` round trip takes; raises if the database is unreachable."""
        async with self._pool.connection() as conn:
            started = time.perf_counter()
            await conn.execute("SELECT 1")
            return time.perf_counter() - started

    async def remember_delivery(self, key: str) -> bool:
        """Record a Slack delivery key; True the first time it is seen, False for repeats.

        One atomic insert, so of several replicas handling the same retry exactly one wins.
        """
        if not key:
            raise ValueError("a delivery key must not be empty")
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_REMEMBER_DELIVERY, (key,))
            return await cursor.fetchone() is not None

    async def remember_deliveries(self, keys: list[str]) -> None:
        """Record many delivery keys in one statement (keys already known are left alone)."""
        if keys:
            async with self._pool.connection() as conn:
                await conn.execute(_REMEMBER_DELIVERIES, (keys,))

    async def forget_deliveries_older_than(self, age: timedelta) -> int:
        """Delete delivery keys first seen more than ``age`` ago; returns how many."""
        if age < timedelta(0):
            raise ValueError(f"age must not be negative, got {age}")
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_FORGET_DELIVERIES, (age,))
            return cursor.rowcount


def describe_conninfo(url: str) -> tuple[str, str | None]:
    """A description of where ``url`` points (no password), and the password to scrub."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        # libpq's parse errors quote the offending text, which may be the password.
        raise StoreConnectionError(
            "the database URL cannot be parsed; check its syntax (it is not shown here "
            "because it may contain a password)"
        ) from None
    host = str(params.get("host") or "the default socket")
    port = params.get("port")
    where = f"{host}:{port}" if port else host
    user = params.get("user")
    who = f" as user {user!r}" if user else ""
    password = params.get("password")
    return (
        f"database {str(params.get('dbname') or '(default)')!r} on {where}{who}",
        str(password) if password else None,
    )


async def _wait_for_database(url: str, target: str, password: str | None, deadline: float) -> None:
    """Connect once (then close) to prove the database is up; retry with backoff until deadline."""
    delay = 0.1
    while True:
        remaining = deadline - time.monotonic()
        try:
            async with asyncio.timeout(max(remaining, 0.1)):
                conn = await psycopg.AsyncConnection.connect(
                    url, connect_timeout=max(math.ceil(remaining), 1)
                )
        except psycopg.ProgrammingError as error:  # a bad option: retrying cannot help
            reason = _scrub(error, password)
            raise StoreConnectionError(f"invalid settings for {target}: {reason}") from None
        except (psycopg.OperationalError, TimeoutError) as error:
            if time.monotonic() + delay >= deadline:
                reason = _scrub(error, password) or "timed out"
                raise StoreConnectionError(f"cannot connect to {target}: {reason}") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        else:
            await conn.close()
            return


async def _configure_session(conn: Connection) -> None:
    """Run each pooled session in UTC so timestamptz values come back as UTC datetimes."""
    await conn.execute("SET TIME ZONE 'UTC'")
    await conn.commit()


def _scrub(error: Exception, password: str | None) -> str:
    """The error's message on one line, with the password (if any) masked."""
    message = " ".join(str(error).split())
    return message.replace(password, "***") if password else message
