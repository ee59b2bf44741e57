"""`/streamhouse` through the emulator's driver, over HTTP and Socket Mode."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import SectionBlock

from bot.commands import CommandContext, Invocation, SubcommandSpec
from bot.replies import Reply
from bot.runtime import BotRuntime
from lab.slack import SlackDriver, SlackEmulator

SLACK_ACK_DEADLINE_S = 3.0


def all_text(message: dict[str, Any]) -> str:
    """The fallback text and every text inside the blocks of a message, joined."""
    parts = [str(message.get("text", ""))]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                parts.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.get("blocks", []))
    return "\n".join(parts)


async def test_help_is_answered_inside_the_ack_over_http(driver: SlackDriver) -> None:
    """`help` comes back in the HTTP acknowledgement itself, ephemeral, with every subcommand."""
    response = await driver.command("help")
    assert response.status == 200
    assert response.elapsed < SLACK_ACK_DEADLINE_S
    body = response.json()
    assert body is not None
    assert body["response_type"] == "ephemeral"
    text = all_text(body)
    assert "/streamhouse help" in text
    assert "/streamhouse ping" in text


async def test_empty_command_shows_help(driver: SlackDriver) -> None:
    """Typing just `/streamhouse` shows the help."""
    body = (await driver.command("")).json()
    assert body is not None
    assert "/streamhouse ping" in all_text(body)


async def test_help_is_answered_over_socket_mode(
    socket_driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """Over Socket Mode the help arrives in the envelope's ack payload."""
    response = await socket_driver.command("help", via="socket")
    assert response.ack is not None
    payload = response.ack.get("payload") or {}
    assert "/streamhouse ping" in all_text(payload)


async def test_ping_reports_database_and_slack_round_trips(
    driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """`ping` acks at once, then answers through the response URL with both round trips."""
    response = await driver.command("ping")
    assert response.status == 200
    assert response.elapsed < SLACK_ACK_DEADLINE_S
    posts = await slack_emulator.async_wait_for(
        lambda: slack_emulator.responses(response.response_url)
    )
    text = all_text(posts[0])
    assert "pong" in text
    assert "Database:" in text
    assert " ms" in text
    assert "Slack API:" in text
    assert ":x:" not in text


async def test_ping_over_socket_mode(
    socket_driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """`ping` works the same over Socket Mode."""
    response = await socket_driver.command("ping", via="socket")
    posts = await slack_emulator.async_wait_for(
        lambda: slack_emulator.responses(response.response_url)
    )
    assert "pong" in all_text(posts[0])


async def test_unknown_subcommand_gets_a_suggestion_and_help(driver: SlackDriver) -> None:
    """A typo gets a short ephemeral error with a did-you-mean and the subcommand list."""
    body = (await driver.command("hlep")).json()
    assert body is not None
    assert body["response_type"] == "ephemeral"
    text = all_text(body)
    assert "Did you mean `help`?" in text
    assert "`ping`" in text


async def test_hostile_text_is_escaped_not_a_mention(driver: SlackDriver) -> None:
    """Text the user typed is echoed escaped, so `<!channel>` never notifies anyone."""
    body = (await driver.command("<!channel>")).json()
    assert body is not None
    text = all_text(body)
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text


async def test_unclosed_quote_is_a_usage_error(driver: SlackDriver) -> None:
    """A line that cannot be split gets a clear usage error, not a crash."""
    body = (await driver.command('ping "oops')).json()
    assert body is not None
    assert "Could not read the command" in all_text(body)


async def test_unexpected_error_shows_an_id_that_is_logged(
    bot: BotRuntime,
    driver: SlackDriver,
    slack_emulator: SlackEmulator,
    caplog: Any,
) -> None:
    """A bug in a subcommand shows the user an error id; the same id is in the log."""

    async def explode(context: CommandContext, invocation: Invocation) -> Reply:
        raise RuntimeError("kaboom")

    bot.deps.router.register(SubcommandSpec("explode", "fails", "explode", explode))
    response = await driver.command("explode")
    posts = await slack_emulator.async_wait_for(
        lambda: slack_emulator.responses(response.response_url)
    )
    text = all_text(posts[0])
    assert "error id" in text
    error_id = text.split("error id ")[1].split(")")[0]
    assert any(error_id in record.getMessage() for record in caplog.records)
    assert "kaboom" not in text


async def test_bot_error_message_is_shown_as_is(
    bot: BotRuntime, driver: SlackDriver, slack_emulator: SlackEmulator
) -> None:
    """An expected failure (`BotError`) reaches the user with its own message."""
    from bot.errors import SourceUnavailableError

    async def unavailable(context: CommandContext, invocation: Invocation) -> Reply:
        raise SourceUnavailableError("Prometheus did not answer within 5 s.")

    bot.deps.router.register(SubcommandSpec("down", "fails", "down", unavailable))
    response = await driver.command("down")
    posts = await slack_emulator.async_wait_for(
        lambda: slack_emulator.responses(response.response_url)
    )
    assert "Prometheus did not answer within 5 s." in all_text(posts[0])


async def test_replies_the_emulator_would_reject_fail_in_tests_first() -> None:
    """`Reply.to_slack` validates Block Kit limits, so an oversize section never ships."""
    import pytest
    from slack_sdk.errors import SlackObjectFormationError

    reply = Reply(text="x", blocks=(SectionBlock(text="y" * 3001),))
    with pytest.raises(SlackObjectFormationError):
        reply.to_slack()
