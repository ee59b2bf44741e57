"""A digest while Prometheus is down: every panel unknown with the reason, still posted."""

from __future__ import annotations

import socket

from bot.digests.panels import PANELS
from bot.digests.post import post_digests
from bot.models import Status
from bot.render.diagnosis import icon
from lab.slack import SlackEmulator
from tests.digests.conftest import digest_bot, due


def closed_port_url() -> str:
    """A loopback URL where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_prometheus_down_makes_every_panel_unknown_and_the_digest_still_posts(
    slack_emulator: SlackEmulator, database_url: str
) -> None:
    async with digest_bot(
        slack_emulator, database_url, None, prometheus_url=closed_port_url()
    ) as bot:
        assert await post_digests(bot.deps, [due("C0GENERAL", 3)]) == [3]
    digest = slack_emulator.messages("C0GENERAL")[-1]
    fields = next(b for b in digest["blocks"] if b["block_id"] == "digest-panels")["fields"]
    assert len(fields) == len(PANELS)
    for field in fields:
        assert field["text"].startswith(icon(Status.UNKNOWN))
        assert "unknown: prometheus:" in field["text"]
    assert "Circuit breaker unknown" in digest["text"]
    assert "Disk usage unknown" in digest["text"]
