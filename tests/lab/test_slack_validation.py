"""Unit tests for the emulator's pure Block Kit / message / view validation."""

from __future__ import annotations

from typing import Any

import pytest

from lab.slack.validation import MISSING_FALLBACK, check_blocks, check_message, check_view


def plain(text: str) -> dict[str, Any]:
    """A plain_text object."""
    return {"type": "plain_text", "text": text}


def mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object."""
    return {"type": "mrkdwn", "text": text}


def button(action_id: str = "approve", **overrides: Any) -> dict[str, Any]:
    """A valid button element, with overrides."""
    return {
        "type": "button",
        "action_id": action_id,
        "text": plain("Approve"),
        "value": "req-1",
        **overrides,
    }


def actions(*elements: dict[str, Any], block_id: str = "a") -> dict[str, Any]:
    """An actions block."""
    return {"type": "actions", "block_id": block_id, "elements": list(elements)}


def section(text: str = "hi") -> dict[str, Any]:
    """A section block."""
    return {"type": "section", "text": mrkdwn(text)}


CONFIRM = {
    "title": plain("Sure?"),
    "text": mrkdwn("Really"),
    "confirm": plain("Yes"),
    "deny": plain("No"),
}

BROKEN_BLOCKS: list[tuple[str, list[dict[str, Any]], str]] = [
    (
        "too many blocks",
        [section()] * 51,
        "no more than 50 items allowed (got 51) [json-pointer:/blocks]",
    ),
    (
        "unknown type",
        [{"type": "banner"}],
        "unsupported block type: 'banner' [json-pointer:/blocks/0/type]",
    ),
    (
        "header too long",
        [{"type": "header", "text": plain("h" * 151)}],
        "header text must be at most 150 characters (got 151)",
    ),
    (
        "header mrkdwn",
        [{"type": "header", "text": mrkdwn("h")}],
        "header text must be plain_text (got 'mrkdwn') [json-pointer:/blocks/0/text/type]",
    ),
    ("section text", [section("s" * 3001)], "section text must be at most 3000 characters"),
    (
        "section fields",
        [{"type": "section", "fields": [mrkdwn("f")] * 11}],
        "section fields: no more than 10 items allowed (got 11)",
    ),
    (
        "actions elements",
        [actions(*[button(f"b{i}") for i in range(26)])],
        "actions elements: no more than 25 items allowed (got 26)",
    ),
    (
        "context elements",
        [{"type": "context", "elements": [mrkdwn("c")] * 11}],
        "context elements: no more than 10 items allowed (got 11)",
    ),
    (
        "block_id length",
        [{**section(), "block_id": "b" * 256}],
        "block_id must be at most 255 characters (got 256)",
    ),
    (
        "action_id length",
        [actions(button("a" * 256))],
        "action_id must be at most 255 characters (got 256)",
    ),
    (
        "button text length",
        [actions(button(text=plain("t" * 76)))],
        "button text must be at most 75 characters (got 76)",
    ),
    (
        "button text mrkdwn",
        [actions(button(text=mrkdwn("t")))],
        "button text must be plain_text (got 'mrkdwn')",
    ),
    (
        "button value",
        [actions(button(value="v" * 2001))],
        "button value must be at most 2000 characters (got 2001)",
    ),
    (
        "button url",
        [actions(button(url="https://x/" + "u" * 2991))],
        "button url must be at most 3000 characters (got 3001)",
    ),
    (
        "duplicate block_id",
        [{**section(), "block_id": "x"}, {**section(), "block_id": "x"}],
        "duplicate block_id: x [json-pointer:/blocks/1/block_id]",
    ),
    (
        "duplicate action_id",
        [actions(button("go"), button("go"))],
        "duplicate action_id: go [json-pointer:/blocks/0/elements/1/action_id]",
    ),
    (
        "confirm title",
        [actions(button(confirm={**CONFIRM, "title": plain("t" * 101)}))],
        "confirm title must be at most 100 characters (got 101)",
    ),
    (
        "confirm text",
        [actions(button(confirm={**CONFIRM, "text": mrkdwn("t" * 301)}))],
        "confirm text must be at most 300 characters (got 301)",
    ),
    (
        "confirm button",
        [actions(button(confirm={**CONFIRM, "confirm": plain("y" * 31)}))],
        "confirm confirm must be at most 30 characters (got 31)",
    ),
    (
        "unknown element",
        [actions({"type": "slider", "action_id": "s"})],
        "unsupported element type: 'slider'",
    ),
    ("empty text", [section("")], "section text must be more than 0 characters"),
]


@pytest.mark.parametrize(
    ("blocks", "reason"),
    [(b, r) for _, b, r in BROKEN_BLOCKS],
    ids=[name for name, _, _ in BROKEN_BLOCKS],
)
def test_each_block_kit_limit_is_reported_with_its_reason(
    blocks: list[dict[str, Any]], reason: str
) -> None:
    """Breaking one Slack limit yields one error naming the limit and where it broke."""
    errors = check_blocks(blocks, max_blocks=50)
    assert any(reason in error for error in errors), errors


def test_limits_at_the_boundary_are_accepted() -> None:
    """Blocks exactly at Slack's limits are valid."""
    blocks = [
        {"type": "header", "text": plain("h" * 150)},
        section("s" * 3000),
        {"type": "section", "fields": [mrkdwn("f")] * 10},
        actions(*[button(f"b{i}", value="v" * 2000) for i in range(25)], block_id="b" * 255),
        {"type": "context", "elements": [mrkdwn("c")] * 10},
        actions(button("c" * 255, text=plain("t" * 75), confirm=CONFIRM)),
    ]
    assert check_blocks(blocks, max_blocks=50) == []


