"""The lab's metrics exporter: series from the World, both spellings, both formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Protocol

import aiohttp
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as _parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from lab.metrics import (
    CounterIntegrator,
    MetricsExporter,
    derive,
    history_instants,
    history_openmetrics,
)
from lab.metrics.series import Family
from lab.world import GIB, MIB, Profile, WalFile, World

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_openmetrics(text: str) -> list[Metric]:
    """Parse with prometheus_client's strict OpenMetrics parser (raises on invalid input)."""
    # The OpenMetrics parser has no annotations; its families are Metric objects.
    return list(_parse_openmetrics(text))  # type: ignore[no-untyped-call]


def make_world(profile: Profile = "runbook") -> World:
    """Two agents, each wanting 1500 PUT/s against a 1000/s limit, with S3 503s."""
    world = World(profile)
    world.add_agents(2)
    world.agent_workload.env["THROTTLE_PUT_RATE"] = "1000"
    world.traffic.put_demand_per_s = 3000.0
    world.traffic.s3_503_per_s = 4.0
    world.traffic.lease_conflicts_per_s = 0.8
    return world


class Clock:
    """A hand-driven clock in UNIX seconds."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def scrape(exporter: MetricsExporter) -> Series:
    """Render once and index every sample by name and label set (validates the format)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in parse_text(exporter.render())
        for sample in family.samples
    }


def pick(series: Series, name: str, **labels: str) -> list[float]:
    """Values of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return [value for (n, lbls), value in series.items() if n == name and wanted <= lbls]


def names(series: Series) -> set[str]:
    """The sample names present."""
    return {name for name, _ in series}


class Rate(Protocol):
    """Growth per second of the samples of a name whose labels include the given ones."""

    def __call__(self, name: str, **labels: str) -> float: ...


def rates(profile: Profile, seconds: float = 10.0) -> Rate:
    """Scrape twice ``seconds`` apart; return ``delta(name-with-filters) / seconds``."""
    world, clock = make_world(profile), Clock()
    exporter = MetricsExporter(world, clock=clock)
    first = scrape(exporter)
    clock.now += seconds
    second = scrape(exporter)

    def rate(name: str, **labels: str) -> float:
        return (sum(pick(second, name, **labels)) - sum(pick(first, name, **labels))) / seconds

    return rate


def test_runbook_spelling_uses_the_runbooks_names_and_labels() -> None:
    """Runbook names carry no prefix, label values are the runbooks' own, per agent pod."""
    world = make_world()
    world.agents[0].breaker_state = 1
    wal = WalFile("orders", 0, 10 * MIB, world.now(), corrupted=True, records_skipped=7)
    world.agents[0].wal_files.append(wal)
    series = scrape(MetricsExporter(world))
    pod = world.agents[0].pod
    assert pick(series, "circuit_breaker_state", operation="put", pod=pod) == [1]
    assert pick(series, "wal_size_bytes", topic="orders", partition="0", pod=pod) == [10 * MIB]
    assert pick(series, "wal_records_skipped_total", topic="orders", pod=pod) == [7]
    assert pick(series, "wal_recoveries_total", result="error", pod=pod) == [1]
    assert pick(series, "throttle_rate_current", operation="put", pod=pod) == [1000]
    assert pick(series, "s3_errors_total", operation="PUT", error_type="503", pod=pod) == [0]
    assert {"producer_messages_sent_total", "schema_cache_hits_total"} <= names(series)
    assert not any(name.startswith("streamhouse_") for name in names(series))


def test_help_and_type_lines_precede_every_family() -> None:
    """Each family has HELP then TYPE, counters typed counter and ending in _total."""
    text = MetricsExporter(make_world()).render()
    lines = text.splitlines()
    types = {line.split()[2]: line.split()[3] for line in lines if line.startswith("# TYPE")}
    assert types["circuit_breaker_state"] == "gauge"
    assert types["throttle_decisions_total"] == "counter"
    assert all(name.endswith("_total") for name, kind in types.items() if kind == "counter")
    for index, line in enumerate(lines):
        if line.startswith("# TYPE"):
            assert lines[index - 1].startswith(f"# HELP {line.split()[2]} ")


def test_counters_grow_at_the_scenario_rates() -> None:
    """Between two scrapes counters grow by rate x elapsed time, fleet totals as set."""
    rate = rates("runbook")
    assert rate("throttle_decisions_total", decision="allowed") == pytest.approx(2000)
    assert rate("throttle_decisions_total", decision="rate_limited") == pytest.approx(1000)
    assert rate("s3_errors_total", error_type="503") == pytest.approx(4.0)
    assert rate("lease_conflicts_total") == pytest.approx(0.8)
    assert rate("producer_messages_sent_total") == pytest.approx(20_000)
    assert rate("container_cpu_usage_seconds_total") == pytest.approx(1.0)


