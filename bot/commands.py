"""The ``/streamhouse`` command router: one parser and one registry for Slack and the CLI.

Text is split like a shell line (quotes group words), ``key=value`` words become options
and the first plain word names the subcommand. Later parts register their subcommands on
the same router, so help, did-you-mean and usage errors work the same everywhere.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from bot.errors import UsageError
from bot.replies import Reply

if TYPE_CHECKING:
    from bot.deps import Deps

MAX_TEXT_LENGTH = 2000


@dataclass(frozen=True)
class Invocation:
    """A parsed command line: ``name`` plus positional words and ``key=value`` options."""

    name: str
    args: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class CommandContext:
    """Who asked, from where, and the dependencies a subcommand may use."""

    deps: Deps
    user_id: str | None = None
    channel_id: str | None = None
    surface: str = "slack"


# A handler returns the reply to send back, or None when it already answered in the channel.
CommandHandler = Callable[[CommandContext, Invocation], Awaitable[Reply | None]]
Validator = Callable[[Invocation], object]


@dataclass(frozen=True)
class SubcommandSpec:
    """One subcommand: how it is used and what runs it.

    ``instant`` subcommands do no I/O and answer inside Slack's acknowledgement; the others
    are acknowledged first and answer through the response URL. ``validate`` (pure, fast)
    runs before the acknowledgement so that bad arguments are refused inside it.
    """

    name: str
    summary: str
    example: str
    handler: CommandHandler
    instant: bool = False
    aliases: tuple[str, ...] = ()
    validate: Validator | None = None


def parse_command_text(text: str) -> Invocation:
    """Split ``text`` into an ``Invocation``; an empty line means ``help``."""
    if len(text) > MAX_TEXT_LENGTH:
        raise UsageError(
            f"That command is too long ({len(text)} characters, at most {MAX_TEXT_LENGTH})."
        )
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise UsageError(
            f"Could not read the command: {error}.",
            hint='Close every quote, e.g. `cron "0 * * * *"`.',
        ) from None
    if not words:
        return Invocation(name="help")
    name, *rest = words
    args: list[str] = []
    options: dict[str, str] = {}
    for word in rest:
        key, sep, value = word.partition("=")
        if sep and key:
            options[key.lower()] = value
        else:
            args.append(word)
    return Invocation(name=name.lower(), args=tuple(args), options=MappingProxyType(options))


class CommandRouter:
    """Registered subcommands in the order help lists them."""

    def __init__(self) -> None:
        self._specs: dict[str, SubcommandSpec] = {}
        self._names: dict[str, SubcommandSpec] = {}

    def register(self, spec: SubcommandSpec) -> None:
        """Add ``spec``; a name or alias that is already taken raises ``ValueError``."""
        for name in (spec.name, *spec.aliases):
            if name in self._names:
                raise ValueError(f"subcommand name {name!r} is registered twice")
        self._specs[spec.name] = spec
        for name in (spec.name, *spec.aliases):
            self._names[name] = spec

    def __iter__(self) -> Iterator[SubcommandSpec]:
        return iter(self._specs.values())

    def resolve(self, invocation: Invocation) -> SubcommandSpec:
        """The subcommand ``invocation`` names, or a ``UsageError`` with a suggestion."""
        spec = self._names.get(invocation.name)
        if spec is not None:
            return spec
        close = difflib.get_close_matches(invocation.name, list(self._names), n=1, cutoff=0.6)
        hint = f"Did you mean `{close[0]}`?" if close else None
        raise UsageError(f"`{invocation.name}` is not a subcommand I know.", hint=hint)

    async def run(self, context: CommandContext, text: str) -> Reply | None:
        """Parse ``text`` and run the subcommand it names."""
        invocation = parse_command_text(text)
        spec = self.resolve(invocation)
        if spec.validate is not None:
            spec.validate(invocation)
        return await spec.handler(context, invocation)
