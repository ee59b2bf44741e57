"""The lab's AWS: moto behind the fault layer, seeded from the World, driven through boto3."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from lab.aws import (
    AwsLab,
    client_config,
    newest_upload_at,
    partition_prefix,
    plan_segments,
)
from lab.aws_faults import service_of
from lab.world import Profile, S3Fault, WalFile, World

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SERIES = [(NOW - timedelta(minutes=5 - i), float(i * 3)) for i in range(5)]


def _world(profile: Profile) -> World:
    world = World(profile, now=lambda: NOW)
    world.topics = {"orders": 2, "payments": 1}
    world.s3_5xx_per_minute = list(SERIES)
    world.add_agents(2)
    return world


@pytest.fixture(scope="module")
def world() -> World:
    """A runbook-profile world with a 5xx series, shared by the module's lab."""
    return _world("runbook")


@pytest.fixture(scope="module")
def lab(world: World) -> Iterator[AwsLab]:
    """One moto + fault proxy for the whole module, seeded once."""
    aws = AwsLab(world, slow_delay_s=1.0)
    aws.start()
    aws.reset()
    aws.seed()
    yield aws
    aws.stop()


@pytest.fixture(autouse=True)
def healthy_s3_after(world: World) -> Iterator[None]:
    """Every test leaves S3 healthy for the next one."""
    yield
    world.set_s3_fault(None)


def test_runbook_layout_lists_segments_per_partition(lab: AwsLab, world: World) -> None:
    """head_bucket succeeds and each partition prefix holds the seeded .log segments in order."""
    s3 = lab.boto3_client("s3")
    s3.head_bucket(Bucket=world.bucket)
    listing = s3.list_objects_v2(Bucket=world.bucket, Prefix="orders/partition-1/")
    keys = [obj["Key"] for obj in listing["Contents"]]
    assert keys == [
        "orders/partition-1/segment-00000000000000000000.log",
        "orders/partition-1/segment-00000000000000001000.log",
        "orders/partition-1/segment-00000000000000002000.log",
    ]
    everything = s3.list_objects_v2(Bucket=world.bucket)["KeyCount"]
    assert everything == 3 * (2 + 1)


def test_newest_segment_is_highest_key_with_intended_upload_time(lab: AwsLab, world: World) -> None:
    """The last key of a partition is the newest; LastModified and metadata carry its time."""
    s3 = lab.boto3_client("s3")
    contents = s3.list_objects_v2(Bucket=world.bucket, Prefix="payments/partition-0/")["Contents"]
    newest = max(contents, key=lambda obj: obj["LastModified"])
    assert newest["Key"] == contents[-1]["Key"]
    expected = newest_upload_at(world, "payments", 0)
    assert expected == NOW - timedelta(seconds=5)
    assert newest["LastModified"] == expected.replace(microsecond=0)
    head = s3.head_object(Bucket=world.bucket, Key=newest["Key"])
    assert datetime.fromisoformat(head["Metadata"]["uploaded-at"]) == expected


def test_upstream_layout_uses_org_prefix_and_offset_keys() -> None:
    """The upstream profile lays segments out as org-<uuid>/data/<topic>/<n>/<offset>.seg."""
    world = _world("upstream")
    with AwsLab(world) as aws:
        aws.seed()
        s3 = aws.boto3_client("s3")
        prefix = partition_prefix(world, "orders", 0)
        keys = [
            o["Key"] for o in s3.list_objects_v2(Bucket="streamhouse", Prefix=prefix)["Contents"]
        ]
    assert prefix == f"org-{world.org_id}/data/orders/0/"
    assert keys[-1] == f"{prefix}00000000000000002000.seg"
    assert len(keys) == 3


def test_uploads_stop_when_the_breaker_opened() -> None:
    """While S3 fails, a partition's newest segment dates from the first breaker opening."""
    world = _world("runbook")
    opened = NOW - timedelta(minutes=7)
    world.agents[0].breaker_opened_at = opened
    world.s3_fault = "SlowDown"
    newest = {(o.topic, o.partition): o.uploaded_at for o in plan_segments(world)}
    assert newest[("orders", 0)] == opened


def test_newest_upload_follows_a_stale_wal_and_overrides() -> None:
    """A partition whose WAL stopped being written last uploaded one flush before that write."""
    world = _world("runbook")
    last_write = NOW - timedelta(minutes=3)
    world.agents[1].wal_files.append(WalFile("orders", 1, 4096, last_write))
    pinned = NOW - timedelta(hours=1)
    plan = plan_segments(world, {("payments", 0): pinned})
    newest = {(o.topic, o.partition): o.uploaded_at for o in plan if o.base_offset == 2000}
    assert newest[("orders", 1)] == last_write - timedelta(seconds=5)
    assert newest[("payments", 0)] == pinned


def test_cloudwatch_returns_the_scenarios_5xx_series(lab: AwsLab, world: World) -> None:
    """get_metric_statistics returns the seeded 5xxErrors series, queried either way."""
    cloudwatch = lab.boto3_client("cloudwatch")
    by_bucket: DimensionTypeDef = {"Name": "BucketName", "Value": world.bucket}
    whole_bucket: DimensionTypeDef = {"Name": "FilterId", "Value": "EntireBucket"}
    for dimensions in ([by_bucket], [by_bucket, whole_bucket]):  # moto matches a subset
        stats = cloudwatch.get_metric_statistics(
            Namespace="AWS/S3",
            MetricName="5xxErrors",
            Dimensions=dimensions,
            StartTime=NOW - timedelta(hours=1),
            EndTime=NOW,
            Period=60,
            Statistics=["Sum"],
        )
        points = sorted((p["Timestamp"], p["Sum"]) for p in stats["Datapoints"])
        assert points == [(at, value) for at, value in SERIES]