def test_the_same_action_id_in_different_blocks_is_allowed() -> None:
    """Slack only requires action_ids to be unique within one block."""
    blocks = [actions(button("go"), block_id="one"), actions(button("go"), block_id="two")]
    assert check_blocks(blocks, max_blocks=50) == []


def test_message_without_text_or_blocks_is_no_text() -> None:
    """An empty message is `no_text`."""
    problem = check_message(text="", blocks=None)
    assert problem is not None
    assert problem.error == "no_text"


def test_blocks_without_fallback_text_are_invalid_blocks() -> None:
    """Blocks with no top-level `text` are refused (strict on purpose)."""
    problem = check_message(text=None, blocks=[section()])
    assert problem is not None
    assert (problem.error, problem.errors) == ("invalid_blocks", (MISSING_FALLBACK,))


def test_text_over_40000_characters_is_msg_too_long() -> None:
    """Message text beyond 40,000 characters is `msg_too_long`."""
    problem = check_message(text="x" * 40_001, blocks=None)
    assert problem is not None
    assert problem.error == "msg_too_long"
    assert check_message(text="x" * 40_000, blocks=None) is None


def test_invalid_blocks_body_has_errors_and_response_metadata() -> None:
    """The error body carries `errors` and Slack's `[ERROR]` response_metadata messages."""
    problem = check_message(text="t", blocks=[{"type": "banner"}])
    assert problem is not None
    body = problem.body()
    assert body["ok"] is False
    assert body["error"] == "invalid_blocks"
    assert body["response_metadata"]["messages"] == [f"[ERROR] {e}" for e in body["errors"]]


def modal(**overrides: Any) -> dict[str, Any]:
    """A valid modal view, with overrides."""
    return {"type": "modal", "title": plain("Approve"), "blocks": [section()], **overrides}


@pytest.mark.parametrize(
    ("view", "reason"),
    [
        (modal(title=plain("t" * 25)), "view title must be at most 24 characters (got 25)"),
        (modal(submit=plain("s" * 25)), "view submit must be at most 24 characters (got 25)"),
        (modal(close=plain("c" * 25)), "view close must be at most 24 characters (got 25)"),
        (
            modal(private_metadata="m" * 3001),
            "private_metadata must be at most 3000 characters (got 3001)",
        ),
        (
            modal(blocks=[section()] * 101),
            "no more than 100 items allowed (got 101) [json-pointer:/view/blocks]",
        ),
        (modal(title=mrkdwn("t")), "view title must be plain_text"),
        (
            modal(
                blocks=[
                    {
                        "type": "input",
                        "label": plain("Why"),
                        "element": {"type": "plain_text_input", "action_id": "why"},
                    }
                ]
            ),
            "a modal with input blocks requires submit",
        ),
        ({"type": "popup", "blocks": []}, "view type must be modal or home"),
    ],
)
def test_view_limits_are_invalid_arguments(view: dict[str, Any], reason: str) -> None:
    """A view breaking a limit is `invalid_arguments` with the reason."""
    problem = check_view(view)
    assert problem is not None
    assert problem.error == "invalid_arguments"
    assert any(reason in error for error in problem.errors), problem.errors


def test_view_at_the_limits_is_accepted() -> None:
    """A modal with 24-char title/submit/close, 3000-char metadata and 100 blocks is valid."""
    view = modal(
        title=plain("t" * 24),
        submit=plain("s" * 24),
        close=plain("c" * 24),
        private_metadata="m" * 3000,
        blocks=[section()] * 100,
    )
    assert check_view(view) is None
