"""What a command answers, independent of where it is shown (Slack or a terminal)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from slack_sdk.models.blocks import Block

ResponseType = Literal["ephemeral", "in_channel"]


@dataclass(frozen=True)
class Reply:
    """A message: ``text`` is the notification fallback and the terminal form."""

    text: str
    blocks: tuple[Block, ...] = field(default=())
    response_type: ResponseType = "ephemeral"

    def to_slack(self) -> dict[str, Any]:
        """Keyword arguments for ``ack``/``respond``/``chat_postMessage``; validates limits."""
        payload: dict[str, Any] = {"text": self.text, "response_type": self.response_type}
        if self.blocks:
            payload["blocks"] = [block.to_dict() for block in self.blocks]
        return payload

    def to_message(self) -> dict[str, Any]:
        """Keyword arguments for ``chat.postMessage`` / ``chat.update`` (no response type)."""
        payload = self.to_slack()
        payload.pop("response_type", None)
        return payload
