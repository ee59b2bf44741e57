"""The Streamhouse metadata PostgreSQL, read-only, with the profile's column names.

One connection, opened on first use and reopened when it breaks, guarded by a lock (the
checks of one diagnosis issue a handful of short queries). Every read is one READ ONLY
transaction; sessions run in UTC with a statement timeout. Upstream, row-level security
hides tenant rows from a role that is neither owner nor BYPASSRLS: with
``STREAMHOUSE_ORGANIZATION_ID`` set, each session sets ``app.current_organization_id``;
without it, zero visible lease rows are reported as ``hidden_by_rls`` with a note.

A missing table is an answer, not a crash: ``None`` (agents, segments) or a ``missing``
entry (registry tables). Failures: cannot connect → ``SourceUnreachable`` (the password is
never shown), authentication or permission refused → ``SourceForbidden``, any other SQL
error → ``SourceQueryError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg import errors, sql

from bot.profiles import Profile
from bot.sources.base import (
    AgentRow,
    DbHealth,
    LeaseReadout,
    LeaseRow,
    RegistryTables,
    SourceError,
    SourceForbidden,
    SourceQueryError,
    SourceUnreachable,
)
from bot.store.db import describe_conninfo
from bot.store.errors import StoreConnectionError

NAME = "metadata-db"
T = TypeVar("T")
Conn = psycopg.AsyncConnection[tuple[Any, ...]]
Query = str | sql.SQL | sql.Composed
REGISTRY_TABLES = (
    "schema_registry_schemas",
    "schema_registry_versions",
    "schema_registry_subject_config",
    "schema_registry_global_config",
)
LONG_QUERY_S = 30
_AUTH_STATES = frozenset({"28000", "28P01"})
_LEASE_QUERY = """
    select topic, partition_id, {holder}::text, {epoch}::bigint, lease_expires_at, acquired_at
    from partition_leases
    where (%(topic)s::text is null or topic = %(topic)s)
      and (%(partition)s::int is null or partition_id = %(partition)s)
    order by topic, partition_id
"""
_RLS_FACTS = """
    select c.relrowsecurity, c.relforcerowsecurity, r.rolsuper, r.rolbypassrls,
           pg_has_role(current_user, c.relowner, 'USAGE'),
           coalesce(current_setting('app.current_organization_id', true), '')
    from pg_class c cross join pg_roles r
    where c.oid = 'partition_leases'::regclass and r.rolname = current_user
"""
_LONG_QUERIES = """
    select pid, extract(epoch from now() - query_start)::float8, left(query, 200)
    from pg_stat_activity
    where datname = current_database() and state <> 'idle' and pid <> pg_backend_pid()
      and query_start < now() - make_interval(secs => %s)
    order by query_start
    limit 10
"""
_HEALTH_COUNTS = """
    select (select count(*)::int from pg_stat_activity where datname = current_database()),
           current_setting('max_connections')::int,
           (select count(distinct w.pid)::int from pg_locks w
            where not w.granted and (
                w.relation = to_regclass('partition_leases')
                or exists (select 1 from pg_locks h  -- a row-lock waiter holds the table lock
                           where h.pid = w.pid and h.relation = to_regclass('partition_leases'))))
"""
_ORPHANED_VERSIONS = """
    select count(*)::int from schema_registry_versions v
    left join schema_registry_schemas s on s.id = v.schema_id
    where s.id is null
