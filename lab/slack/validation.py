"""Message and view validation, answering the errors Slack answers (pure, no I/O).

`check_message` gives `no_text`, `msg_too_long` or `invalid_blocks`; `check_view` gives
`invalid_arguments`. Both return None when Slack would accept the payload. Unlike Slack,
which only logs a warning, a message with blocks but no top-level `text` fallback is
rejected: notifications and screen readers need that text, so tests should catch it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.slack.blockkit import BlockChecker
from lab.slack.limits import (
    CALLBACK_ID_MAX,
    MAX_MESSAGE_BLOCKS,
    MAX_MESSAGE_TEXT,
    MAX_VIEW_BLOCKS,
    PRIVATE_METADATA_MAX,
    VIEW_BUTTON_MAX,
    VIEW_TITLE_MAX,
    problem,
)

MISSING_FALLBACK = problem(
    "/text", "blocks require a top-level text fallback (the emulator is strict about this)"
)


@dataclass(frozen=True)
class Problem:
    """Why Slack refuses a payload: the error code and Slack-style reasons."""

    error: str
    errors: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        """Return the `{"ok": false, ...}` body Slack sends."""
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.errors:
            body["errors"] = list(self.errors)
            body["response_metadata"] = {"messages": [f"[ERROR] {e}" for e in self.errors]}
        return body


def check_blocks(blocks: Any, *, max_blocks: int, base: str = "/blocks") -> list[str]:
    """Return every Block Kit problem in `blocks` (empty when valid)."""
    checker = BlockChecker()
    checker.check_blocks(blocks, max_blocks=max_blocks, base=base)
    return checker.errors


def check_message(*, text: Any, blocks: Any, attachments: Any = None) -> Problem | None:
    """Check a chat.postMessage / chat.update / response_url message body."""
    has_text = isinstance(text, str) and text.strip() != ""
    has_blocks = blocks is not None and blocks != []
    if not (has_text or has_blocks or attachments):
        return Problem("no_text")
    if has_text and len(text) > MAX_MESSAGE_TEXT:
        return Problem("msg_too_long")
    if not has_blocks:
        return None
    errors = check_blocks(blocks, max_blocks=MAX_MESSAGE_BLOCKS)
    if not has_text:
        errors.append(MISSING_FALLBACK)
    return Problem("invalid_blocks", tuple(errors)) if errors else None


def check_view(view: Any) -> Problem | None:
    """Check a modal or Home tab view for views.open / views.update / views.push."""
    if not isinstance(view, dict):
        return Problem("invalid_arguments", (problem("/view", "view must be an object"),))
    checker = BlockChecker()
    view_type = view.get("type")
    if view_type not in {"modal", "home"}:
        checker.fail("/view/type", f"view type must be modal or home (got {view_type!r})")
    if view_type == "modal":
        _check_modal_chrome(checker, view)
    checker.check_blocks(view.get("blocks"), max_blocks=MAX_VIEW_BLOCKS, base="/view/blocks")
    _check_view_strings(checker, view)
    return Problem("invalid_arguments", tuple(checker.errors)) if checker.errors else None


def _check_modal_chrome(checker: BlockChecker, view: dict[str, Any]) -> None:
    checker.text(
        view.get("title"),
        "/view/title",
        label="view title",
        max_len=VIEW_TITLE_MAX,
        plain_only=True,
    )
    for button in ("submit", "close"):
        checker.text(
            view.get(button),
            f"/view/{button}",
            label=f"view {button}",
            max_len=VIEW_BUTTON_MAX,
            plain_only=True,
            required=False,
        )
    blocks = view.get("blocks")
    has_inputs = isinstance(blocks, list) and any(
        isinstance(b, dict) and b.get("type") == "input" for b in blocks
    )
    if has_inputs and view.get("submit") is None:
        checker.fail("/view/submit", "a modal with input blocks requires submit")


def _check_view_strings(checker: BlockChecker, view: dict[str, Any]) -> None:
    checker.plain_string(
        view.get("private_metadata"),
        "/view/private_metadata",
        label="private_metadata",
        max_len=PRIVATE_METADATA_MAX,
    )
    for name in ("callback_id", "external_id"):
        checker.plain_string(view.get(name), f"/view/{name}", label=name, max_len=CALLBACK_ID_MAX)
