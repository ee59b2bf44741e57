"""Writes to the schema registry: a subject's compatibility mode (SR-A1) only.

The one module allowed to change the registry; ``bot.executors`` decides whether a write
may happen. Both profiles have ``PUT /config/{subject}`` with ``{"compatibility": MODE}``
(facts §4.3): the runbook's registry at the root of ``SCHEMA_REGISTRY_URL``, upstream's
under ``/schemas`` with the ``x-organization-id`` header. Only the read-only compatibility
*test* route is missing upstream, and a mode change does not need it. URLs, headers and
error translation are the read-only ``SchemaRegistrySource``'s, so a write fails the way a
read does (``SourceQueryError`` with the registry's message, ``SourceUnreachable``...).
Modes are sent upper case: upstream rejects any other spelling.
"""

from __future__ import annotations

from bot.profiles import Profile
from bot.sources.schema_registry import (
    ORG_HEADER,
    OrganizationLookup,
    SchemaRegistrySource,
    _mode,
    _part,
)


class RegistryActions:
    """Write calls against ``SCHEMA_REGISTRY_URL``; ``close()`` when done."""

    def __init__(
        self,
        base_url: str,
        profile: Profile,
        *,
        organization_id: str | None = None,
        discover_organization: OrganizationLookup | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.profile = profile
        self._transport = SchemaRegistrySource(
            base_url,
            profile,
            organization_id=organization_id,
            discover_organization=discover_organization,
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._transport.close()

    def compatibility_call(self, subject: str, mode: str) -> str:
        """How the mode change reads in a preview."""
        header = f" with header {ORG_HEADER}" if self.profile.registry_needs_org_header else ""
        body = f'{{"compatibility": "{mode.upper()}"}}'
        return f"PUT {self.base_url}/config/{_part(subject)} {body}{header}"

    async def set_compatibility(self, subject: str, mode: str) -> str:
        """Set the subject's own mode (an absolute value); the mode the registry answers."""
        path = f"/config/{_part(subject)}"
        body = {"compatibility": mode.upper()}
        # The read-only source's transport: same URL, headers and error translation.
        answer = await self._transport._request("PUT", path, org=True, json_body=body)
        return _mode(answer)
