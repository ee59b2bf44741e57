"""RegistryActions (SR-A1's write) against the lab's registry fake, in both spellings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from bot.profiles import profile_named
from bot.sources import SchemaRegistrySource, SourceQueryError
from bot.sources.registry_actions import RegistryActions
from lab.scenarios import apply_scenario
from lab.schema_registry import SchemaRegistryFake
from lab.world import World
from tests.sources import PROFILES


@pytest.fixture(params=PROFILES)
def world(request: pytest.FixtureRequest) -> World:
    """A schema-incompatible world of each profile."""
    built = World(request.param)
    apply_scenario(built, "schema-incompatible")
    return built


@pytest.fixture
def fake(world: World) -> Iterator[SchemaRegistryFake]:
    """The registry fake serving ``world`` in its profile's spelling."""
    with SchemaRegistryFake(world) as registry:
        yield registry


@pytest.fixture
async def writer(fake: SchemaRegistryFake, world: World) -> AsyncIterator[RegistryActions]:
    """The writer as the factory builds it (organization from the settings upstream)."""
    actions = RegistryActions(fake.url, profile_named(world.profile), organization_id=world.org_id)
    yield actions
    await actions.close()


async def test_set_compatibility_changes_only_that_subject(
    writer: RegistryActions, world: World, fake: SchemaRegistryFake
) -> None:
    """PUT /config/{subject}: the subject's own mode changes, the global one does not, and a
    repeat is harmless (an absolute value)."""
    assert await writer.set_compatibility("orders-value", "FORWARD") == "FORWARD"
    assert await writer.set_compatibility("orders-value", "forward") == "FORWARD"
    assert world.subjects["orders-value"].compatibility == "FORWARD"
    assert world.global_compatibility == "BACKWARD"
    reader = SchemaRegistrySource(fake.url, writer.profile, organization_id=world.org_id)
    try:
        assert await reader.compatibility("orders-value") == "FORWARD"
        assert await reader.compatibility("payments-value") == "BACKWARD"
    finally:
        await reader.close()


async def test_the_call_names_the_profile_path_and_header(
    writer: RegistryActions, world: World
) -> None:
    """The preview's call: /schemas/config/... with the org header upstream, the root else."""
    call = writer.compatibility_call("orders-value", "none")
    assert '{"compatibility": "NONE"}' in call
    if world.profile == "upstream":
        assert "/schemas/config/orders-value" in call
        assert "x-organization-id" in call
    else:
        assert call.endswith("/config/orders-value " + '{"compatibility": "NONE"}')


async def test_upstream_without_organization_refuses_clearly(
    fake: SchemaRegistryFake, world: World
) -> None:
    """Upstream needs x-organization-id: without one the write says which setting to set."""
    if world.profile != "upstream":
        pytest.skip("only upstream needs the organization header")
    actions = RegistryActions(fake.url, profile_named("upstream"))
    try:
        with pytest.raises(SourceQueryError, match="STREAMHOUSE_ORGANIZATION_ID"):
            await actions.set_compatibility("orders-value", "NONE")
    finally:
        await actions.close()
    assert world.subjects["orders-value"].compatibility is None


async def test_relaxing_the_mode_lets_the_pending_schema_register(
    writer: RegistryActions, world: World
) -> None:
    """Lab physics: producers retry the refused schema; under NONE it registers as v3."""
    assert world.pending_schema is not None
    await writer.set_compatibility("orders-value", "NONE")
    assert world.pending_schema is None
    assert len(world.subjects["orders-value"].versions) == 3
    assert "registration" not in world.traffic.schema_errors_per_s
