"""The lab Kubernetes fake, driven through the official client as the bot will drive it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from lab.kubernetes import KubernetesFake
from lab.world import GIB, KubeEvent, Profile, WalFile, World

NS = "streamhouse"
AGENT = "streamhouse-agent"
RUNBOOK_SELECTOR = "app=streamhouse-agent"
UPSTREAM_SELECTOR = "app.kubernetes.io/name=streamhouse,app.kubernetes.io/component=agent"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

MakeFake = Callable[..., tuple[World, KubernetesFake]]


@pytest.fixture
def make_fake() -> Iterator[MakeFake]:
    """Build a World with agents and serve it; every fake is stopped after the test."""
    fakes: list[KubernetesFake] = []

    def build(profile: Profile = "runbook", agents: int = 3) -> tuple[World, KubernetesFake]:
        world = World(profile, now=lambda: NOW)
        world.add_agents(agents)
        fake = KubernetesFake(world)
        fake.start()
        fakes.append(fake)
        return world, fake

    yield build
    for fake in fakes:
        fake.stop()


def apis(fake: KubernetesFake) -> tuple[client.CoreV1Api, client.AppsV1Api]:
    """Core and apps clients bound to ``fake``."""
    api_client = fake.api_client()
    return client.CoreV1Api(api_client), client.AppsV1Api(api_client)


def status_of(error: ApiException) -> dict[str, Any]:
    """The decoded Status body of an ApiException."""
    body: dict[str, Any] = json.loads(error.body)
    return body


def agent_names(core: client.CoreV1Api, selector: str = RUNBOOK_SELECTOR) -> list[str]:
    """Names of the pods matching ``selector``."""
    pods = core.list_namespaced_pod(NS, label_selector=selector).items
    return [pod.metadata.name for pod in pods]


def test_label_selectors_filter_pods(make_fake: MakeFake) -> None:
    """Equality, inequality, set-based and existence selectors pick the right pods."""
    world, fake = make_fake()
    core, _ = apis(fake)
    assert sorted(agent_names(core)) == sorted(agent.pod for agent in world.agents)
    assert len(agent_names(core, "app in (streamhouse-agent,other)")) == 3
    others = agent_names(core, "app!=streamhouse-agent")
    assert len(others) == 1
    assert others[0].startswith("streamhouse-schema-registry-")
    assert agent_names(core, "app notin (streamhouse-agent),pod-template-hash") == others
    assert agent_names(core, "!app") == []


def test_upstream_selector_uses_kubernetes_io_labels(make_fake: MakeFake) -> None:
    """The upstream profile's pods carry the chart's labels and no ``app`` label."""
    _, fake = make_fake("upstream")
    core, _ = apis(fake)
    assert agent_names(core, UPSTREAM_SELECTOR) == [f"{AGENT}-0", f"{AGENT}-1", f"{AGENT}-2"]
    assert agent_names(core, RUNBOOK_SELECTOR) == []


def test_field_selectors_filter_by_node_and_phase(make_fake: MakeFake) -> None:
    """``spec.nodeName`` and ``status.phase`` select pods; unknown fields are a 400."""
    world, fake = make_fake()
    with world.lock:
        world.agents[1].phase = "Pending"
    core, _ = apis(fake)
    on_a = core.list_namespaced_pod(NS, field_selector="spec.nodeName=node-a").items
    assert {pod.spec.node_name for pod in on_a} == {"node-a"}
    pending = core.list_namespaced_pod(NS, field_selector="status.phase=Pending").items
    assert [pod.metadata.name for pod in pending] == [world.agents[1].pod]
    with pytest.raises(ApiException) as raised:
        core.list_namespaced_pod(NS, field_selector="spec.image=x")
    assert raised.value.status == 400


def test_runbook_pod_has_owner_env_resources_and_wal_volume(make_fake: MakeFake) -> None:
    """A Deployment pod is owned by its ReplicaSet and mounts the shared WAL claim."""
    world, fake = make_fake()
    core, _ = apis(fake)
    pod = core.read_namespaced_pod(world.agents[0].pod, NS)
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name) == ("ReplicaSet", f"{AGENT}-{world.template_hash}")
    assert pod.metadata.labels["pod-template-hash"] == world.template_hash
    container = pod.spec.containers[0]
    assert {env.name: env.value for env in container.env}["THROTTLE_PUT_RATE"] == "3000"
    assert container.resources.limits == {"cpu": "2", "memory": "4Gi"}
    assert container.resources.requests == {"cpu": "1", "memory": "2Gi"}
    assert container.volume_mounts[0].mount_path == "/data/wal"
    assert pod.spec.volumes[0].persistent_volume_claim.claim_name == "streamhouse-wal"
    assert pod.metadata.resource_version == str(world.version)


def test_upstream_pod_belongs_to_its_statefulset(make_fake: MakeFake) -> None:
    """A StatefulSet pod names its owner, its own PVC and its pod-name label."""
    _, fake = make_fake("upstream")
    core, _ = apis(fake)
    pod = core.read_namespaced_pod(f"{AGENT}-1", NS)
    assert pod.metadata.owner_references[0].kind == "StatefulSet"
    assert pod.metadata.labels["statefulset.kubernetes.io/pod-name"] == f"{AGENT}-1"
    assert pod.spec.volumes[0].persistent_volume_claim.claim_name == f"wal-data-{AGENT}-1"


def test_crash_loop_with_oom_kill_is_reported_like_the_kubelet(make_fake: MakeFake) -> None:
    """CrashLoopBackOff waits, lastState says OOMKilled with exit 137, restarts count."""
    world, fake = make_fake()
    with world.lock:
        agent = world.agents[0]
        agent.phase, agent.ready, agent.restart_count = "CrashLoopBackOff", False, 4
        agent.last_terminated_reason, agent.last_terminated_at = "OOMKilled", NOW
    core, _ = apis(fake)
    status = core.read_namespaced_pod(agent.pod, NS).status
    container = status.container_statuses[0]
    assert status.phase == "Running"
    assert container.state.waiting.reason == "CrashLoopBackOff"
    assert container.last_state.terminated.reason == "OOMKilled"
    assert container.last_state.terminated.exit_code == 137
    assert container.last_state.terminated.finished_at == NOW
    assert (container.ready, container.restart_count) == (False, 4)


def test_deleting_a_deployment_pod_brings_a_new_name(make_fake: MakeFake) -> None:
    """The Deployment replaces a deleted pod under a new name."""
    world, fake = make_fake()
    core, _ = apis(fake)
    old = world.agents[0].pod
    core.delete_namespaced_pod(old, NS)
    names = agent_names(core)
    assert old not in names
    assert len(names) == 3


def test_deleting_a_statefulset_pod_keeps_its_name(make_fake: MakeFake) -> None:
    """The StatefulSet recreates the pod under the same name, as a new object."""
    world, fake = make_fake("upstream")
    core, _ = apis(fake)
    before = core.read_namespaced_pod(f"{AGENT}-0", NS).metadata.uid
    world.now = lambda: NOW + timedelta(seconds=5)
    core.delete_namespaced_pod(f"{AGENT}-0", NS)
    after = core.read_namespaced_pod(f"{AGENT}-0", NS).metadata.uid
    assert after != before
    assert agent_names(core, UPSTREAM_SELECTOR) == [f"{AGENT}-0", f"{AGENT}-1", f"{AGENT}-2"]


def test_unknown_names_are_404_status(make_fake: MakeFake) -> None:
    """Missing pods and deployments answer a NotFound Status."""
    _, fake = make_fake()
    core, apps = apis(fake)
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod("nope", NS)
    assert raised.value.status == 404
    assert status_of(raised.value)["reason"] == "NotFound"
    assert status_of(raised.value)["message"] == 'pods "nope" not found'
    with pytest.raises(ApiException) as raised:
        apps.read_namespaced_stateful_set(AGENT, NS)  # runbook: a Deployment
    assert raised.value.status == 404


def test_restart_annotation_rolls_pods_and_adds_a_revision(make_fake: MakeFake) -> None:
    """``kubectl rollout restart``'s patch replaces every pod and records a ReplicaSet."""
    world, fake = make_fake()
    core, apps = apis(fake)
    old = set(agent_names(core))
    stamp = {"kubectl.kubernetes.io/restartedAt": NOW.isoformat()}
    apps.patch_namespaced_deployment(
        AGENT, NS, {"spec": {"template": {"metadata": {"annotations": stamp}}}}
    )
    assert old.isdisjoint(agent_names(core))
    assert world.agent_workload.revision == 2
    revisions = {
        rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs.spec.replicas
        for rs in apps.list_namespaced_replica_set(NS, label_selector=RUNBOOK_SELECTOR).items
    }
    assert revisions == {"1": 0, "2": 3}


