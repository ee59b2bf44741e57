"""What Slack sends an app, built as pure functions: commands, interactions, events.

Shapes follow the payloads Slack documents (slash commands, block_actions,
view_submission, event_callback) and what Bolt's own tests sign and dispatch.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode


@dataclass(frozen=True)
class Team:
    """The workspace and app identity every payload carries."""

    team_id: str
    team_domain: str
    app_id: str
    bot_user_id: str
    verification_token: str


@dataclass(frozen=True)
class Actor:
    """Who acted and where: a user in a channel."""

    user_id: str
    user_name: str
    channel_id: str
    channel_name: str


def form_body(fields: dict[str, str]) -> bytes:
    """Encode fields as application/x-www-form-urlencoded, as Slack does."""
    return urlencode(fields).encode()


def interactive_body(payload: dict[str, Any]) -> bytes:
    """Encode an interaction as Slack does: a form with one `payload` JSON field."""
    return form_body({"payload": json.dumps(payload, separators=(",", ":"))})


def slash_command(
    team: Team, actor: Actor, *, command: str, text: str, response_url: str, trigger_id: str
) -> dict[str, str]:
    """The form fields of a slash command invocation (every field Slack sends)."""
    return {
        "token": team.verification_token,
        "team_id": team.team_id,
        "team_domain": team.team_domain,
        "channel_id": actor.channel_id,
        "channel_name": actor.channel_name,
        "user_id": actor.user_id,
        "user_name": actor.user_name,
        "command": command,
        "text": text,
        "api_app_id": team.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def _user(team: Team, actor: Actor) -> dict[str, str]:
    return {
        "id": actor.user_id,
        "username": actor.user_name,
        "name": actor.user_name,
        "team_id": team.team_id,
    }


def action_object(
    element: dict[str, Any] | None, *, action_id: str, block_id: str, value: str
) -> dict[str, Any]:
    """One entry of `actions`: a clicked button or a chosen select option."""
    element = element or {"type": "button", "text": {"type": "plain_text", "text": action_id}}
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": element.get("type", "button"),
        "action_ts": f"{time.time():.6f}",
    }
    if action["type"] == "button":
        action.update({"text": element.get("text"), "value": value})
        if "style" in element:
            action["style"] = element["style"]
    else:
        options = element.get("options") or []
        chosen = next((o for o in options if o.get("value") == value), None)
        action["selected_option"] = chosen or {
            "text": {"type": "plain_text", "text": value},
            "value": value,
        }
    return action


def block_actions(
    team: Team,
    actor: Actor,
    *,
    message: dict[str, Any],
    action: dict[str, Any],
    response_url: str,
    trigger_id: str,
) -> dict[str, Any]:
    """A `block_actions` payload for a click on a message posted in a channel."""
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": actor.channel_id,
        "is_ephemeral": False,
    }
    if message.get("thread_ts"):
        container["thread_ts"] = message["thread_ts"]
    return {
        "type": "block_actions",
        "user": _user(team, actor),
        "api_app_id": team.app_id,
        "token": team.verification_token,
        "container": container,
        "trigger_id": trigger_id,
        "team": {"id": team.team_id, "domain": team.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": actor.channel_id, "name": actor.channel_name},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }


def message_action(
    team: Team,
    actor: Actor,
    *,
    callback_id: str,
    message: dict[str, Any],
    response_url: str,
    trigger_id: str,
) -> dict[str, Any]:
    """A ``message_action`` payload: a message shortcut chosen on ``message``."""
    return {
        "type": "message_action",
        "callback_id": callback_id,
        "user": _user(team, actor),
        "api_app_id": team.app_id,
        "token": team.verification_token,
        "trigger_id": trigger_id,
        "team": {"id": team.team_id, "domain": team.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": actor.channel_id, "name": actor.channel_name},
        "message": message,
        "message_ts": message["ts"],
        "response_url": response_url,
    }


def view_submission(
    team: Team, actor: Actor, *, view: dict[str, Any], trigger_id: str
) -> dict[str, Any]:
    """A `view_submission` payload for a modal the user submitted."""
    return {
        "type": "view_submission",
        "team": {"id": team.team_id, "domain": team.team_domain},
        "user": _user(team, actor),
        "api_app_id": team.app_id,
        "token": team.verification_token,
        "trigger_id": trigger_id,
        "view": view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def event_callback(
    team: Team, event: dict[str, Any], *, event_id: str | None = None
) -> dict[str, Any]:
    """An Events API `event_callback` envelope around `event`."""
    now = int(time.time())
    event = {**event}
    event.setdefault("event_ts", f"{now}.000000")
    context = {
        "et": event.get("type"),
        "tid": team.team_id,
        "aid": team.app_id,
        "cid": event.get("channel"),
    }
    encoded = base64.urlsafe_b64encode(json.dumps(context).encode()).decode().rstrip("=")
    return {
        "token": team.verification_token,
        "team_id": team.team_id,
        "context_team_id": team.team_id,
        "context_enterprise_id": None,
        "api_app_id": team.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or new_event_id(),
        "event_time": now,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team.team_id,
                "user_id": team.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{encoded}",
    }


def message_event(message: dict[str, Any], *, channel_id: str, channel_type: str) -> dict[str, Any]:
    """The `message` event Slack sends for a stored message."""
    event = {
        **message,
        "channel": channel_id,
        "event_ts": message["ts"],
        "channel_type": channel_type,
    }
    if "user" in event and "bot_id" not in event:
        event.setdefault("client_msg_id", str(uuid.uuid4()))
    return event


def new_event_id() -> str:
    """A fresh Events API event id such as `Ev08ABCDEF12`."""
    alphabet = string.ascii_uppercase + string.digits
    return "Ev" + "".join(secrets.choice(alphabet) for _ in range(10))
