"""SQL on ``partition_leases`` (and ``agents``) in either profile's spelling.

``acquire`` is upstream's ``acquire_partition_lease`` (streamhouse-facts.md §3.2): one
upsert that acquires or renews when the row is held by the same agent or has expired by
the caller's clock, setting the holder, ``lease_expires_at = now + duration``,
``acquired_at = now`` and ``epoch = epoch + 1``; otherwise the row is left alone and the
caller gets a conflict. The runbook profile runs the same statement with its column names.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from lab.metadata.profiles import Spelling
from lab.metadata.seed import agent_row
from lab.metadata.snapshot import WorldView
from lab.world import Lease

Conn = AsyncConnection[Any]


class LeaseTable:
    """Reads and writes ``partition_leases`` of one profile and organization."""

    def __init__(self, spelling: Spelling, org_id: str) -> None:
        self._spelling = spelling
        self._org_id = org_id
        holder, epoch = sql.Identifier(spelling.holder), sql.Identifier(spelling.epoch)
        self._select = sql.SQL(
            "select topic, partition_id, {}, {}, lease_expires_at, acquired_at"
            " from partition_leases"
        ).format(holder, epoch)
        self._upsert = _upsert_query(spelling)

    async def read(self, conn: Conn) -> list[Lease]:
        """Every lease row, expired ones included, ordered by topic and partition."""
        cursor = await conn.execute(self._select + sql.SQL(" order by topic, partition_id"))
        return [_lease(row) for row in await cursor.fetchall()]

    async def read_one(self, conn: Conn, topic: str, partition: int) -> Lease | None:
        """The lease row of one partition, if any."""
        query = self._select + sql.SQL(" where topic = %s and partition_id = %s")
        cursor = await conn.execute(query, (topic, partition))
        row = await cursor.fetchone()
        return None if row is None else _lease(row)

    async def partitions(self, conn: Conn) -> set[tuple[str, int]] | None:
        """The partitions rows (upstream; leases reference them), None without that table."""
        if not self._spelling.has_organizations:
            return None
        cursor = await conn.execute("select topic, partition_id from partitions")
        return {(str(topic), int(partition)) for topic, partition in await cursor.fetchall()}

    async def acquire(
        self,
        conn: Conn,
        key: tuple[str, int],
        agent_id: str,
        *,
        now_ms: int,
        seen_now_ms: int,
        duration_ms: int,
    ) -> Lease | None:
        """Acquire or renew for ``agent_id``; None when another agent holds the lease.

        ``seen_now_ms`` is the time by the agent's own clock, which decides whether the
        current lease has expired (a skewed clock sees leases expire early).
        """
        topic, partition = key
        params = {
            "org": self._org_id,
            "topic": topic,
            "partition": partition,
            "agent": agent_id,
            "expires": now_ms + duration_ms,
            "now": now_ms,
            "seen_now": seen_now_ms,
        }
        cursor = await conn.execute(self._upsert, params)
        row = await cursor.fetchone()
        return None if row is None else _lease(row)

    async def heartbeat(self, conn: Conn, view: WorldView) -> None:
        """Live agents register or heartbeat (upstream only: the runbook has no agents table).

        Like upstream's ``register_agent``, a registration first removes another agent row
        with the same address, which cascades to that agent's leases.
        """
        if not self._spelling.has_agents:
            return
        for agent in view.agents:
            if not agent.live:
                continue
            row = agent_row(view, agent)
            await conn.execute(
                "delete from agents where address = %s and agent_id <> %s", (row[2], row[0])
            )
            await conn.execute(
                "insert into agents (agent_id, organization_id, address, availability_zone,"
                " agent_group, last_heartbeat, started_at, metadata)"
                " values (%s, %s, %s, %s, 'default', %s, %s, %s)"
                " on conflict (agent_id) do update set address = excluded.address,"
                " last_heartbeat = excluded.last_heartbeat, started_at = excluded.started_at",
                row,
            )


def _upsert_query(spelling: Spelling) -> sql.Composed:
    """Upstream's acquire/renew upsert in the profile's column names."""
    holder, epoch = sql.Identifier(spelling.holder), sql.Identifier(spelling.epoch)
    org_column = sql.SQL("organization_id, " if spelling.has_organizations else "")
    org_value = sql.SQL("%(org)s, " if spelling.has_organizations else "")
    return sql.SQL(
        "insert into partition_leases as held"
        " ({org_column}topic, partition_id, {holder}, lease_expires_at, acquired_at, {epoch})"
        " values ({org_value}%(topic)s, %(partition)s, %(agent)s, %(expires)s, %(now)s, 1)"
        " on conflict (topic, partition_id) do update"
        " set {holder} = excluded.{holder}, lease_expires_at = excluded.lease_expires_at,"
        " acquired_at = excluded.acquired_at, {epoch} = held.{epoch} + 1"
        " where held.{holder} = excluded.{holder} or held.lease_expires_at < %(seen_now)s"
        " returning topic, partition_id, {holder}, {epoch}, lease_expires_at, acquired_at"
    ).format(org_column=org_column, org_value=org_value, holder=holder, epoch=epoch)


def _lease(row: tuple[Any, ...]) -> Lease:
    topic, partition, holder, epoch, expires_at, acquired_at = row
    return Lease(
        str(topic), int(partition), str(holder), int(epoch), int(expires_at), int(acquired_at)
    )
