"""The lab metadata database: both schemas, seeding, RLS, and the lease simulator."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import pytest_asyncio

from bot.store import EmbeddedPostgres
from lab.metadata.admin import url_for
from lab.metadata.leases import LeaseTable
from lab.metadata_db import MetadataDb
from lab.world import Lease, Profile, Subject, World

# Every test shares the module's event loop (so even the pure URL test is async): the
# databases and their connections are created once per module; each test re-seeds them.
pytestmark = pytest.mark.asyncio(loop_scope="module")

PROFILES: tuple[Profile, ...] = ("runbook", "upstream")
ORDERS_V1 = '{"type":"record","name":"Order","fields":[{"name":"id","type":"int"}]}'
ORDERS_V2 = (
    '{"type":"record","name":"Order","fields":[{"name":"id","type":"int"},'
    '{"name":"email","type":"string","default":""}]}'
)

# Partition-lease-conflicts runbook, Investigation step 1, verbatim apart from the psql wrapper.
RUNBOOK_STEP1 = """
SELECT
  topic,
  partition_id,
  agent_id,
  lease_epoch,
  to_timestamp(lease_expires_at / 1000) AS expires_at,
  CASE
    WHEN lease_expires_at > EXTRACT(EPOCH FROM NOW()) * 1000 THEN 'ACTIVE'
    ELSE 'EXPIRED'
  END AS status
FROM partition_leases
WHERE topic = 'orders' AND partition_id = 0;
"""

# The same question in the real column names (streamhouse-facts.md §9.4).
UPSTREAM_LEASE = """
SELECT l.leader_agent_id, l.epoch, to_timestamp(l.lease_expires_at / 1000.0),
       to_timestamp(l.acquired_at / 1000.0),
       l.lease_expires_at > (extract(epoch from now()) * 1000)::bigint AS active,
       a.last_heartbeat
FROM partition_leases l LEFT JOIN agents a ON a.agent_id = l.leader_agent_id
WHERE l.topic = %s AND l.partition_id = %s
"""

RESET = {
    "runbook": "UPDATE partition_leases SET lease_expires_at = 0"
    " WHERE topic = %s AND partition_id = %s AND agent_id = %s AND lease_epoch = %s",
    "upstream": "UPDATE partition_leases SET lease_expires_at = 0"
    " WHERE topic = %s AND partition_id = %s AND leader_agent_id = %s AND epoch = %s",
}


class Clock:
    """A settable UTC clock for the world, starting at the real time."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def make_world(profile: Profile, clock: Callable[[], datetime]) -> World:
    """Three healthy agents, two 4-partition topics and two subjects."""
    world = World(profile, now=clock)
    world.add_agents(3)
    world.subjects = {
        "orders-value": Subject("orders-value", [ORDERS_V1, ORDERS_V2], "FULL_TRANSITIVE"),
        "payments-value": Subject("payments-value", [ORDERS_V1]),  # same schema: one row
    }
    return world


@pytest.fixture
def clock() -> Clock:
    """The world's clock."""
    return Clock()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def databases(pg_server: EmbeddedPostgres) -> AsyncIterator[dict[str, MetadataDb]]:
    """One database per profile for the module (creating one costs ~0.2 s); tests re-seed."""
    suffix = secrets.token_hex(4)
    made: dict[str, MetadataDb] = {}
    try:
        for profile in PROFILES:
            made[profile] = await MetadataDb.create(
                pg_server.url(), World(profile), database=f"lab_meta_{profile}_{suffix}"
            )
        yield made
    finally:
        for db in made.values():
            await db.drop()


async def seeded(databases: dict[str, MetadataDb], world: World) -> AsyncIterator[MetadataDb]:
    """The profile's database seeded from ``world``; background ticks stopped afterwards."""
    db = databases[world.profile]
    await db.seed(world)
    yield db
    await db.stop_background()


