"""``/streamhouse digest subscribe <schedule> [channel] | list | unsubscribe ID | now``.

Schedules and arguments are checked inside the acknowledgement, so a bad schedule gets a
clear private error at once. Anyone may subscribe or unsubscribe the channel they type in;
another channel takes an approver. Answers are private to the person who asked.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError

from bot.commands import CommandContext, Invocation
from bot.deps import Deps
from bot.digests.model import Subscription
from bot.digests.schedule import Schedule, next_runs, parse_schedule, parse_schedule_text
from bot.digests.scheduler import post_digest_now, running_scheduler, subscriptions_changed
from bot.digests.store import DigestStore
from bot.errors import BotError, NotFoundError, UsageError
from bot.render.text import code, truncate
from bot.replies import Reply

NAME = "digest"
VERBS = ("subscribe", "list", "unsubscribe", "now")
_ALIASES = {"sub": "subscribe", "ls": "list", "unsub": "unsubscribe", "remove": "unsubscribe"}
USAGE = (
    "`digest subscribe daily 09:00 Europe/Berlin [channel]` (or `hourly`, `weekdays 08:30`, "
    '`cron "0 */4 * * *"`), `digest list`, `digest unsubscribe 3`, `digest now`'
)
LIST_LIMIT = 50
TEXT_LIMIT = 3000
_MENTION = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|[^>]*)?>$")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{7,}$")


@dataclass(frozen=True)
class DigestCommand:
    """A parsed ``digest`` line: the verb and what it needs."""

    verb: str
    schedule: Schedule | None = None
    channel: str | None = None
    subscription_id: int | None = None


def validate_digest(invocation: Invocation) -> DigestCommand:
    """Parse the words after ``digest`` (raises ``UsageError`` with a hint)."""
    if invocation.options:
        raise UsageError("`digest` takes no key=value options.", hint=f"Use {USAGE}.")
    if not invocation.args:
        raise UsageError("Say what to do with digests.", hint=f"Use {USAGE}.")
    word, *rest = invocation.args
    verb = _ALIASES.get(word.lower(), word.lower())
    if verb not in VERBS:
        close = difflib.get_close_matches(verb, [*VERBS, *_ALIASES], n=1, cutoff=0.5)
        hint = f"Did you mean `digest {close[0]}`?" if close else f"Use {USAGE}."
        raise UsageError(f"`{word}` is not something I can do with digests.", hint=hint)
    if verb == "subscribe":
        return _subscribe_command(rest)
    if verb == "unsubscribe":
        return DigestCommand(verb, subscription_id=_subscription_id(rest))
    if rest:
        raise UsageError(f"`digest {verb}` takes no arguments.")
    return DigestCommand(verb)


async def run_digest(context: CommandContext, invocation: Invocation) -> Reply | None:
    """Run one ``digest`` verb; the answer is private to the person who asked."""
    command = validate_digest(invocation)
    here = context.channel_id or ""
    user = context.user_id or ""
    if command.verb == "subscribe" and command.schedule is not None:
        return await _subscribe(context.deps, command.schedule, command.channel or here, here, user)
    if command.verb == "unsubscribe" and command.subscription_id is not None:
        return await _unsubscribe(context.deps, command.subscription_id, here, user)
    if command.verb == "now":
        return await _post_now(context.deps, here, user)
    return render_subscriptions(await DigestStore(context.deps.db).active(), datetime.now(UTC))


def render_subscriptions(subscriptions: list[Subscription], now: datetime) -> Reply:
    """Every active subscription: id, channel, schedule, next run and last digest."""
    if not subscriptions:
        return Reply(text="No channel gets digests yet. Start with `digest subscribe daily 09:00`.")
    lines = [f"*Digest subscriptions ({len(subscriptions)}):*"]
    lines += [_describe(subscription, now) for subscription in subscriptions[:LIST_LIMIT]]
    if len(subscriptions) > LIST_LIMIT:
        lines.append(f"…and {len(subscriptions) - LIST_LIMIT} more.")
    return Reply(text=truncate("\n".join(lines), TEXT_LIMIT))


def _subscribe_command(words: list[str]) -> DigestCommand:
    """``subscribe``'s schedule and optional channel (the last word, if it names one)."""
    channel = None
    if words and (words[-1].startswith(("<#", "#")) or _CHANNEL_ID.match(words[-1])):
        channel = _channel(words[-1])
        words = words[:-1]
    return DigestCommand("subscribe", schedule=parse_schedule(words), channel=channel)