def test_env_patch_rolls_pods_with_the_new_value(make_fake: MakeFake) -> None:
    """A strategic-merge env patch reaches the World and shows in the new pods' spec."""
    world, fake = make_fake("upstream")
    core, apps = apis(fake)
    container = {"name": "agent", "env": [{"name": "THROTTLE_PUT_RATE", "value": "3500"}]}
    apps.patch_namespaced_stateful_set(
        AGENT, NS, {"spec": {"template": {"spec": {"containers": [container]}}}}
    )
    assert world.agent_workload.env["THROTTLE_PUT_RATE"] == "3500"
    pod = core.read_namespaced_pod(f"{AGENT}-0", NS)
    env = {item.name: item.value for item in pod.spec.containers[0].env}
    assert env == {"THROTTLE_ENABLED": "true", "WAL_DIR": "/data/wal", "THROTTLE_PUT_RATE": "3500"}
    assert [rev.revision for rev in apps.list_namespaced_controller_revision(NS).items] == [1, 2]


def test_read_modify_write_of_the_whole_object_applies_the_change(make_fake: MakeFake) -> None:
    """Patching back a read Deployment with one env var added sets only that var."""
    world, fake = make_fake()
    _, apps = apis(fake)
    deployment = apps.read_namespaced_deployment(AGENT, NS)
    deployment.spec.template.spec.containers[0].env.append(client.V1EnvVar(name="X", value="1"))
    apps.patch_namespaced_deployment(AGENT, NS, deployment)
    assert world.agent_workload.env == {
        "THROTTLE_ENABLED": "true",
        "THROTTLE_PUT_RATE": "3000",
        "X": "1",
    }


