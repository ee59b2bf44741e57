"""auth.test, users.info, conversations.*, usergroups.users.list, apps.connections.open."""

from __future__ import annotations

import secrets
from typing import Any

from lab.slack.api import ApiRequest, SlackError
from lab.slack.records import Channel, User
from lab.slack.state import (
    BOT_ID,
    BOT_NAME,
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    TEAM_NAME,
    Workspace,
)

# Fixed so conversations.info is stable across runs (2024-11-27T00:00:00Z).
_CREATED = 1732665600


def auth_test(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """auth.test: who the bot token belongs to."""
    return {
        "url": f"https://{TEAM_DOMAIN}.slack.com/",
        "team": TEAM_NAME,
        "user": BOT_NAME,
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }


def user_info(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """users.info: one member's profile."""
    return {"user": user_object(ws.require_user(req.str_param("user")))}


def user_object(user: User) -> dict[str, Any]:
    """Render a user the way users.info does."""
    profile: dict[str, Any] = {
        "real_name": user.real_name,
        "display_name": user.name,
        "real_name_normalized": user.real_name,
        "display_name_normalized": user.name,
        "team": TEAM_ID,
    }
    if user.email:
        profile["email"] = user.email
    return {
        "id": user.id,
        "team_id": TEAM_ID,
        "name": user.name,
        "real_name": user.real_name,
        "deleted": False,
        "is_bot": user.is_bot,
        "is_admin": user.is_admin,
        "is_owner": False,
        "is_app_user": False,
        "tz": user.tz,
        "tz_offset": 0,
        "profile": profile,
    }


def conversation_info(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """conversations.info: one channel's metadata."""
    return {"channel": channel_object(ws.resolve_channel(req.str_param("channel")))}


def channel_object(channel: Channel) -> dict[str, Any]:
    """Render a channel the way conversations.info does."""
    if channel.is_im:
        return {"id": channel.id, "is_im": True, "user": channel.user, "created": _CREATED}
    return {
        "id": channel.id,
        "name": channel.name,
        "name_normalized": channel.name,
        "is_channel": not channel.is_private,
        "is_group": channel.is_private,
        "is_im": False,
        "is_private": channel.is_private,
        "is_archived": False,
        "is_general": channel.name == "general",
        "is_member": True,
        "is_shared": False,
        "is_ext_shared": False,
        "context_team_id": TEAM_ID,
        "created": _CREATED,
        "creator": "U0ALICE",
    }


def conversation_replies(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """conversations.replies: a thread's root and replies."""
    channel = ws.resolve_channel(req.str_param("channel"))
    messages = ws.messages.thread(channel.id, req.str_param("ts") or "")
    if not messages:
        raise SlackError("thread_not_found")
    return {"messages": messages, "has_more": False, "response_metadata": {"next_cursor": ""}}


def usergroup_users(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """usergroups.users.list: the members of a user group."""
    group = req.str_param("usergroup")
    if group is None or group not in ws.usergroups:
        raise SlackError("no_such_subteam")
    return {"users": list(ws.usergroups[group])}


def connections_open(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """apps.connections.open: a one-off Socket Mode WebSocket URL."""
    ticket = secrets.token_hex(8)
    ws.socket_tickets.add(ticket)
    ws_base = req.base_url.replace("http://", "ws://", 1)
    return {"url": f"{ws_base}/socket-mode?ticket={ticket}"}