def _channel(word: str) -> str:
    """The channel id in a mention (``<#C123|name>``) or an id; a bare ``#name`` is refused."""
    mention = _MENTION.match(word)
    if mention:
        return mention[1]
    if _CHANNEL_ID.match(word):
        return word
    raise UsageError(
        f"I cannot look a channel up by its name ({code(word)}).",
        hint="Give its id instead (in Slack: the channel's name, then About, then Channel ID), "
        "e.g. `digest subscribe daily 09:00 C0123ABCD`.",
    )


def _subscription_id(words: list[str]) -> int:
    """The one subscription id ``unsubscribe`` takes (``3`` or ``#3``)."""
    if len(words) != 1:
        raise UsageError(
            "`digest unsubscribe` takes one subscription id.",
            hint="`digest list` shows the ids, e.g. `digest unsubscribe 3`.",
        )
    number = words[0].removeprefix("#")
    if not number.isdigit() or not 0 < int(number) < 2**63:
        raise UsageError(
            f"`{words[0]}` is not a subscription id.", hint="`digest list` shows the ids."
        )
    return int(number)


async def _subscribe(deps: Deps, schedule: Schedule, channel: str, here: str, user: str) -> Reply:
    """Store the subscription (an approver's job for another channel) and schedule it."""
    if not channel:
        raise UsageError("Run this in the channel that should get the digest, or name one.")
    if channel != here:
        await deps.approvers.require(user, "subscribe another channel to digests")
        await _require_channel(deps, channel)
    subscription = await DigestStore(deps.db).subscribe(
        channel, schedule.spelling, schedule.zone, user
    )
    await subscriptions_changed(deps.db)
    return Reply(
        text=f":calendar: <#{channel}> will get a health digest {code(schedule.spelling)} "
        f"(subscription {subscription.id}). {_next_run(schedule, datetime.now(UTC))}"
    )


async def _unsubscribe(deps: Deps, subscription_id: int, here: str, user: str) -> Reply:
    """Stop a subscription (an approver's job for another channel's)."""
    store = DigestStore(deps.db)
    subscription = await store.get(subscription_id)
    if subscription is None:
        raise NotFoundError(
            f"There is no digest subscription {subscription_id}. `digest list` shows them."
        )
    if subscription.channel != here:
        await deps.approvers.require(user, "unsubscribe another channel from digests")
    if await store.unsubscribe(subscription_id, user) is None:
        raise NotFoundError(f"Digest subscription {subscription_id} was just removed.")
    await subscriptions_changed(deps.db)
    return Reply(
        text=f":no_bell: <#{subscription.channel}> no longer gets the digest "
        f"{code(subscription.schedule)} (subscription {subscription_id})."
    )


async def _post_now(deps: Deps, channel: str, user: str) -> Reply:
    """Post this channel's digest now, through the running scheduler's poster if any."""
    if not channel:
        raise UsageError("Run `digest now` in the channel that should get the digest.")
    scheduler = running_scheduler(deps.db)
    if scheduler is not None:
        posted = await scheduler.post_now(channel, user)
    else:
        posted = await post_digest_now(deps, channel, user)
    if not posted:
        raise BotError("The digest could not be posted. Try again in a minute.")
    return Reply(text=":bar_chart: The digest is posted in this channel.")


async def _require_channel(deps: Deps, channel: str) -> None:
    """``NotFoundError`` unless Slack knows the channel."""
    try:
        await deps.slack.conversations_info(channel=channel)
    except SlackApiError:
        raise NotFoundError(
            f"I cannot find the channel {code(channel)}. Check the id, and invite me if it "
            "is private."
        ) from None


def _describe(subscription: Subscription, now: datetime) -> str:
    """One line of ``digest list``."""
    last = subscription.last_posted_at
    posted = f"last {_when(last)}" if last else "none posted yet"
    try:
        upcoming = _next_run(parse_schedule_text(subscription.schedule), now)
    except BotError:
        upcoming = "Not scheduled: its schedule no longer reads."
    return (
        f"• *{subscription.id}* <#{subscription.channel}> {code(subscription.schedule)} — "
        f"{posted}. {upcoming}"
    )


def _next_run(schedule: Schedule, now: datetime) -> str:
    runs = next_runs(schedule, now, 1)
    return f"Next: {_when(runs[0])}." if runs else "It will not fire again."


def _when(moment: datetime) -> str:
    """A time in UTC as Slack shows it in each reader's own zone, with a fallback."""
    fallback = moment.astimezone(UTC).strftime("%a %d %b %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"
