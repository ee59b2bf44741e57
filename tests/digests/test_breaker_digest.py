"""Digests on a lab whose circuit breakers are stuck open: panels, chart, queries, content."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from bot.approvals import ApprovalStore, NewRequest
from bot.cli import main
from bot.digests.chart import CHART_SERIES
from bot.digests.panels import PANELS, read_panels
from bot.digests.post import post_digests
from bot.incidents import IncidentStore
from bot.models import Risk, Status
from bot.profiles import profile_named
from bot.store import EmbeddedPostgres
from lab.slack import SlackEmulator
from lab.stack import Lab
from tests.approvals.conftest import started_lab
from tests.digests.conftest import CHANNELS, counted, digest_bot, due

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """The runbook profile with every breaker open ten minutes after S3 recovered."""
    yield from started_lab(pg_server, ("circuit-breaker-open", "recovered-10m"))


async def test_breaker_panel_is_critical_and_the_others_read(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str
) -> None:
    async with digest_bot(slack_emulator, database_url, lab) as bot:
        prometheus = bot.deps.sources.sources.prometheus
        assert prometheus is not None
        panels = {p.key: p for p in await read_panels(prometheus, profile_named("runbook"))}
    assert list(panels) == [spec.key for spec in PANELS]
    assert panels["breaker"].status is Status.CRITICAL
    assert panels["breaker"].value == "open on at least one agent"
    for key in ("resources", "leases", "registry", "disk"):
        assert panels[key].status is not Status.UNKNOWN, panels[key]


async def test_three_channels_share_one_query_per_panel_and_get_the_chart(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str
) -> None:
    async with digest_bot(slack_emulator, database_url, lab) as bot:
        deps, counter = counted(bot.deps)
        posted = await post_digests(deps, [due(channel, n) for n, channel in enumerate(CHANNELS)])
    assert sorted(posted) == [0, 1, 2]
    assert len(counter.instants) == len(PANELS) == 6
    assert len(counter.ranges) == len(CHART_SERIES) == 4
    files = slack_emulator.files
    assert len(files) == len(CHANNELS)
    for channel in CHANNELS:
        digest = slack_emulator.messages(channel)[-1]
        assert "Circuit breaker" in str(digest["blocks"])
        upload = next(f for f in files if f.channels == [channel])
        assert upload.completed
        assert upload.thread_ts == digest["ts"]
        content = upload.content or b""
        assert content.startswith(PNG_SIGNATURE)
        assert 20_000 < len(content) < 1_000_000
        thread = slack_emulator.thread(channel, digest["ts"])
        assert any(reply.get("upload") for reply in thread[1:])
    assert not [c for c in slack_emulator.calls if c.http_status == 429]


async def test_what_changed_lists_an_opened_incident_and_an_executed_action(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str
) -> None:
    async with digest_bot(slack_emulator, database_url, lab) as bot:
        deps = bot.deps
        root = await deps.slack.chat_postMessage(channel="C0GENERAL", text="incident root")
        incident = await IncidentStore(deps.db).open(
            "circuit-breaker",
            "Breaker <open> & stuck",
            Status.CRITICAL,
            "C0GENERAL",
            "U0ALICE",
            thread_ts=str(root["ts"]),
        )
        request = await ApprovalStore(deps.db).create(
            NewRequest(
                incident.id,
                "circuit-breaker",
                "CB-A2",
                Risk.MEDIUM,
                "deployment/streamhouse-agent",
                "U0ALICE",
                "stuck",
                {},
            ),
            ttl=timedelta(minutes=15),
        )
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await conn.execute(
                "UPDATE action_requests SET state = 'succeeded', approved_by = 'U0BOB', "
                "decided_at = now(), executed_at = now() WHERE id = %s",
                (request.id,),
            )
        assert await post_digests(deps, [due("C0INCIDENTS", 7)]) == [7]
    digest = slack_emulator.messages("C0INCIDENTS")[-1]
    text = str(digest["blocks"])
    assert "Opened <https://" in text
    assert incident.id in text
    assert "Breaker &lt;open&gt; &amp; stuck" in text
    assert "`CB-A2` on `deployment/streamhouse-agent` succeeded" in text
    assert "asked by <@U0ALICE>, approved by <@U0BOB>" in text
    assert "is open" in text  # the "Now" part lists it with its thread link


def test_cli_digest_prints_the_panels_and_exits_by_the_worst(
    lab: Lab, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``streamhouse-bot digest --json`` against the lab: the breaker panel is critical, so
    the exit code is 1; with Prometheus unreachable every panel is unknown (exit 3)."""
    for key, value in lab.env().items():
        monkeypatch.setenv(key, value)
    assert main(["digest", "--json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["status"] == "critical"
    assert [panel["key"] for panel in printed["panels"]] == [spec.key for spec in PANELS]
    monkeypatch.setenv("PROMETHEUS_URL", "http://127.0.0.1:1")
    assert main(["digest"]) == 3
    assert capsys.readouterr().out.count("no data") == len(PANELS)
