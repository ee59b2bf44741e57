"""Channel messages, threads, edit history and reactions, kept the way Slack keeps them.

Not thread-safe by itself: the Workspace lock guards every call.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from lab.slack.api import SlackError

_CONTENT_KEYS = ("text", "blocks", "attachments")


class TsClock:
    """Issues Slack message timestamps ("1732712345.000100"): unique and increasing."""

    def __init__(self) -> None:
        self._last_micros = 0

    def next(self) -> str:
        """Return a fresh ts derived from the wall clock, never repeating."""
        now = time.time_ns() // 1000
        self._last_micros = max(now, self._last_micros + 1)
        seconds, micros = divmod(self._last_micros, 1_000_000)
        return f"{seconds}.{micros:06d}"


class MessageStore:
    """Messages per channel in ts order, with threads, edits and reactions."""

    def __init__(self, clock: TsClock) -> None:
        self._clock = clock
        self._channels: dict[str, dict[str, dict[str, Any]]] = {}
        self._history: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def clear(self) -> None:
        """Forget every message and its history."""
        self._channels.clear()
        self._history.clear()

    def get(self, channel: str, ts: str) -> dict[str, Any] | None:
        """Return the stored message (not a copy) or None."""
        return self._channels.get(channel, {}).get(ts)

    def require(self, channel: str, ts: str | None) -> dict[str, Any]:
        """Return the stored message or fail with `message_not_found`."""
        message = self.get(channel, ts) if ts else None
        if message is None:
            raise SlackError("message_not_found")
        return message

    def add(self, channel: str, message: dict[str, Any]) -> dict[str, Any]:
        """Store a new message, assigning its ts and threading it; return a copy."""
        ts = self._clock.next()
        stored = {**message, "ts": ts}
        thread_ts = stored.get("thread_ts")
        if thread_ts:
            root = self.require_thread_root(channel, str(thread_ts))
            stored["thread_ts"] = root["ts"]
            stored["parent_user_id"] = root.get("user")
            self._note_reply(root, stored)
        self._channels.setdefault(channel, {})[ts] = stored
        return copy.deepcopy(stored)

    def require_thread_root(self, channel: str, thread_ts: str) -> dict[str, Any]:
        """Return the root of the thread `thread_ts` names (a reply names its root)."""
        message = self.get(channel, thread_ts)
        if message is None:
            raise SlackError("thread_not_found")
        root_ts = message.get("thread_ts") or message["ts"]
        return self._channels[channel][root_ts]

    @staticmethod
    def _note_reply(root: dict[str, Any], reply: dict[str, Any]) -> None:
        root["thread_ts"] = root["ts"]
        root["reply_count"] = int(root.get("reply_count", 0)) + 1
        users: list[str] = root.setdefault("reply_users", [])
        if reply.get("user") and reply["user"] not in users:
            users.append(reply["user"])
        root["reply_users_count"] = len(users)
        root["latest_reply"] = reply["ts"]

    def update(
        self,
        channel: str,
        ts: str,
        changes: dict[str, Any],
        editor: str,
        *,
        replace_content: bool = False,
    ) -> dict[str, Any]:
        """Apply an edit, keeping the previous version in the history; return a copy.

        chat.update keeps fields it is not given (blocks stay unless replaced);
        `replace_content` drops the old text, blocks and attachments first, as a
        response_url `replace_original` does.
        """
        message = self.require(channel, ts)
        self._history.setdefault((channel, ts), []).append(copy.deepcopy(message))
        if replace_content:
            for key in _CONTENT_KEYS:
                message.pop(key, None)
        message.update(changes)
        message["edited"] = {"user": editor, "ts": self._clock.next()}
        return copy.deepcopy(message)

    def delete(self, channel: str, ts: str) -> dict[str, Any]:
        """Delete a message; a thread root with replies becomes a tombstone like in Slack."""
        message = self.require(channel, ts)
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != ts:
            root = self._channels[channel].get(thread_ts)
            if root is not None:
                root["reply_count"] = max(0, int(root.get("reply_count", 1)) - 1)
        if message.get("reply_count"):
            tombstone: dict[str, Any] = {
                "type": "message",
                "subtype": "tombstone",
                "text": "This message was deleted.",
                "hidden": True,
            }
            for key in ("ts", "thread_ts", "reply_count", "reply_users", "latest_reply"):
                if key in message:
                    tombstone[key] = message[key]
            self._channels[channel][ts] = tombstone
        else:
            del self._channels[channel][ts]
        return copy.deepcopy(message)

    def react(self, channel: str, ts: str, name: str, user: str) -> None:
        """Add `user`'s reaction `name`; the same reaction twice is `already_reacted`."""
        message = self.require(channel, ts)
        reactions: list[dict[str, Any]] = message.setdefault("reactions", [])
        for reaction in reactions:
            if reaction["name"] == name:
                if user in reaction["users"]:
                    raise SlackError("already_reacted")
                reaction["users"].append(user)
                reaction["count"] += 1
                return
        reactions.append({"name": name, "users": [user], "count": 1})

    def channel(self, channel: str, *, include_replies: bool = False) -> list[dict[str, Any]]:
        """Messages in ts order: top level (and broadcasts) unless `include_replies`."""
        messages = self._channels.get(channel, {}).values()
        return [copy.deepcopy(m) for m in messages if include_replies or _is_top_level(m)]

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The thread root followed by its replies, in ts order."""
        messages = self._channels.get(channel, {})
        root = messages.get(thread_ts)
        if root is None:
            return []
        replies = [
            m for m in messages.values() if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts
        ]
        return copy.deepcopy([root, *replies])

    def history(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """Earlier versions of a message, oldest first (empty if never edited)."""
        return copy.deepcopy(self._history.get((channel, ts), []))


def _is_top_level(message: dict[str, Any]) -> bool:
    thread_ts = message.get("thread_ts")
    return (
        not thread_ts or thread_ts == message["ts"] or message.get("subtype") == "thread_broadcast"
    )
