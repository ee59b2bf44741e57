"""KubernetesSource against the lab's Kubernetes API fake, in both profiles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from bot.profiles import profile_named
from bot.sources import (
    KubernetesSource,
    SourceForbidden,
    SourceQueryError,
    SourceUnreachable,
    api_configuration,
)
from bot.sources.kubernetes_parse import to_bytes, to_cores
from bot.store import EmbeddedPostgres
from lab.stack import Lab
from tests.sources import PROFILES, closed_port_url, restored, running_lab, scenario

GIB = 1024**3


@pytest.fixture(scope="module", params=PROFILES)
def lab(request: pytest.FixtureRequest, pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """A lab of each profile (no Prometheus needed here)."""
    yield from running_lab(request.param, pg_server)


@pytest.fixture
async def kube(lab: Lab) -> AsyncIterator[KubernetesSource]:
    """A source pointed at the fake by KUBERNETES_API_URL (the world is healthy)."""
    source = KubernetesSource(
        api_configuration(lab.env()["KUBERNETES_API_URL"]),
        namespace=lab.world.namespace,
        profile=profile_named(lab.profile),
    )
    yield source
    await source.close()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2Gi", 2 * GIB), ("1048576Ki", GIB), ("500M", 500_000_000), ("1.5Gi", 3 * GIB // 2)],
)
def test_memory_quantities_parse_to_bytes(raw: str, expected: int) -> None:
    """Binary and decimal memory suffixes become bytes."""
    assert to_bytes(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("500m", 0.5), ("500000000n", 0.5), ("2", 2.0), ("250u", 0.00025)]
)
def test_cpu_quantities_parse_to_cores(raw: str, expected: float) -> None:
    """Millicores, nanocores and plain numbers become cores."""
    assert to_cores(raw) == pytest.approx(expected)


def test_malformed_quantity_is_none() -> None:
    """Garbage is no number rather than an exception."""
    assert (to_bytes("lots"), to_cores(None)) == (None, None)


async def test_agent_pods_follow_the_profile_selector(lab: Lab, kube: KubernetesSource) -> None:
    """Agent pods are found by the profile's labels; owner and limits parsed."""
    pods = await kube.agent_pods()
    assert sorted(pod.name for pod in pods) == sorted(agent.pod for agent in lab.world.agents)
    owner = "ReplicaSet" if lab.profile == "runbook" else "StatefulSet"
    for pod in pods:
        assert pod.owner_kind == owner
        assert pod.phase == "Running"
        assert pod.ready
        assert (pod.memory_limit_bytes, pod.cpu_request_cores) == (4 * GIB, 1.0)
        assert pod.started_at is not None
        assert pod.started_at.utcoffset() is not None
        assert dict(profile_named(lab.profile).agent_selector).items() <= pod.labels.items()


async def test_registry_pods_follow_the_profile_selector(kube: KubernetesSource) -> None:
    """The schema registry's pod is found by its own selector, not the agents'."""
    [pod] = await kube.registry_pods()
    assert pod.name.startswith("streamhouse-schema-registry-")


async def test_logs_tail_returns_the_last_lines(lab: Lab, kube: KubernetesSource) -> None:
    """``tail`` lines, oldest first, exactly as the container wrote them."""
    agent = lab.world.agents[0]
    lines = await kube.logs(agent.pod, tail=2)
    with lab.world.lock:
        expected = [line.text for line in agent.logs[-2:]]
    assert lines == expected


async def test_exec_forbidden_by_rbac_is_source_forbidden(lab: Lab, kube: KubernetesSource) -> None:
    """Without pods/exec, the handshake's 403 becomes SourceForbidden saying so."""
    with pytest.raises(SourceForbidden) as raised:
        await kube.exec(lab.world.agents[0].pod, ["ls", "-l", "/data/wal"])
    assert raised.value.detail.startswith("exec is forbidden by RBAC")


async def test_exec_returns_stdout_where_allowed(lab: Lab, kube: KubernetesSource) -> None:
    """Where RBAC allows exec, the command's standard output comes back."""
    lab.world.exec_allowed = True
    try:
        output = await kube.exec(lab.world.agents[0].pod, ["df", "-B1", "/data/wal"])
    finally:
        lab.world.exec_allowed = False
    assert "/data/wal" in output


async def test_kubelet_volume_stats_through_node_proxy(lab: Lab, kube: KubernetesSource) -> None:
    """The node's stats/summary lists the WAL volume of the agent on it."""
    agent = lab.world.agents[0]
    [stat] = await kube.volume_stats(agent.node)
    assert stat.pod == agent.pod
    assert (stat.capacity_bytes, stat.used_bytes) == (
        agent.volume_capacity_bytes,
        agent.volume_used_bytes,
    )


async def test_metrics_api_usage_in_cores_and_bytes(lab: Lab, kube: KubernetesSource) -> None:
    """metrics.k8s.io nanocores and KiB become cores and bytes per pod."""
    usage = {u.pod: u for u in await kube.pod_usage()}
    agent = lab.world.agents[0]
    assert usage[agent.pod].cpu_cores == pytest.approx(agent.cpu_cores)
    assert usage[agent.pod].memory_bytes == agent.memory_bytes


async def test_rollout_history_grows_with_a_restart(lab: Lab, kube: KubernetesSource) -> None:
    """The agent workload's kind follows the profile and each rollout adds a revision."""
    before = await kube.agent_workload()
    with restored(lab) as world:
        world.rollout_restart(world.agent_workload.name)
        after = await kube.agent_workload()
    assert after.kind == profile_named(lab.profile).agent_workload_kind
    assert [number for number, _ in after.revisions] == [1, 2]
    assert len(before.revisions) == 1
    assert after.revisions[-1][1] is not None
    assert "kubectl.kubernetes.io/restartedAt" in after.annotations


async def test_oom_shows_in_pod_state_and_events(lab: Lab, kube: KubernetesSource) -> None:
    """An OOM-killed agent: last termination, back-off, and the namespace event."""
    with scenario(lab, "oom"):
        pod = (await kube.agent_pods())[0]
        events = await kube.events()
    assert (pod.last_terminated_reason, pod.waiting_reason) == ("OOMKilled", "CrashLoopBackOff")
    assert pod.restart_count == 4
    assert "OOMKilling" in {event.reason for event in events}


async def test_nodes_pvcs_and_storage_class(lab: Lab, kube: KubernetesSource) -> None:
    """Node conditions, bound WAL claims and an expandable storage class."""
    with scenario(lab, "disk-full"):
        nodes = {node.name: node for node in await kube.nodes()}
    assert nodes["node-a"].disk_pressure
    assert not nodes["node-b"].disk_pressure
    claims = await kube.pvcs()
    assert {claim.phase for claim in claims} == {"Bound"}
    assert await kube.storage_class_expandable(claims[0].storage_class or "")


async def test_config_map_data_and_missing_one(kube: KubernetesSource) -> None:
    """A config map's data; an unknown name is a query error (404)."""
    assert (await kube.config_map("streamhouse-config"))["THROTTLE_PUT_RATE"] == "3000"
    with pytest.raises(SourceQueryError, match="404"):
        await kube.config_map("no-such-config")


async def test_closed_port_is_unreachable(lab: Lab) -> None:
    """No API server listening: SourceUnreachable naming the host."""
    url = closed_port_url()
    source = KubernetesSource(
        api_configuration(url), namespace="streamhouse", profile=profile_named(lab.profile)
    )
    try:
        with pytest.raises(SourceUnreachable, match=url):
            await source.agent_pods()
    finally:
        await source.close()