def test_raising_the_memory_limit_ends_the_oom_crash_loop(make_fake: MakeFake) -> None:
    """A JSON patch of the memory limit calls set_resources; pods fit and run again."""
    world, fake = make_fake()
    with world.lock:
        world.memory_working_set_bytes = 6 * GIB
        world.rollout_restart(AGENT)  # the 4Gi limit is now too small: OOMKilled
    core, apps = apis(fake)
    assert (
        core.read_namespaced_pod(world.agents[0].pod, NS)
        .status.container_statuses[0]
        .state.waiting.reason
        == "CrashLoopBackOff"
    )
    path = "/spec/template/spec/containers/0/resources/limits/memory"
    apps.patch_namespaced_deployment(AGENT, NS, [{"op": "replace", "path": path, "value": "8Gi"}])
    assert world.agent_workload.resources.memory_limit_bytes == 8 * GIB
    pods = core.list_namespaced_pod(NS, label_selector=RUNBOOK_SELECTOR).items
    assert {pod.status.container_statuses[0].ready for pod in pods} == {True}
    assert pods[0].spec.containers[0].resources.limits["memory"] == "8Gi"


def test_merge_patch_of_replicas_scales(make_fake: MakeFake) -> None:
    """A merge-patch of ``spec.replicas`` changes the pod count."""
    _, fake = make_fake()
    core, apps = apis(fake)
    apps.patch_namespaced_deployment(
        AGENT, NS, {"spec": {"replicas": 5}}, _content_type="application/merge-patch+json"
    )
    assert len(agent_names(core)) == 5


def test_scale_subresource_reads_and_writes_replicas(make_fake: MakeFake) -> None:
    """GET/PATCH/PUT on ``/scale`` report and change the StatefulSet's replicas."""
    world, fake = make_fake("upstream")
    core, apps = apis(fake)
    assert apps.read_namespaced_stateful_set_scale(AGENT, NS).spec.replicas == 3
    apps.patch_namespaced_stateful_set_scale(AGENT, NS, {"spec": {"replicas": 1}})
    assert agent_names(core, UPSTREAM_SELECTOR) == [f"{AGENT}-0"]
    body = {
        "metadata": {"name": AGENT, "resourceVersion": str(world.version)},
        "spec": {"replicas": 2},
    }
    scaled = apps.replace_namespaced_stateful_set_scale(AGENT, NS, body)
    assert (scaled.spec.replicas, scaled.status.replicas) == (2, 2)


def test_stale_resource_version_is_a_409_conflict(make_fake: MakeFake) -> None:
    """A patch based on an old read conflicts and changes nothing."""
    world, fake = make_fake()
    _, apps = apis(fake)
    stale = apps.read_namespaced_deployment(AGENT, NS).metadata.resource_version
    world.set_env(AGENT, {"X": "1"})
    with pytest.raises(ApiException) as raised:
        apps.patch_namespaced_deployment(
            AGENT, NS, {"metadata": {"resourceVersion": stale}, "spec": {"replicas": 1}}
        )
    assert raised.value.status == 409
    assert status_of(raised.value)["reason"] == "Conflict"
    assert len(world.agents) == 3


