"""Help and usage-error messages for the ``/streamhouse`` command."""

from __future__ import annotations

from collections.abc import Iterable

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.commands import SubcommandSpec
from bot.errors import UsageError
from bot.ids import SLASH_COMMAND, BlockId
from bot.render.text import escape, truncate
from bot.replies import Reply

SECTION_TEXT_LIMIT = 3000


def help_reply(specs: Iterable[SubcommandSpec], runbook_base_url: str) -> Reply:
    """Every subcommand with one line of purpose and an example to copy."""
    specs = list(specs)
    lines = [f"`{SLASH_COMMAND} {spec.example}` — {spec.summary}" for spec in specs]
    blocks: list[Block] = [
        HeaderBlock(block_id=BlockId.HELP_HEADER, text="Streamhouse incident bot"),
        SectionBlock(
            block_id=BlockId.HELP_USAGE,
            text=MarkdownTextObject(text=truncate("\n".join(lines), SECTION_TEXT_LIMIT)),
        ),
        DividerBlock(),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Runbooks: <{runbook_base_url}|Streamhouse operational runbooks>"
                )
            ]
        ),
    ]
    text = "Streamhouse bot commands:\n" + "\n".join(
        f"  {SLASH_COMMAND} {spec.example}  —  {spec.summary}" for spec in specs
    )
    return Reply(text=text, blocks=tuple(blocks))


def usage_error_reply(error: UsageError, specs: Iterable[SubcommandSpec]) -> Reply:
    """A short error, the hint if there is one, then the list of subcommands."""
    headline = error.user_message if error.hint is None else f"{error.user_message} {error.hint}"
    names = ", ".join(f"`{spec.name}`" for spec in specs)
    body = f":warning: {escape(headline)}\nSubcommands: {names}. Try `{SLASH_COMMAND} help`."
    block = SectionBlock(
        block_id=BlockId.ERROR, text=MarkdownTextObject(text=truncate(body, SECTION_TEXT_LIMIT))
    )
    return Reply(text=f"{escape(headline)} Try {SLASH_COMMAND} help.", blocks=(block,))


def error_reply(message: str) -> Reply:
    """A plain ephemeral error message."""
    body = f":warning: {escape(message)}"
    block = SectionBlock(
        block_id=BlockId.ERROR, text=MarkdownTextObject(text=truncate(body, SECTION_TEXT_LIMIT))
    )
    return Reply(text=escape(message), blocks=(block,))
