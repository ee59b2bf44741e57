"""MetadataDbSource against the lab's metadata PostgreSQL, in both spellings, owner and reader."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC

import pytest

from bot.profiles import RUNBOOK, UPSTREAM, profile_named
from bot.sources import MetadataDbSource, SourceQueryError, SourceUnreachable
from bot.sources.metadata_db import REGISTRY_TABLES, RlsFacts, rls_verdict
from bot.store import EmbeddedPostgres
from lab.stack import Lab
from tests.sources import PROFILES, closed_port_url, running_lab, scenario


@pytest.fixture(scope="module", params=PROFILES)
def lab(request: pytest.FixtureRequest, pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """A lab of each profile (no Prometheus needed here)."""
    yield from running_lab(request.param, pg_server)


def source_for(
    lab: Lab, *, role: str = "owner", organization: str | None = None
) -> MetadataDbSource:
    """A source for the lab's database as ``role``, optionally with the organization set."""
    url = lab.env(database_role=role)["STREAMHOUSE_DATABASE_URL"]
    return MetadataDbSource(url, profile_named(lab.profile), organization_id=organization)


@pytest.fixture
async def owner(lab: Lab) -> AsyncIterator[MetadataDbSource]:
    """A source connected as the tables' owner (what docker-compose's bot would use)."""
    source = source_for(lab)
    yield source
    await source.close()


def facts(**changes: object) -> RlsFacts:
    """RLS facts of a plain reader role with nothing set, changed as given."""
    base = {
        "role": "reader",
        "rls_enabled": True,
        "rls_forced": False,
        "superuser": False,
        "bypass_rls": False,
        "owner": False,
        "organization": "",
        "agent_rows": 0,
    }
    return RlsFacts(**{**base, **changes})  # type: ignore[arg-type]


async def test_leases_in_the_profile_spelling(lab: Lab, owner: MetadataDbSource) -> None:
    """Every lease row comes back with holder and epoch from the profile's columns."""
    readout = await owner.leases()
    with lab.world.lock:
        expected = {(lease.topic, lease.partition): lease.holder for lease in lab.world.leases}
    assert {(row.topic, row.partition): row.holder for row in readout.rows} == expected
    assert not readout.hidden_by_rls
    assert readout.note is None
    assert readout.role == "streamhouse"
    assert abs(readout.db_now_ms - time.time() * 1000) < 5_000
    assert all(row.expires_at_ms > readout.db_now_ms for row in readout.rows)


async def test_leases_of_one_partition(owner: MetadataDbSource) -> None:
    """Filtering by topic and partition returns that lease only."""
    readout = await owner.leases("orders", 2)
    assert [(row.topic, row.partition) for row in readout.rows] == [("orders", 2)]


async def test_reader_role_without_organization(lab: Lab) -> None:
    """Upstream RLS hides every lease from the reader, reported with the fix; runbook shows all."""
    source = source_for(lab, role="reader")
    try:
        readout = await source.leases()
    finally:
        await source.close()
    assert readout.role == "streamhouse_reader"
    if lab.profile == "upstream":
        assert (readout.rows, readout.hidden_by_rls) == ((), True)
        assert readout.note is not None
        assert "streamhouse_reader" in readout.note
        assert "STREAMHOUSE_ORGANIZATION_ID" in readout.note
    else:
        assert len(readout.rows) == 8
        assert not readout.hidden_by_rls


async def test_reader_role_with_organization_sees_leases(lab: Lab) -> None:
    """With STREAMHOUSE_ORGANIZATION_ID the session sets the tenant and rows are visible."""
    source = source_for(lab, role="reader", organization=lab.world.org_id)
    try:
        readout = await source.leases()
    finally:
        await source.close()
    assert len(readout.rows) == 8
    assert not readout.hidden_by_rls


