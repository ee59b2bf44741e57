"""The bot's exception tree.

``BotError`` carries a message fit for a Slack user; the single error handler shows it
as is. Anything that is not a ``BotError`` is unexpected: the user sees a short apology
with an error id, and the same id is logged with the traceback.

- ``BotError``: base; ``user_message`` is safe to show.
  - ``UsageError``: the command's words are wrong (unknown subcommand, bad argument).
  - ``NotAuthorizedError``: the user may not do this.
  - ``SourceUnavailableError``: a system the bot reads from could not be reached.
  - ``NotFoundError``: the thing the user named (an incident id) does not exist.
  - ``ConflictError``: the request no longer fits the state (resolving twice).
"""

from __future__ import annotations


class BotError(Exception):
    """An expected failure whose message can be shown to the user."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class UsageError(BotError):
    """The user's command could not be understood; ``hint`` suggests what to type."""

    def __init__(self, user_message: str, *, hint: str | None = None) -> None:
        super().__init__(user_message)
        self.hint = hint


class NotAuthorizedError(BotError):
    """The user is not allowed to do what they asked."""


class SourceUnavailableError(BotError):
    """A system the bot depends on did not answer."""


class NotFoundError(BotError):
    """The user named something (an incident, a request) that does not exist."""


class ConflictError(BotError):
    """The request does not fit the current state, e.g. acknowledging a resolved incident."""
