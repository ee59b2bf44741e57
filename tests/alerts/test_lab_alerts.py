"""The lab's real Prometheus and Alertmanager fire a scenario's alerts into the bot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.runtime import BotRuntime
from bot.store import EmbeddedPostgres
from lab.slack import SlackEmulator
from lab.stack import Lab
from tests.app.test_commands import all_text
from tests.approvals.conftest import started_lab
from tests.fixtures.bot import make_settings

CHANNEL = "C0ALERTS"
TOKEN = "lab-alertmanager"


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """The breaker stuck open after S3 recovered: CircuitBreakerOpen fires."""
    yield from started_lab(pg_server, ("circuit-breaker-open", "recovered-10m"))


def breaker_roots(slack: SlackEmulator) -> list[dict[str, Any]]:
    """Top-level messages about the circuit-breaker incident."""
    return [m for m in slack.messages(CHANNEL) if "S3 circuit breaker open" in all_text(m)]


async def test_alertmanager_alerts_open_an_incident_and_resolving_edits_the_same_root(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CircuitBreakerOpen reaches the bot through Alertmanager: an incident root with the
    diagnosis in its thread. Restarting the agents closes the breaker; Alertmanager sends
    the resolved alert and the same root shows the incident resolved."""
    env = lab.env()
    for key, value in env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    values = {k.lower(): v for k, v in env.items() if not k.startswith("AWS_")}
    values.update(bot_alert_channel=CHANNEL, bot_alertmanager_token=TOKEN)
    slack_emulator.set_rate_limit(burst=None)
    assert lab.prometheus is not None
    async with BotRuntime(make_settings(slack_emulator, database_url, **values)) as bot:
        lab.prometheus.set_webhook(f"{bot.http_url}/alertmanager", TOKEN)
        try:
            roots = await slack_emulator.async_wait_for(
                lambda: breaker_roots(slack_emulator), timeout=60
            )
            root_ts = roots[0]["ts"]
            await slack_emulator.async_wait_for(
                lambda: "CB-1" in str(slack_emulator.thread(CHANNEL, root_ts)), timeout=30
            )
            lab.world.rollout_restart(lab.world.agent_workload.name)

            def resolved() -> bool:
                root = slack_emulator.message(CHANNEL, root_ts) or {}
                return "Resolved by" in all_text(root)

            await slack_emulator.async_wait_for(resolved, timeout=60)
            assert len(breaker_roots(slack_emulator)) == 1
        finally:
            lab.prometheus.set_webhook(None)