def test_open_breaker_rejects_every_put_as_circuit_open() -> None:
    """An agent with an open breaker allows nothing; its demand shows as circuit_open."""
    world = make_world()
    world.agents[0].breaker_state = 1
    (decisions,) = [f for f in derive(world) if f.name == "throttle_decisions_total"]
    pod = world.agents[0].pod
    by_decision = {
        dict(s.labels)["decision"]: s.rate for s in decisions.samples if ("pod", pod) in s.labels
    }
    assert by_decision == {"allowed": 0.0, "rate_limited": 0.0, "circuit_open": 1500.0}


def test_adaptive_reductions_halve_the_current_rate() -> None:
    """Each adaptive reduction halves the PUT rate, which then limits more demand."""
    world = make_world()
    world.traffic.adaptive_reductions_15m = 2
    series = scrape(MetricsExporter(world))
    assert set(pick(series, "throttle_rate_current")) == {250}


def test_upstream_spelling_prefixes_and_puts_org_id_first() -> None:
    """Upstream families are prefixed and their first label is the organization id."""
    world = make_world("upstream")
    text = MetricsExporter(world).render()
    sample_lines = [line for line in text.splitlines() if line.startswith("streamhouse_")]
    assert sample_lines
    assert all(
        line.split("{", 1)[1].startswith(f'org_id="{world.org_id}"') for line in sample_lines
    )
    assert not [line for line in text.splitlines() if line.startswith("circuit_breaker_state")]


def test_upstream_label_values_follow_the_code() -> None:
    """S3 error_type is retry/failed, the throttle decision is allow, transitions have states."""
    rate = rates("upstream")
    assert rate("streamhouse_s3_errors_total", error_type="retry") == pytest.approx(4 * 2 / 3)
    assert rate("streamhouse_s3_errors_total", error_type="failed") == pytest.approx(4 / 3)
    assert rate("streamhouse_s3_errors_total", error_type="503") == 0
    assert rate("streamhouse_throttle_decisions_total", decision="allow") == pytest.approx(2000)
    assert rate("streamhouse_producer_records_total", topic="orders") == pytest.approx(10_000)
    world = make_world("upstream")
    world.agents[0].breaker_transitions_1h = 36
    series = scrape(MetricsExporter(world))
    transitions = "streamhouse_circuit_breaker_transitions_total"
    assert len(pick(series, transitions, from_state="closed", to_state="open")) == 2


def declared(profile: Profile) -> set[str]:
    """The family names a fresh world of ``profile`` declares with # TYPE lines."""
    text = MetricsExporter(make_world(profile)).render()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_upstream_renames_and_drops_families() -> None:
    """Upstream has its own names; schema cache hits/misses exist only in the runbooks."""
    upstream, runbook = declared("upstream"), declared("runbook")
    assert {
        "streamhouse_producer_records_total",
        "streamhouse_segment_buffer_records",
        "streamhouse_schema_cache_entries",
        "streamhouse_schema_registrations_total",
    } <= upstream
    assert "streamhouse_schema_cache_hits_total" not in upstream
    assert "streamhouse_producer_messages_sent_total" not in upstream
    assert {"schema_cache_hits_total", "producer_messages_sent_total"} <= runbook
    assert "schema_registrations_total" not in runbook


def test_segment_buffer_is_counted_in_records_upstream() -> None:
    """The runbook's buffer bytes become records (1 KiB each) upstream."""
    runbook = scrape(MetricsExporter(make_world("runbook")))
    upstream = scrape(MetricsExporter(make_world("upstream")))
    assert sum(pick(runbook, "segment_buffer_size_bytes")) == pytest.approx(
        1024 * sum(pick(upstream, "streamhouse_segment_buffer_records"))
    )


def test_third_party_families_read_the_same_in_both_profiles() -> None:
    """cAdvisor, node-exporter and kube-state-metrics names and labels do not change."""
    world = make_world("upstream")
    world.nodes[1].clock_offset_seconds = 3.5
    world.agents[1].memory_bytes = 3 * GIB
    world.agents[1].last_terminated_reason = "OOMKilled"
    series = scrape(MetricsExporter(world))
    pod = world.agents[1].pod
    assert pick(series, "node_timex_offset_seconds", instance="node-b") == [3.5]
    assert pick(series, "container_memory_usage_bytes", pod=pod, container="agent") == [3 * GIB]
    assert pick(series, "container_spec_memory_limit_bytes", pod=pod) == [4 * GIB]
    reason = pick(series, "kube_pod_container_status_last_terminated_reason", reason="OOMKilled")
    assert reason == [1]
    assert pick(series, "node_filesystem_size_bytes", mountpoint="/data", instance="node-b")


