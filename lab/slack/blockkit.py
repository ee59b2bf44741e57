"""Block Kit checks against Slack's published limits (pure functions, no I/O).

Each problem is reported the way Slack words its `invalid_blocks` errors: a reason
followed by a JSON pointer, e.g. `header text must be at most 150 characters (got 151)
[json-pointer:/blocks/0/text/text]`. The limits themselves live in `lab.slack.limits`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lab.slack.elements import check_element
from lab.slack.limits import (
    ACTIONS_ELEMENTS_MAX,
    ALT_TEXT_MAX,
    BLOCK_ID_MAX,
    CONTEXT_ELEMENTS_MAX,
    HEADER_TEXT_MAX,
    LABEL_MAX,
    MARKDOWN_TEXT_MAX,
    SECTION_FIELD_TEXT_MAX,
    SECTION_FIELDS_MAX,
    SECTION_TEXT_MAX,
    URL_MAX,
    pointer,
    problem,
)


class BlockChecker:
    """Collects every limit a list of blocks breaks; `errors` is empty when valid."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._block_ids: set[str] = set()
        self._block_checks: dict[str, Callable[[dict[str, Any], str], None]] = {
            "section": self._section,
            "header": self._header,
            "actions": self._actions,
            "context": self._context,
            "divider": self._nothing,
            "image": self._image_block,
            "input": self._input,
            "markdown": self._markdown,
            "rich_text": self._rich_text,
            "file": self._nothing,
            "video": self._nothing,
            "call": self._nothing,
            "table": self._nothing,
        }

    def fail(self, ptr: str, reason: str) -> None:
        """Record one problem."""
        self.errors.append(problem(ptr, reason))

    def check_blocks(self, blocks: Any, *, max_blocks: int, base: str = "/blocks") -> None:
        """Check a `blocks` array for a surface allowing `max_blocks` blocks."""
        if not isinstance(blocks, list):
            self.fail(base, "blocks must be an array")
            return
        if len(blocks) > max_blocks:
            self.fail(base, f"no more than {max_blocks} items allowed (got {len(blocks)})")
        for index, block in enumerate(blocks):
            self._block(block, pointer(base, index))

    def _block(self, block: Any, ptr: str) -> None:
        if not isinstance(block, dict):
            self.fail(ptr, "block must be an object")
            return
        block_type = block.get("type")
        check = self._block_checks.get(block_type) if isinstance(block_type, str) else None
        if check is None:
            self.fail(pointer(ptr, "type"), f"unsupported block type: {block_type!r}")
            return
        self._block_id(block, ptr)
        check(block, ptr)

    def _block_id(self, block: dict[str, Any], ptr: str) -> None:
        block_id = block.get("block_id")
        if block_id is None:
            return
        where = pointer(ptr, "block_id")
        if not isinstance(block_id, str) or not block_id:
            self.fail(where, "block_id must be a non-empty string")
        elif len(block_id) > BLOCK_ID_MAX:
            self.fail(where, self.too_long("block_id", block_id, BLOCK_ID_MAX))
        elif block_id in self._block_ids:
            self.fail(where, f"duplicate block_id: {block_id}")
        else:
            self._block_ids.add(block_id)

    @staticmethod
    def too_long(label: str, value: str, limit: int) -> str:
        """Word a length violation."""
        return f"{label} must be at most {limit} characters (got {len(value)})"

    def text(
        self,
        obj: Any,
        ptr: str,
        *,
        label: str,
        max_len: int,
        plain_only: bool = False,
        required: bool = True,
    ) -> None:
        """Check a text composition object (plain_text or mrkdwn)."""
        if obj is None:
            if required:
                self.fail(ptr, f"{label} is required")
            return
        if not isinstance(obj, dict):
            self.fail(ptr, f"{label} must be a text object")
            return
        kind = obj.get("type")
        allowed = {"plain_text"} if plain_only else {"plain_text", "mrkdwn"}
        if kind not in allowed:
            wanted = "plain_text" if plain_only else "plain_text or mrkdwn"
            self.fail(pointer(ptr, "type"), f"{label} must be {wanted} (got {kind!r})")
        value = obj.get("text")
        if not isinstance(value, str) or not value:
            self.fail(pointer(ptr, "text"), f"{label} must be more than 0 characters")
        elif len(value) > max_len:
            self.fail(pointer(ptr, "text"), self.too_long(label, value, max_len))

    def plain_string(self, value: Any, ptr: str, *, label: str, max_len: int) -> None:
        """Check an optional string field's length."""
        if value is None:
            return
        if not isinstance(value, str):
            self.fail(ptr, f"{label} must be a string")
        elif len(value) > max_len:
            self.fail(ptr, self.too_long(label, value, max_len))

    def _nothing(self, block: dict[str, Any], ptr: str) -> None:
        """Blocks whose content the emulator does not inspect further."""

    def _section(self, block: dict[str, Any], ptr: str) -> None:
        text, fields = block.get("text"), block.get("fields")
        if text is None and fields is None:
            self.fail(ptr, "section requires text or fields")
        self.text(
            text,
            pointer(ptr, "text"),
            label="section text",
            max_len=SECTION_TEXT_MAX,
            required=False,
        )
        if fields is not None:
            self._section_fields(fields, pointer(ptr, "fields"))
        accessory = block.get("accessory")
        if accessory is not None:
            self.element(accessory, pointer(ptr, "accessory"), action_ids=set())

    def _section_fields(self, fields: Any, ptr: str) -> None:
        if not isinstance(fields, list):
            self.fail(ptr, "section fields must be an array")
            return
        if len(fields) > SECTION_FIELDS_MAX:
            reason = f"section fields: no more than {SECTION_FIELDS_MAX} items allowed"
            self.fail(ptr, f"{reason} (got {len(fields)})")
        for index, field in enumerate(fields):
            self.text(
                field,
                pointer(ptr, index),
                label="section field",
                max_len=SECTION_FIELD_TEXT_MAX,
            )

    def _header(self, block: dict[str, Any], ptr: str) -> None:
        self.text(
            block.get("text"),
            pointer(ptr, "text"),
            label="header text",
            max_len=HEADER_TEXT_MAX,
            plain_only=True,
        )

    def _markdown(self, block: dict[str, Any], ptr: str) -> None:
        value = block.get("text")
        if not isinstance(value, str) or not value:
            self.fail(pointer(ptr, "text"), "markdown text must be more than 0 characters")
        else:
            self.plain_string(
                value, pointer(ptr, "text"), label="markdown text", max_len=MARKDOWN_TEXT_MAX
            )

    def _rich_text(self, block: dict[str, Any], ptr: str) -> None:
        if not isinstance(block.get("elements"), list):
            self.fail(pointer(ptr, "elements"), "rich_text elements must be an array")

    def _actions(self, block: dict[str, Any], ptr: str) -> None:
        elements = self._element_list(block, ptr, label="actions", max_items=ACTIONS_ELEMENTS_MAX)
        action_ids: set[str] = set()
        for index, element in enumerate(elements):
            self.element(element, pointer(ptr, "elements", index), action_ids=action_ids)

    def _context(self, block: dict[str, Any], ptr: str) -> None:
        elements = self._element_list(block, ptr, label="context", max_items=CONTEXT_ELEMENTS_MAX)
        for index, element in enumerate(elements):
            where = pointer(ptr, "elements", index)
            if isinstance(element, dict) and element.get("type") == "image":
                self.image(element, where)
            else:
                self.text(element, where, label="context element", max_len=SECTION_TEXT_MAX)

    def _element_list(
        self, block: dict[str, Any], ptr: str, *, label: str, max_items: int
    ) -> list[Any]:
        elements = block.get("elements")
        where = pointer(ptr, "elements")
        if not isinstance(elements, list) or not elements:
            self.fail(where, f"{label} elements must be a non-empty array")
            return []
        if len(elements) > max_items:
            reason = f"{label} elements: no more than {max_items} items allowed"
            self.fail(where, f"{reason} (got {len(elements)})")
        return elements

    def _image_block(self, block: dict[str, Any], ptr: str) -> None:
        self.image(block, ptr)
        if block.get("title") is not None:
            self.text(
                block["title"],
                pointer(ptr, "title"),
                label="image title",
                max_len=ALT_TEXT_MAX,
                plain_only=True,
            )

    def image(self, obj: dict[str, Any], ptr: str) -> None:
        """Check an image block or element: a URL (or slack_file) and alt text."""
        url = obj.get("image_url")
        if url is None and obj.get("slack_file") is None:
            self.fail(pointer(ptr, "image_url"), "image requires image_url or slack_file")
        self.plain_string(url, pointer(ptr, "image_url"), label="image_url", max_len=URL_MAX)
        alt = obj.get("alt_text")
        if not isinstance(alt, str) or not alt:
            self.fail(pointer(ptr, "alt_text"), "image alt_text must be more than 0 characters")
        else:
            self.plain_string(alt, pointer(ptr, "alt_text"), label="alt_text", max_len=ALT_TEXT_MAX)

    def _input(self, block: dict[str, Any], ptr: str) -> None:
        self.text(
            block.get("label"),
            pointer(ptr, "label"),
            label="input label",
            max_len=LABEL_MAX,
            plain_only=True,
        )
        if block.get("hint") is not None:
            self.text(
                block["hint"],
                pointer(ptr, "hint"),
                label="input hint",
                max_len=LABEL_MAX,
                plain_only=True,
            )
        element = block.get("element")
        if element is None:
            self.fail(pointer(ptr, "element"), "input requires an element")
        else:
            self.element(element, pointer(ptr, "element"), action_ids=set())

    def element(self, element: Any, ptr: str, *, action_ids: set[str]) -> None:
        """Check one block element (interactive, image or text input)."""
        check_element(self, element, ptr, action_ids=action_ids)