@pytest_asyncio.fixture(loop_scope="module", params=PROFILES)
async def any_db(
    databases: dict[str, MetadataDb], clock: Clock, request: pytest.FixtureRequest
) -> AsyncIterator[MetadataDb]:
    """A freshly seeded database of each profile."""
    async for db in seeded(databases, make_world(request.param, clock)):
        yield db


@pytest_asyncio.fixture(loop_scope="module")
async def runbook_db(databases: dict[str, MetadataDb], clock: Clock) -> AsyncIterator[MetadataDb]:
    """A freshly seeded runbook-profile database."""
    async for db in seeded(databases, make_world("runbook", clock)):
        yield db


@pytest_asyncio.fixture(loop_scope="module")
async def upstream_db(databases: dict[str, MetadataDb], clock: Clock) -> AsyncIterator[MetadataDb]:
    """A freshly seeded upstream-profile database."""
    async for db in seeded(databases, make_world("upstream", clock)):
        yield db


async def fetch(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query on a fresh connection."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall()


async def lease_of(db: MetadataDb, topic: str = "orders", partition: int = 0) -> Lease:
    """The lease row of one partition."""
    leases = await db.read_leases()
    return next(lease for lease in leases if (lease.topic, lease.partition) == (topic, partition))


def kill(world: World, agent_id: str) -> None:
    """Wedge an agent: the pod stays, heartbeats stop."""
    with world.lock:
        next(a for a in world.agents if a.agent_id == agent_id).heartbeat_ok = False


async def reset_as_reader(db: MetadataDb, lease: Lease) -> int:
    """The bot's guarded LC-A1 reset as the reader role; returns the rows updated."""
    async with await psycopg.AsyncConnection.connect(db.reader_url, autocommit=True) as conn:
        if db.profile == "upstream":
            await conn.execute(
                "SELECT set_config('app.current_organization_id', %s, false)", (db.world.org_id,)
            )
        cursor = await conn.execute(
            RESET[db.profile], (lease.topic, lease.partition, lease.holder, lease.epoch)
        )
        return cursor.rowcount


# -- schemas and seeding ---------------------------------------------------------------------
async def test_seed_assigns_every_partition_to_a_live_agent(any_db: MetadataDb) -> None:
    """Seeding a world without leases gives each of the 8 partitions a live holder, epoch 1."""
    leases = await any_db.read_leases()
    live = {agent.agent_id for agent in any_db.world.agents}
    assert [(lease.topic, lease.partition) for lease in leases] == [
        (topic, p) for topic in ("orders", "payments") for p in range(4)
    ]
    assert {lease.holder for lease in leases} == live
    assert {lease.epoch for lease in leases} == {1}
    assert any_db.world.leases == leases


async def test_seed_writes_the_worlds_own_leases(
    databases: dict[str, MetadataDb], clock: Clock
) -> None:
    """Leases the world declares, even by a holder with no pod, are written as they are."""
    world = make_world("upstream", clock)
    now_ms = int(clock().timestamp() * 1000)
    world.leases = [Lease("orders", 0, "agent-ghost", 41, now_ms + 9_000, now_ms - 1_000)]
    db = databases["upstream"]
    await db.seed(world)
    assert await db.read_leases() == world.leases
    query = "SELECT last_heartbeat FROM agents WHERE agent_id = %s"
    rows = await fetch(db.owner_url, query, ("agent-ghost",))
    assert rows[0][0] < now_ms - 60_000  # a ghost holder is not alive


async def test_runbook_lease_queries_run_against_the_runbook_schema(runbook_db: MetadataDb) -> None:
    """Investigation step 1, resolution step 4 and the per-agent count run as written."""
    rows = await fetch(runbook_db.owner_url, RUNBOOK_STEP1)
    assert len(rows) == 1
    topic, partition, agent_id, epoch, expires_at, status = rows[0]
    assert (topic, partition, epoch, status) == ("orders", 0, 1, "ACTIVE")
    assert agent_id == (await lease_of(runbook_db)).holder
    assert expires_at.tzinfo is not None
    step4 = "SELECT agent_id, lease_epoch, lease_expires_at FROM partition_leases"
    assert len(await fetch(runbook_db.owner_url, step4 + " WHERE topic = 'orders'")) == 4
    per_agent = (
        "SELECT agent_id, COUNT(*) AS partition_count FROM partition_leases GROUP BY agent_id"
    )
    assert sum(count for _, count in await fetch(runbook_db.owner_url, per_agent)) == 8


async def test_runbook_schema_has_no_upstream_column_names(runbook_db: MetadataDb) -> None:
    """In the runbook profile ``leader_agent_id`` does not exist, as the runbook assumes."""
    with pytest.raises(psycopg.errors.UndefinedColumn):
        await fetch(runbook_db.owner_url, "SELECT leader_agent_id FROM partition_leases")


async def test_upstream_schema_answers_in_real_column_names(upstream_db: MetadataDb) -> None:
    """The §9.4 lease query with the agents join works upstream; the runbook spelling fails."""
    rows = await fetch(upstream_db.owner_url, UPSTREAM_LEASE, ("orders", 0))
    holder, epoch, _expires, _acquired, active, heartbeat = rows[0]
    assert (holder, epoch, active) == ((await lease_of(upstream_db)).holder, 1, True)
    assert heartbeat == int(upstream_db.world.now().timestamp() * 1000)
    with pytest.raises(psycopg.errors.UndefinedColumn):
        await fetch(upstream_db.owner_url, RUNBOOK_STEP1)


async def test_upstream_agents_heartbeat_only_while_alive(
    databases: dict[str, MetadataDb], clock: Clock
) -> None:
    """A wedged agent's last_heartbeat is 2 minutes old, outside the 60 s liveness window."""
    world = make_world("upstream", clock)
    kill(world, world.agents[1].agent_id)
    db = databases["upstream"]
    await db.seed(world)
    now_ms = int(clock().timestamp() * 1000)
    alive = "SELECT agent_id FROM agents WHERE last_heartbeat > %s ORDER BY agent_id"
    rows = await fetch(db.owner_url, alive, (now_ms - 60_000,))
    assert [r[0] for r in rows] == sorted(a.agent_id for a in world.agents[::2])


async def test_seed_refuses_a_world_of_the_other_profile(databases: dict[str, MetadataDb]) -> None:
    """A runbook database cannot render an upstream world: the schemas differ."""
    with pytest.raises(ValueError, match="runbook database"):
        await databases["runbook"].seed(World("upstream"))


async def test_upstream_segments_are_contiguous_and_recent(upstream_db: MetadataDb) -> None:
    """Each partition has contiguous segments; the newest upload is one flush interval old."""
    now_ms = int(upstream_db.world.now().timestamp() * 1000)
    rows = await fetch(
        upstream_db.owner_url,
        "SELECT max(created_at), max(end_offset), count(*) FILTER (WHERE base_offset <> prev + 1)"
        " FROM (SELECT created_at, base_offset, end_offset,"
        "  lag(end_offset, 1, -1::bigint) OVER (ORDER BY base_offset) AS prev"
        "  FROM segments WHERE topic = 'orders' AND partition_id = 0) s",
    )
    newest, last_offset, gaps = rows[0]
    assert now_ms - newest == 5_000
    assert gaps == 0
    watermark = await fetch(
        upstream_db.owner_url,
        "SELECT high_watermark FROM partitions WHERE topic = 'orders' AND partition_id = 0",
    )
    assert watermark[0][0] == last_offset + 1


async def test_segments_follow_the_worlds_last_uploads(
    databases: dict[str, MetadataDb], clock: Clock
) -> None:
    """A partition whose uploads stopped 90 s ago has its newest segment 90 s old (WAL-5)."""
    world = make_world("upstream", clock)
    world.last_uploads[("orders", 1)] = clock() - timedelta(seconds=90)
    db = databases["upstream"]
    await db.seed(world)
    newest = "SELECT max(created_at) FROM segments WHERE topic = 'orders' AND partition_id = %s"
    now_ms = int(clock().timestamp() * 1000)
    assert await fetch(db.owner_url, newest, (1,)) == [(now_ms - 90_000,)]
    assert await fetch(db.owner_url, newest, (2,)) == [(now_ms - 5_000,)]


async def test_schema_registry_tables_hold_the_seeded_subjects(any_db: MetadataDb) -> None:
    """The 4 registry tables exist, versions point at deduplicated schemas, none orphaned."""
    tables = await fetch(
        any_db.owner_url,
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_name LIKE 'schema_registry%%' ORDER BY table_name",
    )
    assert [t[0] for t in tables] == [
        "schema_registry_global_config",
        "schema_registry_schemas",
        "schema_registry_subject_config",
        "schema_registry_versions",
    ]
    counts = "SELECT (SELECT COUNT(*) FROM schema_registry_schemas), COUNT(*)"
    assert await fetch(any_db.owner_url, counts + " FROM schema_registry_versions") == [(2, 3)]
    orphans = (
        "SELECT v.subject, v.version FROM schema_registry_versions v"
        " LEFT JOIN schema_registry_schemas s ON v.schema_id = s.id WHERE s.id IS NULL"
    )
    assert await fetch(any_db.owner_url, orphans) == []
    config = "SELECT subject, compatibility FROM schema_registry_subject_config"
    assert await fetch(any_db.owner_url, config) == [("orders-value", "full_transitive")]
    glob = "SELECT compatibility FROM schema_registry_global_config"
    assert await fetch(any_db.owner_url, glob) == [("backward",)]


# -- roles and row-level security ------------------------------------------------------------
async def test_reader_sees_no_upstream_leases_without_a_tenant(upstream_db: MetadataDb) -> None:
    """Under RLS the non-owner reader sees zero leases and resets nothing; the owner sees 8."""
    count = "SELECT count(*) FROM partition_leases"
    assert await fetch(upstream_db.owner_url, count) == [(8,)]
    assert await fetch(upstream_db.reader_url, count) == [(0,)]
    assert await fetch(upstream_db.reader_url, "SELECT count(*) FROM agents") == [(3,)]
    lease = await lease_of(upstream_db)
    async with await psycopg.AsyncConnection.connect(upstream_db.reader_url) as conn:
        cursor = await conn.execute(
            RESET["upstream"], (lease.topic, lease.partition, lease.holder, lease.epoch)
        )
        assert cursor.rowcount == 0


async def test_reader_sees_upstream_leases_once_the_tenant_is_set(upstream_db: MetadataDb) -> None:
    """SET app.current_organization_id, or set_tenant_context in the same transaction, works."""
    org = upstream_db.world.org_id
    async with await psycopg.AsyncConnection.connect(upstream_db.reader_url) as conn:
        await conn.execute("SELECT set_tenant_context(%s)", (org,))
        cursor = await conn.execute("SELECT count(*) FROM partition_leases")
        assert await cursor.fetchone() == (8,)
    async with await psycopg.AsyncConnection.connect(upstream_db.reader_url) as conn:
        await conn.execute("SELECT set_config('app.current_organization_id', %s, false)", (org,))
        await conn.commit()
        cursor = await conn.execute("SELECT count(*) FROM partition_leases")
        assert await cursor.fetchone() == (8,)


async def test_set_tenant_context_lasts_only_for_its_transaction(upstream_db: MetadataDb) -> None:
    """Like upstream, set_tenant_context is transaction-local: in autocommit it does nothing."""
    url = upstream_db.reader_url
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT set_tenant_context(%s)", (upstream_db.world.org_id,))
        cursor = await conn.execute("SELECT count(*) FROM partition_leases")
        assert await cursor.fetchone() == (0,)


async def test_runbook_reader_sees_leases_without_rls(runbook_db: MetadataDb) -> None:
    """The runbook schema has no RLS: the reader sees every lease."""
    assert await fetch(runbook_db.reader_url, "SELECT count(*) FROM partition_leases") == [(8,)]


async def test_reader_role_cannot_write_other_tables(upstream_db: MetadataDb) -> None:
    """The reader may update partition_leases only."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await fetch(upstream_db.reader_url, "DELETE FROM agents")


# -- the lease simulator ---------------------------------------------------------------------
async def test_renewals_bump_the_epoch_and_keep_the_holder(
    any_db: MetadataDb, clock: Clock
) -> None:
    """Each tick a live holder renews: epoch + 1, expiry pushed to now + lease duration."""
    before = await lease_of(any_db)
    clock.advance(10)
    report = await any_db.tick()
    after = await lease_of(any_db)
    assert (after.holder, after.epoch) == (before.holder, before.epoch + 1)
    assert after.expires_at_ms == int(clock().timestamp() * 1000) + any_db.lease_duration_ms
    assert len(report.renewed) == 8
    assert report.acquired == []
    assert report.conflicts == []


async def test_renewals_use_the_worlds_current_lease_ttl(any_db: MetadataDb, clock: Clock) -> None:
    """Raising world.lease_ttl_ms (runbook option 4) lengthens the next renewal."""
    with any_db.world.lock:
        any_db.world.lease_ttl_ms = 60_000
    await any_db.tick()
    assert (await lease_of(any_db)).expires_at_ms == int(clock().timestamp() * 1000) + 60_000


async def test_upsert_refuses_another_agent_until_the_lease_expires(any_db: MetadataDb) -> None:
    """Upstream's acquire: another agent is refused (row untouched) until expiry, then wins."""
    lease = await lease_of(any_db)
    other = next(a.agent_id for a in any_db.world.agents if a.agent_id != lease.holder)
    table = LeaseTable(any_db.spelling, any_db.world.org_id)
    key, now = ("orders", 0), lease.acquired_at_ms + 1
    async with await psycopg.AsyncConnection.connect(any_db.owner_url, autocommit=True) as conn:
        refused = await table.acquire(
            conn, key, other, now_ms=now, seen_now_ms=now, duration_ms=1_000
        )
        assert refused is None
        assert await table.read_one(conn, *key) == lease
        later = lease.expires_at_ms + 1
        won = await table.acquire(
            conn, key, other, now_ms=later, seen_now_ms=later, duration_ms=1_000
        )
    assert won == Lease("orders", 0, other, lease.epoch + 1, later + 1_000, later)


async def test_lease_duration_follows_the_profile(any_db: MetadataDb) -> None:
    """Leases last 30 s as the runbook says, 5 min as upstream HEAD has it."""
    assert any_db.lease_duration_ms == {"runbook": 30_000, "upstream": 300_000}[any_db.profile]


async def test_reset_lets_a_live_agent_take_a_dead_holders_lease(any_db: MetadataDb) -> None:
    """The guarded reset by the reader, then a tick: a live agent holds it at a higher epoch."""
    lease = await lease_of(any_db)
    kill(any_db.world, lease.holder)
    assert await reset_as_reader(any_db, lease) == 1
    report = await any_db.tick()
    after = await lease_of(any_db)
    assert after.holder != lease.holder
    assert after.holder in {a.agent_id for a in any_db.world.agents if a.heartbeat_ok}
    assert after.epoch > lease.epoch
    assert [(c.topic, c.partition, c.previous_holder) for c in report.acquired] == [
        ("orders", 0, lease.holder)
    ]
    assert any_db.world.leases == await any_db.read_leases()


async def test_guarded_reset_leaves_a_lease_that_moved(any_db: MetadataDb) -> None:
    """A reset guarded by an epoch the lease no longer has updates nothing."""
    lease = await lease_of(any_db)
    await any_db.tick()  # renewal: epoch 2
    assert await reset_as_reader(any_db, lease) == 0
    assert (await lease_of(any_db)).expires_at_ms > 0


async def test_live_holder_retakes_its_reset_lease(any_db: MetadataDb) -> None:
    """Resetting a live holder's lease only costs a round: it renews it back (epoch + 1)."""
    lease = await lease_of(any_db)
    assert await reset_as_reader(any_db, lease) == 1
    await any_db.tick()
    after = await lease_of(any_db)
    assert (after.holder, after.epoch) == (lease.holder, lease.epoch + 1)


async def test_dead_holders_unexpired_lease_waits_for_expiry(
    any_db: MetadataDb, clock: Clock
) -> None:
    """Nobody takes a dead holder's lease before it expires; a live agent does after."""
    lease = await lease_of(any_db)
    kill(any_db.world, lease.holder)
    report = await any_db.tick()
    assert await lease_of(any_db) == lease
    assert lease in report.waiting
    clock.advance(any_db.lease_duration_ms / 1000 + 1)
    await any_db.tick()
    after = await lease_of(any_db)
    assert after.holder != lease.holder
    assert after.epoch == lease.epoch + 1


async def test_fighting_pair_conflicts_every_tick_until_an_agent_restarts(
    any_db: MetadataDb,
) -> None:
    """Two agents claiming one partition flip its holder with a conflict on each tick."""
    world = any_db.world
    world.fighting_partitions = [("orders", 0)]
    holders = []
    for _ in range(3):
        report = await any_db.tick()
        assert len(report.conflicts) == 1
        holders.append((await lease_of(any_db)).holder)
    assert holders[0] != holders[1]
    assert holders[0] == holders[2]
    assert any_db.conflicts_total == 3
    loser = next(a for a in world.agents if a.agent_id == holders[0])
    assert any(
        line.text.startswith(("ERROR Failed to acquire", "WARN Failed to acquire"))
        for line in loser.logs
    )
    fighter = next(a for a in world.agents if a.agent_id == holders[2])
    world.delete_pod(fighter.pod)  # LC-A2: restart the conflicting agent
    report = await any_db.tick()
    assert report.conflicts == []
    assert report.fights_ended == [("orders", 0)]
    assert world.fighting_partitions == []


async def test_background_ticks_react_to_a_reset(any_db: MetadataDb) -> None:
    """With background ticking, a reset dead holder's lease moves without driving ticks."""
    lease = await lease_of(any_db)
    kill(any_db.world, lease.holder)
    any_db.start_background(interval=0.02)
    try:
        assert await reset_as_reader(any_db, lease) == 1
        for _ in range(250):  # up to 5 s
            if (await lease_of(any_db)).holder != lease.holder:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("no background tick moved the reset lease within 5 s")
    finally:
        await any_db.stop_background()
    assert any_db.last_error is None
    with any_db.world.lock:
        assert any_db.world.leases[0].holder != lease.holder


# -- connection URLs -------------------------------------------------------------------------
async def test_role_urls_keep_the_host_and_swap_user_and_database() -> None:
    """URLs and key=value conninfo strings both get the role's user, password and database."""
    url = "postgresql://postgres@/postgres?host=/var/run/postgresql&port=5432"
    assert url_for(url, user="streamhouse", password="pw", database="lab") == (
        "postgresql://streamhouse:pw@/lab?host=/var/run/postgresql&port=5432"
    )
    conninfo = url_for(
        "host=/var/run/postgresql user=postgres dbname=postgres",
        user="r",
        password="p",
        database="lab",
    )
    assert psycopg.conninfo.conninfo_to_dict(conninfo) == {
        "host": "/var/run/postgresql",
        "user": "r",
        "password": "p",
        "dbname": "lab",
    }
