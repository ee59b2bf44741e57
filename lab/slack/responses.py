"""response_url: Slack's per-interaction webhook (5 uses within 30 minutes).

A post is recorded as given and applied like Slack applies it: `delete_original` deletes
the message the interaction came from, `replace_original` edits it, `response_type:
in_channel` posts a visible message, anything else becomes an ephemeral message.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from lab.slack.api import SlackError
from lab.slack.methods_chat import bot_message, validated_content
from lab.slack.records import ResponseUrl, ResponseUrlPost, utc_now
from lab.slack.state import BOT_USER_ID, Workspace

RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL = timedelta(minutes=30)


def new_response_url(
    ws: Workspace,
    base_url: str,
    *,
    channel_id: str | None = None,
    user_id: str | None = None,
    message_ts: str | None = None,
    thread_ts: str | None = None,
) -> str:
    """Issue a response_url tied to the interaction's channel, user and message."""
    response_id = ws.next_id("R")
    url = f"{base_url}/response/{response_id}"
    ws.response_urls[response_id] = ResponseUrl(
        response_id, url, channel_id, user_id, message_ts, thread_ts
    )
    return url


def post_to_response_url(ws: Workspace, response_id: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    """Handle one POST to a response_url; return (HTTP status, JSON body)."""
    response_url = ws.response_urls.get(response_id)
    url = response_url.url if response_url else response_id
    body: dict[str, Any] = {}
    try:
        body = _parse(raw)
        if response_url is None:
            raise SlackError("expired_url", status=404)
        _check_usable(response_url)
        _apply(ws, response_url, body)
        response_url.uses += 1
        status, answer, error = 200, {"ok": True}, None
    except SlackError as exc:
        status, answer, error = exc.status, exc.body(), exc.error
    ws.response_posts.append(ResponseUrlPost(url, body, status, error, utc_now()))
    return status, answer


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise SlackError("invalid_payload", status=400) from exc
    if not isinstance(body, dict):
        raise SlackError("invalid_payload", status=400)
    return body


def _check_usable(response_url: ResponseUrl) -> None:
    if response_url.uses >= RESPONSE_URL_MAX_USES:
        raise SlackError("used_url", status=404)
    if utc_now() - response_url.created_at > RESPONSE_URL_TTL:
        raise SlackError("expired_url", status=404)


def _apply(ws: Workspace, origin: ResponseUrl, body: dict[str, Any]) -> None:
    if body.get("delete_original"):
        _delete_original(ws, origin)
        return
    try:
        content = validated_content(
            text=body.get("text"), blocks=body.get("blocks"), attachments=body.get("attachments")
        )
    except SlackError as exc:
        raise SlackError(exc.error, status=400, **exc.extra) from exc
    if body.get("replace_original") and origin.channel_id and origin.message_ts:
        ws.messages.update(
            origin.channel_id, origin.message_ts, content, BOT_USER_ID, replace_content=True
        )
    elif body.get("response_type") == "in_channel" and origin.channel_id:
        thread_ts = body.get("thread_ts") or origin.thread_ts
        ws.messages.add(origin.channel_id, bot_message(content, thread_ts=thread_ts))
    else:
        ws.ephemerals.append(
            {
                "channel": origin.channel_id,
                "user": origin.user_id,
                "ts": ws.clock.next(),
                "thread_ts": body.get("thread_ts") or origin.thread_ts,
                "source": "response_url",
                "replace_original": bool(body.get("replace_original")),
                **content,
            }
        )


def _delete_original(ws: Workspace, origin: ResponseUrl) -> None:
    if origin.channel_id and origin.message_ts:
        if ws.messages.get(origin.channel_id, origin.message_ts) is None:
            raise SlackError("message_not_found", status=404)
        ws.messages.delete(origin.channel_id, origin.message_ts)
