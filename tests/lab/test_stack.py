"""The whole lab: every scenario's sources agree, and remediations get the real system's reaction.

One lab per profile for the module (real Prometheus/Alertmanager, embedded PostgreSQL, moto,
the Kubernetes fake, the registry fake); each test switches the scenario first.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from bot.store import EmbeddedPostgres
from lab.prometheus import ComponentMissing
from lab.scenarios import SCENARIOS
from lab.stack import Lab
from tests.lab.test_prometheus import require

NS = "streamhouse"
AGENT = "streamhouse-agent"


@pytest.fixture(scope="module", params=["runbook", "upstream"])
def lab(request: pytest.FixtureRequest, pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """A running lab of each profile, with real Prometheus."""
    require("prometheus")
    running = Lab(request.param, admin_url=pg_server.url())
    try:
        running.start("healthy")
    except ComponentMissing as missing:  # pragma: no cover - require() covers it
        pytest.skip(str(missing))
    yield running
    running.stop()


def wait_until(check: Callable[[], Any], what: str, within: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def promql(lab: Lab, query: str) -> list[float]:
    """The values of an instant query against the lab's real Prometheus."""
    assert lab.prometheus is not None
    return [float(item["value"][1]) for item in lab.prometheus.query(query)]


def name(lab: Lab, runbook_name: str) -> str:
    """A Streamhouse metric name in the lab's profile spelling."""
    if lab.profile == "runbook":
        return runbook_name
    return "streamhouse_" + runbook_name


def apis(lab: Lab) -> tuple[k8s.CoreV1Api, k8s.AppsV1Api]:
    """Official Kubernetes clients pointed at the lab."""
    api = lab.kubernetes.api_client()
    return k8s.CoreV1Api(api), k8s.AppsV1Api(api)


def agent_pods(lab: Lab) -> list[k8s.V1Pod]:
    """The agent pods, by the profile's label selector."""
    core, _ = apis(lab)
    selector = ",".join(f"{k}={v}" for k, v in lab.world.selector.items())
    return list(core.list_namespaced_pod(NS, label_selector=selector).items)


def workload_patch(lab: Lab, body: dict[str, Any]) -> None:
    """Patch the agent workload (Deployment or StatefulSet) like kubectl does."""
    _, apps = apis(lab)
    if lab.world.agent_workload.kind == "Deployment":
        apps.patch_namespaced_deployment(AGENT, NS, body)
    else:
        apps.patch_namespaced_stateful_set(AGENT, NS, body)


def test_every_scenario_and_variant_builds_in_both_profiles(lab: Lab) -> None:
    """Each scenario switches in place and every source answers for it."""
    core, _ = apis(lab)
    for scenario in SCENARIOS.values():
        for variant in scenario.variants:
            lab.world.reset()
            scenario.build(lab.world, variant)
            assert core.list_namespaced_pod(NS).items
    lab.switch("healthy", metrics=False)


