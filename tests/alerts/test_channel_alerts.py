"""Alert messages in Slack channels and the "Diagnose this" shortcut, through the bot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.runtime import BotRuntime
from lab.slack import SlackDriver, SlackEmulator, payloads
from tests.alerts.test_webhook import alert_settings
from tests.app.test_commands import all_text

CHANNEL = "C0ALERTS"


def alert_text(status: str) -> dict[str, Any]:
    """An Alertmanager Slack receiver message (the common custom template), one alert."""
    color = "danger" if status == "firing" else "good"
    title = (
        "[FIRING:1] CircuitBreakerOpen (streamhouse high)"
        if status == "firing"
        else "[RESOLVED] CircuitBreakerOpen (streamhouse high)"
    )
    text = (
        "\n*Alert:* S3 circuit breaker open on agent-0 - `high`\n"
        "*Description:* The agent stopped writing to S3.\n"
        "*Details:*\n"
        "  • *alertname:* `CircuitBreakerOpen`\n"
        "  • *namespace:* `streamhouse`\n"
        "  • *pod:* `agent-0`\n"
        "  • *severity:* `high`\n"
    )
    return {"color": color, "title": title, "fallback": title, "text": text}


async def deliver_alert(driver: SlackDriver, slack: SlackEmulator, status: str) -> str:
    """Alertmanager's app posts an alert message in the channel; its ts."""
    stored = slack.add_message(CHANNEL, "", user=None, bot_id="B0ALERTMGR", subtype="bot_message")
    stored["attachments"] = [alert_text(status)]
    event = payloads.message_event(stored, channel_id=CHANNEL, channel_type="channel")
    response = await driver.event(event)
    assert response.status == 200
    return str(stored["ts"])


def replies(slack: SlackEmulator, channel: str, ts: str) -> list[str]:
    """The texts of the replies under a message."""
    return [all_text(reply) for reply in slack.thread(channel, ts)[1:]]


@pytest.fixture
async def channel_bot(
    slack_emulator: SlackEmulator, database_url: str
) -> AsyncIterator[SlackDriver]:
    """A bot that reads alert messages in C0ALERTS, and a driver."""
    slack_emulator.set_rate_limit(burst=None)
    settings = alert_settings(slack_emulator, database_url, bot_alert_channels=CHANNEL)
    async with (
        BotRuntime(settings) as bot,
        SlackDriver(slack_emulator, bot_url=f"{bot.http_url}/slack/events") as driver,
    ):
        yield driver


async def test_an_alert_message_becomes_an_incident_answered_in_its_thread(
    channel_bot: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """The firing message's thread gets the summary (SH-1) and the diagnosis; the later
    resolved message points to SH-1, whose summary then says resolved."""
    firing_ts = await deliver_alert(channel_bot, slack_emulator, "firing")
    await slack_emulator.async_wait_for(
        lambda: any("SH-1" in text for text in replies(slack_emulator, CHANNEL, firing_ts)),
        timeout=20,
    )
    await slack_emulator.async_wait_for(
        lambda: "CB-1" in str(slack_emulator.thread(CHANNEL, firing_ts)), timeout=20
    )
    summary = slack_emulator.thread(CHANNEL, firing_ts)[1]
    assert "S3 circuit breaker open" in all_text(summary)

    resolved_ts = await deliver_alert(channel_bot, slack_emulator, "resolved")
    await slack_emulator.async_wait_for(
        lambda: any("Tracked in SH-1" in t for t in replies(slack_emulator, CHANNEL, resolved_ts)),
        timeout=20,
    )

    def summary_resolved() -> bool:
        message = slack_emulator.message(CHANNEL, summary["ts"]) or {}
        return "Resolved by" in all_text(message)

    await slack_emulator.async_wait_for(summary_resolved, timeout=20)


async def test_messages_people_type_are_left_alone(
    channel_bot: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """A person pasting an alert title opens nothing (the shortcut is for that)."""
    stored, response = await channel_bot.message(CHANNEL, "[FIRING:1] CircuitBreakerOpen")
    assert response.status == 200
    await slack_emulator.async_wait_for(lambda: True)
    assert replies(slack_emulator, CHANNEL, stored["ts"]) == []


async def test_diagnose_this_opens_an_incident_on_any_message(
    channel_bot: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """The shortcut on a person's message: an incident in that message's thread, with the
    triage of every runbook."""
    stored, _ = await channel_bot.message("C0GENERAL", "producers are timing out, help?")
    response = await channel_bot.message_shortcut(
        "diagnose-this", channel_id="C0GENERAL", message_ts=stored["ts"]
    )
    assert response.status == 200
    await slack_emulator.async_wait_for(
        lambda: any("SH-1" in t for t in replies(slack_emulator, "C0GENERAL", stored["ts"])),
        timeout=20,
    )
    await slack_emulator.async_wait_for(
        lambda: "lease-conflicts" in str(slack_emulator.thread("C0GENERAL", stored["ts"])),
        timeout=30,
    )
