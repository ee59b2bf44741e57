"""SchemaRegistrySource against the lab's registry fake, in the runbook and upstream spelling."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest

from bot.profiles import UPSTREAM, profile_named
from bot.sources import (
    SchemaRegistrySource,
    SourceQueryError,
    SourceSet,
    SourceUnreachable,
)
from bot.store import EmbeddedPostgres
from lab.scenarios import ORDERS_V1, ORDERS_V2_COMPATIBLE, ORDERS_V2_INCOMPATIBLE
from lab.stack import Lab
from tests.sources import PROFILES, closed_port_url, running_lab, sources_for


@pytest.fixture(scope="module", params=PROFILES)
def lab(request: pytest.FixtureRequest, pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """A lab of each profile (no Prometheus needed here)."""
    yield from running_lab(request.param, pg_server)


@pytest.fixture
async def source_set(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SourceSet]:
    """The bot's sources for the lab; upstream finds its organization in the metadata DB."""
    sources = sources_for(monkeypatch, lab.env())
    yield sources
    await sources.close()


@pytest.fixture
def registry(source_set: SourceSet) -> SchemaRegistrySource:
    """The real registry source the factory built."""
    assert isinstance(source_set.sources.registry, SchemaRegistrySource)
    return source_set.sources.registry


async def test_subjects_versions_and_latest(registry: SchemaRegistrySource) -> None:
    """Subjects, their version numbers, and the latest schema with its id."""
    assert await registry.subjects() == ["orders-value", "payments-value"]
    assert await registry.versions("orders-value") == [1, 2]
    latest = await registry.version("orders-value")
    assert (latest.subject, latest.version) == ("orders-value", 2)
    assert json.loads(latest.schema) == ORDERS_V2_COMPATIBLE
    first = await registry.version("orders-value", 1)
    assert json.loads(first.schema) == ORDERS_V1
    assert first.id != latest.id


async def test_modes_upper_case_subject_falls_back_to_global(
    lab: Lab, registry: SchemaRegistrySource
) -> None:
    """A subject without its own mode reads the global one; a subject's own mode wins."""
    assert await registry.compatibility() == "BACKWARD"
    assert await registry.compatibility("orders-value") == "BACKWARD"
    subject = lab.world.subjects["payments-value"]
    subject.compatibility = "NONE"
    try:
        assert await registry.compatibility("payments-value") == "NONE"
    finally:
        subject.compatibility = None


async def test_compatibility_check_where_the_registry_has_one(
    lab: Lab, registry: SchemaRegistrySource
) -> None:
    """Runbook spelling answers the registry's verdict; upstream has no route: None."""
    incompatible = json.dumps(ORDERS_V2_INCOMPATIBLE)
    compatible = json.dumps(ORDERS_V2_COMPATIBLE)
    verdicts = [
        await registry.check_compatibility("orders-value", incompatible),
        await registry.check_compatibility("orders-value", compatible),
    ]
    assert verdicts == ([False, True] if lab.profile == "runbook" else [None, None])


async def test_unknown_subject_carries_the_registry_error(registry: SchemaRegistrySource) -> None:
    """A 404 becomes SourceQueryError with the registry's error code and message."""
    with pytest.raises(SourceQueryError) as raised:
        await registry.versions("no-such-subject")
    assert "HTTP 404, error 40401" in raised.value.detail
    assert "no-such-subject" in raised.value.detail


async def test_upstream_without_organization_says_what_to_set(lab: Lab) -> None:
    """Upstream needs x-organization-id: no setting and no database is a clear query error."""
    source = SchemaRegistrySource(lab.env()["SCHEMA_REGISTRY_URL"], UPSTREAM)
    try:
        with pytest.raises(SourceQueryError, match="STREAMHOUSE_ORGANIZATION_ID"):
            await source.subjects()
        assert await source.compatibility() == "BACKWARD"  # the global route needs no header
    finally:
        await source.close()


async def test_configured_organization_is_sent(lab: Lab) -> None:
    """With the organization given, subject routes work without any database."""
    source = SchemaRegistrySource(
        lab.env()["SCHEMA_REGISTRY_URL"],
        profile_named(lab.profile),
        organization_id=lab.world.org_id,
    )
    try:
        assert await source.versions("payments-value") == [1]
    finally:
        await source.close()


async def test_closed_port_is_unreachable() -> None:
    """Nothing listening: SourceUnreachable naming the URL."""
    url = closed_port_url() + "/schemas"
    source = SchemaRegistrySource(url, UPSTREAM, organization_id="org")
    try:
        with pytest.raises(SourceUnreachable, match=url):
            await source.subjects()
    finally:
        await source.close()