"""


@dataclass(frozen=True)
class RlsFacts:
    """What decides whether row-level security hides ``partition_leases`` from the role."""

    role: str
    rls_enabled: bool
    rls_forced: bool
    superuser: bool
    bypass_rls: bool
    owner: bool
    organization: str  # app.current_organization_id in the session ('' when unset)
    agent_rows: int  # rows visible in ``agents`` (0 where there is no such table)

    @property
    def subject_to_rls(self) -> bool:
        """Whether the policies apply to this role at all."""
        exempt = self.superuser or self.bypass_rls or (self.owner and not self.rls_forced)
        return self.rls_enabled and not exempt


def rls_verdict(facts: RlsFacts) -> str | None:
    """Why zero visible lease rows mean "cannot see" rather than "no leases", or ``None``."""
    if not facts.subject_to_rls:
        return None
    fix = (
        "set STREAMHOUSE_ORGANIZATION_ID (the bot then sets app.current_organization_id) "
        "or connect as the table owner or a BYPASSRLS role"
    )
    if not facts.organization:
        return (
            f"row-level security on partition_leases hides every row from role "
            f"{facts.role!r} (not the owner, no BYPASSRLS, app.current_organization_id "
            f"unset): {fix}"
        )
    if facts.agent_rows:
        return (
            f"partition_leases shows no rows to role {facts.role!r} for organization "
            f"{facts.organization} while agents has {facts.agent_rows}: row-level security "
            f"probably hides them; check STREAMHOUSE_ORGANIZATION_ID, or {fix.split(' or ')[1]}"
        )
    return None


class MetadataDbSource:
    """The ``MetadataDb`` protocol over one lazily opened connection; ``close()`` when done."""

    def __init__(
        self,
        url: str,
        profile: Profile,
        *,
        organization_id: str | None = None,
        connect_timeout: float = 3.0,
        statement_timeout_ms: int = 10_000,
    ) -> None:
        self.profile = profile
        self._url = url
        self._organization = organization_id if profile.lease_table_has_rls else None
        self._connect_timeout = connect_timeout
        self._statement_timeout_ms = statement_timeout_ms
        try:
            self._target, self._password = describe_conninfo(url)
        except StoreConnectionError as error:
            self._target, self._password = f"the metadata database ({error})", None
        self._conn: Conn | None = None
        self._lock = asyncio.Lock()
        self._discovered_org: str | None = None

    async def close(self) -> None:
        """Close the connection (a later read opens a new one)."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()

    # -- the protocol -----------------------------------------------------------------------
    async def leases(self, topic: str | None = None, partition: int | None = None) -> LeaseReadout:
        """Lease rows (expired ones included), with ``hidden_by_rls`` when RLS hides them."""

        async def read(conn: Conn) -> LeaseReadout:
            if not await _existing(conn, ["partition_leases"]):
                raise SourceQueryError(
                    NAME, f"table partition_leases does not exist in {self._target}"
                )
            now_ms, role = await _one(
                conn, "select (extract(epoch from now()) * 1000)::bigint, current_user::text"
            )
            rows = [
                _lease(row)
                for row in await _all(
                    conn, self._lease_query(), {"topic": topic, "partition": partition}
                )
            ]
            if rows or await _one_value(conn, "select count(*)::int from partition_leases"):
                return LeaseReadout(tuple(rows), int(now_ms), str(role))
            note = rls_verdict(await self._rls_facts(conn, str(role)))
            return LeaseReadout((), int(now_ms), str(role), note is not None, note)

        return await self._read("read partition_leases", read)

    async def agents(self) -> list[AgentRow] | None:
        """Registered agents, or ``None`` where the profile or database has no such table."""
        if not self.profile.has_agents_table:
            return None

        async def read(conn: Conn) -> list[AgentRow] | None:
            if not await _existing(conn, ["agents"]):
                return None
            query = "select agent_id, address, last_heartbeat from agents order by agent_id"
            return [
                AgentRow(str(a), str(b), _int_or_none(c)) for a, b, c in await _all(conn, query)
            ]

        return await self._read("read agents", read)

    async def health(self) -> DbHealth:
        """Connections vs ``max_connections``, queries running > 30 s, lease lock waits."""

        async def read(conn: Conn) -> DbHealth:
            connections, max_connections, lock_waits = await _one(conn, _HEALTH_COUNTS)
            long_queries = await _all(conn, _LONG_QUERIES, (LONG_QUERY_S,))
            return DbHealth(
                connections=int(connections),
                max_connections=int(max_connections),
                long_queries=tuple((int(p), float(s), str(q)) for p, s, q in long_queries),
                lease_lock_waits=int(lock_waits),
            )

        return await self._read("read pg_stat_activity and pg_locks", read)

    async def registry_tables(self) -> RegistryTables:
        """The four ``schema_registry_*`` tables: present or missing, counts, orphans."""

        async def read(conn: Conn) -> RegistryTables:
            present = await _existing(conn, REGISTRY_TABLES)
            counts = {}
            for table in present:
                query = sql.SQL("select count(*)::int from {}").format(sql.Identifier(table))
                counts[table] = int(await _one_value(conn, query))
            orphans = 0
            if {"schema_registry_versions", "schema_registry_schemas"} <= set(present):
                orphans = int(await _one_value(conn, _ORPHANED_VERSIONS))
            missing = tuple(t for t in REGISTRY_TABLES if t not in present)
            return RegistryTables(tuple(present), missing, counts, orphans)

        return await self._read("read the schema registry tables", read)

    async def last_segment_upload(self, topic: str, partition: int) -> datetime | None:
        """``max(segments.created_at)`` of the partition, or ``None`` (no table, no segment)."""
        if not self.profile.has_segments_table:
            return None

        async def read(conn: Conn) -> datetime | None:
            if not await _existing(conn, ["segments"]):
                return None
            query = "select max(created_at) from segments where topic = %s and partition_id = %s"
            created_ms = await _one_value(conn, query, (topic, partition))
            return None if created_ms is None else datetime.fromtimestamp(created_ms / 1000, UTC)

        return await self._read("read segments", read)

    # -- beyond the protocol ----------------------------------------------------------------
    async def organization_id(self) -> str:
        """The only organization in ``organizations`` (for the registry's org header)."""
        if self._organization or self._discovered_org:
            return self._organization or str(self._discovered_org)

        async def read(conn: Conn) -> list[tuple[Any, ...]]:
            if not await _existing(conn, ["organizations"]):
                return []
            return await _all(
                conn, "select id::text from organizations order by created_at limit 2"
            )

        found = await self._read("read organizations", read)
        if len(found) != 1:
            seen = "no organization is visible" if not found else "there are several organizations"
            raise SourceQueryError(
                NAME, f"{seen} in {self._target}; set STREAMHOUSE_ORGANIZATION_ID"
            )
        self._discovered_org = str(found[0][0])
        return self._discovered_org

    # -- internals --------------------------------------------------------------------------
    def _lease_query(self) -> sql.Composed:
        return sql.SQL(_LEASE_QUERY).format(
            holder=sql.Identifier(self.profile.lease_holder_column),
            epoch=sql.Identifier(self.profile.lease_epoch_column),
        )

    async def _rls_facts(self, conn: Conn, role: str) -> RlsFacts:
        enabled, forced, superuser, bypass, owner, organization = await _one(conn, _RLS_FACTS)
        agents = 0
        if self.profile.has_agents_table and await _existing(conn, ["agents"]):
            agents = int(await _one_value(conn, "select count(*)::int from agents"))
        return RlsFacts(role, enabled, forced, superuser, bypass, owner, str(organization), agents)

    async def _read(self, what: str, work: Callable[[Conn], Awaitable[T]]) -> T:
        """``work`` in one READ ONLY transaction, its failures translated."""
        async with self._lock:
            conn = await self._connection()
            try:
                async with conn.transaction():
                    return await work(conn)
            except errors.QueryCanceled:
                raise SourceQueryError(NAME, f"cannot {what}: the statement timed out") from None
            except psycopg.OperationalError as error:
                self._conn = None
                await conn.close()
                raise SourceUnreachable(
                    NAME, f"lost {self._target}: {self._scrub(error)}"
                ) from None
            except psycopg.Error as error:
                raise _query_error(what, error, self._scrub(error)) from None

    async def _connection(self) -> Conn:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        try:
            async with asyncio.timeout(self._connect_timeout + 1):
                conn = await psycopg.AsyncConnection.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=max(int(self._connect_timeout), 1),
                    application_name="streamhouse-chatops",
                )
        except TimeoutError:
            limit = f"{self._connect_timeout:g} s"
            raise SourceUnreachable(NAME, f"{self._target} timed out after {limit}") from None
        except psycopg.Error as error:
            raise self._connect_error(error) from None
        await self._configure(conn)
        self._conn = conn
        return conn

    async def _configure(self, conn: Conn) -> None:
        """UTC, a statement timeout, read-only transactions and the tenant (RLS) setting."""
        await conn.execute("set time zone 'UTC'")
        await conn.execute(sql.SQL("set statement_timeout = {}").format(self._statement_timeout_ms))
        if self._organization:
            await conn.execute(
                "select set_config('app.current_organization_id', %s, false)", (self._organization,)
            )
        await conn.set_read_only(True)

    def _connect_error(self, error: psycopg.Error) -> SourceError:
        reason = self._scrub(error)
        if error.sqlstate in _AUTH_STATES or "authentication failed" in reason:
            return SourceForbidden(NAME, f"{self._target} refused the bot: {reason}")
        return SourceUnreachable(NAME, f"cannot connect to {self._target}: {reason}")

    def _scrub(self, error: Exception) -> str:
        message = " ".join(str(error).split())
        return message.replace(self._password, "***") if self._password else message


