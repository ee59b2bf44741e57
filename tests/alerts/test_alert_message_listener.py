"""Which channel messages the bot reads as alerts, and the ``Diagnose this`` shortcut.

No Slack: the filtering is a pure function of the event and the settings, and the two
listeners are called directly with intake replaced by a recorder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from slack_bolt.context.async_context import AsyncBoltContext

import bot.alerts.intake
from bot.alerts.model import IncomingAlert
from bot.listeners.alert_messages import (
    DIAGNOSE_THIS,
    alert_message_of,
    on_alert_channel_message,
    on_diagnose_this,
    shortcut_alerts,
)
from bot.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
CHANNEL = "C0ALERTS01"
OWN_BOT = "B0STREAMHS"
OWN_USER = "U0STREAMHS"


def settings(channels: str = f"{CHANNEL},C0ALERTS02") -> Settings:
    """Settings reading alert messages in ``channels``."""
    return Settings.model_validate(
        {
            "slack_bot_token": "xoxb-test",
            "slack_signing_secret": "test-secret",
            "bot_alert_channels": channels,
        }
    )


def event(name: str = "alertmanager_custom_firing_two", **changes: Any) -> dict[str, Any]:
    """A stored message event, with ``changes`` applied (None removes a key)."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def read(message: dict[str, Any], channels: str = f"{CHANNEL},C0ALERTS02") -> Any:
    """``alert_message_of`` as the listener calls it."""
    return alert_message_of(message, settings(channels), own_bot_id=OWN_BOT, own_user_id=OWN_USER)


def test_alert_in_an_alert_channel_is_read() -> None:
    """An alert posted by a webhook in an alert channel gives its alerts."""
    alerts = read(event())
    assert [a.alertname for a in alerts] == ["PartitionLeaseConflicts"] * 2


def test_grafana_app_post_is_read() -> None:
    """An app's post (``bot_id`` and ``user``, no subtype) is read too."""
    assert [a.origin for a in read(event("grafana_firing"))] == ["grafana"]


@pytest.mark.parametrize(
    "message",
    [
        event(channel="C0GENERAL1"),
        event(thread_ts="1718000000.000001"),
        event(subtype="message_changed"),
        event(subtype="channel_join"),
        event(bot_id=None, subtype=None, user="U0ALICE001"),
        event(bot_id=OWN_BOT),
        event("grafana_firing", user=OWN_USER),
    ],
    ids=["other-channel", "thread-reply", "edit", "join", "person", "own-bot", "own-user"],
)
def test_messages_the_bot_does_not_read(message: dict[str, Any]) -> None:
    """Other channels, replies, edits, people and the bot itself are not read."""
    assert read(message) is None


def test_no_alert_channels_reads_nothing() -> None:
    """With ``BOT_ALERT_CHANNELS`` empty, no message is read."""
    assert read(event(), channels="") is None


def test_thread_parent_is_read() -> None:
    """A message that heads a thread (``thread_ts`` = its ``ts``) is still read."""
    message = event()
    message["thread_ts"] = message["ts"]
    assert read(message)


def test_bot_message_that_is_not_an_alert_gives_nothing() -> None:
    """A bot's message that is not an alert is read and found empty."""
    assert read(event("not_an_alert", bot_id="B0DEPLOYS1")) == []


def test_shortcut_on_an_alert_uses_its_alerts() -> None:
    """On an alert message, the shortcut hands over the parsed alerts."""
    alerts = shortcut_alerts(event("grafana_mixed"), CHANNEL)
    assert [a.status for a in alerts] == ["firing", "resolved"]


def test_shortcut_on_any_message_makes_a_manual_alert() -> None:
    """On other messages, one firing ``manual`` alert carries the text."""
    (alert,) = shortcut_alerts(event("not_an_alert"), CHANNEL)
    assert (alert.alertname, alert.status, alert.origin) == ("manual", "firing", "shortcut")
    assert alert.labels == {
        "alertname": "manual",
        "channel": CHANNEL,
        "message_ts": "1718007000.000900",
    }
    assert alert.annotations["description"].startswith("Heads-up: deploying agents")


def test_manual_alerts_of_two_messages_differ() -> None:
    """Two messages give two manual alerts; the same message twice gives the same one."""
    first = shortcut_alerts(event("not_an_alert"), CHANNEL)[0]
    again = shortcut_alerts(event("not_an_alert"), CHANNEL)[0]
    other = shortcut_alerts(event("not_an_alert", ts="1718007999.000100"), CHANNEL)[0]
    assert first.fingerprint == again.fingerprint
    assert first.fingerprint != other.fingerprint


def test_manual_alert_of_a_reply_belongs_to_its_thread() -> None:
    """A shortcut on a thread reply opens the incident in that reply's thread."""
    message = event("not_an_alert", thread_ts="1718006999.000001")
    (alert,) = shortcut_alerts(message, CHANNEL)
    assert alert.labels["message_ts"] == "1718006999.000001"


class Recorder:
    """Stands in for ``accept_channel_alerts`` and remembers its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[IncomingAlert]]] = []

    async def __call__(
        self, deps: Any, channel: str, message_ts: str, alerts: Sequence[IncomingAlert]
    ) -> None:
        self.calls.append((channel, message_ts, list(alerts)))


@pytest.fixture
def intake(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Intake replaced by a recorder."""
    recorder = Recorder()
    monkeypatch.setattr(bot.alerts.intake, "accept_channel_alerts", recorder)
    return recorder


def context() -> AsyncBoltContext:
    """A Bolt context carrying deps with the test settings."""
    deps = SimpleNamespace(settings=settings())
    return AsyncBoltContext({"deps": deps, "bot_id": OWN_BOT, "bot_user_id": OWN_USER})


async def test_listener_hands_alerts_to_intake(intake: Recorder) -> None:
    """An alert message reaches intake with its channel and ts."""
    await on_alert_channel_message(event(), context())
    ((channel, ts, alerts),) = intake.calls
    assert (channel, ts, len(alerts)) == (CHANNEL, "1718001000.000200", 2)


async def test_listener_leaves_other_messages_alone(intake: Recorder) -> None:
    """A non-alert, or a message the bot does not read, never reaches intake."""
    await on_alert_channel_message(event("not_an_alert", bot_id="B0DEPLOYS1"), context())
    await on_alert_channel_message(event(channel="C0GENERAL1"), context())
    assert intake.calls == []


async def test_shortcut_acknowledges_then_hands_over(intake: Recorder) -> None:
    """``Diagnose this`` acknowledges before intake runs, then opens the manual alert."""
    order: list[str] = []

    async def ack() -> None:
        order.append("ack" if not intake.calls else "late")

    message = event("not_an_alert")
    shortcut = {
        "type": "message_action",
        "callback_id": DIAGNOSE_THIS,
        "channel": {"id": CHANNEL, "name": "alerts"},
        "message": message,
        "user": {"id": "U0ALICE001"},
    }
    await on_diagnose_this(ack, shortcut, context())  # type: ignore[arg-type]
    assert order == ["ack"]
    ((channel, ts, alerts),) = intake.calls
    assert (channel, ts, alerts[0].alertname) == (CHANNEL, message["ts"], "manual")


async def test_shortcut_without_a_channel_does_nothing(intake: Recorder) -> None:
    """A malformed shortcut payload is acknowledged and dropped."""

    async def ack() -> None:
        return None

    await on_diagnose_this(ack, {"message": {"ts": "1.2"}}, context())  # type: ignore[arg-type]
    assert intake.calls == []
