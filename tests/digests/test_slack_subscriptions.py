"""`/streamhouse digest …` through the Slack emulator and the signed driver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.digests.scheduler import DigestScheduler, running_scheduler
from bot.runtime import BotRuntime
from lab.slack import SlackDriver, SlackEmulator
from tests.app.test_commands import all_text
from tests.digests.test_scheduler import RecordingPoster, started
from tests.fixtures.bot import make_settings

# Fires once a year, so no real minute of the test run posts a digest by itself.
SCHEDULE = 'cron "0 3 29 2 *"'


@pytest.fixture
async def approver_bot(
    slack_emulator: SlackEmulator, database_url: str
) -> AsyncIterator[BotRuntime]:
    """A running bot whose only approver is Alice."""
    settings = make_settings(slack_emulator, database_url, bot_approvers="U0ALICE")
    async with BotRuntime(settings) as bot:
        yield bot


@pytest.fixture
async def scheduler(approver_bot: BotRuntime) -> AsyncIterator[DigestScheduler]:
    """A running digest scheduler on the bot, posting through a recording poster."""
    async with started(DigestScheduler(approver_bot.deps, poster=RecordingPoster())) as running:
        yield running


@pytest.fixture
async def digest_driver(
    slack_emulator: SlackEmulator, approver_bot: BotRuntime
) -> AsyncIterator[SlackDriver]:
    """A signed driver for the approver bot."""
    async with SlackDriver(slack_emulator, bot_url=f"{approver_bot.http_url}/slack/events") as d:
        yield d


async def answer(
    driver: SlackDriver, slack: SlackEmulator, text: str, user_id: str = "U0ALICE"
) -> str:
    """The private answer to a command (in the ack, or through the response URL)."""
    response = await driver.command(text, user_id=user_id)
    body = response.json()
    if body and body.get("text"):
        assert body["response_type"] == "ephemeral"
        return all_text(body)
    posts = await slack.async_wait_for(lambda: slack.responses(response.response_url))
    assert posts[0]["response_type"] == "ephemeral"
    return all_text(posts[0])


async def test_subscribe_list_unsubscribe(
    digest_driver: SlackDriver, slack_emulator: SlackEmulator, scheduler: DigestScheduler
) -> None:
    """Subscribe → listed and scheduled → unsubscribe → gone from the list and the jobs."""
    text = await answer(digest_driver, slack_emulator, f"digest subscribe {SCHEDULE}")
    assert '<#C0GENERAL> will get a health digest `cron "0 3 29 2 *" UTC`' in text
    assert "(subscription 1)" in text
    assert "Next:" in text
    assert scheduler.subscription_ids == [1]
    listed = await answer(digest_driver, slack_emulator, "digest list")
    assert "Digest subscriptions (1)" in listed
    assert "*1* <#C0GENERAL>" in listed
    assert "none posted yet" in listed
    gone = await answer(digest_driver, slack_emulator, "digest unsubscribe 1")
    assert "no longer gets the digest" in gone
    assert scheduler.subscription_ids == []
    assert "No channel gets digests yet" in await answer(
        digest_driver, slack_emulator, "digest list"
    )
    missing = await answer(digest_driver, slack_emulator, "digest unsubscribe 1")
    assert "There is no digest subscription 1" in missing


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("digest subscribe daily 25:00", "`25:00` is not a time of day."),
        ("digest subscribe daily 09:00 Mars/Olympus", "`Mars/Olympus` is not a time zone I know."),
        ('digest subscribe cron "0 */x * * *"', "its hour field `*/x` is wrong"),
        ('digest subscribe cron "0 * *"', "is not a cron expression"),
        ("digest subscribe monthly", "`monthly` is not a schedule I know."),
        ("digest subscribe daily 09:00 #alerts", "I cannot look a channel up by its name"),
        ("digest unsubscribe seven", "`seven` is not a subscription id."),
        ("digest fly", "`fly` is not something I can do with digests."),
    ],
)
async def test_bad_digest_commands_get_a_clear_private_error(
    digest_driver: SlackDriver, text: str, message: str
) -> None:
    """Refused inside the acknowledgement, privately, with the reason in plain words."""
    body = (await digest_driver.command(text)).json()
    assert body is not None
    assert body["response_type"] == "ephemeral"
    assert message in all_text(body)


async def test_only_approvers_subscribe_other_channels(
    digest_driver: SlackDriver, slack_emulator: SlackEmulator, scheduler: DigestScheduler
) -> None:
    """Bob may subscribe his own channel but not another; Alice (an approver) may."""
    refused = await answer(
        digest_driver, slack_emulator, f"digest subscribe {SCHEDULE} C0ALERTS", user_id="U0BOB"
    )
    assert "You are not an approver" in refused
    mine = await answer(digest_driver, slack_emulator, "digest subscribe hourly", user_id="U0BOB")
    assert "<#C0GENERAL> will get a health digest `hourly`" in mine
    other = await answer(digest_driver, slack_emulator, f"digest subscribe {SCHEDULE} <#C0ALERTS>")
    assert "<#C0ALERTS> will get a health digest" in other
    unknown = await answer(digest_driver, slack_emulator, f"digest subscribe {SCHEDULE} C0NOWHERE1")
    assert "I cannot find the channel" in unknown
    bob_removes = await answer(
        digest_driver, slack_emulator, "digest unsubscribe 2", user_id="U0BOB"
    )
    assert "You are not an approver" in bob_removes
    assert scheduler.subscription_ids == [1, 2]


async def test_digest_now_posts_through_the_poster(
    digest_driver: SlackDriver,
    slack_emulator: SlackEmulator,
    approver_bot: BotRuntime,
    scheduler: DigestScheduler,
) -> None:
    """`digest now` hands this channel's digest to the poster and says so privately."""
    assert running_scheduler(approver_bot.deps.db) is scheduler
    await answer(digest_driver, slack_emulator, f"digest subscribe {SCHEDULE}")
    text = await answer(digest_driver, slack_emulator, "digest now")
    assert "The digest is posted in this channel." in text
    poster = scheduler.poster
    assert isinstance(poster, RecordingPoster)
    [[due]] = poster.calls
    assert due.subscription.channel == "C0GENERAL"
    assert due.subscription.id == 1
    assert due.since is None
    listed = await answer(digest_driver, slack_emulator, "digest list")
    assert "none posted yet" not in listed


async def test_help_lists_digest(digest_driver: SlackDriver) -> None:
    """The help shows the digest subcommand with an example."""
    body = (await digest_driver.command("help")).json()
    assert body is not None
    assert "/streamhouse digest subscribe daily 09:00 Europe/Berlin" in all_text(body)
