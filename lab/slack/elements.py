"""Block element checks: buttons, selects, overflow menus, confirm dialogs (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lab.slack.limits import (
    ACTION_ID_MAX,
    BUTTON_TEXT_MAX,
    BUTTON_VALUE_MAX,
    CONFIRM_BUTTON_MAX,
    CONFIRM_TEXT_MAX,
    CONFIRM_TITLE_MAX,
    INTERACTIVE_ELEMENTS,
    OPTION_TEXT_MAX,
    OPTION_VALUE_MAX,
    OPTIONS_MAX,
    OVERFLOW_OPTIONS_MAX,
    PLACEHOLDER_MAX,
    SELECTS_WITH_OPTIONS,
    URL_MAX,
    pointer,
)

if TYPE_CHECKING:
    from lab.slack.blockkit import BlockChecker


def check_element(checker: BlockChecker, element: Any, ptr: str, *, action_ids: set[str]) -> None:
    """Check one element; `action_ids` collects ids already used in the same block."""
    if not isinstance(element, dict):
        checker.fail(ptr, "element must be an object")
        return
    kind = element.get("type")
    if kind == "image":
        checker.image(element, ptr)
        return
    if kind not in INTERACTIVE_ELEMENTS:
        checker.fail(pointer(ptr, "type"), f"unsupported element type: {kind!r}")
        return
    _action_id(checker, element, ptr, action_ids)
    if element.get("confirm") is not None:
        check_confirm(checker, element["confirm"], pointer(ptr, "confirm"))
    if element.get("placeholder") is not None:
        checker.text(
            element["placeholder"],
            pointer(ptr, "placeholder"),
            label="placeholder",
            max_len=PLACEHOLDER_MAX,
            plain_only=True,
        )
    if kind == "button":
        _button(checker, element, ptr)
    elif kind == "overflow":
        _options(checker, element, ptr, label="overflow", max_items=OVERFLOW_OPTIONS_MAX)
    elif kind in SELECTS_WITH_OPTIONS and element.get("option_groups") is None:
        _options(checker, element, ptr, label=str(kind), max_items=OPTIONS_MAX)


def _action_id(
    checker: BlockChecker, element: dict[str, Any], ptr: str, action_ids: set[str]
) -> None:
    action_id = element.get("action_id")
    if action_id is None:
        return
    where = pointer(ptr, "action_id")
    if not isinstance(action_id, str) or not action_id:
        checker.fail(where, "action_id must be a non-empty string")
    elif len(action_id) > ACTION_ID_MAX:
        checker.fail(where, checker.too_long("action_id", action_id, ACTION_ID_MAX))
    elif action_id in action_ids:
        checker.fail(where, f"duplicate action_id: {action_id}")
    else:
        action_ids.add(action_id)


def _button(checker: BlockChecker, element: dict[str, Any], ptr: str) -> None:
    checker.text(
        element.get("text"),
        pointer(ptr, "text"),
        label="button text",
        max_len=BUTTON_TEXT_MAX,
        plain_only=True,
    )
    checker.plain_string(
        element.get("value"),
        pointer(ptr, "value"),
        label="button value",
        max_len=BUTTON_VALUE_MAX,
    )
    checker.plain_string(
        element.get("url"), pointer(ptr, "url"), label="button url", max_len=URL_MAX
    )
    style = element.get("style")
    if style is not None and style not in {"primary", "danger"}:
        checker.fail(pointer(ptr, "style"), f"button style must be primary or danger ({style!r})")


def _options(
    checker: BlockChecker, element: dict[str, Any], ptr: str, *, label: str, max_items: int
) -> None:
    options = element.get("options")
    where = pointer(ptr, "options")
    if not isinstance(options, list) or not options:
        checker.fail(where, f"{label} options must be a non-empty array")
        return
    if len(options) > max_items:
        checker.fail(
            where, f"{label} options: no more than {max_items} items allowed (got {len(options)})"
        )
    for index, option in enumerate(options):
        option_ptr = pointer(where, index)
        if not isinstance(option, dict):
            checker.fail(option_ptr, "option must be an object")
            continue
        checker.text(
            option.get("text"),
            pointer(option_ptr, "text"),
            label="option text",
            max_len=OPTION_TEXT_MAX,
        )
        checker.plain_string(
            option.get("value"),
            pointer(option_ptr, "value"),
            label="option value",
            max_len=OPTION_VALUE_MAX,
        )


def check_confirm(checker: BlockChecker, confirm: Any, ptr: str) -> None:
    """Check a confirmation dialog object (title, text, confirm, deny, style)."""
    if not isinstance(confirm, dict):
        checker.fail(ptr, "confirm must be an object")
        return
    checker.text(
        confirm.get("title"),
        pointer(ptr, "title"),
        label="confirm title",
        max_len=CONFIRM_TITLE_MAX,
        plain_only=True,
    )
    checker.text(
        confirm.get("text"),
        pointer(ptr, "text"),
        label="confirm text",
        max_len=CONFIRM_TEXT_MAX,
    )
    for button in ("confirm", "deny"):
        checker.text(
            confirm.get(button),
            pointer(ptr, button),
            label=f"confirm {button}",
            max_len=CONFIRM_BUTTON_MAX,
            plain_only=True,
        )
    style = confirm.get("style")
    if style is not None and style not in {"primary", "danger"}:
        checker.fail(pointer(ptr, "style"), f"confirm style must be primary or danger ({style!r})")
