"""Prometheus over its HTTP API (``/api/v1/query`` and ``/api/v1/query_range``).

One ``aiohttp.ClientSession`` per source, opened on first use and closed by ``close()``.
Every query has its own timeout (5 s unless told otherwise). How answers map:

- ``status: success`` with no series → ``[]`` (the family is not instrumented: no data).
- HTTP 400/422 (bad PromQL, execution error) and 503 with an ``error`` → ``SourceQueryError``
  carrying Prometheus' own message.
- HTTP 401/403 → ``SourceForbidden``.
- Connection refused, DNS, TLS, timeout, or a non-Prometheus answer (a proxy's 502) →
  ``SourceUnreachable`` naming the URL (and "timed out after N s").
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from bot.sources.base import (
    Sample,
    Series,
    SourceError,
    SourceForbidden,
    SourceQueryError,
    SourceUnreachable,
)

NAME = "prometheus"
DEFAULT_TIMEOUT_S = 5.0


class PrometheusSource:
    """The ``Prometheus`` protocol against one server; ``close()`` when done."""

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def instant(self, query: str) -> list[Sample]:
        """``/api/v1/query`` at now; scalars come back as one unlabelled sample."""
        data = await self._query("/api/v1/query", {"query": query})
        kind, result = data.get("resultType"), data.get("result")
        if kind in ("scalar", "string"):
            return [Sample({}, _value(result))]
        if kind != "vector":
            raise SourceQueryError(NAME, f"{query!r} returned a {kind}; use a range query")
        return [Sample(_labels(item), _value(item.get("value"))) for item in result or []]

    async def range(
        self, query: str, *, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        """``/api/v1/query_range`` from ``start`` to ``end`` every ``step``."""
        form = {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step.total_seconds():g}",
        }
        data = await self._query("/api/v1/query_range", form)
        return [
            Series(_labels(item), tuple(_point(point) for point in item.get("values") or []))
            for item in data.get("result") or []
        ]

    async def close(self) -> None:
        """Close the HTTP session (a later query opens a new one)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- transport ---------------------------------------------------------------------------
    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _query(self, path: str, form: Mapping[str, str]) -> Mapping[str, Any]:
        url = self.base_url + path
        try:
            async with asyncio.timeout(self.timeout):
                async with self._client().post(url, data=dict(form)) as response:
                    body = await _json_or_none(response)
                    status = response.status
        except TimeoutError:
            raise SourceUnreachable(
                NAME, f"{self.base_url} timed out after {self.timeout:g} s"
            ) from None
        except aiohttp.ClientError as error:
            raise SourceUnreachable(NAME, f"cannot reach {self.base_url}: {error}") from None
        return _data_or_raise(self.base_url, status, body)


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


def _data_or_raise(base_url: str, status: int, body: Any) -> Mapping[str, Any]:
    """The ``data`` of a successful answer, or the ``SourceError`` the answer means."""
    if isinstance(body, dict) and body.get("status") == "success":
        data = body.get("data")
        return data if isinstance(data, dict) else {}
    raise _error_for(base_url, status, body)


def _error_for(base_url: str, status: int, body: Any) -> SourceError:
    if status in (401, 403):
        return SourceForbidden(NAME, f"{base_url} refused the bot (HTTP {status})")
    if isinstance(body, dict) and body.get("error"):
        kind = body.get("errorType") or "error"
        return SourceQueryError(NAME, f"{kind}: {body['error']}")
    return SourceUnreachable(NAME, f"{base_url} did not answer as Prometheus (HTTP {status})")


def _labels(item: Mapping[str, Any]) -> dict[str, str]:
    metric = item.get("metric") or {}
    return {str(key): str(value) for key, value in metric.items()}


def _value(pair: Any) -> float:
    """The value of a ``[unix_seconds, "value"]`` pair (``NaN`` when malformed)."""
    try:
        return float(pair[1])
    except (TypeError, ValueError, IndexError):
        return math.nan


def _point(pair: Any) -> tuple[float, float]:
    return float(pair[0]), _value(pair)
