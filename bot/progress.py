"""A Slack message that shows work in progress: posted at once, updated in place as results
arrive (at most about once a second, Slack's pace for one message), then finalised."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.replies import Reply

log = logging.getLogger("bot.progress")

UPDATE_INTERVAL_S = 1.0


class ProgressMessage:
    """One channel message kept current by ``changed()`` and closed by ``finish()``."""

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        render: Callable[[], Reply],
        *,
        interval: float = UPDATE_INTERVAL_S,
        thread_ts: str | None = None,
    ) -> None:
        self._client = client
        self._channel = channel
        self._render = render
        self._interval = interval
        self._thread_ts = thread_ts
        self._dirty = asyncio.Event()
        self._updater: asyncio.Task[None] | None = None
        self.ts: str | None = None
        self.updates = 0

    async def start(self) -> str:
        """Post the first version; returns its ``ts``."""
        reply = self._render()
        response = await self._client.chat_postMessage(
            channel=self._channel, thread_ts=self._thread_ts, text=reply.text, blocks=_blocks(reply)
        )
        self.ts = str(response["ts"])
        self._updater = asyncio.create_task(self._keep_current())
        return self.ts

    def changed(self) -> None:
        """Something new to show; the next update goes out within ``interval``."""
        self._dirty.set()

    async def finish(self, final: Reply) -> None:
        """Stop the periodic updates and replace the message with ``final``."""
        if self._updater is not None:
            self._updater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._updater
        await self._update(final)

    async def _keep_current(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await self._dirty.wait()
            await asyncio.sleep(max(0.0, last + self._interval - loop.time()))
            self._dirty.clear()
            try:
                await self._update(self._render())
            except SlackApiError as error:  # progress is a courtesy; the final update matters
                log.warning("progress update failed: %s", error.response.get("error"))
            last = loop.time()

    async def _update(self, reply: Reply) -> None:
        if self.ts is None:
            return
        await self._client.chat_update(
            channel=self._channel, ts=self.ts, text=reply.text, blocks=_blocks(reply)
        )
        self.updates += 1


def _blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = reply.to_slack().get("blocks", [])
    return blocks
