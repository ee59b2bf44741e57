"""``/streamhouse ping``: is the bot alive, and how fast do its database and Slack answer?"""

from __future__ import annotations

import time

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

from bot import __version__
from bot.commands import CommandContext, Invocation
from bot.ids import BlockId
from bot.replies import Reply

Probe = tuple[bool, str]


async def probe_database(context: CommandContext) -> Probe:
    """Round trip to the bot's own PostgreSQL."""
    try:
        seconds = await context.deps.db.ping()
    except Exception as error:  # any failure is reported, not raised: ping must answer
        return False, f"unreachable ({type(error).__name__})"
    return True, f"{seconds * 1000:.1f} ms"


async def probe_slack(context: CommandContext) -> Probe:
    """Round trip to Slack's Web API (``auth.test``)."""
    started = time.perf_counter()
    try:
        await context.deps.slack.auth_test()
    except SlackApiError as error:
        return False, f"error `{error.response.get('error', 'unknown')}`"
    except Exception as error:  # network failures of any kind are reported the same way
        return False, f"unreachable ({type(error).__name__})"
    return True, f"{(time.perf_counter() - started) * 1000:.1f} ms"


async def run_ping(context: CommandContext, invocation: Invocation) -> Reply | None:
    """Answer with the version and both round trips; a failed probe is shown, not hidden."""
    database = await probe_database(context)
    slack = await probe_slack(context)
    healthy = database[0] and slack[0]
    icon = ":large_green_circle:" if healthy else ":red_circle:"
    lines = [
        f"{icon} *pong* from streamhouse-bot {__version__}",
        f"Database: {_mark(database)} {database[1]}",
        f"Slack API: {_mark(slack)} {slack[1]}",
    ]
    text = f"pong from streamhouse-bot {__version__}: database {database[1]}, Slack {slack[1]}"
    block = SectionBlock(
        block_id=BlockId.PING_RESULT, text=MarkdownTextObject(text="\n".join(lines))
    )
    return Reply(text=text, blocks=(block,))


def _mark(probe: Probe) -> str:
    return ":white_check_mark:" if probe[0] else ":x:"
