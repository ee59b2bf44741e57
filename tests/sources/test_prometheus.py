"""PrometheusSource against the lab's real Prometheus, in both spellings, and when it is away.

Both labs start once for the module, concurrently (about 7 s each, mostly Prometheus).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest

from bot.profiles import profile_named
from bot.sources import SourceQueryError, SourceUnreachable
from bot.sources.prometheus import PrometheusSource
from bot.store import EmbeddedPostgres
from lab.stack import Lab
from tests.lab.test_prometheus import require
from tests.sources import PROFILES, closed_port_url


@pytest.fixture(scope="module")
def labs(pg_server: EmbeddedPostgres) -> Iterator[dict[str, Lab]]:
    """A lab with Prometheus for each profile; their Prometheus start-ups overlap.

    The next lab starts once the previous one has its metadata database: starting two at
    the very same moment races on the shared roles (ALTER ROLE: "tuple concurrently updated").
    """
    require("prometheus")
    labs = {profile: Lab(profile, admin_url=pg_server.url()) for profile in PROFILES}
    with ExitStack() as stack, ThreadPoolExecutor(len(labs)) as pool:
        starts = []
        for lab in labs.values():
            stack.callback(lab.stop)
            starts.append(pool.submit(lab.start, "healthy"))
            while lab.metadata is None and not starts[-1].done():
                time.sleep(0.05)
        for start in starts:
            start.result()
        yield labs


@pytest.fixture(params=PROFILES)
async def prometheus(
    request: pytest.FixtureRequest, labs: dict[str, Lab]
) -> AsyncIterator[tuple[str, PrometheusSource]]:
    """The profile's name and a source pointed at that lab's Prometheus."""
    lab = labs[request.param]
    assert lab.prometheus is not None
    source = PrometheusSource(lab.prometheus.prometheus_url)
    yield request.param, source
    await source.close()


async def test_instant_returns_a_sample_per_agent(prometheus: tuple[str, PrometheusSource]) -> None:
    """The breaker state, spelled as the profile spells it, has one closed sample per agent."""
    profile, source = prometheus
    name = profile_named(profile).metric("circuit_breaker_state")
    samples = await source.instant(f"max by (pod) ({name})")
    assert len(samples) == 3
    assert {sample.value for sample in samples} == {0.0}
    assert all(sample.labels["pod"].startswith("streamhouse-agent") for sample in samples)


async def test_other_spelling_is_empty_not_an_error(
    prometheus: tuple[str, PrometheusSource],
) -> None:
    """The other profile's family name matches no series: an empty list, no exception."""
    profile, source = prometheus
    other = "upstream" if profile == "runbook" else "runbook"
    assert await source.instant(profile_named(other).metric("circuit_breaker_state") or "") == []


async def test_bad_promql_is_a_query_error_with_prometheus_message(
    prometheus: tuple[str, PrometheusSource],
) -> None:
    """A syntax error comes back as SourceQueryError carrying Prometheus' own words."""
    _, source = prometheus
    with pytest.raises(SourceQueryError) as raised:
        await source.instant("sum(rate(s3_requests_total[5m])")
    assert raised.value.source == "prometheus"
    assert "bad_data" in raised.value.detail
    assert "parse error" in raised.value.detail


async def test_scalar_result_is_one_unlabelled_sample(
    prometheus: tuple[str, PrometheusSource],
) -> None:
    """A scalar expression answers one sample with no labels."""
    _, source = prometheus
    [sample] = await source.instant("scalar(vector(2)) * 21")
    assert (dict(sample.labels), sample.value) == ({}, 42.0)


async def test_range_returns_ascending_points_per_series(
    prometheus: tuple[str, PrometheusSource],
) -> None:
    """A range query over the backfilled hour gives each agent's points in time order."""
    profile, source = prometheus
    name = profile_named(profile).metric("s3_requests_total")
    end = datetime.now(UTC)
    series = await source.range(
        f"sum by (pod) (rate({name}[5m]))",
        start=end - timedelta(minutes=30),
        end=end,
        step=timedelta(minutes=1),
    )
    assert len(series) == 3
    for one in series:
        times = [at for at, _ in one.points]
        assert len(times) >= 20
        assert times == sorted(times)
        assert all(value >= 0 for _, value in one.points)


async def test_closed_port_is_unreachable_naming_the_url() -> None:
    """Nothing listening: SourceUnreachable that names the URL."""
    url = closed_port_url()
    source = PrometheusSource(url)
    try:
        with pytest.raises(SourceUnreachable) as raised:
            await source.instant("up")
    finally:
        await source.close()
    assert url in raised.value.detail


async def test_silent_server_times_out_as_unreachable() -> None:
    """A server that accepts but never answers: unreachable, 'timed out after N s'."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        source = PrometheusSource(url, timeout=0.3)
        try:
            with pytest.raises(SourceUnreachable) as raised:
                await source.instant("up")
        finally:
            await source.close()
    assert raised.value.detail == f"{url} timed out after 0.3 s"


async def test_concurrent_queries_share_one_session(
    prometheus: tuple[str, PrometheusSource],
) -> None:
    """Many queries at once over the source's one session all succeed."""
    _, source = prometheus
    answers = await asyncio.gather(*(source.instant(f"vector({n})") for n in range(10)))
    assert [answer[0].value for answer in answers] == [float(n) for n in range(10)]