def test_uninstrumented_world_exposes_help_and_type_without_samples() -> None:
    """No-metrics: Streamhouse families keep HELP/TYPE but no samples; cAdvisor still has them."""
    world = make_world("upstream")
    world.prometheus_instrumented = False
    text = MetricsExporter(world).render()
    assert "# TYPE streamhouse_circuit_breaker_state gauge" in text
    assert "# HELP streamhouse_throttle_decisions_total " in text
    assert not [line for line in text.splitlines() if line.startswith("streamhouse_")]
    assert [line for line in text.splitlines() if line.startswith("container_memory_usage_bytes{")]


def test_restarted_process_starts_its_counters_from_zero() -> None:
    """A StatefulSet pod keeps its name across a restart but its counters start again."""
    world, clock = make_world("upstream"), Clock()
    exporter = MetricsExporter(world, clock=clock)
    scrape(exporter)
    clock.now += 10
    before = sum(pick(scrape(exporter), "streamhouse_s3_requests_total", pod=world.agents[0].pod))
    world.rollout_restart(world.agent_workload.name)
    clock.now += 10
    after = sum(pick(scrape(exporter), "streamhouse_s3_requests_total", pod=world.agents[0].pod))
    assert before == pytest.approx(10_000)
    assert after == 0


def test_counters_refuse_to_go_back_in_time() -> None:
    """Integrating to an earlier instant is a programming error."""
    counters = CounterIntegrator()
    families = derive(make_world())
    counters.advance(families, 100.0)
    with pytest.raises(ValueError, match="back in time"):
        counters.advance(families, 99.0)


def test_reset_counters_start_again_from_zero() -> None:
    """After reset the integrator forgets its series and accepts any instant again."""
    counters = CounterIntegrator()
    families = derive(make_world())
    counters.advance(families, 100.0)
    counters.advance(families, 110.0)
    counters.reset()
    (requests,) = [f for f in counters.advance(families, 50.0) if f.name == "s3_requests_total"]
    assert counters.last == 50.0
    assert {sample.value for sample in requests.samples} == {0.0}


async def test_exporter_serves_text_format_over_http() -> None:
    """GET /metrics answers 200 in text format 0.0.4 on a loopback port."""
    with MetricsExporter(make_world()) as exporter:
        async with aiohttp.ClientSession() as session, session.get(exporter.metrics_url) as reply:
            body = await reply.text()
            content_type = reply.headers["Content-Type"]
    assert reply.status == 200
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert "circuit_breaker_state{" in body
    assert exporter.target.startswith("127.0.0.1:")


def test_openmetrics_history_is_valid_and_timestamped() -> None:
    """History renders as OpenMetrics: counter families without _total, timestamps, # EOF."""
    end = datetime(2026, 1, 1, tzinfo=UTC)
    instants = history_instants(end - timedelta(minutes=1), end, timedelta(seconds=30))
    text = history_openmetrics(make_world(), instants)
    assert text.endswith("# EOF\n")
    assert "# TYPE s3_requests counter" in text
    families = {family.name: family for family in parse_openmetrics(text)}
    requests = [s for s in families["s3_requests"].samples if s.name == "s3_requests_total"]
    stamps = {str(s.timestamp) for s in requests}  # the parser's Timestamp prints as seconds
    assert stamps == {f"{end.timestamp() - offset:.9f}" for offset in (60, 30, 0)}
    assert max(s.value for s in requests) == pytest.approx(1000 * 60)


def test_history_is_dense_at_its_end() -> None:
    """History instants are step apart, then a second apart over the dense tail."""
    end = datetime(2026, 1, 1, tzinfo=UTC)
    instants = history_instants(
        end - timedelta(minutes=2), end, timedelta(seconds=30), dense=timedelta(seconds=5)
    )
    gaps = [(b - a).total_seconds() for a, b in pairwise(instants)]
    assert instants[-1] == end
    assert gaps[:3] == [30, 30, 30]
    assert gaps[-5:] == [1, 1, 1, 1, 1]


def test_history_follows_the_timeline() -> None:
    """A timeline shapes each instant of the history and leaves the world in the present."""
    world = make_world()
    seen: list[datetime] = []

    def leak(w: World, at: datetime) -> None:
        seen.append(at)
        w.agents[0].memory_bytes = GIB + int((at - start).total_seconds()) * 1024

    start = datetime(2026, 1, 1, tzinfo=UTC)
    instants = history_instants(start, start + timedelta(minutes=2), timedelta(minutes=1))
    text = history_openmetrics(world, instants, timeline=leak)
    pod = world.agents[0].pod
    memory = [
        s.value
        for family in parse_openmetrics(text)
        for s in family.samples
        if s.name == "container_memory_usage_bytes" and s.labels["pod"] == pod
    ]
    assert memory == [GIB, GIB + 60 * 1024, GIB + 120 * 1024]
    assert seen[-1] > start + timedelta(days=1)  # called once more with the present


def test_every_family_is_typed_once() -> None:
    """Every derived family name is unique and has a gauge or counter type."""
    families: list[Family] = derive(make_world())
    assert len({f.name for f in families}) == len(families)
    assert {f.kind for f in families} == {"gauge", "counter"}