def test_invalid_and_unrepresentable_patches_are_422(make_fake: MakeFake) -> None:
    """Negative replicas, bad quantities and changes the World cannot make are Invalid."""
    world, fake = make_fake()
    _, apps = apis(fake)
    image = {"containers": [{"name": "agent", "image": "other:1"}]}
    bodies = [
        {"spec": {"replicas": -1}},
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "agent", "resources": {"limits": {"memory": "lots"}}}
                        ]
                    }
                }
            }
        },
        {"spec": {"template": {"spec": image}}},
    ]
    for body in bodies:
        with pytest.raises(ApiException) as raised:
            apps.patch_namespaced_deployment(AGENT, NS, body)
        assert raised.value.status == 422, body
        assert status_of(raised.value)["reason"] == "Invalid"
    assert world.agent_workload.revision == 1


def test_dry_run_validates_without_changing_the_world(make_fake: MakeFake) -> None:
    """``dryRun=All`` answers the patched object and leaves the World alone."""
    world, fake = make_fake()
    _, apps = apis(fake)
    answer = apps.patch_namespaced_deployment(AGENT, NS, {"spec": {"replicas": 7}}, dry_run="All")
    assert answer.spec.replicas == 7
    assert len(world.agents) == 3


def test_pvc_grows_when_the_storage_class_allows(make_fake: MakeFake) -> None:
    """Patching the WAL claim's size calls grow_volume and shows the new capacity."""
    world, fake = make_fake()
    core, _ = apis(fake)
    storage = client.StorageV1Api(fake.api_client()).read_storage_class("gp3")
    assert storage.allow_volume_expansion is True
    body = {"spec": {"resources": {"requests": {"storage": "100Gi"}}}}
    claim = core.patch_namespaced_persistent_volume_claim("streamhouse-wal", NS, body)
    assert claim.status.capacity["storage"] == "100Gi"
    assert {agent.volume_capacity_bytes for agent in world.agents} == {100 * GIB}


def test_pvc_resize_is_refused_like_kubernetes(make_fake: MakeFake) -> None:
    """A class without expansion is a 403; shrinking is a 422."""
    world, fake = make_fake("upstream")
    core, _ = apis(fake)
    claims = [c.metadata.name for c in core.list_namespaced_persistent_volume_claim(NS).items]
    assert claims == [f"wal-data-{AGENT}-0", f"wal-data-{AGENT}-1", f"wal-data-{AGENT}-2"]
    with pytest.raises(ApiException) as raised:
        core.patch_namespaced_persistent_volume_claim(
            claims[0], NS, {"spec": {"resources": {"requests": {"storage": "10Gi"}}}}
        )
    assert raised.value.status == 422
    world.storage_class_expandable = False
    with pytest.raises(ApiException) as raised:
        core.patch_namespaced_persistent_volume_claim(
            claims[0], NS, {"spec": {"resources": {"requests": {"storage": "80Gi"}}}}
        )
    assert raised.value.status == 403
    assert world.agents[0].volume_capacity_bytes == 50 * GIB


