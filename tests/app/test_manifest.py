"""`manifest.yml` promises exactly what the app handles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.ids import SLASH_COMMAND
from bot.runtime import BotRuntime
from lab.slack import SlackDriver

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"

# Event subscriptions in the manifest name a scope-qualified event; Bolt sees the event type.
EVENT_TYPES = {"app_mention": "app_mention", "message.channels": "message"}


def manifest() -> dict[str, Any]:
    """The parsed manifest."""
    return dict(yaml.safe_load(MANIFEST.read_text()))


def sample_event(event_type: str) -> dict[str, Any]:
    """A minimal event of ``event_type`` as Slack would deliver it."""
    return {
        "type": event_type,
        "user": "U0ALICE",
        "text": "hello <@U0BOT>",
        "channel": "C0GENERAL",
        "channel_type": "channel",
        "ts": "1700000000.000200",
    }


def test_manifest_declares_the_slash_command_and_needed_scopes() -> None:
    """The manifest has `/streamhouse` and the scopes that command and events need."""
    data = manifest()
    commands = [c["command"] for c in data["features"]["slash_commands"]]
    assert commands == [SLASH_COMMAND]
    scopes = set(data["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "app_mentions:read", "channels:history"} <= scopes
    assert data["settings"]["interactivity"]["is_enabled"] is True


async def test_every_manifest_command_and_event_is_handled(
    bot: BotRuntime, driver: SlackDriver
) -> None:
    """Each slash command, event and shortcut the manifest declares reaches a listener."""
    data = manifest()
    for command in data["features"]["slash_commands"]:
        response = await driver.command("help", command=command["command"])
        assert response.status == 200, command
    for name in data["settings"]["event_subscriptions"]["bot_events"]:
        response = await driver.event(sample_event(EVENT_TYPES[name]))
        assert response.status == 200, name
    for shortcut in data["features"]["shortcuts"]:
        message, _ = await driver.message("C0GENERAL", "anything")
        response = await driver.message_shortcut(
            shortcut["callback_id"], channel_id="C0GENERAL", message_ts=message["ts"]
        )
        assert response.status == 200, shortcut["callback_id"]


async def test_events_outside_the_manifest_are_not_handled(
    bot: BotRuntime, driver: SlackDriver
) -> None:
    """An event type the manifest does not subscribe to finds no listener (so the check above
    would notice a manifest event without one)."""
    response = await driver.event(sample_event("reaction_added"))
    assert response.status == 404
