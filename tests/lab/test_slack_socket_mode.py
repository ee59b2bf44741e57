"""Socket Mode against the emulator, with real slack_sdk and Bolt clients."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from lab.slack import SlackDriver, SlackEmulator


@dataclass
class Seen:
    """What the Bolt listeners received."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    retry_headers: list[str | None] = field(default_factory=list)


@dataclass
class SocketBot:
    """A Bolt app connected over Socket Mode, and what its listeners saw."""

    handler: AsyncSocketModeHandler
    seen: Seen


def build_app(emulator: SlackEmulator, bot: Seen) -> AsyncApp:
    """A Bolt app with one command listener and one event listener."""
    client = AsyncWebClient(token=emulator.bot_token, base_url=emulator.api_url)
    app = AsyncApp(client=client, signing_secret=emulator.signing_secret)

    @app.command("/streamhouse")
    async def on_streamhouse(ack: AsyncAck, command: dict[str, Any]) -> None:
        bot.commands.append(command)
        await ack(text=f"Running `{command['text']}`…")

    @app.event("app_mention")
    async def on_mention(request: AsyncBoltRequest) -> None:
        retry = request.headers.get("x-slack-retry-num")
        bot.retry_headers.append(retry[0] if retry else None)

    return app


@pytest.fixture
async def socket_bot(slack_emulator: SlackEmulator) -> AsyncIterator[SocketBot]:
    """A Bolt AsyncApp connected to the emulator through AsyncSocketModeHandler."""
    seen = Seen()
    web_client = AsyncWebClient(token=slack_emulator.bot_token, base_url=slack_emulator.api_url)
    handler = AsyncSocketModeHandler(
        build_app(slack_emulator, seen),
        slack_emulator.app_token,
        web_client=web_client,
        ping_interval=0.2,
    )
    # Bolt leaves connect_async/close_async unannotated.
    await handler.connect_async()  # type: ignore[no-untyped-call]
    await slack_emulator.async_wait_for_socket()
    yield SocketBot(handler, seen)
    await handler.close_async()  # type: ignore[no-untyped-call]


async def test_slash_command_reaches_bolt_listener_and_ack_returns(
    slack_emulator: SlackEmulator, socket_bot: SocketBot
) -> None:
    """A slash_commands envelope reaches @app.command and the ack payload comes back."""
    async with SlackDriver(slack_emulator) as driver:
        response = await driver.command("diagnose all", via="socket")
    assert response.json() == {"text": "Running `diagnose all`…"}
    assert response.ack is not None
    assert response.ack["envelope_id"] == slack_emulator.socket_acks[-1]["envelope_id"]
    [command] = socket_bot.seen.commands
    assert (command["user_id"], command["channel_name"]) == ("U0ALICE", "general")
    assert command["response_url"] == response.response_url


async def test_socket_send_returns_the_ack(
    slack_emulator: SlackEmulator, socket_bot: SocketBot
) -> None:
    """async_socket_send delivers a raw envelope and returns the ack message."""
    payload = {
        "command": "/streamhouse",
        "text": "help",
        "user_id": "U0BOB",
        "channel_id": "C0GENERAL",
        "team_id": slack_emulator.team_id,
    }
    ack = await slack_emulator.async_socket_send("slash_commands", payload)
    assert ack["payload"] == {"text": "Running `help`…"}


async def test_events_api_retries_reach_bolt_as_retry_headers(
    slack_emulator: SlackEmulator, socket_bot: SocketBot
) -> None:
    """Events carry retry_attempt, which Bolt exposes as x-slack-retry-num."""
    event = {
        "type": "app_mention",
        "user": "U0ALICE",
        "text": "<@U0BOT> hi",
        "channel": "C0GENERAL",
        "ts": "1700000000.000100",
    }
    async with SlackDriver(slack_emulator) as driver:
        await driver.event(event, via="socket")
        await driver.event(event, retry_num=1, retry_reason="timeout", via="socket")
    await slack_emulator.async_wait_for(lambda: len(socket_bot.seen.retry_headers) == 2)
    assert socket_bot.seen.retry_headers == ["0", "1"]