def test_exec_is_forbidden_unless_the_world_allows_it(make_fake: MakeFake) -> None:
    """Exec answers 403; when allowed, ``stream`` runs ls in the WAL directory."""
    world, fake = make_fake()
    core, _ = apis(fake)
    pod = world.agents[0].pod
    with pytest.raises(ApiException) as raised:
        core.connect_get_namespaced_pod_exec(pod, NS, command=["ls", "/data/wal"])
    assert raised.value.status == 403
    with world.lock:
        world.exec_allowed = True
        world.agents[0].wal_files.append(WalFile("orders", 0, 4096, NOW))
    output = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        NS,
        command=["ls", "/data/wal"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert output == "orders-0.wal\n"


def test_logs_honour_tail_lines_since_seconds_and_timestamps(make_fake: MakeFake) -> None:
    """Log text is filtered by tailLines/sinceSeconds and prefixed with timestamps."""
    world, fake = make_fake()
    agent = world.agents[0]
    with world.lock:
        agent.log("S3 circuit breaker open - rejecting request", NOW - timedelta(minutes=10))
        agent.log("S3 circuit breaker closed", NOW - timedelta(minutes=1))
    core, _ = apis(fake)
    last = core.read_namespaced_pod_log(agent.pod, NS, tail_lines=1)
    recent = core.read_namespaced_pod_log(agent.pod, NS, since_seconds=300)
    assert last == recent == "S3 circuit breaker closed\n"
    stamped = core.read_namespaced_pod_log(agent.pod, NS, tail_lines=1, timestamps=True)
    assert stamped == "2025-06-01T11:59:00.000000000Z S3 circuit breaker closed\n"
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod_log(agent.pod, NS, previous=True)
    assert raised.value.status == 400


def test_metrics_api_reports_usage_like_metrics_server(make_fake: MakeFake) -> None:
    """PodMetrics carry CPU in nanocores and memory in KiB, from the agents."""
    world, fake = make_fake()
    with world.lock:
        world.agents[0].cpu_cores, world.agents[0].memory_bytes = 1.5, 3 * GIB
    custom = client.CustomObjectsApi(fake.api_client())
    listed = custom.list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", NS, "pods", label_selector=RUNBOOK_SELECTOR
    )
    assert len(listed["items"]) == 3
    one = custom.get_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", NS, "pods", world.agents[0].pod
    )
    assert one["containers"][0]["usage"] == {"cpu": "1500000000n", "memory": "3145728Ki"}


def test_kubelet_stats_summary_reports_wal_volume_usage(make_fake: MakeFake) -> None:
    """The node proxy's stats/summary lists the node's agent pods with WAL volume bytes."""
    world, fake = make_fake()
    with world.lock:
        world.agents[0].volume_used_bytes = 46 * GIB
    core, _ = apis(fake)
    raw = core.connect_get_node_proxy_with_path("node-a", "stats/summary", _preload_content=False)
    summary = json.loads(raw.data)
    [pod] = summary["pods"]
    volume = pod["volume"][0]
    assert pod["podRef"]["name"] == world.agents[0].pod
    assert volume["pvcRef"]["name"] == "streamhouse-wal"
    assert (volume["usedBytes"], volume["capacityBytes"], volume["availableBytes"]) == (
        46 * GIB,
        50 * GIB,
        4 * GIB,
    )


def test_nodes_events_and_config_map_come_from_the_world(make_fake: MakeFake) -> None:
    """Node conditions, namespace events and the config map reflect the World."""
    world, fake = make_fake()
    with world.lock:
        world.nodes[1].disk_pressure = True
        world.events.append(
            KubeEvent(
                NOW,
                "OOMKilling",
                "Memory cgroup out of memory",
                "Pod",
                world.agents[0].pod,
                "Warning",
            )
        )
    core, _ = apis(fake)
    conditions = {c.type: c.status for c in core.read_node("node-b").status.conditions}
    assert conditions["DiskPressure"] == "True"
    assert conditions["Ready"] == "True"
    warnings = core.list_namespaced_event(NS, field_selector="type=Warning").items
    assert [(e.reason, e.involved_object.name) for e in warnings] == [
        ("OOMKilling", world.agents[0].pod)
    ]
    assert core.read_namespaced_config_map("streamhouse-config", NS).data == world.config_map


def test_request_log_records_what_was_done(make_fake: MakeFake) -> None:
    """Requests are recorded with method, path, query and body, and can be cleared."""
    _, fake = make_fake()
    core, apps = apis(fake)
    fake.clear_requests()
    core.list_namespaced_pod(NS, label_selector=RUNBOOK_SELECTOR)
    apps.patch_namespaced_deployment(AGENT, NS, {"spec": {"replicas": 2}})
    listed, patched = fake.requests
    assert (listed.method, listed.query) == ("GET", {"labelSelector": RUNBOOK_SELECTOR})
    assert patched.method == "PATCH"
    assert patched.path == f"/apis/apps/v1/namespaces/{NS}/deployments/{AGENT}"
    assert patched.body == {"spec": {"replicas": 2}}
    served = urllib3.request("GET", f"{fake.url}/_lab/requests").json()
    assert [entry[0] for entry in served] == ["GET", "PATCH"]


def test_other_namespaces_are_empty(make_fake: MakeFake) -> None:
    """Only the World's namespace has objects."""
    world, fake = make_fake()
    core, _ = apis(fake)
    assert core.list_namespaced_pod("default").items == []
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod(world.agents[0].pod, "default")
    assert raised.value.status == 404
