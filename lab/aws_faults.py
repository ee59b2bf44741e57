"""The fault layer in front of moto: an HTTP proxy that makes S3 fail as ``world.s3_fault`` says.

Every request is forwarded to moto unchanged, except S3 requests while a fault is set:

    SlowDown            503 ``<Code>SlowDown</Code>`` (botocore: ClientError "SlowDown")
    AccessDenied        403 ``<Code>AccessDenied</Code>``
    InvalidAccessKeyId  403 ``<Code>InvalidAccessKeyId</Code>``; STS answers 403
                        ``InvalidClientTokenId`` too, as AWS does for an unknown key
    NoSuchBucket        404 ``<Code>NoSuchBucket</Code>``
    ConnectionRefused   the connection is dropped without a response. A real refusal would
                        need S3 on its own port, so botocore raises ``ConnectionClosedError``
                        (its wrapper for urllib3's ProtocolError), not EndpointConnectionError.
    Slow                the answer is delayed by ``slow_delay_s``: a client with a shorter
                        read timeout raises ``ReadTimeoutError``

As on AWS, error answers to HEAD requests carry no body, so botocore reports the HTTP
status ("403", "404", "503") as the code for head_bucket/head_object. CloudWatch and STS
requests (told apart by the SigV4 credential scope) pass through. The fault is read from
the world on every request, so switching it off restores service at once.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import urllib3
from aiohttp import web
from multidict import CIMultiDict

from lab.world import S3Fault, World

# Hop-by-hop headers and those the proxy recomputes; never forwarded.
_REQUEST_DROP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "content-length",
    }
)
_RESPONSE_DROP: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "server", "date"}
)

_S3_ERRORS: Final[Mapping[str, tuple[int, str]]] = {
    "SlowDown": (503, "Please reduce your request rate."),
    "AccessDenied": (403, "Access Denied"),
    "InvalidAccessKeyId": (
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
    "NoSuchBucket": (404, "The specified bucket does not exist"),
}
_STS_INVALID_TOKEN: Final = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
    "<Type>Sender</Type><Code>InvalidClientTokenId</Code>"
    "<Message>The security token included in the request is invalid.</Message>"
    "</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
)


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering."""


@dataclass(frozen=True)
class Delay:
    """Forward the request, but only after ``seconds``."""

    seconds: float


FaultDecision = web.Response | Drop | Delay | None


def service_of(headers: Mapping[str, str], query: Mapping[str, str], path: str) -> str:
    """The AWS service a request is for: the SigV4 scope's service name, else a best guess.

    Returns e.g. ``"s3"``, ``"monitoring"`` (CloudWatch), ``"sts"``, or ``"moto"`` for moto's
    own API. Unsigned requests without an RPC marker are taken as S3 (path-style).
    """
    if path.startswith("/moto-api"):
        return "moto"
    scope = _scope_service(headers.get("Authorization", "").partition("Credential=")[2])
    scope = scope or _scope_service(query.get("X-Amz-Credential", ""))
    if scope:
        return scope
    if "X-Amz-Target" in headers or "Smithy-Protocol" in headers:
        return "rpc"
    return "s3"


def _scope_service(credential: str) -> str | None:
    """``AKID/20240101/us-east-1/s3/aws4_request`` -> ``"s3"``."""
    parts = credential.split(",")[0].strip().split("/")
    return parts[3] if len(parts) >= 5 and parts[4] == "aws4_request" else None


def decide(
    fault: S3Fault | None, service: str, method: str, path: str, delay_s: float
) -> FaultDecision:
    """What the fault layer does with one request; ``None`` means forward it untouched."""
    if fault is None:
        return None
    if service == "sts" and fault == "InvalidAccessKeyId":
        return _xml_response(403, _STS_INVALID_TOKEN.format(request_id=uuid.uuid4()), method)
    if service != "s3":
        return None
    if fault == "ConnectionRefused":
        return Drop()
    if fault == "Slow":
        return Delay(delay_s)
    return s3_error(fault, method, path)


def s3_error(code: str, method: str, path: str) -> web.Response:
    """An S3 REST error answer with the status and XML body AWS uses for ``code``."""
    status, message = _S3_ERRORS[code]
    request_id = secrets.token_hex(8).upper()
    bucket = path.lstrip("/").split("/", 1)[0]
    extra = f"<BucketName>{bucket}</BucketName>" if code == "NoSuchBucket" else ""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}"
        f"<RequestId>{request_id}</RequestId><HostId>{secrets.token_urlsafe(24)}</HostId></Error>"
    )
    response = _xml_response(status, body, method)
    response.headers["x-amz-request-id"] = request_id
    return response


def _xml_response(status: int, body: str, method: str) -> web.Response:
    # HEAD answers never carry a body; botocore then reports the status as the code.
    payload = None if method == "HEAD" else body.encode()
    return web.Response(status=status, body=payload, content_type="application/xml")


def build_proxy_app(world: World, upstream: str, slow_delay_s: float) -> web.Application:
    """The aiohttp application that applies ``world.s3_fault`` and forwards to ``upstream``."""
    # urllib3 rather than aiohttp's client: moto answers with two Server headers, which
    # aiohttp's strict (dev-mode) parser rejects.
    pool = urllib3.PoolManager(
        maxsize=16, retries=False, timeout=urllib3.Timeout(connect=5.0, read=60.0)
    )

    async def handle(request: web.Request) -> web.StreamResponse:
        with world.lock:
            fault = world.s3_fault
        service = service_of(request.headers, request.query, request.path)
        decision = decide(fault, service, request.method, request.path, slow_delay_s)
        if isinstance(decision, web.Response):
            return decision
        if isinstance(decision, Drop):
            return _drop(request)
        if isinstance(decision, Delay):
            await asyncio.sleep(decision.seconds)
        return await forward(request, pool, upstream)

    async def close_pool(_app: web.Application) -> None:
        pool.clear()

    app = web.Application(client_max_size=1024**3)
    app.on_cleanup.append(close_pool)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _drop(request: web.Request) -> web.StreamResponse:
    """Abort the TCP connection so the client sees it closed with no answer."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError  # nothing may be written on the aborted connection


async def forward(request: web.Request, pool: urllib3.PoolManager, upstream: str) -> web.Response:
    """Send ``request`` to ``upstream`` as it came and relay the answer byte for byte."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _REQUEST_DROP}
    body = await request.read()
    reply = await asyncio.to_thread(
        pool.request,
        request.method,
        upstream + request.raw_path,
        body=body or None,
        headers=headers,
        redirect=False,
        preload_content=True,
        decode_content=False,
    )
    out = CIMultiDict((k, v) for k, v in reply.headers.items() if k.lower() not in _RESPONSE_DROP)
    return web.Response(status=reply.status, body=reply.data or None, headers=out)