def test_rls_verdict_explains_only_real_hiding() -> None:
    """Exempt roles and tenants without agents are not 'hidden'; a wrong tenant is suspected."""
    assert rls_verdict(facts()) is not None
    assert rls_verdict(facts(owner=True)) is None
    assert rls_verdict(facts(owner=True, rls_forced=True)) is not None
    assert rls_verdict(facts(bypass_rls=True)) is None
    assert rls_verdict(facts(superuser=True, rls_forced=True)) is None
    assert rls_verdict(facts(rls_enabled=False)) is None
    assert rls_verdict(facts(organization="o-1")) is None
    assert "o-1" in (rls_verdict(facts(organization="o-1", agent_rows=3)) or "")


async def test_agents_upstream_only(lab: Lab, owner: MetadataDbSource) -> None:
    """Upstream lists the registered agents with heartbeats; the runbook profile has none."""
    agents = await owner.agents()
    if lab.profile == "runbook":
        assert agents is None
        return
    assert agents is not None
    assert sorted(a.agent_id for a in agents) == sorted(a.agent_id for a in lab.world.agents)
    assert all(a.last_heartbeat_ms for a in agents)


async def test_health_counts_this_database(owner: MetadataDbSource) -> None:
    """Connections include ours and the lab's; nothing slow, nothing waiting."""
    health = await owner.health()
    assert 1 <= health.connections <= health.max_connections
    assert (health.long_queries, health.lease_lock_waits) == ((), 0)


async def test_registry_tables_present_with_counts(owner: MetadataDbSource) -> None:
    """All four schema registry tables exist, with rows and no orphaned versions."""
    tables = await owner.registry_tables()
    assert (tables.present, tables.missing) == (REGISTRY_TABLES, ())
    assert tables.counts["schema_registry_versions"] == 3
    assert tables.orphaned_versions == 0


async def test_last_segment_upload_upstream_only(lab: Lab, owner: MetadataDbSource) -> None:
    """Upstream reads segments.created_at as an aware UTC datetime; runbook has no table."""
    with scenario(lab, "wal-corruption"):
        uploaded = await owner.last_segment_upload("orders", 2)
        expected = lab.world.last_uploads[("orders", 2)]
    if lab.profile == "runbook":
        assert uploaded is None
        return
    assert uploaded is not None
    assert uploaded.tzinfo == UTC
    assert abs((uploaded - expected).total_seconds()) < 1


async def test_empty_database_is_missing_tables_not_a_crash(database_url: str) -> None:
    """Against a database without Streamhouse tables: None, missing list, a clear query error."""
    source = MetadataDbSource(database_url, profile_named("upstream"))
    try:
        assert await source.agents() is None
        assert await source.last_segment_upload("orders", 0) is None
        assert (await source.registry_tables()).missing == REGISTRY_TABLES
        with pytest.raises(SourceQueryError, match="partition_leases does not exist"):
            await source.leases()
    finally:
        await source.close()


async def test_wrong_profile_names_the_setting(lab: Lab) -> None:
    """The other profile's column names: a query error that points at STREAMHOUSE_PROFILE."""
    other = UPSTREAM if lab.profile == "runbook" else RUNBOOK
    source = MetadataDbSource(lab.env()["STREAMHOUSE_DATABASE_URL"], other)
    try:
        with pytest.raises(SourceQueryError, match="STREAMHOUSE_PROFILE"):
            await source.leases()
    finally:
        await source.close()


async def test_unreachable_database_hides_the_password() -> None:
    """Nothing listening: SourceUnreachable naming host and database, never the password."""
    port = closed_port_url().rsplit(":", 1)[1]
    source = MetadataDbSource(f"postgresql://bot:s3cret-pw@127.0.0.1:{port}/meta", RUNBOOK)
    with pytest.raises(SourceUnreachable) as raised:
        await source.health()
    assert "s3cret-pw" not in str(raised.value)
    assert f"127.0.0.1:{port}" in raised.value.detail
    assert "'meta'" in raised.value.detail


async def test_owner_discovers_the_organization(lab: Lab, owner: MetadataDbSource) -> None:
    """Upstream: the one organization is found (for the registry header); runbook: none."""
    if lab.profile == "runbook":
        with pytest.raises(SourceQueryError, match="STREAMHOUSE_ORGANIZATION_ID"):
            await owner.organization_id()
        return
    assert await owner.organization_id() == lab.world.org_id
