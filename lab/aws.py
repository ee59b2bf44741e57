"""S3, CloudWatch and STS for the lab: moto's server behind the fault layer of ``lab.aws_faults``.

``AwsLab(world)`` runs moto in-process (``ThreadedMotoServer`` on 127.0.0.1, free port) and
an aiohttp proxy in front of it; clients talk to the proxy (``endpoint_url``, ``env()``), so
``world.s3_fault`` reaches boto3 as the real S3 error. ``seed()`` writes the world into moto:

- the bucket with a few segment objects per partition, laid out per profile (facts §7):
  runbook ``<topic>/partition-<n>/segment-<20-digit offset>.log``, upstream
  ``org-<uuid>/data/<topic>/<n>/<20-digit offset>.seg``. Keys sort in offset order, so the
  newest segment of a partition is its highest key. Each object records its intended upload
  time in ``x-amz-meta-uploaded-at``, and the seeder also back-dates moto's LastModified to
  it (moto has no API for that; in-process we can reach its backend).
- the ``AWS/S3 5xxErrors`` series from ``world.s3_5xx_per_minute`` with dimensions
  ``BucketName`` and ``FilterId=EntireBucket``, as AWS request metrics publish it. moto
  matches dimensions as a subset, so the runbook's ``BucketName``-only query finds it too
  (real CloudWatch needs both).

The newest upload of a partition follows the world's physics: when S3 is failing, uploads
stopped when the first breaker opened (10 min ago if none did); otherwise one flush interval
(5 s) before the partition's last WAL write, or before now when it has no WAL file.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self, overload
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from moto.cloudwatch.models import cloudwatch_backends
from moto.s3.models import s3_backends  # internals: the in-process backend, for LastModified
from moto.server import ThreadedMotoServer

from lab.aws_faults import build_proxy_app
from lab.http import ServerThread
from lab.world import World

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef, MetricDatumTypeDef
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

log = logging.getLogger(__name__)

REGION: Final = "us-east-1"
ACCESS_KEY: Final = "testing"
SECRET_KEY: Final = "testing"
FLUSH_INTERVAL: Final = timedelta(seconds=5)  # FLUSH_INTERVAL_SECS default (facts §7)
OUTAGE_WITHOUT_BREAKER: Final = timedelta(minutes=10)
SEGMENTS_PER_PARTITION: Final = 3
RECORDS_PER_SEGMENT: Final = 1000
UPLOADED_AT_META: Final = "uploaded-at"
_METRIC_BATCH: Final = 500

Service = Literal["s3", "cloudwatch", "sts"]


@dataclass(frozen=True)
class SegmentObject:
    """One seeded segment object: where it lives and when it was (notionally) uploaded."""

    key: str
    topic: str
    partition: int
    base_offset: int
    uploaded_at: datetime


def segment_key(world: World, topic: str, partition: int, base_offset: int) -> str:
    """The S3 key of a segment in the world's profile (keys sort in offset order)."""
    if world.profile == "runbook":
        return f"{topic}/partition-{partition}/segment-{base_offset:020d}.log"
    return f"org-{world.org_id}/data/{topic}/{partition}/{base_offset:020d}.seg"


def partition_prefix(world: World, topic: str, partition: int) -> str:
    """The S3 prefix under which a partition's segments live, in the world's profile."""
    if world.profile == "runbook":
        return f"{topic}/partition-{partition}/"
    return f"org-{world.org_id}/data/{topic}/{partition}/"


def newest_upload_at(world: World, topic: str, partition: int) -> datetime:
    """When the partition's newest segment reached S3 (see the module docstring)."""
    now = world.now()
    if world.s3_fault is not None:
        opened = [a.breaker_opened_at for a in world.agents if a.breaker_opened_at is not None]
        return min(opened) if opened else now - OUTAGE_WITHOUT_BREAKER
    writes = [
        wal.modified_at
        for agent in world.agents
        for wal in agent.wal_files
        if (wal.topic, wal.partition) == (topic, partition)
    ]
    last_write = min(now, max(writes)) if writes else now
    return last_write - FLUSH_INTERVAL


