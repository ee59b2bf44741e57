"""A healthy lab and nothing changed: the digest is one line, without a chart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.digests.post import post_digests
from bot.store import EmbeddedPostgres
from lab.slack import SlackEmulator
from lab.stack import Lab
from tests.approvals.conftest import started_lab
from tests.digests.conftest import digest_bot, due


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """The runbook profile, everything healthy."""
    yield from started_lab(pg_server, ("healthy", "default"))


async def test_nothing_changed_and_healthy_is_one_line(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str
) -> None:
    since = datetime.now(UTC) - timedelta(hours=1)
    async with digest_bot(slack_emulator, database_url, lab) as bot:
        assert await post_digests(bot.deps, [due("C0GENERAL", 1, since)]) == [1]
    digest = slack_emulator.messages("C0GENERAL")[-1]
    assert len(digest["blocks"]) == 1
    assert "\n" not in digest["text"]
    assert digest["text"].startswith(":large_green_circle: Streamhouse is healthy")
    assert not slack_emulator.files
