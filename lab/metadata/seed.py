"""Rows rendered from the ``World``: ``seed`` replaces the database's content with them.

Agents heartbeat now when live and 2 minutes ago otherwise (beyond the 60 s liveness
window); a lease holder the world no longer has gets a stale agents row too, so upstream's
foreign key holds. Without leases in the world, partitions are assigned round-robin over
the sorted live agents, as upstream's assigner does. Each partition gets three contiguous
segments, the newest uploaded at ``world.last_uploads`` (default: one flush interval ago).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection, sql

from lab.metadata.profiles import Spelling
from lab.metadata.snapshot import AgentView, WorldView, to_ms
from lab.world import Lease, Subject

STALE_HEARTBEAT = timedelta(minutes=2)
FLUSH_INTERVAL = timedelta(seconds=5)
FLUSH_INTERVAL_MS = 5_000
SEGMENTS_PER_PARTITION = 3
RECORDS_PER_SEGMENT = 1000
SEGMENT_BYTES = 4 * 1024 * 1024
TOPIC_RETENTION_MS = 7 * 24 * 3600 * 1000
AGENT_PORT = 9090

Conn = AsyncConnection[Any]


async def seed_world(conn: Conn, spelling: Spelling, view: WorldView, lease_ms: int) -> list[Lease]:
    """Replace every row with the world's, in one transaction; returns the leases written."""
    leases = list(view.leases) or assign_round_robin(view, lease_ms)
    async with conn.transaction():
        await _truncate(conn, spelling)
        if spelling.has_organizations:
            await _insert_organization(conn, view)
            await _insert_topics_and_segments(conn, view)
        if spelling.has_agents:
            await _insert_agents(conn, view, leases)
        await insert_leases(conn, spelling, view.org_id, leases)
        await _insert_registry(conn, spelling, view)
    return leases


def assign_round_robin(view: WorldView, lease_ms: int) -> list[Lease]:
    """Fresh leases (epoch 1): partition i goes to the i-th live agent, modulo their count."""
    holders = view.live_agent_ids
    if not holders:
        return []
    now_ms = view.now_ms
    return [
        Lease(topic, partition, holders[index % len(holders)], 1, now_ms + lease_ms, now_ms)
        for index, (topic, partition) in enumerate(view.partitions)
    ]