def plan_segments(
    world: World, last_uploads: Mapping[tuple[str, int], datetime] | None = None
) -> list[SegmentObject]:
    """The segment objects ``seed`` writes; ``last_uploads`` overrides the newest per partition.

    Call with ``world.lock`` held.
    """
    objects: list[SegmentObject] = []
    for topic, partitions in world.topics.items():
        for partition in range(partitions):
            newest = (last_uploads or {}).get((topic, partition))
            newest = newest or newest_upload_at(world, topic, partition)
            for index in range(SEGMENTS_PER_PARTITION):
                offset = index * RECORDS_PER_SEGMENT
                age = FLUSH_INTERVAL * (SEGMENTS_PER_PARTITION - 1 - index)
                key = segment_key(world, topic, partition, offset)
                objects.append(SegmentObject(key, topic, partition, offset, newest - age))
    return objects


def metric_data(bucket: str, series: Iterable[tuple[datetime, float]]) -> list[MetricDatumTypeDef]:
    """``AWS/S3 5xxErrors`` datapoints for ``bucket`` with the request-metrics ``FilterId``."""
    dimensions: list[DimensionTypeDef] = [
        {"Name": "BucketName", "Value": bucket},
        {"Name": "FilterId", "Value": "EntireBucket"},
    ]
    return [
        {
            "MetricName": "5xxErrors",
            "Dimensions": dimensions,
            "Timestamp": at.astimezone(UTC),
            "Value": value,
            "Unit": "Count",
        }
        for at, value in series
    ]


def client_config(read_timeout: float = 5.0, connect_timeout: float = 2.0) -> Config:
    """A botocore config that surfaces the first error (no retries) and uses path-style S3."""
    return Config(
        region_name=REGION,
        retries={"total_max_attempts": 1},
        read_timeout=read_timeout,
        connect_timeout=connect_timeout,
        s3={"addressing_style": "path"},
    )


