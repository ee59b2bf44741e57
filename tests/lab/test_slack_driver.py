"""SlackDriver: signed HTTP requests and payloads a real Bolt app accepts as Slack's."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from lab.slack import SlackDriver, SlackEmulator

APPROVE_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Reset leases?"}},
    {
        "type": "actions",
        "block_id": "approval",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "value": "req-1",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
            },
        ],
    },
]


@dataclass
class Seen:
    """Bodies and headers the Bolt listeners received."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    retry_nums: list[str | None] = field(default_factory=list)


def build_app(emulator: SlackEmulator, seen: Seen) -> AsyncApp:
    """A Bolt app verifying Slack signatures with the emulator's signing secret."""
    client = AsyncWebClient(token=emulator.bot_token, base_url=emulator.api_url)
    app = AsyncApp(client=client, signing_secret=emulator.signing_secret)

    @app.command("/streamhouse")
    async def on_command(ack: AsyncAck, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        seen.bodies.append(body)
        retry = request.headers.get("x-slack-retry-num")
        seen.retry_nums.append(retry[0] if retry else None)
        await ack(text="ok")

    @app.action("approve")
    async def on_approve(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        seen.bodies.append(body)
        await ack()
        await respond(text="Approved", replace_original=True)

    @app.view("reason-modal")
    async def on_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        seen.bodies.append(body)
        await ack(response_action="errors", errors={"reason": "Too short"})

    @app.event("message")
    async def on_message(body: dict[str, Any]) -> None:
        seen.bodies.append(body)

    return app


@pytest.fixture
async def http_bot(slack_emulator: SlackEmulator) -> AsyncIterator[tuple[SlackDriver, Seen]]:
    """A Bolt app served over HTTP on a free port, and a driver pointed at it."""
    seen = Seen()
    runner = web.AppRunner(build_app(slack_emulator, seen).web_app())
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/slack/events"
    async with SlackDriver(slack_emulator, bot_url=url) as driver:
        yield driver, seen
    await runner.cleanup()


def test_signed_headers_verify_with_slack_sdk(slack_emulator: SlackEmulator) -> None:
    """Driver signatures pass SignatureVerifier.is_valid with the signing secret."""
    driver = SlackDriver(slack_emulator, bot_url="http://127.0.0.1:9/slack/events")
    body = b"token=x&command=%2Fstreamhouse&text=help"
    headers = driver.signed_headers(body)
    verifier = SignatureVerifier(slack_emulator.signing_secret)
    assert verifier.is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    assert not verifier.is_valid(
        body + b"x", headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    stale = driver.signed_headers(body, timestamp=int(time.time()) - 301)
    assert not verifier.is_valid(
        body, stale["X-Slack-Request-Timestamp"], stale["X-Slack-Signature"]
    )


async def test_command_over_http_is_accepted_by_bolt(
    http_bot: tuple[SlackDriver, Seen],
) -> None:
    """A signed slash command carries every field Slack sends and Bolt acks it."""
    driver, seen = http_bot
    response = await driver.command("diagnose all", user_id="U0BOB", channel_id="C0ALERTS")
    # Bolt answers a text-only ack over HTTP as a plain-text body.
    assert (response.status, response.text, response.json()) == (200, "ok", None)
    [body] = seen.bodies
    assert body["response_url"] == response.response_url
    assert body["trigger_id"] == response.trigger_id
    expected = {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    }
    assert expected <= body.keys()
    assert (body["user_name"], body["channel_name"]) == ("bob", "alerts")


async def test_retry_headers_reach_bolt(http_bot: tuple[SlackDriver, Seen]) -> None:
    """retry_num adds X-Slack-Retry-Num, which Bolt exposes; first tries have none."""
    driver, seen = http_bot
    await driver.command("ping")
    await driver.command("ping", retry_num=1, retry_reason="http_timeout")
    assert seen.retry_nums == [None, "1"]


async def test_trigger_ids_are_unique_and_usable(
    slack_emulator: SlackEmulator, http_bot: tuple[SlackDriver, Seen]
) -> None:
    """Each command gets a fresh trigger_id the emulator accepts for views.open."""
    driver, _ = http_bot
    first, second = await driver.command("a"), await driver.command("b")
    assert first.trigger_id != second.trigger_id
    client = AsyncWebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url)
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Why"},
        "blocks": [{"type": "divider"}],
    }
    assert (await client.views_open(trigger_id=first.trigger_id, view=view))["ok"]


async def test_bad_signature_is_refused_by_bolt(http_bot: tuple[SlackDriver, Seen]) -> None:
    """raw() lets a test send a tampered body; Bolt answers 401."""
    driver, seen = http_bot
    body = b"command=%2Fstreamhouse&text=help"
    headers = {
        **driver.signed_headers(b"something else"),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    response = await driver.raw(body, headers)
    assert response.status == 401
    assert seen.bodies == []


async def test_block_action_payload_matches_the_posted_message(
    slack_emulator: SlackEmulator, http_bot: tuple[SlackDriver, Seen]
) -> None:
    """A click carries the stored message, its block_id, and a working response_url."""
    driver, seen = http_bot
    client = AsyncWebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url)
    posted = await client.chat_postMessage(channel="C0ALERTS", text="Reset?", blocks=APPROVE_BLOCKS)
    response = await driver.block_action(
        "approve", "req-1", user_id="U0CAROL", channel_id="C0ALERTS", message_ts=posted["ts"]
    )
    assert response.status == 200
    [body] = seen.bodies
    assert body["type"] == "block_actions"
    assert body["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C0ALERTS",
        "is_ephemeral": False,
    }
    [action] = body["actions"]
    assert (action["block_id"], action["value"], action["style"]) == (
        "approval",
        "req-1",
        "primary",
    )
    assert body["message"]["ts"] == posted["ts"]
    await slack_emulator.async_wait_for(lambda: slack_emulator.responses(response.response_url))
    message = slack_emulator.message("C0ALERTS", posted["ts"])
    assert message is not None
    assert message["text"] == "Approved"


async def test_block_action_body_is_a_form_with_a_payload_field(
    slack_emulator: SlackEmulator,
) -> None:
    """Interactions are form-encoded with one JSON `payload` field, as Slack sends them."""
    captured: list[bytes] = []

    async def capture(request: web.Request) -> web.Response:
        captured.append(await request.read())
        return web.Response()

    app = web.Application()
    app.router.add_post("/slack/events", capture)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/slack/events"
    try:
        async with SlackDriver(slack_emulator, bot_url=url) as driver:
            await driver.block_action(
                "approve",
                "req-9",
                user_id="U0BOB",
                channel_id="C0GENERAL",
                message_ts="1700000000.000100",
            )
    finally:
        await runner.cleanup()
    payload = json.loads(parse_qs(captured[0].decode())["payload"][0])
    assert payload["actions"][0]["block_id"] == "b"
    assert payload["user"]["username"] == "bob"


async def test_view_submission_returns_response_action(
    slack_emulator: SlackEmulator, http_bot: tuple[SlackDriver, Seen]
) -> None:
    """A submission carries state values; the bot's errors come back in json()."""
    driver, seen = http_bot
    state = {"reason": {"text": {"type": "plain_text_input", "value": "x"}}}
    response = await driver.view_submission("reason-modal", state, private_metadata="req-1")
    assert response.json() == {"response_action": "errors", "errors": {"reason": "Too short"}}
    view = seen.bodies[0]["view"]
    assert (view["state"]["values"], view["private_metadata"]) == (state, "req-1")


async def test_message_event_is_seeded_and_delivered(
    slack_emulator: SlackEmulator, http_bot: tuple[SlackDriver, Seen]
) -> None:
    """driver.message stores the message and delivers an event_callback envelope."""
    driver, seen = http_bot
    stored, response = await driver.message("C0ALERTS", "[FIRING] LeaseConflicts")
    assert response.status == 200
    await slack_emulator.async_wait_for(lambda: seen.bodies)
    envelope = seen.bodies[0]
    assert envelope["type"] == "event_callback"
    assert envelope["event"]["ts"] == stored["ts"]
    assert envelope["event_id"].startswith("Ev")
    assert envelope["authorizations"][0]["user_id"] == "U0BOT"
    assert [m["text"] for m in slack_emulator.messages("C0ALERTS")] == ["[FIRING] LeaseConflicts"]


async def test_url_verification_is_answered(http_bot: tuple[SlackDriver, Seen]) -> None:
    """Bolt answers Slack's url_verification handshake with the challenge."""
    driver, _ = http_bot
    response = await driver.url_verification("c-123")
    assert response.json() == {"challenge": "c-123"}