async def test_pings_are_answered_both_ways(
    slack_emulator: SlackEmulator, socket_bot: SocketBot
) -> None:
    """The emulator pongs the SDK's pings and the SDK pongs the emulator's."""
    client = socket_bot.handler.client
    await slack_emulator.async_wait_for(lambda: client.last_ping_pong_time)
    assert slack_emulator.socket_pings_received >= 1
    assert await slack_emulator.async_socket_ping() == 1


async def test_disconnect_makes_the_client_reconnect(
    slack_emulator: SlackEmulator, socket_bot: SocketBot
) -> None:
    """After Slack's `disconnect` message the SDK opens a fresh connection."""
    opened = len(slack_emulator.calls_to("apps.connections.open"))
    assert await slack_emulator.async_socket_disconnect() == 1
    await slack_emulator.async_wait_for(
        lambda: len(slack_emulator.calls_to("apps.connections.open")) > opened
    )
    await slack_emulator.async_wait_for_socket()
    async with SlackDriver(slack_emulator) as driver:
        response = await driver.command("status", via="socket")
    assert response.json() == {"text": "Running `status`…"}


async def open_socket(
    emulator: SlackEmulator, session: aiohttp.ClientSession
) -> aiohttp.ClientWebSocketResponse:
    """Open a raw WebSocket the way the SDK does (apps.connections.open, then connect)."""
    app_client = AsyncWebClient(token=emulator.app_token, base_url=emulator.api_url)
    url = (await app_client.apps_connections_open(app_token=emulator.app_token))["url"]
    return await session.ws_connect(url)


async def test_hello_is_sent_like_slack(slack_emulator: SlackEmulator) -> None:
    """The first message on a new connection is Slack's `hello`."""
    async with aiohttp.ClientSession() as session:
        ws = await open_socket(slack_emulator, session)
        hello = await ws.receive_json(timeout=2)
        await ws.close()
    assert hello["type"] == "hello"
    assert hello["num_connections"] == 1
    assert hello["connection_info"] == {"app_id": slack_emulator.app_id}
    assert "approximate_connection_time" in hello["debug_info"]


async def test_envelope_without_ack_times_out(slack_emulator: SlackEmulator) -> None:
    """An envelope nobody acks raises TimeoutError after its timeout."""
    async with aiohttp.ClientSession() as session:
        ws = await open_socket(slack_emulator, session)
        await slack_emulator.async_wait_for_socket()
        with pytest.raises(TimeoutError):
            await slack_emulator.async_socket_send("events_api", {"type": "x"}, timeout=0.1)
        envelope = await ws.receive_json(timeout=2)  # the hello
        envelope = await ws.receive_json(timeout=2)
        await ws.close()
    assert envelope["type"] == "events_api"
    assert (envelope["retry_attempt"], envelope["retry_reason"]) == (0, "")
    assert envelope["accepts_response_payload"] is False


async def test_unknown_ticket_and_no_connection_are_refused(
    slack_emulator: SlackEmulator,
) -> None:
    """A made-up ticket cannot connect, and sending with no connection fails fast."""
    url = slack_emulator.base_url + "/socket-mode?ticket=made-up"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 401
    with pytest.raises(ConnectionError):
        await slack_emulator.async_socket_send("events_api", {"type": "x"})


def test_blocking_socket_send_works_from_a_plain_thread(slack_emulator: SlackEmulator) -> None:
    """socket_send blocks the test thread until a client on another loop acks."""
    acked = threading.Event()

    async def client() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await open_socket(slack_emulator, session)
            await ws.receive_json(timeout=5)  # hello
            envelope = await ws.receive_json(timeout=5)
            await ws.send_json(
                {"envelope_id": envelope["envelope_id"], "payload": {"text": "pong"}}
            )
            acked.set()
            await ws.close()

    thread = threading.Thread(target=asyncio.run, args=(client(),))
    thread.start()
    try:
        assert slack_emulator.wait_for_socket(timeout=5) == 1
        ack = slack_emulator.socket_send("slash_commands", {"text": "ping"})
    finally:
        thread.join(timeout=5)
    assert ack["payload"] == {"text": "pong"}
    assert acked.is_set()