def test_env_points_at_working_sources(lab: Lab) -> None:
    """Every URL in ``env()`` answers: Kubernetes, Prometheus, the registry, PostgreSQL, S3."""
    env = lab.env()
    assert env["STREAMHOUSE_PROFILE"] == lab.profile
    with urllib.request.urlopen(f"{env['KUBERNETES_API_URL']}/version", timeout=5) as response:
        assert response.status == 200
    with urllib.request.urlopen(f"{env['PROMETHEUS_URL']}/-/ready", timeout=5) as response:
        assert response.status == 200
    with psycopg.connect(env["STREAMHOUSE_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT count(*) FROM partition_leases").fetchone() == (8,)
    s3 = lab.aws.boto3_client("s3")
    assert s3.list_objects_v2(Bucket=env["S3_BUCKET"]).get("KeyCount", 0) > 0


def test_breaker_scenario_agrees_across_prometheus_kubernetes_and_s3(lab: Lab) -> None:
    """circuit-breaker-open: the gauge is 1 on every agent, S3 answers SlowDown, logs say so."""
    lab.switch("circuit-breaker-open", "throttling-10m")
    states = promql(lab, name(lab, "circuit_breaker_state"))
    assert states == [1.0, 1.0, 1.0]
    with pytest.raises(Exception, match=r"SlowDown|503"):
        lab.aws.boto3_client("s3").list_objects_v2(Bucket=lab.world.bucket)
    core, _ = apis(lab)
    log = core.read_namespaced_pod_log(agent_pods(lab)[0].metadata.name, NS, tail_lines=50)
    assert "circuit breaker open" in log.lower()


def test_restart_closes_the_breaker_only_once_s3_is_healthy(lab: Lab) -> None:
    """A restart while S3 still fails leaves the breaker open; once S3 recovers it closes."""
    lab.switch("circuit-breaker-open", "throttling-10m")
    restarted_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    annotation = {"kubectl.kubernetes.io/restartedAt": restarted_at}
    workload_patch(lab, {"spec": {"template": {"metadata": {"annotations": annotation}}}})
    query = f"max({name(lab, 'circuit_breaker_state')})"
    time.sleep(2.5)  # two scrapes
    assert promql(lab, query) == [1.0]
    lab.world.set_s3_fault(None)
    annotation = {"kubectl.kubernetes.io/restartedAt": restarted_at + "-2"}
    workload_patch(lab, {"spec": {"template": {"metadata": {"annotations": annotation}}}})
    wait_until(lambda: promql(lab, query) == [0.0], "the breaker to close")


def test_resetting_a_dead_holders_lease_lets_a_live_agent_take_it(lab: Lab) -> None:
    """lease-conflict/dead-holder: an expiring UPDATE plus one simulator round moves the lease."""
    lab.switch("lease-conflict", "dead-holder", metrics=False)
    dead = lab.world.agents[2].agent_id
    holder, epoch = (
        ("agent_id", "lease_epoch") if lab.profile == "runbook" else ("leader_agent_id", "epoch")
    )
    url = lab.env()["STREAMHOUSE_DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT topic, partition_id, {epoch} FROM partition_leases "
            f"WHERE {holder} = %s LIMIT 1",
            (dead,),
        ).fetchone()
        assert row is not None
        topic, partition, old_epoch = row
        lab.tick()
        still = conn.execute(
            f"SELECT {holder} FROM partition_leases WHERE topic = %s AND partition_id = %s",
            (topic, partition),
        ).fetchone()
        assert still == (dead,)  # unexpired: nobody may take it yet
        conn.execute(
            f"UPDATE partition_leases SET lease_expires_at = 0 "
            f"WHERE topic = %s AND partition_id = %s AND {holder} = %s AND {epoch} = %s",
            (topic, partition, dead, old_epoch),
        )
        lab.tick()
        new_holder, new_epoch = conn.execute(
            f"SELECT {holder}, {epoch} FROM partition_leases "
            "WHERE topic = %s AND partition_id = %s",
            (topic, partition),
        ).fetchone() or (None, None)
    assert new_holder not in (None, dead)
    assert new_epoch > old_epoch


def test_raising_the_memory_limit_stops_the_oom_kills(lab: Lab) -> None:
    """oom: a limit below the working set keeps pods OOMKilled; 8Gi lets them run."""
    lab.switch("oom")
    assert all(
        p.status.container_statuses[0].last_state.terminated.reason == "OOMKilled"
        for p in agent_pods(lab)
    )
    resources = {"limits": {"memory": "8Gi", "cpu": "2"}, "requests": {"memory": "2Gi", "cpu": "1"}}
    container = {"name": "agent", "resources": resources}
    workload_patch(lab, {"spec": {"template": {"spec": {"containers": [container]}}}})
    pods = agent_pods(lab)
    assert {p.status.phase for p in pods} == {"Running"}
    assert all(p.status.container_statuses[0].ready for p in pods)
    ratio = "max(container_memory_usage_bytes / container_spec_memory_limit_bytes)"
    wait_until(lambda: (values := promql(lab, ratio)) and values[0] < 0.85, "memory under 85 %")


def test_quarantining_the_corrupted_wal_lets_the_agent_start(lab: Lab) -> None:
    """wal-corruption: restarting alone crash-loops again; after the WAL is moved aside it runs."""
    lab.switch("wal-corruption", metrics=False)
    core, _ = apis(lab)
    broken = lab.world.agents[1]
    new_name = lab.world.delete_pod(broken.pod)
    assert new_name is not None
    assert (
        core.read_namespaced_pod(new_name, NS).status.container_statuses[0].state.waiting.reason
        == "CrashLoopBackOff"
    )
    assert lab.world.quarantine_wal(new_name, "orders", 2)
    core.delete_namespaced_pod(new_name, NS)
    replacement = lab.world.agents[1].pod
    assert core.read_namespaced_pod(replacement, NS).status.phase == "Running"


def test_growing_the_volume_relieves_disk_pressure(lab: Lab) -> None:
    """disk-full: a bigger PVC lowers the used share the kubelet reports; shrinking is refused."""
    lab.switch("disk-full", metrics=False)
    core, _ = apis(lab)
    claims = core.list_namespaced_persistent_volume_claim(NS).items
    claim = claims[0].metadata.name
    core.patch_namespaced_persistent_volume_claim(
        claim, NS, {"spec": {"resources": {"requests": {"storage": "200Gi"}}}}
    )
    agent = lab.world.agents[0]
    assert agent.volume_used_bytes / agent.volume_capacity_bytes < 0.5
    with pytest.raises(ApiException) as refused:
        core.patch_namespaced_persistent_volume_claim(
            claim, NS, {"spec": {"resources": {"requests": {"storage": "1Gi"}}}}
        )
    assert refused.value.status in (403, 422)


def test_relaxing_compatibility_lets_the_pending_schema_register(lab: Lab) -> None:
    """schema-incompatible: the pending schema is refused (409) until the subject's mode is NONE."""
    lab.switch("schema-incompatible", metrics=False)
    assert lab.world.pending_schema is not None
    subject, schema = lab.world.pending_schema
    base = lab.registry.url
    headers = {
        "Content-Type": "application/json",
        "x-organization-id": lab.world.org_id,
    }

    def call(method: str, path: str, body: dict[str, Any]) -> int:
        request = urllib.request.Request(
            f"{base}{path}", json.dumps(body).encode(), headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    assert call("POST", f"/subjects/{subject}/versions", {"schema": schema}) == 409
    assert call("PUT", f"/config/{subject}", {"compatibility": "NONE"}) == 200
    assert call("POST", f"/subjects/{subject}/versions", {"schema": schema}) == 200


def test_raising_the_put_limit_ends_sustained_throttling(lab: Lab) -> None:
    """s3-throttling/sustained: rate-limited decisions stop once the limit covers demand."""
    lab.switch("s3-throttling", "sustained")
    family = name(lab, "throttle_decisions_total")
    limited = "rate_limited"
    query = f'sum(rate({family}{{decision="{limited}"}}[1m]))'
    assert promql(lab, query)[0] > 0
    env = [
        {"name": "THROTTLE_PUT_RATE", "value": "9000"},
        {"name": "THROTTLE_ENABLED", "value": "true"},
    ]
    workload_patch(
        lab, {"spec": {"template": {"spec": {"containers": [{"name": "agent", "env": env}]}}}}
    )
    wait_until(
        lambda: (
            promql(
                lab,
                f'sum({family}{{decision="{limited}"}}) '
                f'- sum({family}{{decision="{limited}"}} offset 2s)',
            )
            == [0.0]
        ),
        "rate-limited decisions to stop growing",
    )


def test_no_metrics_leaves_streamhouse_families_empty(lab: Lab) -> None:
    """no-metrics: Streamhouse families have no series, while cAdvisor's still do."""
    lab.switch("no-metrics")
    assert promql(lab, name(lab, "circuit_breaker_state")) == []
    assert promql(lab, "container_memory_usage_bytes")


def test_history_tells_a_burst_from_a_sustained_overload(lab: Lab) -> None:
    """s3-throttling: an hour ago the burst variant had ordinary demand, the sustained one not."""
    family = name(lab, "throttle_decisions_total")
    demand, an_hour_ago = f"sum(rate({family}[5m]))", f"sum(rate({family}[5m] offset 1h))"
    lab.switch("s3-throttling", "burst")
    burst_then, burst_now = promql(lab, an_hour_ago)[0], promql(lab, demand)[0]
    lab.switch("s3-throttling", "sustained")
    steady_then, steady_now = promql(lab, an_hour_ago)[0], promql(lab, demand)[0]
    assert burst_then < 0.5 * burst_now
    assert steady_then == pytest.approx(steady_now, rel=0.1)


def test_oom_history_shows_memory_climbing(lab: Lab) -> None:
    """oom: two hours ago the agents used far less memory (a leak trend for RP-5)."""
    lab.switch("oom")
    then = promql(lab, "max(container_memory_usage_bytes offset 2h)")[0]
    assert then < 0.7 * promql(lab, "max(container_memory_usage_bytes)")[0]


def test_the_fighting_pair_stops_when_one_fighter_restarts(lab: Lab) -> None:
    """lease-conflict/fighting: the holder flips each round until a fighter's pod is deleted."""
    lab.switch("lease-conflict", "fighting", metrics=False)
    holders = set()
    for _ in range(3):
        lab.tick()
        holders |= {
            lease.holder
            for lease in lab.world.leases
            if (lease.topic, lease.partition) == ("orders", 1)
        }
    assert len(holders) == 2
    core, _ = apis(lab)
    fighter = next(a for a in lab.world.agents if a.agent_id in holders)
    core.delete_namespaced_pod(fighter.pod, NS)
    lab.tick()
    assert lab.world.fighting_partitions == []