def _query_error(what: str, error: psycopg.Error, reason: str) -> SourceError:
    if isinstance(error, errors.InsufficientPrivilege):
        return SourceForbidden(NAME, f"cannot {what}: {reason}")
    if isinstance(error, errors.UndefinedColumn):
        return SourceQueryError(NAME, f"cannot {what}: {reason} (is STREAMHOUSE_PROFILE right?)")
    return SourceQueryError(NAME, f"cannot {what}: {reason}")


async def _existing(conn: Conn, tables: Sequence[str]) -> list[str]:
    """Those of ``tables`` that exist (on the search path), in the given order."""
    found = await _all(
        conn,
        "select t from unnest(%s::text[]) with ordinality as u(t, n) "
        "where to_regclass(t) is not null order by n",
        (list(tables),),
    )
    return [str(row[0]) for row in found]


async def _all(conn: Conn, query: Query, params: Any = None) -> list[tuple[Any, ...]]:
    cursor = await conn.execute(query, params)
    return await cursor.fetchall()


async def _one(conn: Conn, query: Query, params: Any = None) -> tuple[Any, ...]:
    cursor = await conn.execute(query, params)
    row = await cursor.fetchone()
    if row is None:  # every query given here returns one row
        raise SourceQueryError(NAME, "a single-row query returned nothing")
    return row


async def _one_value(conn: Conn, query: Query, params: Any = None) -> Any:
    return (await _one(conn, query, params))[0]


def _lease(row: tuple[Any, ...]) -> LeaseRow:
    topic, partition, holder, epoch, expires_at, acquired_at = row
    return LeaseRow(
        str(topic),
        int(partition),
        str(holder),
        int(epoch),
        int(expires_at),
        _int_or_none(acquired_at),
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
