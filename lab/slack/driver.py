"""SlackDriver: sends a bot exactly what Slack sends, over HTTP or Socket Mode.

HTTP requests are signed like Slack's (`X-Slack-Signature`, `X-Slack-Request-Timestamp`)
and posted to the bot's `/slack/events`; Socket Mode envelopes go through the emulator
to a connected client. Interactions get fresh response_urls and trigger_ids from the
emulator, so whatever the bot does with them is recorded there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
from slack_sdk.signature import SignatureVerifier

from lab.slack import payloads
from lab.slack.emulator import SlackEmulator
from lab.slack.payloads import Actor, Team

Via = Literal["http", "socket"]
SLACK_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class DriverResponse:
    """How the bot answered: its HTTP response, or its Socket Mode ack."""

    status: int
    headers: Mapping[str, str]
    text: str
    elapsed: float
    response_url: str | None = None
    trigger_id: str | None = None
    ack: dict[str, Any] | None = field(default=None)

    def json(self) -> Any:
        """The body (or ack payload) decoded as JSON; None when it is not JSON."""
        if self.ack is not None:
            return self.ack.get("payload")
        try:
            return json.loads(self.text)
        except ValueError:
            return None


class SlackDriver:
    """Plays Slack's side towards the bot under test."""

    def __init__(
        self,
        emulator: SlackEmulator,
        *,
        bot_url: str | None = None,
        signing_secret: str | None = None,
    ) -> None:
        self.emulator = emulator
        self.bot_url = bot_url
        self._verifier = SignatureVerifier(signing_secret or emulator.signing_secret)
        self._session: aiohttp.ClientSession | None = None
        self.team = Team(
            emulator.team_id,
            emulator.team_domain,
            emulator.app_id,
            emulator.bot_user_id,
            emulator.verification_token,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- signing and transport ---------------------------------------------------------

    def signed_headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Slack's signature headers for `body` (now, unless `timestamp` is given)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._verifier.generate_signature(timestamp=ts, body=body) or ""
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}

    async def raw(self, body: bytes, headers: Mapping[str, str]) -> DriverResponse:
        """POST arbitrary bytes and headers to the bot (for junk and bad signatures)."""
        if self.bot_url is None:
            raise ValueError("SlackDriver needs bot_url to talk HTTP")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        started = time.perf_counter()
        async with self._session.post(self.bot_url, data=body, headers=dict(headers)) as resp:
            text = await resp.text()
            return DriverResponse(
                resp.status, dict(resp.headers), text, time.perf_counter() - started
            )

    async def _post(
        self,
        body: bytes,
        content_type: str,
        *,
        retry_num: int | None,
        retry_reason: str | None,
        timestamp: int | None = None,
    ) -> DriverResponse:
        headers = {
            "Content-Type": content_type,
            "User-Agent": SLACK_USER_AGENT,
            **self.signed_headers(body, timestamp),
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        return await self.raw(body, headers)

    async def _envelope(
        self,
        envelope_type: str,
        payload: dict[str, Any],
        *,
        retry_num: int | None,
        retry_reason: str | None,
    ) -> DriverResponse:
        started = time.perf_counter()
        ack = await self.emulator.async_socket_send(
            envelope_type,
            payload,
            retry_attempt=retry_num or 0,
            retry_reason=retry_reason or ("http_timeout" if retry_num else ""),
        )
        ack_payload = ack.get("payload")
        text = json.dumps(ack_payload) if ack_payload is not None else ""
        return DriverResponse(200, {}, text, time.perf_counter() - started, ack=ack)

    def _actor(self, user_id: str, channel_id: str) -> Actor:
        try:
            user_name = self.emulator.user(user_id).name
        except Exception:  # an unknown user still clicks: Slack's name is then unknown
            user_name = user_id.lower()
        try:
            channel_name = self.emulator.channel(channel_id).name
        except Exception:  # an unknown channel still sends: keep the id as its name
            channel_name = channel_id
        return Actor(user_id, user_name, channel_id, channel_name)

    # -- what Slack sends --------------------------------------------------------------

    async def command(
        self,
        text: str,
        *,
        command: str = "/streamhouse",
        user_id: str = "U0ALICE",
        channel_id: str = "C0GENERAL",
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timestamp: int | None = None,
        trigger_id: str | None = None,
        via: Via = "http",
    ) -> DriverResponse:
        """Invoke a slash command as `user_id` in `channel_id`."""
        trigger = self.emulator.issue_trigger_id(trigger_id)
        response_url = self.emulator.new_response_url(channel_id=channel_id, user_id=user_id)
        fields = payloads.slash_command(
            self.team,
            self._actor(user_id, channel_id),
            command=command,
            text=text,
            response_url=response_url,
            trigger_id=trigger,
        )
        if via == "socket":
            result = await self._envelope(
                "slash_commands", dict(fields), retry_num=retry_num, retry_reason=retry_reason
            )
        else:
            result = await self._post(
                payloads.form_body(fields),
                FORM,
                retry_num=retry_num,
                retry_reason=retry_reason,
                timestamp=timestamp,
            )
        return _with_context(result, response_url, trigger)

    async def block_action(
        self,
        action_id: str,
        value: str,
        *,
        user_id: str,
        channel_id: str,
        message_ts: str,
        block_id: str | None = None,
        trigger_id: str | None = None,
        retry_num: int | None = None,
        via: Via = "http",
    ) -> DriverResponse:
        """Click the element `action_id` on a message (found in the emulator if posted).

        The element, its type and its block_id are read from the stored message, so the
        payload carries what Slack would; `block_id` defaults to the element's block.
        """
        message = self.emulator.message(channel_id, message_ts) or {
            "type": "message",
            "ts": message_ts,
            "text": "",
        }
        found_block_id, element = _find_element(message, action_id)
        trigger = self.emulator.issue_trigger_id(trigger_id)
        response_url = self._response_url(message, channel_id, user_id)
        action = payloads.action_object(
            element, action_id=action_id, block_id=block_id or found_block_id or "b", value=value
        )
        payload = payloads.block_actions(
            self.team,
            self._actor(user_id, channel_id),
            message=message,
            action=action,
            response_url=response_url,
            trigger_id=trigger,
        )
        result = await self._interactive(payload, retry_num=retry_num, via=via)
        return _with_context(result, response_url, trigger)

    async def message_shortcut(
        self,
        callback_id: str,
        *,
        channel_id: str,
        message_ts: str,
        user_id: str = "U0ALICE",
        via: Via = "http",
    ) -> DriverResponse:
        """Choose the message shortcut ``callback_id`` on a stored message."""
        message = self.emulator.message(channel_id, message_ts)
        if message is None:
            raise ValueError(f"no message {message_ts} in {channel_id}")
        trigger = self.emulator.issue_trigger_id()
        response_url = self._response_url(message, channel_id, user_id)
        payload = payloads.message_action(
            self.team,
            self._actor(user_id, channel_id),
            callback_id=callback_id,
            message=message,
            response_url=response_url,
            trigger_id=trigger,
        )
        result = await self._interactive(payload, retry_num=None, via=via)
        return _with_context(result, response_url, trigger)

    def _response_url(self, message: dict[str, Any], channel_id: str, user_id: str) -> str:
        """A response URL for an interaction on ``message`` (in its thread, if any)."""
        return self.emulator.new_response_url(
            channel_id=channel_id,
            user_id=user_id,
            message_ts=str(message["ts"]),
            thread_ts=message.get("thread_ts"),
        )

    async def view_submission(
        self,
        callback_id: str,
        state_values: dict[str, Any],
        *,
        private_metadata: str | None = None,
        user_id: str = "U0ALICE",
        view_id: str | None = None,
        via: Via = "http",
    ) -> DriverResponse:
        """Submit a modal: the stored view `view_id` if given, else a minimal modal."""
        view = (self.emulator.view(view_id) if view_id else None) or _minimal_view(
            view_id or "V0SUBMITTED", self.team
        )
        view["callback_id"] = callback_id
        view["state"] = {"values": state_values}
        if private_metadata is not None:
            view["private_metadata"] = private_metadata
        trigger = self.emulator.issue_trigger_id()
        payload = payloads.view_submission(
            self.team, self._actor(user_id, ""), view=view, trigger_id=trigger
        )
        result = await self._interactive(payload, retry_num=None, via=via)
        return _with_context(result, None, trigger)

    async def _interactive(
        self, payload: dict[str, Any], *, retry_num: int | None, via: Via
    ) -> DriverResponse:
        if via == "socket":
            return await self._envelope(
                "interactive", payload, retry_num=retry_num, retry_reason=None
            )
        body = payloads.interactive_body(payload)
        return await self._post(body, FORM, retry_num=retry_num, retry_reason=None)

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        via: Via = "http",
    ) -> DriverResponse:
        """Deliver an Events API event wrapped in an `event_callback` envelope."""
        envelope = payloads.event_callback(self.team, event, event_id=event_id)
        if via == "socket":
            return await self._envelope(
                "events_api", envelope, retry_num=retry_num, retry_reason=retry_reason
            )
        body = json.dumps(envelope).encode()
        return await self._post(
            body, "application/json", retry_num=retry_num, retry_reason=retry_reason
        )

    async def message(
        self,
        channel_id: str,
        text: str,
        *,
        user_id: str | None = "U0ALICE",
        bot_id: str | None = None,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
        via: Via = "http",
    ) -> tuple[dict[str, Any], DriverResponse]:
        """Post a message as a person (or another app) and deliver its `message` event."""
        stored = self.emulator.add_message(
            channel_id,
            text,
            user=None if bot_id else user_id,
            blocks=blocks,
            thread_ts=thread_ts,
            bot_id=bot_id,
            subtype="bot_message" if bot_id else None,
        )
        channel = self.emulator.channel(channel_id)
        channel_type = "im" if channel.is_im else "group" if channel.is_private else "channel"
        event = payloads.message_event(stored, channel_id=channel.id, channel_type=channel_type)
        return stored, await self.event(event, via=via)

    async def url_verification(self, challenge: str = "emulator-challenge") -> DriverResponse:
        """Send the Events API URL verification handshake."""
        body = json.dumps(
            {
                "token": self.team.verification_token,
                "challenge": challenge,
                "type": "url_verification",
            }
        ).encode()
        return await self._post(body, "application/json", retry_num=None, retry_reason=None)


def _with_context(
    result: DriverResponse, response_url: str | None, trigger_id: str | None
) -> DriverResponse:
    return DriverResponse(
        result.status,
        result.headers,
        result.text,
        result.elapsed,
        response_url,
        trigger_id,
        result.ack,
    )


def _find_element(
    message: dict[str, Any], action_id: str
) -> tuple[str | None, dict[str, Any] | None]:
    """The block_id and element carrying `action_id` in a message's blocks."""
    for block in message.get("blocks") or []:
        candidates = list(block.get("elements") or [])
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                candidates.append(block[key])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block.get("block_id"), element
    return None, None


def _minimal_view(view_id: str, team: Team) -> dict[str, Any]:
    return {
        "id": view_id,
        "team_id": team.team_id,
        "type": "modal",
        "blocks": [],
        "private_metadata": "",
        "callback_id": "",
        "hash": f"{int(time.time())}.emulator",
        "title": {"type": "plain_text", "text": "Modal"},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": {"type": "plain_text", "text": "Submit"},
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": team.app_id,
        "external_id": "",
        "app_installed_team_id": team.team_id,
        "bot_id": None,
    }
