"""Writes to the schema registry: a subject's compatibility mode (SR-A1) only.

The one module allowed to change the registry; ``bot.executors`` decides whether a write
may happen.
"""

from __future__ import annotations

from bot.profiles import Profile


class RegistryActions:
    """Write calls against ``SCHEMA_REGISTRY_URL``; ``close()`` when done."""

    def __init__(
        self, base_url: str, profile: Profile, *, organization_id: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.profile = profile
        self._organization = organization_id

    async def close(self) -> None:
        """Nothing is kept open between writes."""
