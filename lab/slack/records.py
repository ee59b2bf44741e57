"""Plain records the Slack emulator keeps and hands to tests.

Messages, ephemerals and views are kept as dicts in the shape Slack itself returns,
so a test reads them the way a bot would; everything else is a small dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utc_now() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApiCall:
    """One Web API request as the emulator received and answered it."""

    method: str
    params: dict[str, Any]
    http_status: int
    response: dict[str, Any]
    at: datetime

    @property
    def ok(self) -> bool:
        """Whether Slack answered `ok: true`."""
        return bool(self.response.get("ok"))


@dataclass(frozen=True)
class Channel:
    """A conversation in the emulated workspace."""

    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    user: str | None = None


@dataclass(frozen=True)
class User:
    """A member of the emulated workspace."""

    id: str
    name: str
    real_name: str
    is_bot: bool = False
    is_admin: bool = False
    email: str | None = None
    tz: str = "Etc/UTC"


@dataclass
class UploadedFile:
    """A file uploaded through files.getUploadURLExternal and its upload URL."""

    id: str
    filename: str
    length: int
    title: str | None = None
    alt_txt: str | None = None
    snippet_type: str | None = None
    content: bytes | None = None
    completed: bool = False
    channels: list[str] = field(default_factory=list)
    thread_ts: str | None = None
    initial_comment: str | None = None
    created_at: datetime = field(default_factory=utc_now)


@dataclass
class ResponseUrl:
    """A response_url Slack handed out with a command or an interaction."""

    id: str
    url: str
    channel_id: str | None
    user_id: str | None
    message_ts: str | None
    thread_ts: str | None
    created_at: datetime = field(default_factory=utc_now)
    uses: int = 0


@dataclass(frozen=True)
class ResponseUrlPost:
    """One POST to a response_url, accepted or not."""

    url: str
    body: dict[str, Any]
    http_status: int
    error: str | None
    at: datetime

    @property
    def accepted(self) -> bool:
        """Whether Slack accepted (and applied) the post."""
        return self.http_status == 200
