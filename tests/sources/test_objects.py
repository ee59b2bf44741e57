"""ObjectStoreSource against the lab's S3/CloudWatch/STS (moto behind the fault layer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.sources import ObjectStoreSource, SourceForbidden, SourceUnreachable
from bot.sources.objects import newest_of
from bot.store import EmbeddedPostgres
from lab.aws import partition_prefix, segment_key
from lab.stack import Lab
from tests.sources import PROFILES, closed_port_url, running_lab, scenario, settings_for

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=PROFILES)
def lab(request: pytest.FixtureRequest, pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """A lab of each profile (no Prometheus needed here)."""
    yield from running_lab(request.param, pg_server)


@pytest.fixture
async def objects(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ObjectStoreSource]:
    """A source for the lab's bucket; boto3 finds the endpoint in AWS_ENDPOINT_URL."""
    settings = settings_for(monkeypatch, lab.env())
    source = ObjectStoreSource(settings.s3_bucket or "")
    yield source
    await source.close()


def test_newest_of_prefers_latest_then_highest_key() -> None:
    """LastModified decides; on a tie the highest key (offset order) wins."""
    later = T0 + timedelta(seconds=5)
    contents = [
        {"Key": "t/0/00000000000000000000.seg", "LastModified": T0},
        {"Key": "t/0/00000000000000002000.seg", "LastModified": later},
        {"Key": "t/0/00000000000000001000.seg", "LastModified": later},
    ]
    newest = newest_of(contents)  # type: ignore[arg-type]
    assert newest is not None
    assert (newest.key, newest.last_modified) == ("t/0/00000000000000002000.seg", later)
    assert newest_of([]) is None


async def test_probe_healthy(lab: Lab, objects: ObjectStoreSource) -> None:
    """Every call succeeds on a healthy bucket."""
    probe = await objects.probe()
    assert (probe.bucket, probe.healthy, dict(probe.errors)) == (lab.world.bucket, True, {})
    assert probe.latency_ms is not None


@pytest.mark.parametrize(
    ("fault", "head", "listing"),
    [("SlowDown", "503", "SlowDown"), ("AccessDenied", "403", "AccessDenied")],
)
async def test_probe_records_aws_error_codes(
    lab: Lab, objects: ObjectStoreSource, fault: str, head: str, listing: str
) -> None:
    """S3 faults are recorded per call (HEAD only has the status); STS still answers."""
    lab.world.set_s3_fault(fault)  # type: ignore[arg-type]
    try:
        probe = await objects.probe()
    finally:
        lab.world.set_s3_fault(None)
    assert (probe.head_ok, probe.list_ok, probe.identity_ok) == (False, False, True)
    assert dict(probe.errors) == {"head_bucket": head, "list_objects_v2": listing}


async def test_probe_unreachable_when_no_endpoint_answers(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing at AWS_ENDPOINT_URL, the probe raises SourceUnreachable."""
    settings_for(monkeypatch, lab.env(), AWS_ENDPOINT_URL=closed_port_url())
    source = ObjectStoreSource(lab.world.bucket)
    try:
        with pytest.raises(SourceUnreachable):
            await source.probe()
    finally:
        await source.close()


async def test_newest_object_of_a_partition(lab: Lab, objects: ObjectStoreSource) -> None:
    """The partition's newest segment is its highest offset, uploaded moments ago."""
    newest = await objects.newest_object(partition_prefix(lab.world, "orders", 2))
    assert newest is not None
    assert newest.key == segment_key(lab.world, "orders", 2, 2000)
    age = datetime.now(UTC) - newest.last_modified
    assert timedelta(0) < age < timedelta(minutes=5)
    assert await objects.newest_object("no-such-prefix/") is None


async def test_listing_refused_is_forbidden(lab: Lab, objects: ObjectStoreSource) -> None:
    """AccessDenied while listing a prefix becomes SourceForbidden with the AWS code."""
    lab.world.set_s3_fault("AccessDenied")
    try:
        with pytest.raises(SourceForbidden, match="AccessDenied"):
            await objects.newest_object(partition_prefix(lab.world, "orders", 0))
    finally:
        lab.world.set_s3_fault(None)


async def test_cloudwatch_5xx_series_oldest_first(lab: Lab, objects: ObjectStoreSource) -> None:
    """The bucket's 5xxErrors sums per minute, rising at the end while S3 throttles."""
    with scenario(lab, "circuit-breaker-open", "throttling-10m"):
        series = await objects.s3_5xx_per_minute(60)
    times = [at for at, _ in series]
    assert len(series) >= 55
    assert times == sorted(times)
    assert all(at.tzinfo == UTC for at in times)
    assert series[0][1] == 0.0
    assert series[-1][1] > 100
