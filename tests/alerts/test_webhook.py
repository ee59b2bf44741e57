"""``POST /alertmanager`` through a running bot: incidents, threads, updates in place."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import psycopg
import pytest

from bot.runtime import BotRuntime
from lab.slack import SlackEmulator
from tests.alerts.webhook_payloads import alert, payload
from tests.app.test_commands import all_text
from tests.fixtures.bot import make_settings

CHANNEL = "C0ALERTS"
TOKEN = "am-secret"


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alert_settings(emulator: SlackEmulator, database_url: str, **overrides: Any) -> Any:
    """A bot posting alert incidents in C0ALERTS; its Prometheus cannot be reached."""
    values = {
        "bot_alert_channel": CHANNEL,
        "bot_alertmanager_token": TOKEN,
        "prometheus_url": f"http://127.0.0.1:{closed_port()}",
        "bot_post_interval_s": 0.2,
    }
    values.update(overrides)
    return make_settings(emulator, database_url, **values)


@pytest.fixture
async def alert_bot(slack_emulator: SlackEmulator, database_url: str) -> AsyncIterator[BotRuntime]:
    """A running bot that takes alerts."""
    slack_emulator.set_rate_limit(burst=None)
    async with BotRuntime(alert_settings(slack_emulator, database_url)) as runtime:
        yield runtime


async def send(
    bot: BotRuntime, body: Any, *, token: str | None = TOKEN, raw: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    """POST a webhook body; (status, JSON answer)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{bot.http_url}/alertmanager", data=data, headers=headers) as response,
    ):
        return response.status, await response.json()


def roots(slack: SlackEmulator) -> list[dict[str, Any]]:
    """The channel's top-level messages."""
    return list(slack.messages(CHANNEL))