class AwsLab:
    """moto (S3, CloudWatch, STS) behind a proxy that injects ``world.s3_fault``."""

    def __init__(self, world: World, *, slow_delay_s: float = 3.0) -> None:
        self.world = world
        self.slow_delay_s = slow_delay_s
        self._moto: ThreadedMotoServer | None = None
        self._moto_url = ""
        self._proxy: ServerThread | None = None
        self._boto3_session: boto3.session.Session | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start moto and the fault proxy; returns once both accept connections."""
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        host, port = moto.get_host_and_port()
        self._moto, self._moto_url = moto, f"http://{host}:{port}"
        upstream = self._moto_url
        self._proxy = ServerThread(
            lambda _base: build_proxy_app(self.world, upstream, self.slow_delay_s),
            name="the S3 fault layer",
        )
        self._proxy.start()

    def stop(self) -> None:
        """Stop the proxy and moto (idempotent)."""
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None
        if self._moto is not None:
            self._moto.stop()
            server = getattr(self._moto, "_server", None)  # stop() leaves the socket open
            if server is not None:
                server.server_close()
            self._moto = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        """The proxy's URL: what every client of the lab's AWS should use."""
        if self._proxy is None:
            raise RuntimeError("AwsLab is not running")
        return self._proxy.base_url

    @property
    def moto_url(self) -> str:
        """moto's own URL, bypassing the fault layer (seeding, inspection)."""
        if self._moto is None:
            raise RuntimeError("AwsLab is not running")
        return self._moto_url

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 (and the bot) at the lab."""
        with self.world.lock:
            bucket = self.world.bucket
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "S3_BUCKET": bucket,
        }

    # -- clients --------------------------------------------------------------------------
    @overload
    def boto3_client(
        self, service: Literal["s3"], *, read_timeout: float = ..., direct: bool = ...
    ) -> S3Client: ...
    @overload
    def boto3_client(
        self, service: Literal["cloudwatch"], *, read_timeout: float = ..., direct: bool = ...
    ) -> CloudWatchClient: ...
    @overload
    def boto3_client(
        self, service: Literal["sts"], *, read_timeout: float = ..., direct: bool = ...
    ) -> STSClient: ...
    def boto3_client(
        self, service: Service, *, read_timeout: float = 5.0, direct: bool = False
    ) -> Any:
        """A boto3 client for the lab that does not retry; ``direct`` skips the fault layer."""
        session = self._session()
        url = self.moto_url if direct else self.endpoint_url
        return session.client(service, endpoint_url=url, config=client_config(read_timeout))

    def _session(self) -> boto3.session.Session:
        # One session: it caches the loaded service models, so clients come cheap.
        if self._boto3_session is None:
            self._boto3_session = boto3.session.Session(
                aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
            )
        return self._boto3_session

    # -- state ----------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget this lab's bucket contents and CloudWatch points, leaving other labs' alone.

        moto keeps one in-process backend; ``reset()`` would wipe every lab in the process.
        """
        with self.world.lock:
            bucket = self.world.bucket
        s3 = self.boto3_client("s3", direct=True)
        try:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for page in pages:
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", []) if "Key" in obj]
                if keys:
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})  # type: ignore[typeddict-item]
        except s3.exceptions.NoSuchBucket:
            pass
        _forget_metrics(bucket)

    def reset(self) -> None:
        """Wipe moto's state (``POST /moto-api/reset``) — every lab in this process."""
        target = urlsplit(self.moto_url)
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port)
        try:
            connection.request("POST", "/moto-api/reset")
            status = connection.getresponse().status
        finally:
            connection.close()
        if status != 200:
            raise RuntimeError(f"moto reset answered {status}")

    def seed(self, last_uploads: Mapping[tuple[str, int], datetime] | None = None) -> None:
        """Write the world's bucket, segments and 5xx series into moto (bypassing faults)."""
        with self.world.lock:
            bucket = self.world.bucket
            objects = plan_segments(self.world, last_uploads)
            series = list(self.world.s3_5xx_per_minute)
        s3 = self.boto3_client("s3", direct=True)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", []) if "Name" in b}
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
        for obj in objects:
            s3.put_object(
                Bucket=bucket,
                Key=obj.key,
                Body=_segment_bytes(obj),
                Metadata={UPLOADED_AT_META: obj.uploaded_at.astimezone(UTC).isoformat()},
            )
        _backdate(bucket, {obj.key: obj.uploaded_at for obj in objects})
        cloudwatch = self.boto3_client("cloudwatch", direct=True)
        for batch in _batches(metric_data(bucket, series), _METRIC_BATCH):
            cloudwatch.put_metric_data(Namespace="AWS/S3", MetricData=batch)


def _segment_bytes(obj: SegmentObject) -> bytes:
    """A small stand-in for a segment file: a header naming what it holds."""
    return f"STRMSEG1 {obj.topic} {obj.partition} {obj.base_offset}\n".encode().ljust(512, b"\0")


def _batches(items: list[MetricDatumTypeDef], size: int) -> Iterator[list[MetricDatumTypeDef]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _forget_metrics(bucket: str) -> None:
    """Drop moto's CloudWatch points whose ``BucketName`` is ``bucket`` (no AWS API does)."""
    try:
        for regions in cloudwatch_backends.values():
            for backend in regions.values():
                backend.metric_data = [
                    datum
                    for datum in backend.metric_data
                    if not any(
                        d.name == "BucketName" and d.value == bucket for d in datum.dimensions
                    )
                ]
    except AttributeError as exc:  # a moto upgrade moved things
        log.warning("cannot clear moto's CloudWatch data (%r)", exc)


def _backdate(bucket: str, uploaded: Mapping[str, datetime]) -> None:
    """Set moto's LastModified of the seeded keys (moto keeps naive UTC datetimes)."""
    try:
        partition, account = s3_backends.bucket_accounts[bucket]
        keys = s3_backends[account][partition].get_bucket(bucket).keys
        for name, at in uploaded.items():
            keys[name].last_modified = at.astimezone(UTC).replace(tzinfo=None)
    except (KeyError, AttributeError) as exc:  # a moto upgrade moved things
        log.warning("cannot back-date LastModified in moto (%r); metadata only", exc)
