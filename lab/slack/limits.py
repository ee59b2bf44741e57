"""Slack's Block Kit limits and the error wording the emulator uses for them.

Limits follow slack_sdk.models.blocks / slack_sdk.models.views and
docs.slack.dev/reference/block-kit (see /work/shared/reference/slack-platform.md).
"""

from __future__ import annotations

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
VIEW_TITLE_MAX = 24
VIEW_BUTTON_MAX = 24
PRIVATE_METADATA_MAX = 3000
CALLBACK_ID_MAX = 255
BLOCK_ID_MAX = 255
ACTION_ID_MAX = 255
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
MARKDOWN_TEXT_MAX = 12000
ACTIONS_ELEMENTS_MAX = 25
CONTEXT_ELEMENTS_MAX = 10
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
URL_MAX = 3000
ALT_TEXT_MAX = 2000
LABEL_MAX = 2000
PLACEHOLDER_MAX = 150
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
OPTIONS_MAX = 100
OVERFLOW_OPTIONS_MAX = 5
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
CONFIRM_BUTTON_MAX = 30

INTERACTIVE_ELEMENTS = frozenset(
    {
        "button",
        "checkboxes",
        "datepicker",
        "datetimepicker",
        "timepicker",
        "overflow",
        "radio_buttons",
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
        "plain_text_input",
        "rich_text_input",
        "email_text_input",
        "url_text_input",
        "number_input",
        "file_input",
        "workflow_button",
    }
)
SELECTS_WITH_OPTIONS = frozenset({"static_select", "multi_static_select"})


def pointer(base: str, *parts: str | int) -> str:
    """Join JSON pointer segments."""
    return base + "".join(f"/{part}" for part in parts)


def problem(ptr: str, reason: str) -> str:
    """Format one problem the way Slack does."""
    return f"{reason} [json-pointer:{ptr}]"