async def count(database_url: str, query: str) -> int:
    """The single number a query returns."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(query)
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_firing_alert_opens_an_incident_with_its_diagnosis_and_resolving_edits_it(
    alert_bot: BotRuntime, slack_emulator: SlackEmulator, database_url: str
) -> None:
    """Firing: one root (SH-1) in the alert channel and the diagnosis in its thread;
    re-sends change nothing; resolved: the same root shows it resolved, no new root."""
    firing = alert("CircuitBreakerOpen", labels={"severity": "critical", "pod": "agent-0"})
    status, answer = await send(alert_bot, payload(firing))
    assert status == 200
    assert answer["stored"] == 1
    assert answer["opened"] == ["SH-1"]

    root = await slack_emulator.async_wait_for(lambda: next(iter(roots(slack_emulator)), None))
    assert "SH-1: S3 circuit breaker open" in all_text(root)
    assert "1 firing" in all_text(root)
    await slack_emulator.async_wait_for(
        lambda: "CB-1" in str(slack_emulator.thread(CHANNEL, root["ts"])), timeout=20
    )
    status, answer = await send(alert_bot, payload(firing))
    assert (status, answer["repeats"], answer["opened"]) == (200, 1, [])

    resolved = dict(firing, status="resolved", endsAt="2026-11-27T10:30:00.000Z")
    await send(alert_bot, payload(resolved))

    def resolved_root() -> dict[str, Any] | None:
        message = slack_emulator.message(CHANNEL, root["ts"])
        return message if message and "Resolved by" in all_text(message) else None

    done = await slack_emulator.async_wait_for(resolved_root, timeout=20)
    assert "0 firing, 1 resolved" in all_text(done)
    assert len(roots(slack_emulator)) == 1
    assert await count(database_url, "SELECT count(*) FROM incidents") == 1


async def test_alerts_group_by_runbook_and_namespace_and_unknown_ones_are_unrouted(
    alert_bot: BotRuntime, slack_emulator: SlackEmulator, database_url: str
) -> None:
    """Two breaker alerts of one namespace share SH-1; another namespace gets its own; an
    unknown alert opens an unrouted incident that shows its labels."""
    await send(
        alert_bot,
        payload(
            alert("CircuitBreakerOpen", labels={"pod": "agent-0"}),
            alert("S3ErrorRateHigh", labels={"pod": "agent-1"}),
            alert("CircuitBreakerOpen", labels={"namespace": "other", "pod": "agent-0"}),
            alert("SomethingNobodyKnows", labels={"team": "storage"}),
        ),
    )
    await slack_emulator.async_wait_for(lambda: len(roots(slack_emulator)) >= 3, timeout=20)
    texts = [all_text(message) for message in roots(slack_emulator)]
    assert sum("S3 circuit breaker open" in text for text in texts) == 2
    unrouted = next(text for text in texts if "Unrouted alert: SomethingNobodyKnows" in text)
    assert "team=storage" in unrouted
    assert await count(database_url, "SELECT count(*) FROM alerts") == 4
    assert await count(database_url, "SELECT count(*) FROM incidents") == 3


@pytest.mark.parametrize(
    ("raw", "token", "status", "problem"),
    [
        (b"{not json", TOKEN, 400, "not JSON"),
        (
            json.dumps({"version": "3", "status": "firing", "alerts": []}).encode(),
            TOKEN,
            400,
            "version",
        ),
        (
            json.dumps(payload(alert("X")) | {"alerts": [{"status": "firing"}]}).encode(),
            TOKEN,
            400,
            "alerts.0",
        ),
        (b"{}", "wrong", 401, "bearer token"),
        (b"{}", None, 401, "bearer token"),
        (b"[" + b" " * (1024 * 1024) + b"]", TOKEN, 413, "larger than"),
    ],
)
async def test_bad_deliveries_are_refused_and_store_nothing(
    alert_bot: BotRuntime,
    database_url: str,
    raw: bytes,
    token: str | None,
    status: int,
    problem: str,
) -> None:
    """Malformed → 400 naming the problem, wrong token → 401, too large → 413; nothing kept."""
    got, answer = await send(alert_bot, None, token=token, raw=raw)
    assert got == status
    assert problem in answer["error"]
    assert await count(database_url, "SELECT count(*) FROM alerts") == 0


async def test_untrusted_label_text_is_shown_literally(
    alert_bot: BotRuntime, slack_emulator: SlackEmulator
) -> None:
    """Mentions, links and formatting in labels reach Slack escaped, inside code."""
    hostile = {"pod": "<!channel> <!here> <@U123> <http://evil|click> *bold*"}
    await send(alert_bot, payload(alert("SomethingNobodyKnows", labels=hostile)))
    root = await slack_emulator.async_wait_for(lambda: next(iter(roots(slack_emulator)), None))
    text = json.dumps(root.get("blocks"))
    for raw in ("<!channel>", "<!here>", "<@U123>", "<http://evil|click>"):
        assert raw not in text
    assert "&lt;!channel&gt;" in text
    assert "`pod=" in text  # inside inline code: *bold* is not bold there


async def test_two_bots_on_one_database_post_each_incident_once(
    slack_emulator: SlackEmulator, database_url: str
) -> None:
    """The same storm sent to both replicas: five incidents, each root posted once."""
    slack_emulator.set_rate_limit(burst=None)
    async with (
        BotRuntime(alert_settings(slack_emulator, database_url)) as first,
        BotRuntime(alert_settings(slack_emulator, database_url)) as second,
    ):
        bodies = [
            payload(alert("CircuitBreakerOpen", labels={"namespace": f"ns-{n}", "pod": f"p{i}"}))
            for n in range(5)
            for i in range(4)
        ]
        await asyncio.gather(*(send(bot, body) for body in bodies for bot in (first, second)))
        await slack_emulator.async_wait_for(lambda: len(roots(slack_emulator)) >= 5, timeout=30)
        await asyncio.sleep(1.0)  # time for a duplicate to show up, were there one
        assert len(roots(slack_emulator)) == 5
        assert await count(database_url, "SELECT count(*) FROM incidents") == 5
        assert await count(database_url, "SELECT count(*) FROM alerts") == 20
