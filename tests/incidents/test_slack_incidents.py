"""Incidents through the Slack emulator: `diagnose` opens one, `incident …` moves it.

Prometheus points at a closed port, so every check is `unknown` (no data is never ok) and
the diagnosis opens an incident without a lab.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.runtime import BotRuntime
from lab.slack import SlackDriver, SlackEmulator, check_message
from tests.app.test_commands import all_text
from tests.fixtures.bot import make_settings

CHANNEL = "C0GENERAL"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def failing_driver(
    slack_emulator: SlackEmulator, database_url: str
) -> AsyncIterator[SlackDriver]:
    """A bot whose Prometheus cannot be reached, and a driver to talk to it."""
    slack_emulator.set_rate_limit(burst=None)
    settings = make_settings(
        slack_emulator, database_url, prometheus_url=f"http://127.0.0.1:{closed_port()}"
    )
    async with (
        BotRuntime(settings) as bot,
        SlackDriver(slack_emulator, bot_url=f"{bot.http_url}/slack/events") as driver,
    ):
        yield driver


async def open_incident(driver: SlackDriver, slack: SlackEmulator) -> dict[str, Any]:
    """Run `diagnose leases` and return the root message once it shows SH-1."""
    await driver.command("diagnose leases")

    def root() -> dict[str, Any] | None:
        messages = slack.messages(CHANNEL)
        return messages[0] if messages and "SH-1" in all_text(messages[0]) else None

    return await slack.async_wait_for(root, timeout=20)


async def private_answer(driver: SlackDriver, slack: SlackEmulator, text: str) -> str:
    """Run a non-instant subcommand and return the text of its ephemeral answer."""
    response = await driver.command(text)
    posts = await slack.async_wait_for(lambda: slack.responses(response.response_url))
    assert posts[0]["response_type"] == "ephemeral"
    return all_text(posts[0])


def thread_replies(slack: SlackEmulator, root_ts: str) -> list[str]:
    """The texts of the replies in the incident's thread, in order."""
    return [all_text(reply) for reply in slack.thread(CHANNEL, root_ts)[1:]]


