"""`/streamhouse diagnose` through the Slack emulator, against the lab (runbook profile)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import pytest

from bot.runtime import BotRuntime
from bot.store import EmbeddedPostgres
from lab.slack import SlackDriver, SlackEmulator, check_message
from lab.stack import Lab
from tests.fixtures.bot import make_settings
from tests.lab.test_prometheus import require

DONE = re.compile(r"(\d+) of \d+ checks done")


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One runbook-profile lab for the module."""
    require("prometheus")
    running = Lab("runbook", admin_url=pg_server.url())
    running.start("lease-conflict", "dead-holder")
    yield running
    running.stop()


@pytest.fixture
async def lab_driver(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[SlackDriver]:
    """A bot whose sources are the lab, and a driver to talk to it."""
    env = lab.env()
    for key in (
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ):
        if key in env:
            monkeypatch.setenv(key, env[key])
    overrides = {k.lower(): v for k, v in env.items() if not k.startswith("AWS_")}
    slack_emulator.set_rate_limit(burst=None)
    settings = make_settings(slack_emulator, database_url, **overrides)
    async with (
        BotRuntime(settings) as bot,
        SlackDriver(slack_emulator, bot_url=f"{bot.http_url}/slack/events") as driver,
    ):
        yield driver


async def test_diagnose_opens_an_incident_with_the_live_diagnosis_in_its_thread(
    lab_driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """The ack is immediate; one channel message appears and becomes the root of incident
    SH-1; its first reply shows pending checks, is updated in place, and ends as the final,
    valid diagnosis."""
    response = await lab_driver.command("diagnose leases")
    assert response.status == 200
    assert response.elapsed < 3.0

    def final_posted() -> bool:
        messages = slack_emulator.messages("C0GENERAL")
        if not messages or "SH-1" not in str(messages[0]):
            return False
        thread = slack_emulator.thread("C0GENERAL", messages[0]["ts"])
        return len(thread) > 1 and "checking…" not in str(thread[1])

    await slack_emulator.async_wait_for(final_posted, timeout=20)
    messages = slack_emulator.messages("C0GENERAL")
    assert len(messages) == 1
    root = messages[0]
    assert "SH-1: Partition lease conflicts" in str(root["blocks"][0])
    assert "critical" in str(root["blocks"][1])
    assert check_message(text=root["text"], blocks=root["blocks"]) is None
    final = slack_emulator.thread("C0GENERAL", root["ts"])[1]
    versions = slack_emulator.edits("C0GENERAL", final["ts"])
    assert "checking…" in str(versions[0])
    done = [int(m.group(1)) for v in versions if (m := DONE.search(str(v)))]
    assert done == sorted(done)  # progress only moves forward
    assert "Partition" in str(final) or "lease" in str(final).lower()
    assert "CRITICAL" in str(final["blocks"][0])
    assert check_message(text=final["text"], blocks=final["blocks"]) is None
    updates = slack_emulator.calls_to("chat.update")
    assert all(call.ok for call in updates)


async def test_typo_gets_did_you_mean(
    lab_driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """`diagnose lese` is refused in the ack with a suggestion; nothing is posted."""
    body = (await lab_driver.command("diagnose lese")).json()
    assert body["response_type"] == "ephemeral"
    assert "Did you mean `lease`?" in str(body) or "Did you mean `leases`?" in str(body)
    assert slack_emulator.messages("C0GENERAL") == []


async def test_bad_partition_is_explained(lab_driver: SlackDriver) -> None:
    """`partition=abc` gets a clear usage error."""
    body = (await lab_driver.command("diagnose leases partition=abc")).json()
    assert "not a partition number" in str(body)


async def test_hostile_target_is_escaped(lab_driver: SlackDriver) -> None:
    """An option value with a mention is echoed escaped, never as a mention."""
    body = (await lab_driver.command("diagnose leases partition=<!channel>")).json()
    assert "<!channel>" not in str(body)
    assert "&lt;!channel&gt;" in str(body)


async def test_healthy_diagnosis_opens_no_incident(
    lab: Lab, lab_driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """On a healthy lab the channel gets one line saying so, no incident and no audit."""
    lab.switch("healthy")
    try:
        await lab_driver.command("diagnose leases")

        def verdict() -> str | None:
            messages = slack_emulator.messages("C0GENERAL")
            text = str(messages[0]) if messages else ""
            return text if "No incident opened" in text else None

        text = await slack_emulator.async_wait_for(verdict, timeout=20)
    finally:
        lab.switch("lease-conflict", "dead-holder")
    assert "OK" in text
    assert "SH-" not in text
    root = slack_emulator.messages("C0GENERAL")[0]
    thread = slack_emulator.thread("C0GENERAL", root["ts"])
    assert len(thread) == 2  # the root and the diagnosis, no audit events
    assert "OK" in str(thread[1]["blocks"][0])
