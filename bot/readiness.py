"""Readiness: is the database reachable, and has Slack accepted the bot's token?"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.store.db import Database

logger = logging.getLogger("bot.readiness")

DATABASE_PING_TIMEOUT_S = 2.0


@dataclass
class SlackIdentity:
    """What ``auth.test`` said about the bot; asked again (at most every ``retry_after`` s)
    until it succeeds, so a bot started while Slack was down becomes ready later."""

    client: AsyncWebClient
    retry_after: float = 5.0
    ok: bool = False
    team_id: str | None = None
    bot_user_id: str | None = None
    error: str | None = "not checked yet"
    _checked_at: float = float("-inf")

    async def check(self) -> bool:
        """True once ``auth.test`` has succeeded; re-asks Slack only while it has not."""
        if self.ok or time.monotonic() - self._checked_at < self.retry_after:
            return self.ok
        self._checked_at = time.monotonic()
        try:
            response = await self.client.auth_test()
        except SlackApiError as error:
            self.error = str(error.response.get("error", "unknown error"))
        except Exception as error:  # unreachable, DNS, timeouts: all mean "not ready"
            self.error = f"{type(error).__name__}: {error}"
        else:
            self.ok, self.error = True, None
            self.team_id = response.get("team_id")
            self.bot_user_id = response.get("user_id")
            return True
        logger.warning("Slack auth.test failed: %s", self.error)
        return False


async def readiness_report(db: Database, identity: SlackIdentity) -> tuple[bool, dict[str, str]]:
    """Whether the bot is ready, with one line per dependency for ``GET /readyz``."""
    report: dict[str, str] = {}
    try:
        async with asyncio.timeout(DATABASE_PING_TIMEOUT_S):
            seconds = await db.ping()
        report["database"] = f"ok ({seconds * 1000:.1f} ms)"
    except Exception as error:  # any failure makes the bot not ready; the reason is reported
        report["database"] = f"unreachable: {type(error).__name__}"
    slack_ok = await identity.check()
    report["slack"] = "ok" if slack_ok else f"failing: {identity.error}"
    return all(value.startswith("ok") for value in report.values()), report
