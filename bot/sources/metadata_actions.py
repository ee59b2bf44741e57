"""Writes to the Streamhouse metadata database: the guarded lease reset (LC-A1) only.

Like ``bot.sources.kubernetes_actions`` for the cluster, this is the one module allowed to
change the metadata database; ``bot.executors`` decides whether a write may happen.

The reset expires one lease *as the approver saw it*: the UPDATE matches the holder and
epoch shown in the preview, so a lease that a live agent took or renewed since is left
alone (zero rows) and the caller learns what it is now. Times are milliseconds since the
Unix epoch read from the database's own clock, in the profile's column names; upstream,
row-level security only lets the UPDATE see the organization's rows, so the session sets
``app.current_organization_id`` like the read-only source does. Each write opens its own
short connection: nothing stays open between writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors, sql

from bot.profiles import Profile
from bot.sources.base import (
    SourceError,
    SourceForbidden,
    SourceQueryError,
    SourceUnreachable,
)
from bot.store.db import describe_conninfo
from bot.store.errors import StoreConnectionError

NAME = "metadata-db"
CONNECT_TIMEOUT_S = 3.0
STATEMENT_TIMEOUT_MS = 10_000
_NOW_MS = "(extract(epoch from now()) * 1000)::bigint"
_EXPIRE = """
    update partition_leases set lease_expires_at = least(lease_expires_at, {now})
    where topic = %(topic)s and partition_id = %(partition)s
      and {holder} = %(holder)s and {epoch} = %(epoch)s
    returning lease_expires_at
"""
_CURRENT = """
    select {holder}::text, {epoch}::bigint, lease_expires_at from partition_leases
    where topic = %(topic)s and partition_id = %(partition)s
"""


@dataclass(frozen=True)
class LeaseNow:
    """A lease as the database holds it right after a reset attempt."""

    holder: str
    epoch: int
    expires_at_ms: int


@dataclass(frozen=True)
class ResetResult:
    """What the guarded UPDATE did: ``expired`` (one row changed) or not, and the row now
    (``None``: no row visible for that partition)."""

    expired: bool
    current: LeaseNow | None
    db_now_ms: int


def expire_statement(profile: Profile) -> sql.Composed:
    """The guarded UPDATE in ``profile``'s column names (parameters by name)."""
    return sql.SQL(_EXPIRE).format(
        now=sql.SQL(_NOW_MS),
        holder=sql.Identifier(profile.lease_holder_column),
        epoch=sql.Identifier(profile.lease_epoch_column),
    )


class MetadataActions:
    """Write statements against ``STREAMHOUSE_DATABASE_URL``; ``close()`` when done."""

    def __init__(self, url: str, profile: Profile, *, organization_id: str | None = None) -> None:
        self.profile = profile
        self._url = url
        self._organization = organization_id if profile.lease_table_has_rls else None
        try:
            self._target, self._password = describe_conninfo(url)
        except StoreConnectionError as error:
            self._target, self._password = f"the metadata database ({error})", None

    async def close(self) -> None:
        """Nothing is kept open between writes."""

    # -- how the write reads in a preview ----------------------------------------------------
    def expire_lease_call(self, topic: str, partition: int, holder: str, epoch: int) -> str:
        """The UPDATE the reset runs, with the approved values filled in."""
        holder_column = self.profile.lease_holder_column
        epoch_column = self.profile.lease_epoch_column
        tenant = (
            f"SET app.current_organization_id = '{self._organization}'; "
            if self._organization
            else ""
        )
        # Text for the approver to read; the write itself binds parameters.
        return (
            f"{tenant}UPDATE partition_leases SET lease_expires_at = <database now, ms> "  # noqa: S608
            f"WHERE topic = '{topic}' AND partition_id = {partition} "
            f"AND {holder_column} = '{holder}' AND {epoch_column} = {epoch}"
        )

    # -- the write ---------------------------------------------------------------------------
    async def expire_lease(
        self, topic: str, partition: int, holder: str, epoch: int
    ) -> ResetResult:
        """Expire the lease of ``topic``/``partition`` if ``holder`` still holds it at
        ``epoch``; either way, the row as it is afterwards (one transaction)."""
        params = {"topic": topic, "partition": partition, "holder": holder, "epoch": epoch}
        current = sql.SQL(_CURRENT).format(
            holder=sql.Identifier(self.profile.lease_holder_column),
            epoch=sql.Identifier(self.profile.lease_epoch_column),
        )
        async with await self._connect() as conn:
            try:
                async with conn.transaction():
                    await self._configure(conn)
                    cursor = await conn.execute(expire_statement(self.profile), params)
                    expired = await cursor.fetchone() is not None
                    cursor = await conn.execute(current, params)
                    row = await cursor.fetchone()
                    cursor = await conn.execute(f"select {_NOW_MS}")
                    now = await cursor.fetchone()
            except psycopg.Error as error:
                raise self._write_error(error) from None
        lease = None if row is None else LeaseNow(str(row[0]), int(row[1]), int(row[2]))
        return ResetResult(expired, lease, int(now[0]) if now else 0)

    # -- plumbing ----------------------------------------------------------------------------
    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S + 1):
                return await psycopg.AsyncConnection.connect(
                    self._url,
                    connect_timeout=int(CONNECT_TIMEOUT_S),
                    application_name="streamhouse-chatops",
                )
        except TimeoutError:
            detail = f"{self._target} timed out after {CONNECT_TIMEOUT_S:g} s"
            raise SourceUnreachable(NAME, detail) from None
        except psycopg.Error as error:
            reason = self._scrub(error)
            if error.sqlstate in ("28000", "28P01") or "authentication failed" in reason:
                raise SourceForbidden(NAME, f"{self._target} refused the bot: {reason}") from None
            raise SourceUnreachable(NAME, f"cannot connect to {self._target}: {reason}") from None

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """UTC, a statement timeout and the tenant (row-level security) for this transaction."""
        await conn.execute("set local time zone 'UTC'")
        await conn.execute(sql.SQL("set local statement_timeout = {}").format(STATEMENT_TIMEOUT_MS))
        if self._organization:
            await conn.execute(
                "select set_config('app.current_organization_id', %s, true)", (self._organization,)
            )

    def _write_error(self, error: psycopg.Error) -> SourceError:
        reason = self._scrub(error)
        if isinstance(error, errors.InsufficientPrivilege):
            return SourceForbidden(
                NAME,
                f"the bot's database role may not expire leases: it lacks the UPDATE privilege "
                f"on partition_leases (GRANT UPDATE ON partition_leases TO <the bot's role>, "
                f"or connect as the table's owner); the database said: {reason}",
            )
        if isinstance(error, errors.QueryCanceled):
            return SourceQueryError(NAME, "cannot expire the lease: the statement timed out")
        if isinstance(error, errors.UndefinedColumn):
            return SourceQueryError(
                NAME, f"cannot expire the lease: {reason} (is STREAMHOUSE_PROFILE right?)"
            )
        if isinstance(error, psycopg.OperationalError):
            return SourceUnreachable(NAME, f"lost {self._target}: {reason}")
        return SourceQueryError(NAME, f"cannot expire the lease: {reason}")

    def _scrub(self, error: Exception) -> str:
        message = " ".join(str(error).split())
        return message.replace(self._password, "***") if self._password else message
