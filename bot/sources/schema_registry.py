"""The schema registry's REST API in the profile's spelling (facts §4.3).

- ``runbook``: Confluent style at the root of ``SCHEMA_REGISTRY_URL``, with
  ``POST /compatibility/subjects/{s}/versions/latest`` → ``{"is_compatible": bool}``.
- ``upstream``: the unified server's routes; ``SCHEMA_REGISTRY_URL`` already ends in
  ``/schemas``. Every subject route and ``/config/{subject}`` needs ``x-organization-id``:
  ``STREAMHOUSE_ORGANIZATION_ID``, else the one organization the metadata database shows
  (asked once). There is no compatibility route: ``check_compatibility`` returns ``None``.

Errors: the registry's ``{"error_code", "message"}`` (or plain text) → ``SourceQueryError``;
401/403 → ``SourceForbidden``; refused or timed out → ``SourceUnreachable``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.profiles import Profile
from bot.sources.base import (
    SchemaVersion,
    SourceError,
    SourceForbidden,
    SourceQueryError,
    SourceUnreachable,
)

NAME = "schema-registry"
ORG_HEADER = "x-organization-id"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
DEFAULT_TIMEOUT_S = 5.0
SUBJECT_CONFIG_NOT_FOUND = 40408  # Confluent: the subject has no mode of its own

OrganizationLookup = Callable[[], Awaitable[str]]


class SchemaRegistrySource:
    """The ``SchemaRegistry`` protocol against one registry; ``close()`` when done."""

    def __init__(
        self,
        base_url: str,
        profile: Profile,
        *,
        organization_id: str | None = None,
        discover_organization: OrganizationLookup | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.profile = profile
        self.timeout = timeout
        self._organization = organization_id
        self._discover = discover_organization
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the HTTP session."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- the protocol -----------------------------------------------------------------------
    async def subjects(self) -> list[str]:
        """Every subject."""
        return [str(name) for name in await self._get("/subjects", org=True)]

    async def versions(self, subject: str) -> list[int]:
        """The subject's version numbers, ascending."""
        return sorted(
            int(v) for v in await self._get(f"/subjects/{_part(subject)}/versions", org=True)
        )

    async def version(self, subject: str, version: int | str = "latest") -> SchemaVersion:
        """One version (``latest`` or a number)."""
        path = f"/subjects/{_part(subject)}/versions/{_part(str(version))}"
        body = await self._get(path, org=True)
        return SchemaVersion(
            subject=str(body.get("subject", subject)),
            version=int(body["version"]),
            id=int(body["id"]),
            schema=str(body["schema"]),
        )

    async def compatibility(self, subject: str | None = None) -> str:
        """The subject's mode (else the global one), or the global mode; upper case."""
        if subject is None:
            return _mode(await self._get("/config", org=False))
        path = f"/config/{_part(subject)}"
        if self.profile.registry_needs_org_header:
            return _mode(await self._get(path, org=True))
        try:
            return _mode(await self._get(path + "?defaultToGlobal=true", org=False))
        except RegistryAnswer as answer:
            if answer.error_code != SUBJECT_CONFIG_NOT_FOUND:
                raise
            return _mode(await self._get("/config", org=False))

    async def check_compatibility(self, subject: str, schema: str) -> bool | None:
        """The registry's verdict on ``schema`` against the latest version (upstream: None)."""
        if not self.profile.registry_has_compatibility_route:
            return None
        path = f"/compatibility/subjects/{_part(subject)}/versions/latest"
        body = await self._request("POST", path, org=False, json_body={"schema": schema})
        return bool(body.get("is_compatible"))

    # -- transport --------------------------------------------------------------------------
    async def _get(self, path: str, *, org: bool) -> Any:
        return await self._request("GET", path, org=org)

    async def _request(self, method: str, path: str, *, org: bool, json_body: Any = None) -> Any:
        headers = dict(JSON_HEADERS)
        if org and self.profile.registry_needs_org_header:
            headers[ORG_HEADER] = await self._organization_id()
        url = self.base_url + path
        try:
            async with asyncio.timeout(self.timeout):
                session = self._client()
                async with session.request(
                    method, url, headers=headers, json=json_body
                ) as response:
                    text = await response.text()
                    status = response.status
        except TimeoutError:
            raise SourceUnreachable(
                NAME, f"{self.base_url} timed out after {self.timeout:g} s"
            ) from None
        except aiohttp.ClientError as error:
            raise SourceUnreachable(NAME, f"cannot reach {self.base_url}: {error}") from None
        return _decode(method, path, status, text)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _organization_id(self) -> str:
        if self._organization:
            return self._organization
        if self._discover is None:
            raise SourceQueryError(
                NAME,
                f"the registry needs the {ORG_HEADER} header: set STREAMHOUSE_ORGANIZATION_ID "
                "(or STREAMHOUSE_DATABASE_URL, to discover it)",
            )
        try:
            self._organization = await self._discover()
        except SourceError as error:
            raise SourceQueryError(
                NAME,
                f"the registry needs the {ORG_HEADER} header and the organization could not "
                f"be discovered ({error.detail}): set STREAMHOUSE_ORGANIZATION_ID",
            ) from None
        return self._organization


class RegistryAnswer(SourceQueryError):
    """The registry rejected a request; ``error_code`` is its own code when it sent one."""

    def __init__(self, detail: str, status: int, error_code: int | None) -> None:
        super().__init__(NAME, detail)
        self.status = status
        self.error_code = error_code


def _decode(method: str, path: str, status: int, text: str) -> Any:
    """The JSON body of a 2xx answer, or the error the answer means."""
    body = _json(text)
    if 200 <= status < 300:
        if body is None:
            raise SourceQueryError(NAME, f"{method} {path}: the answer is not JSON: {text[:200]!r}")
        return body
    if isinstance(body, dict) and "message" in body:
        code = body.get("error_code")
        detail = f"{method} {path}: HTTP {status}, error {code}: {body['message']}"
    else:
        code, detail = None, f"{method} {path}: HTTP {status}: {text.strip()[:300]}"
    if status in (401, 403):
        raise SourceForbidden(NAME, detail)
    raise RegistryAnswer(detail, status, code if isinstance(code, int) else None)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _mode(body: Any) -> str:
    """``compatibilityLevel`` (GET) or ``compatibility`` (Confluent's PUT answer), upper case."""
    value = None
    if isinstance(body, dict):
        value = body.get("compatibilityLevel") or body.get("compatibility")
    if not isinstance(value, str):
        raise SourceQueryError(NAME, f"the config answer names no mode: {body!r}"[:300])
    return value.upper()


def _part(value: str) -> str:
    """One URL path segment (subjects may contain ``/`` or spaces)."""
    return quote(value, safe="")