def test_sts_get_caller_identity_works(lab: AwsLab) -> None:
    """STS answers get_caller_identity with moto's account."""
    identity = lab.boto3_client("sts").get_caller_identity()
    assert identity["Account"] == "123456789012"


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("SlowDown", "SlowDown", 503),
        ("AccessDenied", "AccessDenied", 403),
        ("InvalidAccessKeyId", "InvalidAccessKeyId", 403),
        ("NoSuchBucket", "NoSuchBucket", 404),
    ],
)
def test_s3_fault_reaches_boto3_as_the_real_error_and_clears(
    lab: AwsLab, world: World, fault: S3Fault, code: str, status: int
) -> None:
    """Each S3 error fault surfaces as its real ClientError code; clearing it restores service."""
    s3 = lab.boto3_client("s3")
    world.set_s3_fault(fault)
    with pytest.raises(ClientError) as caught:
        s3.list_objects_v2(Bucket=world.bucket)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    world.set_s3_fault(None)
    assert s3.list_objects_v2(Bucket=world.bucket)["KeyCount"] > 0


def test_head_bucket_fault_has_no_body_so_the_code_is_the_status(lab: AwsLab, world: World) -> None:
    """As on AWS, a HEAD error carries no body: botocore reports "403" for head_bucket."""
    world.set_s3_fault("AccessDenied")
    with pytest.raises(ClientError) as caught:
        lab.boto3_client("s3").head_bucket(Bucket=world.bucket)
    assert caught.value.response["Error"]["Code"] == "403"


def test_connection_refused_drops_the_connection(lab: AwsLab, world: World) -> None:
    """ConnectionRefused closes the connection unanswered: botocore raises ConnectionClosedError."""
    s3 = lab.boto3_client("s3")
    world.set_s3_fault("ConnectionRefused")
    with pytest.raises(ConnectionClosedError):
        s3.head_bucket(Bucket=world.bucket)
    world.set_s3_fault(None)
    s3.head_bucket(Bucket=world.bucket)


def test_slow_s3_times_out_a_short_read_timeout(lab: AwsLab, world: World) -> None:
    """Slow delays S3 answers past a 0.2 s read timeout; clearing it answers at once."""
    s3 = lab.boto3_client("s3", read_timeout=0.2)
    world.set_s3_fault("Slow")
    with pytest.raises(ReadTimeoutError):
        s3.list_objects_v2(Bucket=world.bucket)
    world.set_s3_fault(None)
    assert s3.list_objects_v2(Bucket=world.bucket)["KeyCount"] > 0


def test_invalid_access_key_also_fails_sts(lab: AwsLab, world: World) -> None:
    """With InvalidAccessKeyId, STS answers InvalidClientTokenId as AWS does for an unknown key."""
    world.set_s3_fault("InvalidAccessKeyId")
    with pytest.raises(ClientError) as caught:
        lab.boto3_client("sts").get_caller_identity()
    assert caught.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_cloudwatch_and_sts_pass_through_an_s3_outage(lab: AwsLab, world: World) -> None:
    """SlowDown hits S3 only: CloudWatch and STS keep answering."""
    world.set_s3_fault("SlowDown")
    lab.boto3_client("sts").get_caller_identity()
    metrics = lab.boto3_client("cloudwatch").list_metrics(Namespace="AWS/S3")["Metrics"]
    assert "5xxErrors" in {m.get("MetricName") for m in metrics}


def test_env_points_plain_boto3_at_the_lab(
    lab: AwsLab, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A boto3 client built from env() alone reaches the proxy, faults included."""
    env = lab.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", config=client_config())
    assert s3.list_objects_v2(Bucket=env["S3_BUCKET"])["KeyCount"] > 0
    world.set_s3_fault("NoSuchBucket")
    with pytest.raises(ClientError, match="NoSuchBucket"):
        s3.list_objects_v2(Bucket=env["S3_BUCKET"])


@pytest.mark.parametrize(
    ("authorization", "service"),
    [
        ("AWS4-HMAC-SHA256 Credential=testing/20260301/us-east-1/s3/aws4_request, Sig", "s3"),
        ("AWS4-HMAC-SHA256 Credential=k/20260301/us-east-1/monitoring/aws4_request", "monitoring"),
        ("AWS4-HMAC-SHA256 Credential=k/20260301/us-east-1/sts/aws4_request", "sts"),
        ("", "s3"),
    ],
)
def test_service_is_read_from_the_credential_scope(authorization: str, service: str) -> None:
    """The proxy tells S3 from CloudWatch/STS by the SigV4 scope (unsigned means S3)."""
    headers = {"Authorization": authorization} if authorization else {}
    assert service_of(headers, {}, "/streamhouse-data") == service


def test_reset_wipes_moto_and_seed_restores(lab: AwsLab, world: World) -> None:
    """reset() empties moto; seed() writes the world back."""
    s3 = lab.boto3_client("s3")
    lab.reset()
    assert s3.list_buckets()["Buckets"] == []
    lab.seed()
    assert s3.list_objects_v2(Bucket=world.bucket)["KeyCount"] == 9