async def test_failing_diagnosis_opens_an_incident_with_its_thread(
    failing_driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """One channel message, the root of SH-1; the live diagnosis is a reply in its thread."""
    root = await open_incident(failing_driver, slack_emulator)
    assert len(slack_emulator.messages(CHANNEL)) == 1
    text = all_text(root)
    assert "SH-1: Partition lease conflicts" in text
    assert "Open" in text
    assert "unknown" in text
    assert "<@U0ALICE>" in text
    assert check_message(text=root["text"], blocks=root["blocks"]) is None
    diagnosis = slack_emulator.thread(CHANNEL, root["ts"])[1]
    assert "UNKNOWN" in str(diagnosis["blocks"][0])
    assert "checking…" in str(slack_emulator.edits(CHANNEL, diagnosis["ts"])[0])


async def test_ack_and_resolve_update_the_same_root_message(
    failing_driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """`ack` and `resolve` answer privately and edit the root in place; audit reaches it."""
    root = await open_incident(failing_driver, slack_emulator)
    ts = root["ts"]
    versions_before = len(slack_emulator.edits(CHANNEL, ts))

    answer = await private_answer(failing_driver, slack_emulator, "incident ack sh-1")
    assert "SH-1 is now acknowledged" in answer
    acked = slack_emulator.message(CHANNEL, ts)
    assert acked is not None
    assert "Acknowledged by <@U0ALICE>" in all_text(acked)

    answer = await private_answer(
        failing_driver, slack_emulator, "incident resolve SH-1 fixed it <!channel>"
    )
    assert "resolved" in answer
    resolved = slack_emulator.message(CHANNEL, ts)
    assert resolved is not None
    assert "Resolved by <@U0ALICE>" in all_text(resolved)
    assert "fixed it &lt;!channel&gt;" in all_text(resolved)
    assert "<!channel>" not in all_text(resolved)
    assert len(slack_emulator.edits(CHANNEL, ts)) == versions_before + 2
    assert len(slack_emulator.messages(CHANNEL)) == 1

    expected = ["incident.opened", "diagnosis", "incident.acknowledged", "incident.resolved"]

    def audited() -> list[str] | None:
        lines = [line for line in thread_replies(slack_emulator, ts) if line.startswith("#")]
        return lines if len(lines) >= len(expected) else None

    lines = await slack_emulator.async_wait_for(audited, timeout=10)
    assert [line.split(": ")[1] for line in lines] == expected
    assert "fixed it &lt;!channel&gt;" in lines[-1]


async def test_list_and_show_describe_the_incident(
    failing_driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """`incident list` names SH-1; `incident show SH-1` gives its state and the thread link."""
    await open_incident(failing_driver, slack_emulator)
    listing = await private_answer(failing_driver, slack_emulator, "incident list")
    assert "SH-1" in listing
    assert "Partition lease conflicts" in listing
    shown = await private_answer(failing_driver, slack_emulator, "incident show SH-1")
    assert "SH-1: Partition lease conflicts" in shown
    assert "Open the incident thread" in shown


async def test_refused_transitions_and_unknown_ids_are_explained_privately(
    failing_driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """Unknown ids, resolving twice and acking a resolved incident each get a clear error."""
    root = await open_incident(failing_driver, slack_emulator)
    unknown = await private_answer(failing_driver, slack_emulator, "incident ack SH-99")
    assert "There is no incident SH-99" in unknown
    await private_answer(failing_driver, slack_emulator, "incident resolve SH-1")
    versions = len(slack_emulator.edits(CHANNEL, root["ts"]))
    again = await private_answer(failing_driver, slack_emulator, "incident resolve SH-1")
    assert "already resolved" in again
    late_ack = await private_answer(failing_driver, slack_emulator, "incident ack SH-1")
    assert "nothing left to acknowledge" in late_ack
    assert len(slack_emulator.edits(CHANNEL, root["ts"])) == versions


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("incident", "Say what to do with incidents"),
        ("incident frobnicate SH-1", "not something I can do with incidents"),
        ("incident reslove SH-1", "Did you mean `incident resolve`?"),
        ("incident ack", "needs an incident id"),
        ("incident ack banana", "not an incident id"),
        ("incident show SH-1 extra", "takes only an incident id"),
        ("incident list now", "takes no arguments"),
    ],
)
async def test_bad_words_are_refused_in_the_ack(
    driver: SlackDriver, slack_emulator: SlackEmulator, text: str, message: str
) -> None:
    """Argument errors come back in the acknowledgement itself, ephemeral, nothing posted."""
    body = (await driver.command(text)).json()
    assert body["response_type"] == "ephemeral"
    assert message in all_text(body)
    assert slack_emulator.messages(CHANNEL) == []


async def test_a_repeated_diagnosis_joins_the_open_incident_thread(
    failing_driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """`diagnose leases` again while SH-1 is open: no second incident and no new channel
    message; the new diagnosis runs in SH-1's thread and is audited there."""
    root = await open_incident(failing_driver, slack_emulator)
    replies_before = len(slack_emulator.thread(CHANNEL, root["ts"]))
    response = await failing_driver.command("diagnose leases")
    posts = await slack_emulator.async_wait_for(
        lambda: slack_emulator.responses(response.response_url), timeout=20
    )
    assert "SH-1 is open for this already" in all_text(posts[-1])
    assert len(slack_emulator.messages(CHANNEL)) == 1
    assert len(slack_emulator.thread(CHANNEL, root["ts"])) > replies_before

    def diagnoses() -> list[str] | None:
        lines = [
            line for line in thread_replies(slack_emulator, root["ts"]) if ": diagnosis:" in line
        ]
        return lines if len(lines) >= 2 else None

    await slack_emulator.async_wait_for(diagnoses, timeout=15)
    listing = await private_answer(failing_driver, slack_emulator, "incident list")
    assert "SH-2" not in listing
