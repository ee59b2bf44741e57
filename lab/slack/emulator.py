"""SlackEmulator: an in-memory Slack (Web API, response_urls, uploads, Socket Mode).

Point slack_sdk at it with `AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)`.
It runs in its own thread and event loop; every method here is safe to call from the
test thread, and the `async_*` variants are safe to await from any event loop.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

from lab.http import ServerThread
from lab.slack.faults import DEFAULT_BURST, DEFAULT_PER_SECOND, ChannelRateLimiter, Fault
from lab.slack.methods import Dispatcher, Tokens
from lab.slack.records import ApiCall, Channel, ResponseUrlPost, UploadedFile, User
from lab.slack.responses import new_response_url
from lab.slack.server import build_app
from lab.slack.socket_mode import EnvelopeType, SocketHub
from lab.slack.state import APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, Workspace
from lab.slack.waiting import apoll, poll

_T = TypeVar("_T")

# Fake credentials of the emulated app (the lab is a test world).
DEFAULT_BOT_TOKEN = "xoxb-emulator"
DEFAULT_APP_TOKEN = "xapp-emulator"
DEFAULT_SIGNING_SECRET = "emulator-signing-secret"
DEFAULT_VERIFICATION_TOKEN = "emulator-verification-token"


class SlackEmulator:
    """A faithful in-memory stand-in for Slack, served on 127.0.0.1:<free port>."""

    team_id = TEAM_ID
    team_domain = TEAM_DOMAIN
    app_id = APP_ID
    bot_id = BOT_ID
    bot_user_id = BOT_USER_ID

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        app_token: str = DEFAULT_APP_TOKEN,
        signing_secret: str = DEFAULT_SIGNING_SECRET,
        verification_token: str = DEFAULT_VERIFICATION_TOKEN,
        rate_limit_burst: int | None = DEFAULT_BURST,
        rate_limit_per_second: float = DEFAULT_PER_SECOND,
    ) -> None:
        self.bot_token, self.app_token = bot_token, app_token
        self.signing_secret = signing_secret
        self.verification_token = verification_token
        self._workspace = Workspace()
        self._dispatcher = Dispatcher(
            self._workspace,
            Tokens(bot=bot_token, app=app_token),
            limiter=ChannelRateLimiter(rate_limit_burst, rate_limit_per_second),
        )
        self._hub = SocketHub(self._workspace)
        self._server = ServerThread(
            lambda base: build_app(self._dispatcher, self._hub, base), name="the Slack emulator"
        )
        self._server.on_stop(self._hub.close_all)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving; returns once the server is listening."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Close Socket Mode connections and stop the server (idempotent)."""
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` (empty before start())."""
        return self._server.base_url

    @property
    def api_url(self) -> str:
        """The Web API base URL in the form slack_sdk's `base_url` wants (trailing slash)."""
        return f"{self.base_url}/api/"

    # -- workspace set-up --------------------------------------------------------------

    def add_channel(self, channel_id: str, name: str, *, is_private: bool = False) -> None:
        """Create (or rename) a channel."""
        with self._workspace.lock:
            self._workspace.channels[channel_id] = Channel(channel_id, name, is_private)

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        *,
        is_admin: bool = False,
        is_bot: bool = False,
        email: str | None = None,
    ) -> None:
        """Create (or replace) a workspace member."""
        user = User(user_id, name, real_name or name, is_bot, is_admin, email)
        with self._workspace.lock:
            self._workspace.users[user_id] = user

    def add_usergroup(self, usergroup_id: str, user_ids: Iterable[str]) -> None:
        """Create (or replace) a user group; every member must exist."""
        members = list(user_ids)
        with self._workspace.lock:
            unknown = [u for u in members if u not in self._workspace.users]
            if unknown:
                raise ValueError(f"unknown users: {', '.join(unknown)}")
            self._workspace.usergroups[usergroup_id] = members

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        user: str | None = "U0ALICE",
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        bot_id: str | None = None,
        subtype: str | None = None,
    ) -> dict[str, Any]:
        """Seed a message from a person (`user`) or another app (`bot_id`); return it.

        No validation: this is what other people and apps posted, not the bot.
        """
        message: dict[str, Any] = {"type": "message", "text": text, "team": TEAM_ID}
        extras = {
            "user": user,
            "blocks": blocks,
            "thread_ts": thread_ts,
            "bot_id": bot_id,
            "subtype": subtype,
        }
        message.update({k: v for k, v in extras.items() if v is not None})
        with self._workspace.lock:
            channel_id = self._workspace.resolve_channel(channel).id
            return self._workspace.messages.add(channel_id, message)

    # -- fault injection ---------------------------------------------------------------

    def set_rate_limit(self, *, burst: int | None, per_second: float = DEFAULT_PER_SECOND) -> None:
        """Change chat.postMessage's per-channel limit; `burst=None` disables it."""
        with self._workspace.lock:
            self._dispatcher.limiter.configure(burst=burst, per_second=per_second)

    def fail_next(
        self,
        method: str,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `method` fail.

        `status` defaults to 500, or to 200 (`{"ok": false, "error": error}`) when an
        `error` is given; 429 answers `ratelimited` with `Retry-After` (default 1 s).
        """
        resolved = status if status is not None else (200 if error else 500)
        with self._workspace.lock:
            self._dispatcher.faults.add(method, Fault(resolved, error, retry_after, times))

    def reset(self) -> None:
        """Forget messages, calls, views, files and faults; keep channels, users, groups."""
        with self._workspace.lock:
            self._workspace.reset()
            self._dispatcher.faults.clear()
            self._dispatcher.limiter.reset()

    # -- interactions ------------------------------------------------------------------

    def new_response_url(
        self,
        *,
        channel_id: str | None = None,
        user_id: str | None = None,
        message_ts: str | None = None,
        thread_ts: str | None = None,
    ) -> str:
        """Issue a response_url (5 uses, 30 minutes) tied to an interaction's context."""
        with self._workspace.lock:
            return new_response_url(
                self._workspace,
                self.base_url,
                channel_id=channel_id,
                user_id=user_id,
                message_ts=message_ts,
                thread_ts=thread_ts,
            )

    def issue_trigger_id(self, trigger_id: str | None = None) -> str:
        """Issue a trigger_id valid once for 3 s (or register the one given)."""
        with self._workspace.lock:
            if trigger_id is None:
                return self._workspace.issue_trigger_id()
            self._workspace.register_trigger_id(trigger_id)
            return trigger_id

    # -- records -----------------------------------------------------------------------

    def _read(self, reader: Callable[[Workspace], _T]) -> _T:
        with self._workspace.lock:
            return reader(self._workspace)

    @property
    def calls(self) -> list[ApiCall]:
        """Every Web API call received, in order."""
        return self._read(lambda ws: list(ws.calls))

    def calls_to(self, method: str) -> list[ApiCall]:
        """The calls made to one method, in order."""
        return [call for call in self.calls if call.method == method]

    def channel(self, channel: str) -> Channel:
        """A channel by id or name (raises SlackError `channel_not_found`)."""
        return self._read(lambda ws: ws.resolve_channel(channel))

    def messages(self, channel: str, *, include_replies: bool = False) -> list[dict[str, Any]]:
        """A channel's messages in ts order (top level only unless `include_replies`)."""
        return self._read(
            lambda ws: ws.messages.channel(
                ws.resolve_channel(channel).id, include_replies=include_replies
            )
        )

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """One message by channel and ts, or None."""
        return self._read(
            lambda ws: copy.deepcopy(ws.messages.get(ws.resolve_channel(channel).id, ts))
        )

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """A thread: the root message followed by its replies."""
        return self._read(lambda ws: ws.messages.thread(ws.resolve_channel(channel).id, thread_ts))

    def edits(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """Earlier versions of a message replaced by chat.update or a response_url."""
        return self._read(lambda ws: ws.messages.history(ws.resolve_channel(channel).id, ts))

    def ephemerals(
        self, channel: str | None = None, user: str | None = None
    ) -> list[dict[str, Any]]:
        """Ephemeral messages (chat.postEphemeral and response_url), optionally filtered."""
        return self._read(
            lambda ws: [
                copy.deepcopy(e)
                for e in ws.ephemerals
                if (channel is None or e["channel"] == channel)
                and (user is None or e["user"] == user)
            ]
        )

    def responses(self, url: str | None = None) -> list[dict[str, Any]]:
        """Bodies Slack accepted on response_urls (all of them, or one URL's)."""
        return [p.body for p in self.response_posts(url) if p.accepted]

    def response_posts(self, url: str | None = None) -> list[ResponseUrlPost]:
        """Every POST to response_urls, accepted or refused, with its HTTP status."""
        return self._read(
            lambda ws: [copy.deepcopy(p) for p in ws.response_posts if url is None or p.url == url]
        )

    @property
    def views(self) -> list[dict[str, Any]]:
        """Views opened or pushed, in their current version, in opening order."""
        return self._read(lambda ws: copy.deepcopy(list(ws.views.values())))

    def view(self, view_id: str) -> dict[str, Any] | None:
        """One view by id, or None."""
        return self._read(lambda ws: copy.deepcopy(ws.views.get(view_id)))

    @property
    def files(self) -> list[UploadedFile]:
        """Files reserved or uploaded, with their bytes."""
        return self._read(lambda ws: copy.deepcopy(list(ws.files.values())))

    def user(self, user_id: str) -> User:
        """A workspace member (raises SlackError `user_not_found`)."""
        return self._read(lambda ws: ws.require_user(user_id))

    def usergroup(self, usergroup_id: str) -> list[str]:
        """A user group's members (empty when unknown)."""
        return self._read(lambda ws: list(ws.usergroups.get(usergroup_id, [])))

    # -- waiting -----------------------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[], _T], *, timeout: float = 5.0, interval: float = 0.01
    ) -> _T:
        """Poll until `predicate()` is truthy and return it; TimeoutError otherwise.

        Blocks the calling thread: from a coroutine use `async_wait_for`.
        """
        return poll(predicate, timeout=timeout, interval=interval)

    async def async_wait_for(
        self,
        predicate: Callable[[], _T],
        *,
        # Same signature as wait_for; a polling deadline, not a cancellation scope.
        timeout: float = 5.0,  # noqa: ASYNC109
        interval: float = 0.01,
    ) -> _T:
        """Like `wait_for`, but sleeps with asyncio so the caller's loop keeps running."""
        return await apoll(predicate, deadline_s=timeout, interval=interval)

    # -- Socket Mode -------------------------------------------------------------------

    @property
    def socket_connections(self) -> int:
        """Open Socket Mode connections (each has received `hello`)."""
        return self._hub.connection_count

    @property
    def socket_acks(self) -> list[dict[str, Any]]:
        """Every ack received over Socket Mode, in order."""
        return self._hub.acks

    @property
    def socket_pings_received(self) -> int:
        """Pings the clients sent (each answered with a pong)."""
        return self._hub.pings_received

    def wait_for_socket(self, timeout: float = 5.0, *, count: int = 1) -> int:
        """Block until at least `count` Socket Mode connections are open."""
        return self.wait_for(lambda: self._enough_sockets(count), timeout=timeout)

    def _enough_sockets(self, count: int) -> int:
        connections = self.socket_connections
        return connections if connections >= count else 0

    async def async_wait_for_socket(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 - mirrors wait_for_socket; a polling deadline
        *,
        count: int = 1,
    ) -> int:
        """Await until at least `count` Socket Mode connections are open."""
        return await self.async_wait_for(lambda: self._enough_sockets(count), timeout=timeout)

    def socket_send(
        self,
        envelope_type: EnvelopeType,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Send an envelope to one connection and block until its ack; return the ack.

        Blocks the calling thread: if the bot runs on the caller's event loop, use
        `async_socket_send` instead.
        """
        coro = self._hub.send(
            envelope_type,
            payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            ack_timeout=timeout,
        )
        return self._server.run(coro, timeout + 1.0)

    async def async_socket_send(
        self,
        envelope_type: EnvelopeType,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        # The ack deadline is kept on the emulator's loop, where the ack arrives, so a
        # caller-side asyncio.timeout could not express it.
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Send an envelope to one connection and await its ack; return the ack."""
        return await self._server.arun(
            self._hub.send(
                envelope_type,
                payload,
                retry_attempt=retry_attempt,
                retry_reason=retry_reason,
                ack_timeout=timeout,
            )
        )

    def socket_ping(self, timeout: float = 2.0) -> int:
        """Ping every connection; return how many answered with a pong (blocking)."""
        return self._server.run(self._hub.ping(timeout), timeout * 10)

    async def async_socket_ping(self, pong_timeout: float = 2.0) -> int:
        """Ping every connection; return how many answered with a pong."""
        return await self._server.arun(self._hub.ping(pong_timeout))

    async def async_socket_disconnect(self, reason: str = "refresh_requested") -> int:
        """Ask every connection to reconnect, as Slack does; return how many were asked."""
        return await self._server.arun(self._hub.disconnect(reason))