async def insert_leases(conn: Conn, spelling: Spelling, org_id: str, leases: list[Lease]) -> None:
    """Insert lease rows in the profile's column names."""
    columns = [
        "topic",
        "partition_id",
        spelling.holder,
        spelling.epoch,
        "lease_expires_at",
        "acquired_at",
    ]
    if spelling.has_organizations:
        columns.insert(0, "organization_id")
    query = sql.SQL("insert into partition_leases ({}) values ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )
    rows: list[tuple[Any, ...]] = [
        (
            lease.topic,
            lease.partition,
            lease.holder,
            lease.epoch,
            lease.expires_at_ms,
            lease.acquired_at_ms,
        )
        for lease in leases
    ]
    if spelling.has_organizations:
        rows = [(org_id, *row) for row in rows]
    async with conn.cursor() as cur:
        await cur.executemany(query, rows)


async def _truncate(conn: Conn, spelling: Spelling) -> None:
    tables = sql.SQL(", ").join(map(sql.Identifier, spelling.tables))
    await conn.execute(sql.SQL("truncate {} restart identity cascade").format(tables))
    await conn.execute("update schema_registry_global_config set compatibility = 'backward'")


async def _insert_organization(conn: Conn, view: WorldView) -> None:
    await conn.execute(
        "insert into organizations (id, name, slug, plan, created_at, updated_at)"
        " values (%s, 'Streamhouse Lab', 'streamhouse-lab', 'enterprise', %s, %s)",
        (view.org_id, view.now_ms - TOPIC_RETENTION_MS, view.now_ms),
    )


async def _insert_topics_and_segments(conn: Conn, view: WorldView) -> None:
    created = view.now_ms - TOPIC_RETENTION_MS
    topics = [
        (view.org_id, name, count, TOPIC_RETENTION_MS, created, created)
        for name, count in sorted(view.topics.items())
    ]
    high_watermark = SEGMENTS_PER_PARTITION * RECORDS_PER_SEGMENT
    partitions = [
        (view.org_id, topic, partition, high_watermark, created, view.now_ms)
        for topic, partition in view.partitions
    ]
    segments = [row for key in view.partitions for row in _segment_rows(view, *key)]
    async with conn.cursor() as cur:
        await cur.executemany(
            "insert into topics (organization_id, name, partition_count, retention_ms,"
            " created_at, updated_at) values (%s, %s, %s, %s, %s, %s)",
            topics,
        )
        await cur.executemany(
            "insert into partitions (organization_id, topic, partition_id, high_watermark,"
            " created_at, updated_at) values (%s, %s, %s, %s, %s, %s)",
            partitions,
        )
        await cur.executemany(
            "insert into segments (id, organization_id, topic, partition_id, base_offset,"
            " end_offset, record_count, size_bytes, s3_bucket, s3_key, created_at,"
            " min_timestamp, max_timestamp)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            segments,
        )


def _segment_rows(view: WorldView, topic: str, partition: int) -> list[tuple[Any, ...]]:
    """Contiguous segments of one partition, one flush interval apart, newest last."""
    newest = view.last_uploads.get((topic, partition), view.now - FLUSH_INTERVAL)
    rows: list[tuple[Any, ...]] = []
    for index in range(SEGMENTS_PER_PARTITION):
        base = index * RECORDS_PER_SEGMENT
        uploaded = to_ms(newest - FLUSH_INTERVAL * (SEGMENTS_PER_PARTITION - 1 - index))
        key = f"org-{view.org_id}/data/{topic}/{partition}/{base:020d}.seg"
        rows.append(
            (
                f"{topic}-{partition}-{base}",
                view.org_id,
                topic,
                partition,
                base,
                base + RECORDS_PER_SEGMENT - 1,
                RECORDS_PER_SEGMENT,
                SEGMENT_BYTES,
                view.bucket,
                key,
                uploaded,
                uploaded - FLUSH_INTERVAL_MS,
                uploaded,
            )
        )
    return rows


async def _insert_agents(conn: Conn, view: WorldView, leases: list[Lease]) -> None:
    known = {agent.agent_id for agent in view.agents}
    ghosts = sorted({lease.holder for lease in leases} - known)
    rows = [agent_row(view, agent) for agent in view.agents]
    rows += [_ghost_row(view, agent_id) for agent_id in ghosts]
    async with conn.cursor() as cur:
        await cur.executemany(
            "insert into agents (agent_id, organization_id, address, availability_zone,"
            " agent_group, last_heartbeat, started_at, metadata)"
            " values (%s, %s, %s, %s, 'default', %s, %s, %s)",
            rows,
        )


def agent_row(view: WorldView, agent: AgentView) -> tuple[Any, ...]:
    """An agents row: heartbeat now when live, else ``STALE_HEARTBEAT`` ago."""
    heartbeat = view.now if agent.live else view.now - STALE_HEARTBEAT
    metadata = json.dumps({"pod": agent.pod, "node": agent.node})
    return (
        agent.agent_id,
        view.org_id,
        f"{agent.pod}:{AGENT_PORT}",
        agent.node,
        to_ms(heartbeat),
        to_ms(agent.started_at),
        metadata,
    )


def _ghost_row(view: WorldView, agent_id: str) -> tuple[Any, ...]:
    """An agents row for a holder whose pod is gone: stale heartbeat, unknown node."""
    stale = to_ms(view.now - STALE_HEARTBEAT)
    return (
        agent_id,
        view.org_id,
        f"{agent_id}:{AGENT_PORT}",
        "unknown",
        stale,
        stale,
        json.dumps({"pod": None}),
    )


async def _insert_registry(conn: Conn, spelling: Spelling, view: WorldView) -> None:
    org = (view.org_id,) if spelling.has_organizations else ()
    org_column = sql.SQL("organization_id, " if spelling.has_organizations else "")
    org_value = sql.SQL("%s, " if spelling.has_organizations else "")
    await conn.execute(
        "update schema_registry_global_config set compatibility = %s, updated_at = %s",
        (compatibility(view.global_compatibility), view.now),
    )
    schema_ids: dict[str, int] = {}
    for subject in sorted(view.subjects, key=lambda item: item.name):
        for number, definition in enumerate(subject.versions, start=1):
            schema_id = await _schema_id(conn, spelling, view, definition, schema_ids)
            created = view.now - timedelta(days=len(subject.versions) - number + 1)
            query = sql.SQL(
                "insert into schema_registry_versions ({}subject, version, schema_id, created_at)"
                " values ({}%s, %s, %s, %s)"
            ).format(org_column, org_value)
            await conn.execute(query, (*org, subject.name, number, schema_id, created))
        await _insert_subject_config(conn, spelling, view, subject)


async def _schema_id(
    conn: Conn, spelling: Spelling, view: WorldView, definition: str, known: dict[str, int]
) -> int:
    """The id of ``definition``, inserting it once (schema_hash is globally unique)."""
    digest = hashlib.sha256(definition.encode()).hexdigest()
    if digest not in known:
        org = (view.org_id,) if spelling.has_organizations else ()
        query = sql.SQL(
            "insert into schema_registry_schemas ({}schema_format, schema_definition,"
            " schema_hash, created_at) values ({}'avro', %s, %s, %s) returning id"
        ).format(sql.SQL("organization_id, " if org else ""), sql.SQL("%s, " if org else ""))
        cursor = await conn.execute(query, (*org, definition, digest, view.now))
        row = await cursor.fetchone()
        if row is None:  # cannot happen: INSERT ... RETURNING returns the new row
            raise RuntimeError("schema_registry_schemas insert returned no id")
        known[digest] = int(row[0])
    return known[digest]


async def _insert_subject_config(
    conn: Conn, spelling: Spelling, view: WorldView, subject: Subject
) -> None:
    if subject.compatibility is None:
        return  # the global default applies: upstream keeps no row for such a subject
    mode = compatibility(subject.compatibility)
    if spelling.has_organizations:
        await conn.execute(
            "insert into schema_registry_subject_config"
            " (subject, organization_id, compatibility, updated_at) values (%s, %s, %s, %s)",
            (subject.name, view.org_id, mode, view.now),
        )
    else:
        await conn.execute(
            "insert into schema_registry_subject_config (subject, compatibility, updated_at)"
            " values (%s, %s, %s)",
            (subject.name, mode, view.now),
        )


def compatibility(mode: str) -> str:
    """A compatibility mode as the registry stores it: lower snake case (``full_transitive``)."""
    return mode.strip().lower().replace("-", "_")
