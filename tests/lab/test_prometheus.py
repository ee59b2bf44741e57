"""The real Prometheus and Alertmanager against the lab's exporter, in both spellings.

Both stacks start once for the module, concurrently, each with backfilled history, so
rate() over the last minutes is right from the first query on.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from lab.http import ServerThread
from lab.metrics import MetricsExporter
from lab.prometheus import ComponentMissing, PrometheusStack, find_binary, lab_rules, rules_file
from lab.world import GIB, Profile, World

TOKEN = "lab-alertmanager-token"
NO_RUNBOOK = {"S3LatencyHigh", "SchemaCompatibilityCheckFailures"}  # upstream links none
RUNBOOKS = {
    "circuit-breaker-open.md",
    "high-s3-throttling-rate.md",
    "wal-recovery-failures.md",
    "partition-lease-conflicts.md",
    "schema-registry-errors.md",
    "resource-pressure.md",
}


def require(binary: str) -> str:
    """The binary's path; skip (fail on CI) with the package to install when missing."""
    try:
        return find_binary(binary)
    except ComponentMissing as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(str(missing))
        pytest.skip(str(missing))


class WebhookReceiver:
    """A small aiohttp server that records Alertmanager webhook posts."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, Any], str]] = []
        self._changed = threading.Condition()
        self.server = ServerThread(lambda _base: self._app(), name="the webhook receiver")

    def _app(self) -> web.Application:
        async def receive(request: web.Request) -> web.Response:
            payload = await request.json()
            with self._changed:
                self.posts.append((payload, request.headers.get("Authorization", "")))
                self._changed.notify_all()
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/alertmanager", receive)
        return app

    @property
    def url(self) -> str:
        return f"{self.server.base_url}/alertmanager"

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> tuple[dict[str, Any], str]:
        """The first post (payload, Authorization header) that ``match`` accepts."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [post for post in self.posts if match(post[0])]
                if found:
                    return found[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [p["commonLabels"].get("alertname") for p, _ in self.posts]
                    raise AssertionError(f"no matching webhook post; saw {seen}")
                self._changed.wait(remaining)


@dataclass
class Lab:
    """One world served by an exporter and watched by a real Prometheus stack."""

    world: World
    exporter: MetricsExporter
    stack: PrometheusStack
    history: tuple[datetime, datetime]


def runbook_world() -> World:
    """Three agents; agent 0's breaker is open; 1000 PUT/s limit against 2000/s demand each."""
    world = World("runbook")
    world.add_agents(3)
    world.agent_workload.env["THROTTLE_PUT_RATE"] = "1000"
    world.traffic.put_demand_per_s = 6000.0
    world.agents[0].breaker_state = 1
    world.agents[2].memory_bytes = int(3.8 * GIB)  # 95 % of the 4 GiB limit
    world.nodes[1].clock_offset_seconds = 3.5
    return world


def upstream_world() -> World:
    """Three StatefulSet agents with lease conflicts (0.1/s on each of 24 partitions)."""
    world = World("upstream")
    world.add_agents(3)
    world.traffic.lease_conflicts_per_s = 2.4
    world.traffic.s3_503_per_s = 3.0
    return world


def start_lab(world: World, receiver: WebhookReceiver, hours: float) -> Lab:
    """Exporter, then history ending just before now, then Prometheus + Alertmanager."""
    exporter = MetricsExporter(world)
    exporter.start()
    stack = PrometheusStack(
        [exporter.target], profile=world.profile, webhook_url=receiver.url, webhook_token=TOKEN
    )
    history = stack.backfill_history(world, hours=hours, counters=exporter.counters)
    try:
        cold = stack.start()
    except Exception:
        exporter.stop()
        raise
    print(f"{world.profile}: Prometheus + Alertmanager cold start {cold:.1f}s")
    return Lab(world, exporter, stack, history)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    """The webhook receiver both Alertmanagers post to."""
    receiver = WebhookReceiver()
    receiver.server.start()
    yield receiver
    receiver.server.stop()


@pytest.fixture(scope="module")
def labs(receiver: WebhookReceiver) -> Iterator[dict[Profile, Lab]]:
    """A runbook lab (10 min of history) and an upstream lab (90 min), started together."""
    for binary in ("prometheus", "promtool", "prometheus-alertmanager"):
        require(binary)
    with ThreadPoolExecutor(2) as pool:
        runbook = pool.submit(start_lab, runbook_world(), receiver, 10 / 60)
        upstream = pool.submit(start_lab, upstream_world(), receiver, 1.5)
        started: dict[Profile, Lab] = {"runbook": runbook.result(), "upstream": upstream.result()}
    yield started
    for lab in started.values():
        lab.stack.stop()
        lab.exporter.stop()


def value(stack: PrometheusStack, promql: str) -> float:
    """The single value of an instant query."""
    (result,) = stack.query(promql)
    return float(result["value"][1])


def alert_named(name: str) -> Callable[[dict[str, Any]], bool]:
    """Matches a firing webhook payload whose group is alert ``name``."""
    return lambda payload: (
        payload["status"] == "firing" and payload["commonLabels"].get("alertname") == name
    )


def rules_of(profile: Profile) -> list[dict[str, Any]]:
    """Every alert rule of the profile's deployable rule file."""
    document = yaml.safe_load(rules_file(profile).read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("profile", ["runbook", "upstream"])
def test_rule_files_pass_promtool(profile: Profile, tmp_path: Path) -> None:
    """promtool accepts the deployable rule file and the lab's for: 0s copy."""
    promtool = require("promtool")
    lab_copy = tmp_path / "rules.yaml"
    lab_copy.write_text(lab_rules(rules_file(profile), "0s"))
    for path in (rules_file(profile), lab_copy):
        checked = subprocess.run(  # noqa: S603 -- our own binary path and files
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("profile", ["runbook", "upstream"])
def test_rules_name_their_runbook_and_severity(profile: Profile) -> None:
    """Every rule has a severity label and a runbook annotation naming a runbook file."""
    for rule in rules_of(profile):
        assert rule["labels"]["severity"] in {"critical", "high", "medium", "low"}
        if rule["alert"] in NO_RUNBOOK and profile == "upstream":
            assert "runbook" not in rule["annotations"]
            continue
        assert rule["annotations"]["runbook"].rsplit("/", 1)[-1] in RUNBOOKS, rule["alert"]


def test_deployable_rules_keep_their_real_durations() -> None:
    """The files in deploy/ keep minutes-long for: clauses; only the lab copy says 0s."""
    durations = {rule["alert"]: rule["for"] for rule in rules_of("upstream")}
    assert durations["CircuitBreakerOpen"] == "2m"
    copy = yaml.safe_load(lab_rules(rules_file("upstream"), "0s"))
    assert {rule["for"] for group in copy["groups"] for rule in group["rules"]} == {"0s"}
    assert not any("interval" in group for group in copy["groups"])


def test_runbook_promql_returns_the_scenario_numbers(labs: dict[Profile, Lab]) -> None:
    """Runbook spelling: gauges as set, and rate() over a minute at the scenario's rate."""
    lab = labs["runbook"]
    open_pod = lab.world.agents[0].pod
    assert value(lab.stack, f'circuit_breaker_state{{pod="{open_pod}"}}') == 1
    assert value(lab.stack, 'node_timex_offset_seconds{instance="node-b"}') == 3.5
    limited = 'sum(rate(throttle_decisions_total{decision="rate_limited"}[1m]))'
    assert value(lab.stack, limited) == pytest.approx(2 * 1000, rel=0.02)
    rejected = 'sum(rate(throttle_decisions_total{decision="circuit_open"}[1m]))'
    assert value(lab.stack, rejected) == pytest.approx(2000, rel=0.02)


def test_upstream_promql_returns_the_scenario_numbers(labs: dict[Profile, Lab]) -> None:
    """Upstream spelling: prefixed names, org_id, the code's label values, rates as set."""
    lab = labs["upstream"]
    conflicts = "sum(rate(streamhouse_lease_conflicts_total[1m]))"
    assert value(lab.stack, conflicts) == pytest.approx(2.4, rel=0.02)
    errors = lab.stack.query("sum by (error_type, org_id) (rate(streamhouse_s3_errors_total[5m]))")
    by_type = {r["metric"]["error_type"]: float(r["value"][1]) for r in errors}
    assert by_type == pytest.approx({"retry": 2.0, "failed": 1.0}, rel=0.02)
    assert {r["metric"]["org_id"] for r in errors} == {lab.world.org_id}
    assert lab.stack.query("circuit_breaker_state") == []


def test_runbook_alert_reaches_the_webhook(
    labs: dict[Profile, Lab], receiver: WebhookReceiver
) -> None:
    """CircuitBreakerOpen fires through Alertmanager as a v4 payload naming its runbook."""
    payload, authorization = receiver.wait_for(alert_named("CircuitBreakerOpen"))
    (alert,) = payload["alerts"]
    assert payload["version"] == "4"
    assert authorization == f"Bearer {TOKEN}"
    assert alert["labels"]["pod"] == labs["runbook"].world.agents[0].pod
    assert alert["labels"]["severity"] == "high"
    assert alert["annotations"]["runbook"].endswith("circuit-breaker-open.md")


def test_upstream_alert_reaches_the_webhook(
    labs: dict[Profile, Lab], receiver: WebhookReceiver
) -> None:
    """PartitionLeaseConflicts (a rate() rule) fires per partition with the runbook file name."""
    payload, _ = receiver.wait_for(alert_named("PartitionLeaseConflicts"))
    assert payload["version"] == "4"
    assert {alert["annotations"]["runbook"] for alert in payload["alerts"]} == {
        "partition-lease-conflicts.md"
    }
    assert {alert["labels"]["org_id"] for alert in payload["alerts"]} == {
        labs["upstream"].world.org_id
    }


def test_resolved_alert_is_sent_too(labs: dict[Profile, Lab], receiver: WebhookReceiver) -> None:
    """When the world recovers, Alertmanager posts the alert again as resolved."""
    lab = labs["runbook"]
    receiver.wait_for(alert_named("HighMemoryUsage"))
    with lab.world.lock:
        lab.world.agents[2].memory_bytes = 1 * GIB
    payload, _ = receiver.wait_for(
        lambda p: (
            p["status"] == "resolved" and p["commonLabels"].get("alertname") == "HighMemoryUsage"
        )
    )
    assert payload["alerts"][0]["endsAt"] > payload["alerts"][0]["startsAt"]


def test_backfilled_history_spans_more_than_an_hour(labs: dict[Profile, Lab]) -> None:
    """promtool backfill gives query_range a continuous hour-plus of the scenario's rates."""
    lab = labs["upstream"]
    start, end = lab.history
    assert end - start >= timedelta(hours=1)
    assert end > datetime.now(UTC) - timedelta(minutes=5)
    query = "sum(rate(streamhouse_lease_conflicts_total[1m]))"
    (series,) = lab.stack.query_range(
        query, start + timedelta(minutes=1), end, timedelta(minutes=1)
    )
    points = [float(v) for _, v in series["values"]]
    assert len(points) >= 60
    assert points == pytest.approx([2.4] * len(points), rel=0.02)


def test_restart_fresh_wipes_history_and_keeps_the_urls(receiver: WebhookReceiver) -> None:
    """restart_fresh drops the old TSDB; the stack starts again at the same URLs."""
    require("prometheus")
    world = runbook_world()
    with MetricsExporter(world) as exporter:
        stack = PrometheusStack([exporter.target], profile="runbook", webhook_url=receiver.url)
        try:
            stack.backfill_history(world, hours=0.2, counters=exporter.counters)
            stack.start()
            url = stack.prometheus_url
            stack.restart_fresh()
            exporter.counters.reset()
            world.agent_workload.env["THROTTLE_PUT_RATE"] = "500"
            start, end = stack.backfill_history(world, hours=0.2, counters=exporter.counters)
            stack.start()
            rate_limits = stack.query_range(
                "max(throttle_rate_current)", start, end, timedelta(minutes=1)
            )
        finally:
            stack.stop()
    assert stack.prometheus_url == url
    assert {v for _, v in rate_limits[0]["values"]} == {"500"}
