"""Who may request and approve actions.

A user is authorised when listed in ``BOT_APPROVERS`` or a member of ``BOT_APPROVER_GROUP``
(``usergroups.users.list``, cached ``GROUP_CACHE_S``; when Slack cannot answer, the last
known members still count).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import NotAuthorizedError

GROUP_CACHE_S = 300.0


class Approvers:
    """``BOT_APPROVERS`` plus the members of ``BOT_APPROVER_GROUP`` (cached)."""

    def __init__(self, slack: AsyncWebClient, users: Sequence[str], group: str | None) -> None:
        self._slack = slack
        self._users = frozenset(users)
        self._group = group
        self._members: frozenset[str] = frozenset()
        self._fetched_at: float | None = None

    async def is_authorised(self, user: str) -> bool:
        """Whether ``user`` may request and approve actions."""
        return user in self._users or user in await self._group_members()

    async def require(self, user: str, doing: str) -> None:
        """Raise ``NotAuthorizedError`` unless ``user`` is authorised."""
        if not await self.is_authorised(user):
            raise NotAuthorizedError(
                f"You are not an approver, so you cannot {doing}. Approvers are listed in "
                "BOT_APPROVERS or belong to BOT_APPROVER_GROUP."
            )

    async def _group_members(self) -> frozenset[str]:
        if self._group is None:
            return frozenset()
        fresh = self._fetched_at is not None and time.monotonic() - self._fetched_at < GROUP_CACHE_S
        if not fresh:
            try:
                response = await self._slack.usergroups_users_list(usergroup=self._group)
            except SlackApiError:  # keep the last known members; the listed users still work
                return self._members
            self._members = frozenset(str(user) for user in response.get("users") or [])
            self._fetched_at = time.monotonic()
        return self._members
