"""The emulated workspace: directory, messages, views, files, response URLs, calls.

One `Workspace` is shared by the emulator's server thread and the test thread; every
read or write happens under `Workspace.lock`.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from lab.slack.api import SlackError
from lab.slack.messages import MessageStore, TsClock
from lab.slack.records import (
    ApiCall,
    Channel,
    ResponseUrl,
    ResponseUrlPost,
    UploadedFile,
    User,
)

TEAM_ID = "T0EMULATOR"
TEAM_DOMAIN = "streamhouse-emulator"
TEAM_NAME = "Streamhouse Emulator"
APP_ID = "A0EMULATOR"
BOT_ID = "B0EMULATOR"
BOT_USER_ID = "U0BOT"
BOT_NAME = "streamhouse"
# Slack forgets a trigger_id 3 seconds after issuing it.
TRIGGER_ID_TTL_SECONDS = 3.0

DEFAULT_CHANNELS = (
    Channel("C0GENERAL", "general"),
    Channel("C0ALERTS", "alerts"),
    Channel("C0INCIDENTS", "incidents"),
)
DEFAULT_USERS = (
    User(BOT_USER_ID, BOT_NAME, "Streamhouse Bot", is_bot=True),
    User("U0ALICE", "alice", "Alice Archer", is_admin=True, email="alice@example.com"),
    User("U0BOB", "bob", "Bob Baker", email="bob@example.com"),
    User("U0CAROL", "carol", "Carol Chen", email="carol@example.com"),
    User("U0MALLORY", "mallory", "Mallory Moss", email="mallory@example.com"),
)


class Workspace:
    """Everything the emulated Slack workspace knows, guarded by `lock`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clock = TsClock()
        self.channels: dict[str, Channel] = {c.id: c for c in DEFAULT_CHANNELS}
        self.users: dict[str, User] = {u.id: u for u in DEFAULT_USERS}
        self.usergroups: dict[str, list[str]] = {}
        self.messages = MessageStore(self.clock)
        self.ephemerals: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.files: dict[str, UploadedFile] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        self.response_posts: list[ResponseUrlPost] = []
        self.calls: list[ApiCall] = []
        self.socket_tickets: set[str] = set()
        self._trigger_ids: dict[str, float] = {}
        self._used_trigger_ids: set[str] = set()
        self._counter = itertools.count(1)

    def reset(self) -> None:
        """Forget messages, calls and everything posted; keep channels, users, groups."""
        with self.lock:
            self.messages.clear()
            self.ephemerals.clear()
            self.views.clear()
            self.files.clear()
            self.response_urls.clear()
            self.response_posts.clear()
            self.calls.clear()
            self._trigger_ids.clear()
            self._used_trigger_ids.clear()

    def next_id(self, prefix: str) -> str:
        """Return a fresh Slack-looking id such as `V000000007`."""
        return f"{prefix}{next(self._counter):09d}"

    def resolve_channel(self, ref: str | None) -> Channel:
        """Find a channel by id, `#name` / name, or a user id (its DM); else fail."""
        if not ref:
            raise SlackError("channel_not_found")
        if ref in self.channels:
            return self.channels[ref]
        name = ref.removeprefix("#")
        for channel in self.channels.values():
            if channel.name == name and not channel.is_im:
                return channel
        if ref in self.users:
            return self._open_im(ref)
        raise SlackError("channel_not_found")

    def _open_im(self, user_id: str) -> Channel:
        im_id = "D" + user_id.removeprefix("U")
        if im_id not in self.channels:
            self.channels[im_id] = Channel(im_id, user_id, is_im=True, user=user_id)
        return self.channels[im_id]

    def require_user(self, user_id: str | None) -> User:
        """Return the user or fail with `user_not_found`."""
        user = self.users.get(user_id or "")
        if user is None:
            raise SlackError("user_not_found")
        return user

    def issue_trigger_id(self) -> str:
        """Hand out a trigger_id usable once within 3 seconds, like Slack's."""
        serial = next(self._counter)
        trigger_id = f"{int(time.time())}.{serial}.emulator{serial:08x}"
        self.register_trigger_id(trigger_id)
        return trigger_id

    def register_trigger_id(self, trigger_id: str) -> None:
        """Accept a caller-chosen trigger_id as freshly issued."""
        self._trigger_ids[trigger_id] = time.monotonic()
        self._used_trigger_ids.discard(trigger_id)

    def consume_trigger_id(self, trigger_id: str | None) -> None:
        """Use a trigger_id once: unknown, reused or older than 3 s fails like Slack."""
        if not trigger_id or trigger_id not in self._trigger_ids:
            raise SlackError("invalid_trigger_id")
        if trigger_id in self._used_trigger_ids:
            raise SlackError("exchanged_trigger_id")
        if time.monotonic() - self._trigger_ids[trigger_id] > TRIGGER_ID_TTL_SECONDS:
            raise SlackError("expired_trigger_id")
        self._used_trigger_ids.add(trigger_id)
