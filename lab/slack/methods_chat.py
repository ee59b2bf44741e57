"""chat.* and reactions.add: posting, editing and deleting messages as the bot."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from lab.slack.api import ApiRequest, SlackError
from lab.slack.state import APP_ID, BOT_ID, BOT_NAME, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, Workspace
from lab.slack.validation import Problem, check_message

# Message parameters Slack stores on the message as given.
_KEPT_PARAMS = ("metadata", "icon_emoji", "icon_url", "username", "unfurl_links", "mrkdwn")
_block_ids = itertools.count(1)


def raise_problem(problem: Problem) -> None:
    """Turn a validation Problem into the SlackError Slack would answer."""
    body = problem.body()
    extra = {k: v for k, v in body.items() if k not in {"ok", "error"}}
    raise SlackError(problem.error, **extra)


def message_content(req: ApiRequest) -> dict[str, Any]:
    """Read and validate text / blocks / attachments from a request."""
    text = req.params.get("text")
    blocks = req.json_param("blocks", error="invalid_blocks_format")
    attachments = req.json_param("attachments", error="invalid_attachments")
    return validated_content(text=text, blocks=blocks, attachments=attachments)


def validated_content(*, text: Any, blocks: Any, attachments: Any) -> dict[str, Any]:
    """Validate message content like Slack and return the fields to store."""
    problem = check_message(text=text, blocks=blocks, attachments=attachments)
    if problem is not None:
        raise_problem(problem)
    content: dict[str, Any] = {"text": text if isinstance(text, str) else ""}
    if blocks:
        content["blocks"] = with_block_ids(blocks)
    if attachments:
        content["attachments"] = attachments
    return content


def with_block_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every block a block_id, as Slack does for blocks sent without one."""
    filled = copy.deepcopy(blocks)
    for block in filled:
        block.setdefault("block_id", f"blk{next(_block_ids)}")
    return filled


def bot_message(content: dict[str, Any], *, thread_ts: str | None = None) -> dict[str, Any]:
    """Build a message posted by the app's bot user, in the shape Slack returns."""
    message: dict[str, Any] = {
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "app_id": APP_ID,
        "team": TEAM_ID,
        "bot_profile": {
            "id": BOT_ID,
            "app_id": APP_ID,
            "name": BOT_NAME,
            "deleted": False,
            "team_id": TEAM_ID,
        },
        **content,
    }
    if thread_ts:
        message["thread_ts"] = thread_ts
    return message


def post_message(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """chat.postMessage: post to a channel or thread (reply_broadcast supported)."""
    channel = ws.resolve_channel(req.str_param("channel"))
    content = message_content(req)
    content.update({k: req.params[k] for k in _KEPT_PARAMS if k in req.params})
    thread_ts = req.str_param("thread_ts")
    message = bot_message(content, thread_ts=thread_ts)
    if thread_ts and req.bool_param("reply_broadcast"):
        message["subtype"] = "thread_broadcast"
    stored = ws.messages.add(channel.id, message)
    return {"channel": channel.id, "ts": stored["ts"], "message": stored}


def _own_message(ws: Workspace, channel: str, ts: str | None, error: str) -> str:
    message = ws.messages.require(channel, ts)
    if message.get("user") != BOT_USER_ID:
        raise SlackError(error)
    return str(message["ts"])


def update_message(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """chat.update: replace the text/blocks of one of the bot's messages."""
    channel = ws.resolve_channel(req.str_param("channel"))
    ts = _own_message(ws, channel.id, req.str_param("ts"), "cant_update_message")
    content = message_content(req)
    if "blocks" not in content and "blocks" in req.params:
        content["blocks"] = []
    updated = ws.messages.update(channel.id, ts, content, BOT_USER_ID)
    return {"channel": channel.id, "ts": ts, "text": updated["text"], "message": updated}


def delete_message(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """chat.delete: delete one of the bot's messages."""
    channel = ws.resolve_channel(req.str_param("channel"))
    ts = _own_message(ws, channel.id, req.str_param("ts"), "cant_delete_message")
    ws.messages.delete(channel.id, ts)
    return {"channel": channel.id, "ts": ts}


def post_ephemeral(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """chat.postEphemeral: a message only `user` sees, kept in `ws.ephemerals`."""
    channel = ws.resolve_channel(req.str_param("channel"))
    user = ws.require_user(req.str_param("user"))
    content = message_content(req)
    ts = ws.clock.next()
    ws.ephemerals.append(
        {
            "channel": channel.id,
            "user": user.id,
            "ts": ts,
            "thread_ts": req.str_param("thread_ts"),
            "source": "chat.postEphemeral",
            **content,
        }
    )
    return {"message_ts": ts}


def get_permalink(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """chat.getPermalink: the archive URL of a message (thread replies link their root)."""
    channel = ws.resolve_channel(req.str_param("channel"))
    message = ws.messages.require(channel.id, req.str_param("message_ts"))
    ts = str(message["ts"])
    link = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel.id}/p{ts.replace('.', '')}"
    thread_ts = message.get("thread_ts")
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel.id}"
    return {"channel": channel.id, "permalink": link}


def add_reaction(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """reactions.add: the bot reacts to a message with an emoji."""
    channel = ws.resolve_channel(req.str_param("channel"))
    name = req.require("name", error="invalid_name").strip(":")
    ws.messages.react(channel.id, req.require("timestamp", "message_not_found"), name, BOT_USER_ID)
    return {}
