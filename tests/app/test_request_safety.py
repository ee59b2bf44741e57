"""What reaches `POST /slack/events` that Slack did not send, or sent twice."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import aiohttp

from bot.runtime import BotRuntime
from lab.slack import SlackDriver, SlackEmulator


def command_body(text: str, response_url: str, trigger_id: str = "1337.42.abc") -> bytes:
    """A form body shaped like Slack's slash command payload."""
    return urlencode(
        {
            "command": "/streamhouse",
            "text": text,
            "user_id": "U0ALICE",
            "channel_id": "C0GENERAL",
            "team_id": "T0EMULATOR",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    ).encode()


def listener_runs(bot: BotRuntime) -> float:
    """How many requests reached the listener chain (any outcome)."""
    total = 0.0
    for metric in bot.deps.metrics.requests.collect():
        total += sum(sample.value for sample in metric.samples if sample.name.endswith("_total"))
    return total


async def test_bad_signature_is_refused_and_runs_nothing(
    bot: BotRuntime, driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """A request signed with the wrong secret gets 401 and no listener runs."""
    url = slack_emulator.new_response_url()
    body = command_body("ping", url)
    headers = driver.signed_headers(body)
    headers["X-Slack-Signature"] = "v0=" + "0" * 64
    response = await driver.raw(body, headers)
    assert response.status == 401
    assert listener_runs(bot) == 0
    assert slack_emulator.responses(url) == []


async def test_missing_signature_is_refused(
    bot: BotRuntime, driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """A request without Slack's signature headers gets 401."""
    body = command_body("help", slack_emulator.new_response_url())
    response = await driver.raw(body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 401
    assert listener_runs(bot) == 0


async def test_stale_timestamp_is_refused(
    bot: BotRuntime, driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """A correctly signed request older than five minutes (a replay) gets 401."""
    body = command_body("help", slack_emulator.new_response_url())
    headers = driver.signed_headers(body, timestamp=int(time.time()) - 6 * 60)
    response = await driver.raw(body, headers)
    assert response.status == 401
    assert listener_runs(bot) == 0


async def test_slack_retry_of_a_handled_command_runs_once(
    bot: BotRuntime, driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """Slack re-sending a delivery (same trigger id, X-Slack-Retry-Num) runs nothing twice."""
    first = await driver.command("ping", trigger_id="trigger-retry-1")
    await slack_emulator.async_wait_for(lambda: slack_emulator.responses(first.response_url))
    retry = await driver.command(
        "ping", trigger_id="trigger-retry-1", retry_num=1, retry_reason="http_timeout"
    )
    assert retry.status == 200
    other = await driver.command("ping", trigger_id="trigger-retry-2")
    await slack_emulator.async_wait_for(lambda: slack_emulator.responses(other.response_url))
    assert slack_emulator.responses(retry.response_url) == []
    assert len(slack_emulator.responses(first.response_url)) == 1


async def test_slack_retry_of_an_event_runs_once(
    bot: BotRuntime, driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """An Events API retry with the same event id is acknowledged without answering again."""
    event = {
        "type": "app_mention",
        "user": "U0ALICE",
        "text": "<@U0BOT> hi",
        "channel": "C0GENERAL",
        "ts": "1700000000.000100",
    }
    first = await driver.event(event, event_id="Ev0RETRY1")
    assert first.status == 200
    await slack_emulator.async_wait_for(lambda: slack_emulator.calls_to("chat.postMessage"))
    retry = await driver.event(
        event, event_id="Ev0RETRY1", retry_num=1, retry_reason="http_timeout"
    )
    assert retry.status == 200
    fresh = await driver.event({**event, "ts": "1700000001.000100"}, event_id="Ev0RETRY2")
    assert fresh.status == 200
    await slack_emulator.async_wait_for(
        lambda: len(slack_emulator.calls_to("chat.postMessage")) >= 2
    )
    assert len(slack_emulator.calls_to("chat.postMessage")) == 2


async def test_a_megabyte_of_junk_is_refused_and_the_bot_stays_healthy(
    bot: BotRuntime, driver: SlackDriver
) -> None:
    """1 MB of junk gets a 4xx; afterwards the bot still answers."""
    junk = b"junk&=%" * (1024 * 1024 // 7)
    response = await driver.raw(junk, driver.signed_headers(junk))
    assert 400 <= response.status < 500
    binary = bytes(range(256)) * 40
    response = await driver.raw(binary, {"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= response.status < 500
    assert (await driver.command("help")).status == 200
    async with aiohttp.ClientSession() as session, session.get(f"{bot.http_url}/healthz") as health:
        assert health.status == 200


async def test_malformed_payloads_get_4xx(bot: BotRuntime, driver: SlackDriver) -> None:
    """Signed but malformed bodies (bad JSON, wrong shapes) are refused with a 4xx, not a 500."""
    bodies = [
        b"payload=%7Bnot-json",
        b"payload=%5B1%2C2%5D",
        json.dumps({"type": "event_callback"}).encode(),
        b'{"type": ',
        b"",
    ]
    for body in bodies:
        response = await driver.raw(body, driver.signed_headers(body))
        assert 400 <= response.status < 500, (body, response.status, response.text)
    assert (await driver.command("help")).status == 200


async def test_a_retry_reaching_another_replica_runs_once(
    slack_emulator: SlackEmulator, database_url: str
) -> None:
    """Two bots on one database: a retry delivered to the second replica is not run again."""
    from tests.fixtures.bot import make_settings

    settings = make_settings(slack_emulator, database_url)
    async with BotRuntime(settings) as first_bot, BotRuntime(settings) as second_bot:
        async with SlackDriver(slack_emulator, bot_url=f"{first_bot.http_url}/slack/events") as one:
            first = await one.command("ping", trigger_id="trigger-replica-1")
        await slack_emulator.async_wait_for(lambda: slack_emulator.responses(first.response_url))
        await first_bot.deps.deliveries.flush()
        async with SlackDriver(
            slack_emulator, bot_url=f"{second_bot.http_url}/slack/events"
        ) as two:
            retry = await two.command("ping", trigger_id="trigger-replica-1", retry_num=1)
            fresh = await two.command("ping", trigger_id="trigger-replica-2", retry_num=1)
        assert retry.status == 200
        await slack_emulator.async_wait_for(lambda: slack_emulator.responses(fresh.response_url))
        assert slack_emulator.responses(retry.response_url) == []
