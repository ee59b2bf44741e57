"""``cached``: identical calls within one diagnosis reach the real system once; the factory.

The real Kubernetes source against the lab's fake, whose request log shows what actually
reached the API server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import pytest

from bot.sources import (
    SourceForbidden,
    SourceNotConfigured,
    SourceSet,
    cached,
)
from bot.store import EmbeddedPostgres
from lab.stack import Lab
from tests.sources import running_lab, sources_for

T = TypeVar("T")


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One runbook-profile lab (the cache does not depend on the profile)."""
    yield from running_lab("runbook", pg_server)


@pytest.fixture
async def source_set(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SourceSet]:
    """The bot's real sources for the lab, with the fake's request log emptied."""
    sources = sources_for(monkeypatch, lab.env())
    lab.kubernetes.clear_requests()
    yield sources
    await sources.close()


def present(source: T | None) -> T:
    """``source``, which the bundle must have (the factory fills every member)."""
    assert source is not None
    return source


def requests_to(lab: Lab, suffix: str) -> int:
    """How many requests whose path ends in ``suffix`` reached the Kubernetes fake."""
    return sum(1 for request in lab.kubernetes.requests if request.path.endswith(suffix))


async def test_concurrent_identical_calls_run_once(lab: Lab, source_set: SourceSet) -> None:
    """Two checks asking for the agent pods at once cause one API request and one count."""
    bundle = cached(source_set.sources)
    assert bundle.kubernetes is not None
    first, second = await asyncio.gather(
        bundle.kubernetes.agent_pods(), bundle.kubernetes.agent_pods()
    )
    assert first == second
    assert len(first) == 3
    assert bundle.calls["kubernetes"] == 1
    assert requests_to(lab, "/pods") == 1


async def test_later_identical_call_is_served_from_the_bundle(
    lab: Lab, source_set: SourceSet
) -> None:
    """Once answered, the same call costs nothing more within the bundle."""
    bundle = cached(source_set.sources)
    assert bundle.kubernetes is not None
    await bundle.kubernetes.nodes()
    await bundle.kubernetes.nodes()
    assert (bundle.calls["kubernetes"], requests_to(lab, "/nodes")) == (1, 1)


async def test_arguments_are_compared_as_bound(lab: Lab, source_set: SourceSet) -> None:
    """Defaults and keywords spelled differently are one call; other values are another."""
    bundle = cached(source_set.sources)
    assert bundle.kubernetes is not None
    pod = lab.world.agents[0].pod
    same = await asyncio.gather(
        bundle.kubernetes.logs(pod),
        bundle.kubernetes.logs(pod, tail=200),
        bundle.kubernetes.logs(pod=pod, tail=200, since_seconds=None),
    )
    await bundle.kubernetes.logs(pod, tail=5)
    assert same[0] == same[1] == same[2]
    assert bundle.calls["kubernetes"] == 2
    assert requests_to(lab, "/log") == 2


async def test_errors_are_shared_too(lab: Lab, source_set: SourceSet) -> None:
    """A refused exec is asked once; every identical caller gets the same SourceForbidden."""
    bundle = cached(source_set.sources)
    assert bundle.kubernetes is not None
    pod = lab.world.agents[0].pod
    outcomes = await asyncio.gather(
        bundle.kubernetes.exec(pod, ["ls", "/data/wal"]),
        bundle.kubernetes.exec(pod, ("ls", "/data/wal")),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, SourceForbidden) for outcome in outcomes)
    assert outcomes[0] is outcomes[1]
    assert (bundle.calls["kubernetes"], requests_to(lab, "/exec")) == (1, 1)


async def test_cancelled_caller_leaves_the_shared_call_running(source_set: SourceSet) -> None:
    """A check that times out does not take the answer away from the other checks."""
    bundle = cached(source_set.sources)
    assert bundle.kubernetes is not None
    impatient = asyncio.ensure_future(bundle.kubernetes.pvcs())
    await asyncio.sleep(0)  # the shared call has started
    impatient.cancel()
    claims = await bundle.kubernetes.pvcs()
    assert impatient.cancelled()
    assert [claim.name for claim in claims] == ["streamhouse-wal"]
    assert bundle.calls["kubernetes"] == 1


async def test_each_bundle_asks_afresh(lab: Lab, source_set: SourceSet) -> None:
    """A new diagnosis (a new bundle) sees fresh data: nothing is shared across bundles."""
    for _ in range(2):
        bundle = cached(source_set.sources)
        assert bundle.kubernetes is not None
        await bundle.kubernetes.events()
    assert requests_to(lab, "/events") == 2


async def test_unconfigured_systems_name_their_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing set, every source is a null object whose calls say what to set."""
    source_set = sources_for(monkeypatch, {})
    bundle = cached(source_set.sources)
    with pytest.raises(SourceNotConfigured, match="PROMETHEUS_URL"):
        await present(bundle.prometheus).instant("up")
    with pytest.raises(SourceNotConfigured, match="KUBERNETES_API_URL"):
        await present(bundle.kubernetes).agent_pods()
    with pytest.raises(SourceNotConfigured, match="STREAMHOUSE_DATABASE_URL"):
        await present(bundle.metadata).leases()
    with pytest.raises(SourceNotConfigured, match="S3_BUCKET"):
        await present(bundle.objects).probe()
    with pytest.raises(SourceNotConfigured, match="SCHEMA_REGISTRY_URL"):
        await present(bundle.registry).subjects()
    expected = ("prometheus", "kubernetes", "metadata", "objects", "registry")
    assert dict(bundle.calls) == dict.fromkeys(expected, 1)
    await source_set.close()
