"""Block Kit for approved actions: the request modal, the request in the thread, outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.approvals import ActionRequest, RequestState
from bot.ids import ActionId, BlockId, CallbackId
from bot.render.text import escape, truncate
from bot.replies import Reply

SECTION_LIMIT = 3000
PREVIEW_FIELDS = (
    ("target", "Target"),
    ("current", "Current"),
    ("new", "New"),
    ("call", "API call"),
    ("rollback", "Rollback"),
    ("blast_radius", "Blast radius"),
)
OUTCOME_ICON = {
    RequestState.SUCCEEDED: ":white_check_mark:",
    RequestState.FAILED: ":x:",
    RequestState.DENIED: ":no_entry:",
    RequestState.EXPIRED: ":hourglass:",
    RequestState.REFUSED: ":no_entry_sign:",
}


def preview_text(preview: Mapping[str, Any]) -> str:
    """The preview as mrkdwn lines: target, current → new, call, rollback, blast radius."""
    lines = [
        f"*{label}:* {escape(str(preview[key]))}" for key, label in PREVIEW_FIELDS if key in preview
    ]
    return truncate("\n".join(lines), SECTION_LIMIT)


def request_modal(title: str, preview: Mapping[str, Any], metadata: str) -> View:
    """The modal a click opens: the exact preview and a required reason."""
    return View(
        type="modal",
        callback_id=CallbackId.ACTION_REQUEST,
        title=truncate(title, 24),
        submit="Request",
        close="Cancel",
        private_metadata=metadata,
        blocks=[
            SectionBlock(
                block_id=BlockId.ACTION_PREVIEW, text=MarkdownTextObject(text=preview_text(preview))
            ),
            InputBlock(
                block_id=BlockId.ACTION_REASON,
                label="Reason",
                element=PlainTextInputElement(
                    action_id=ActionId.REASON_INPUT, multiline=True, min_length=3, max_length=500
                ),
            ),
        ],
    )


def request_message(request: ActionRequest) -> Reply:
    """The request in the incident thread; a high-risk one carries Approve/Deny."""
    head = (
        f"*{escape(request.action_id)}* requested by <@{request.requested_by}> "
        f"({request.risk.value} risk): {escape(request.reason)}"
    )
    if request.risk.value == "high":
        head += "\n:lock: Awaiting a second approver (the requester cannot approve)."
    blocks: list[Block] = [
        SectionBlock(block_id=BlockId.ACTION_REQUEST, text=MarkdownTextObject(text=head)),
        SectionBlock(
            block_id=BlockId.ACTION_PREVIEW,
            text=MarkdownTextObject(text=preview_text(request.preview)),
        ),
    ]
    if request.risk.value == "high":
        blocks.append(
            ActionsBlock(
                block_id=BlockId.ACTION_DECISION,
                elements=[
                    ButtonElement(
                        text="Approve",
                        action_id=ActionId.APPROVE_REQUEST,
                        value=request.id,
                        style="primary",
                    ),
                    ButtonElement(
                        text="Deny",
                        action_id=ActionId.DENY_REQUEST,
                        value=request.id,
                        style="danger",
                    ),
                ],
            )
        )
    text = f"{request.action_id} requested by {request.requested_by}: awaiting a decision"
    return Reply(text=escape(text), blocks=tuple(blocks), response_type="in_channel")


def outcome_message(request: ActionRequest) -> Reply:
    """The request once decided or run: its buttons replaced by what happened."""
    icon = OUTCOME_ICON.get(request.state, ":arrows_counterclockwise:")
    who = f" (approved by <@{request.approved_by}>)" if request.approved_by else ""
    result = request.result or {}
    detail = result.get("text") or result.get("refused") or ""
    line = f"{icon} *{escape(request.action_id)}* {request.state.value}{who}"
    if detail:
        line += f": {escape(str(detail))}"
    blocks: list[Block] = [
        SectionBlock(
            block_id=BlockId.ACTION_REQUEST,
            text=MarkdownTextObject(text=truncate(line, SECTION_LIMIT)),
        ),
        SectionBlock(
            block_id=BlockId.ACTION_PREVIEW,
            text=MarkdownTextObject(text=preview_text(request.preview)),
        ),
    ]
    fallback = f"{request.action_id} {request.state.value}: {detail}".strip(": ")
    return Reply(text=escape(fallback), blocks=tuple(blocks), response_type="in_channel")
