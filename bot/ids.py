"""Stable identifiers shared by listeners, rendering and tests (kebab-case values)."""

from __future__ import annotations

from enum import StrEnum

SLASH_COMMAND = "/streamhouse"


class Subcommand(StrEnum):
    """The words that may follow ``/streamhouse``."""

    HELP = "help"
    PING = "ping"


class BlockId(StrEnum):
    """Block ids the bot sets so updates and tests can find blocks again."""

    HELP_HEADER = "help-header"
    HELP_USAGE = "help-usage"
    ERROR = "error"
    PING_RESULT = "ping-result"
