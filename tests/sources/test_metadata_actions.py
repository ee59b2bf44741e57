"""The guarded lease reset against the lab's real PostgreSQL, in both profiles."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import psycopg
import pytest
import pytest_asyncio
from psycopg import sql

from bot.profiles import profile_named
from bot.sources.base import SourceForbidden
from bot.sources.metadata_actions import MetadataActions
from bot.store import EmbeddedPostgres
from lab.metadata_db import MetadataDb
from lab.world import Lease, Profile, World

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", params=["runbook", "upstream"])
async def db(
    pg_server: EmbeddedPostgres, request: pytest.FixtureRequest
) -> AsyncIterator[MetadataDb]:
    """A seeded lab metadata database of each profile (three agents, two topics)."""
    profile: Profile = request.param
    world = World(profile)
    world.add_agents(3)
    name = f"lab_actions_{profile}_{secrets.token_hex(4)}"
    made = await MetadataDb.create(pg_server.url(), world, database=name)
    await made.seed()
    yield made
    await made.drop()


async def first_lease(db: MetadataDb) -> Lease:
    """The first lease row, as the owner sees it."""
    return (await db.read_leases())[0]


def writer(db: MetadataDb, url: str, organization: str | None = None) -> MetadataActions:
    """The bot's writer for ``db``'s profile connecting with ``url``."""
    return MetadataActions(url, profile_named(db.profile), organization_id=organization)


async def test_reset_expires_only_the_lease_the_approver_saw(db: MetadataDb) -> None:
    """Holder and epoch match: the lease expires (by the database's clock), once."""
    lease = await first_lease(db)
    actions = writer(db, db.owner_url)
    result = await actions.expire_lease(lease.topic, lease.partition, lease.holder, lease.epoch)
    assert result.expired
    assert result.current is not None
    assert result.current.expires_at_ms <= result.db_now_ms
    again = await actions.expire_lease(lease.topic, lease.partition, lease.holder, lease.epoch)
    assert again.current == result.current  # a retry changes nothing further
    others = [x for x in await db.read_leases() if x != lease and x.topic != lease.topic]
    assert all(x.expires_at_ms > result.db_now_ms for x in others)


async def test_a_moved_lease_is_left_alone_and_reported(db: MetadataDb) -> None:
    """A stale epoch updates no row; the result carries the lease as it is now."""
    lease = await first_lease(db)
    result = await writer(db, db.owner_url).expire_lease(
        lease.topic, lease.partition, lease.holder, lease.epoch - 1
    )
    assert not result.expired
    assert result.current is not None
    assert (result.current.holder, result.current.epoch) == (lease.holder, lease.epoch)
    assert result.current.expires_at_ms == lease.expires_at_ms


async def test_row_level_security_needs_the_organization(db: MetadataDb) -> None:
    """Upstream, the reader role sees (and updates) leases only with the organization set."""
    if db.profile != "upstream":
        pytest.skip("row-level security exists in the upstream schema only")
    lease = await first_lease(db)
    args = (lease.topic, lease.partition, lease.holder, lease.epoch)
    blind = await writer(db, db.reader_url).expire_lease(*args)
    assert (blind.expired, blind.current) == (False, None)
    tenant = await writer(db, db.reader_url, db.world.org_id).expire_lease(*args)
    assert tenant.expired


async def test_a_role_without_update_gets_a_message_naming_the_privilege(db: MetadataDb) -> None:
    """A read-only role: SourceForbidden saying UPDATE on partition_leases is missing."""
    lease = await first_lease(db)
    async with await psycopg.AsyncConnection.connect(db.owner_url, autocommit=True) as owner:
        revoke = sql.SQL("revoke update on partition_leases from {}")
        await owner.execute(revoke.format(sql.Identifier("streamhouse_reader")))
    with pytest.raises(SourceForbidden, match="UPDATE privilege on partition_leases"):
        await writer(db, db.reader_url, db.world.org_id).expire_lease(
            lease.topic, lease.partition, lease.holder, lease.epoch
        )


async def test_the_preview_names_the_profiles_columns_and_tenant() -> None:
    """Runbook: agent_id/lease_epoch; upstream: leader_agent_id/epoch and the org setting."""
    runbook = MetadataActions("postgresql://x@h/db", profile_named("runbook"), organization_id="o")
    upstream = MetadataActions(
        "postgresql://x@h/db", profile_named("upstream"), organization_id="o"
    )
    assert "AND agent_id = 'a' AND lease_epoch = 7" in runbook.expire_lease_call("t", 1, "a", 7)
    assert "organization" not in runbook.expire_lease_call("t", 1, "a", 7)
    call = upstream.expire_lease_call("t", 1, "a", 7)
    assert call.startswith("SET app.current_organization_id = 'o'; UPDATE partition_leases")
    assert "AND leader_agent_id = 'a' AND epoch = 7" in call
