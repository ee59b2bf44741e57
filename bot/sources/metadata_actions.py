"""Writes to the Streamhouse metadata database: the guarded lease reset (LC-A1) only.

Like ``bot.sources.kubernetes_actions`` for the cluster, this is the one module allowed to
change the metadata database; ``bot.executors`` decides whether a write may happen.
"""

from __future__ import annotations

from bot.profiles import Profile


class MetadataActions:
    """Write statements against ``STREAMHOUSE_DATABASE_URL``; ``close()`` when done."""

    def __init__(self, url: str, profile: Profile, *, organization_id: str | None = None) -> None:
        self.profile = profile
        self._url = url
        self._organization = organization_id if profile.lease_table_has_rls else None

    async def close(self) -> None:
        """Nothing is kept open between writes."""
