"""S3, CloudWatch and STS for the Streamhouse bucket, through boto3 in threads.

Endpoint, region and credentials come from boto3's own environment variables
(``AWS_ENDPOINT_URL``, ``AWS_REGION``, keys, profiles). Short timeouts and two attempts at
most, so a failing S3 costs seconds, not minutes. How failures map:

- ``probe()`` records each call's AWS error code (``ClientError`` code; HEAD errors carry
  only the HTTP status, "403"/"404"/"503") and raises ``SourceUnreachable`` only when no
  call reached an endpoint at all.
- Elsewhere: AccessDenied-like codes → ``SourceForbidden``, other AWS errors →
  ``SourceQueryError``, connection errors and timeouts → ``SourceUnreachable``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from bot.sources.base import (
    S3Object,
    S3Probe,
    SourceError,
    SourceForbidden,
    SourceQueryError,
    SourceUnreachable,
)
from bot.sources.threads import in_thread

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectTypeDef
    from mypy_boto3_sts import STSClient

NAME = "s3"
T = TypeVar("T")
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 2})
# Errors that mean the endpoint was never reached (or never answered): refused, DNS,
# connect and read timeouts, a dropped connection.
UNREACHABLE = (BotoConnectionError, HTTPClientError)
FORBIDDEN_CODES = frozenset(
    {
        "403",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    }
)


class ObjectStoreSource:
    """The ``ObjectStore`` protocol for one bucket; ``close()`` when done."""

    def __init__(self, bucket: str, *, session: boto3.session.Session | None = None) -> None:
        self.bucket = bucket
        self._session = session or boto3.session.Session()
        self._clients: tuple[S3Client, CloudWatchClient, STSClient] | None = None
        self._clients_lock = asyncio.Lock()

    async def close(self) -> None:
        """Close the clients' HTTP connections."""
        clients, self._clients = self._clients, None
        for service in clients or ():
            await in_thread(service.close)

    # -- the protocol -----------------------------------------------------------------------
    async def probe(self) -> S3Probe:
        """head_bucket, list_objects_v2(MaxKeys=1) and get_caller_identity, concurrently."""
        s3, _, sts = await self._services()
        started = time.perf_counter()
        head, listed, identity = await asyncio.gather(
            _attempt(lambda: s3.head_bucket(Bucket=self.bucket)),
            _attempt(lambda: s3.list_objects_v2(Bucket=self.bucket, MaxKeys=1)),
            _attempt(sts.get_caller_identity),
        )
        latency_ms = (time.perf_counter() - started) * 1000
        outcomes = {"head_bucket": head, "list_objects_v2": listed, "get_caller_identity": identity}
        failures = {call: error for call, error in outcomes.items() if error is not None}
        if len(failures) == len(outcomes) and all(
            isinstance(e, UNREACHABLE) for e in failures.values()
        ):
            raise SourceUnreachable(NAME, f"no AWS endpoint answered: {failures['head_bucket']}")
        return S3Probe(
            bucket=self.bucket,
            head_ok=head is None,
            list_ok=listed is None,
            identity_ok=identity is None,
            errors={call: _code(error) for call, error in failures.items()},
            latency_ms=latency_ms,
        )

    async def newest_object(self, prefix: str) -> S3Object | None:
        """The newest object under ``prefix`` (LastModified; on a tie, the highest key)."""
        s3, _, _ = await self._services()

        def scan() -> S3Object | None:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return newest_of(item for page in pages for item in page.get("Contents", []))

        return await _call(f"list s3://{self.bucket}/{prefix}", scan)

    async def s3_5xx_per_minute(self, minutes: int = 60) -> list[tuple[datetime, float]]:
        """CloudWatch ``AWS/S3 5xxErrors`` (request metrics, ``FilterId=EntireBucket``) sums."""
        _, cloudwatch, _ = await self._services()
        end = datetime.now(UTC)
        answer = await _call(
            "read CloudWatch AWS/S3 5xxErrors",
            lambda: cloudwatch.get_metric_statistics(
                Namespace="AWS/S3",
                MetricName="5xxErrors",
                Dimensions=[
                    {"Name": "BucketName", "Value": self.bucket},
                    {"Name": "FilterId", "Value": "EntireBucket"},
                ],
                StartTime=end - timedelta(minutes=minutes),
                EndTime=end,
                Period=60,
                Statistics=["Sum"],
            ),
        )
        points = [
            (point["Timestamp"].astimezone(UTC), float(point.get("Sum", 0.0)))
            for point in answer.get("Datapoints", [])
            if "Timestamp" in point
        ]
        return sorted(points)

    # -- internals --------------------------------------------------------------------------
    async def _services(self) -> tuple[S3Client, CloudWatchClient, STSClient]:
        """The three clients, made once (making one loads its model: do it off the loop)."""
        async with self._clients_lock:
            if self._clients is None:
                self._clients = await in_thread(self._make_clients)
            return self._clients

    def _make_clients(self) -> tuple[S3Client, CloudWatchClient, STSClient]:
        session = self._session
        return (
            session.client("s3", config=CLIENT_CONFIG),
            session.client("cloudwatch", config=CLIENT_CONFIG),
            session.client("sts", config=CLIENT_CONFIG),
        )


def newest_of(contents: Iterable[ObjectTypeDef]) -> S3Object | None:
    """The object with the latest LastModified; on a tie, the highest key (offset order)."""
    newest: tuple[datetime, str] | None = None
    for item in contents:
        if "Key" in item and "LastModified" in item:
            candidate = (item["LastModified"], item["Key"])
            newest = candidate if newest is None else max(newest, candidate)
    return None if newest is None else S3Object(newest[1], newest[0].astimezone(UTC))


async def _attempt(call: Callable[[], object]) -> Exception | None:
    """Run ``call`` in a thread; the AWS/botocore error it raised, or ``None``."""
    try:
        await in_thread(call)
    except (ClientError, BotoCoreError) as error:
        return error
    return None


async def _call(what: str, call: Callable[[], T]) -> T:
    """Run ``call`` in a thread with its failures translated to ``SourceError``."""
    try:
        return await in_thread(call)
    except (ClientError, BotoCoreError) as error:
        raise _translate(what, error) from None


def _code(error: Exception) -> str:
    """The AWS error code (``ClientError``) or the botocore error's class name."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or "Unknown")
    if isinstance(error, NoCredentialsError):
        return "NoCredentials"
    return type(error).__name__


def _translate(what: str, error: Exception) -> SourceError:
    code = _code(error)
    if isinstance(error, UNREACHABLE):
        return SourceUnreachable(NAME, f"cannot {what}: {error}")
    if code in FORBIDDEN_CODES or code == "NoCredentials":
        return SourceForbidden(NAME, f"cannot {what}: {code}: {_message(error)}")
    return SourceQueryError(NAME, f"cannot {what}: {code}: {_message(error)}")


def _message(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Message") or error)
    return str(error)
