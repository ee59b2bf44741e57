"""Upstream naming of SR-A1, SR-A2, RP-A1..RP-A3: previews and writes against the lab's
Kubernetes API fake and registry fake in the upstream spelling (no Prometheus needed).

Upstream runs the agents as a StatefulSet with one ``wal-data-*`` claim per pod, and the
registry under ``/schemas`` with the ``x-organization-id`` header.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.approvals import ActionRequest, RequestState
from bot.errors import BotError
from bot.executors.base import ActionContext, Preview
from bot.executors.resources import GrowWalClaims, RaiseMemoryLimit, ScaleAgentsOut
from bot.executors.schema_registry import ChangeCompatibility, RestartRegistry
from bot.models import CheckResult, Diagnosis, Risk, Status
from bot.profiles import UPSTREAM
from bot.settings import Settings
from bot.sources.base import Sources
from bot.sources.kubernetes import KubernetesSource, api_configuration
from bot.sources.kubernetes_actions import KubernetesActions
from bot.sources.registry_actions import RegistryActions
from bot.sources.schema_registry import SchemaRegistrySource
from bot.sources.writers import Writers
from handlers.base import Target
from lab.kubernetes import KubernetesFake
from lab.scenarios import ORDERS_V2_INCOMPATIBLE, apply_scenario
from lab.schema_registry import SchemaRegistryFake
from lab.world import GIB, World

NS = "/apis/apps/v1/namespaces/streamhouse"
NO_TARGET = Target()
REFUSED = CheckResult(
    "SR-1",
    "Registry errors",
    Status.CRITICAL,
    "registration refused",
    {"subjects": {"orders-value": {"version": None, "kinds": ["incompatible"]}}},
)


@pytest.fixture
def world() -> World:
    """An upstream world; each test picks its scenario."""
    return World("upstream")


@pytest.fixture
def cluster(world: World) -> Iterator[KubernetesFake]:
    """The Kubernetes API fake serving ``world``."""
    with KubernetesFake(world) as fake:
        yield fake


@pytest.fixture
def registry(world: World) -> Iterator[SchemaRegistryFake]:
    """The registry fake in upstream spelling."""
    with SchemaRegistryFake(world) as fake:
        yield fake


def diagnosis(*checks: CheckResult) -> Diagnosis:
    """A diagnosis carrying ``checks`` (the evidence executors read)."""
    now = datetime.now(UTC)
    return Diagnosis("x", "x", Status.CRITICAL, "", checks, (), None, "", now, now)


@pytest.fixture
async def context(
    world: World, cluster: KubernetesFake, registry: SchemaRegistryFake
) -> AsyncIterator[Any]:
    """A factory of ``ActionContext`` on real upstream sources and writers."""
    configuration = api_configuration(cluster.url)
    kube = KubernetesSource(configuration, namespace="streamhouse", profile=UPSTREAM)
    reader = SchemaRegistrySource(registry.url, UPSTREAM, organization_id=world.org_id)
    writers = Writers(
        kubernetes=KubernetesActions(configuration, namespace="streamhouse", profile=UPSTREAM),
        registry=RegistryActions(registry.url, UPSTREAM, organization_id=world.org_id),
    )

    def build(target: Target = NO_TARGET, *checks: CheckResult) -> ActionContext:
        sources = Sources(kubernetes=kube, registry=reader)
        settings = Settings.model_construct()
        return ActionContext(sources, writers, settings, UPSTREAM, target, diagnosis(*checks))

    yield build
    await kube.close()
    await reader.close()
    await writers.close()


def request_for(preview: Preview) -> ActionRequest:
    """An approved request carrying ``preview`` (what the approver saw)."""
    now = datetime.now(UTC)
    body: Mapping[str, Any] = preview.to_json()
    return ActionRequest(
        "req", "SH-1", "x", "x", Risk.MEDIUM, preview.key, "U0ALICE", "test", dict(body),
        RequestState.EXECUTING, "U0ALICE", now, now + timedelta(minutes=15), now, now, None, None,
    )  # fmt: skip


def patches(cluster: KubernetesFake) -> list[str]:
    """The paths of the PATCH requests the fake received."""
    return [r.path for r in cluster.requests if r.method == "PATCH"]


async def test_growing_upstream_claims_doubles_each_full_wal_data_claim(
    world: World, cluster: KubernetesFake, context: Any
) -> None:
    """disk-full upstream: one claim per pod, each 50Gi -> 100Gi, one PATCH each."""
    apply_scenario(world, "disk-full")
    executor = GrowWalClaims()
    ctx = context()
    preview = await executor.preview(ctx)
    names = [entry["name"] for entry in preview.params["claims"]]
    assert names == [f"wal-data-streamhouse-agent-{n}" for n in range(3)]
    assert "wal-data-streamhouse-agent-0 50Gi" in preview.current
    assert "wal-data-streamhouse-agent-0 100Gi" in preview.new
    request = request_for(preview)
    assert await executor.changed(ctx, request) is None
    await executor.execute(ctx, request)
    claims = "/api/v1/namespaces/streamhouse/persistentvolumeclaims/"
    assert patches(cluster) == [claims + name for name in names]
    assert all(agent.volume_capacity_bytes == 100 * GIB for agent in world.agents)
    assert "is now 100Gi, was 50Gi" in str(await executor.changed(ctx, request))


async def test_memory_limit_and_scale_name_the_statefulset(
    world: World, cluster: KubernetesFake, context: Any
) -> None:
    """oom upstream: the StatefulSet's container limit 4Gi -> 8Gi, and 3 -> 4 replicas."""
    apply_scenario(world, "oom")
    ctx = context()
    limit = await RaiseMemoryLimit().preview(ctx)
    assert limit.target.startswith("StatefulSet streamhouse/streamhouse-agent")
    assert f"{NS}/statefulsets/streamhouse-agent" in limit.call
    assert (limit.current, limit.params["limit"]) == ("memory limit 4Gi", "8Gi")
    scale = await ScaleAgentsOut().preview(ctx)
    assert f"{NS}/statefulsets/streamhouse-agent/scale" in scale.call
    await ScaleAgentsOut().execute(ctx, request_for(scale))
    assert patches(cluster) == [f"{NS}/statefulsets/streamhouse-agent/scale"]
    assert world.agent_workload.replicas == 4


async def test_upstream_registry_mode_change_and_no_registry_restart(
    world: World, context: Any
) -> None:
    """SR-A1 upstream: /schemas/config/... with the org header; to NONE is high risk and
    is written; a known candidate gets FORWARD instead. SR-A2 is refused upstream."""
    apply_scenario(world, "schema-incompatible")
    ctx = context(Target(topic="orders"), REFUSED)
    executor = ChangeCompatibility()
    preview = await executor.preview(ctx)
    assert "/schemas/config/orders-value" in preview.call
    assert "x-organization-id" in preview.call
    assert (preview.current, preview.params["mode"], preview.risk) == (
        "BACKWARD",
        "NONE",
        Risk.HIGH,
    )
    candidate = Target(topic="orders", schema=json.dumps(ORDERS_V2_INCOMPATIBLE))
    forward = await executor.preview(context(candidate, REFUSED))
    assert (forward.params["mode"], forward.risk) == ("FORWARD", None)
    await executor.execute(ctx, request_for(preview))
    assert world.subjects["orders-value"].compatibility == "NONE"
    assert await executor.changed(ctx, request_for(preview)) == (
        "orders-value's mode is now NONE, was BACKWARD"
    )
    with pytest.raises(BotError, match="unified server"):
        await RestartRegistry().preview(ctx)
