"""CB-A1 (watch auto-recovery) and CB-A3 (enable S3 throttling) through Slack against the
circuit-breaker lab (breaker open for 10 min on S3 503 SlowDown)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bot.store import EmbeddedPostgres
from lab.slack import SlackEmulator
from lab.stack import Lab
from tests.approvals.conftest import (
    resolved,
    running_flow,
    started_lab,
    switched,
    verifications,
    writes,
)
from tests.approvals.test_throttling_actions import WORKLOAD_PATH

THROTTLING = ("circuit-breaker-open", "throttling-10m")
RUNBOOK = "circuit-breaker"


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One runbook-profile lab for the module (each test switches to its scenario)."""
    yield from started_lab(pg_server, THROTTLING)


async def test_watching_auto_recovery_sees_the_breakers_close_and_resolves(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """CB-A1 writes nothing; when S3 recovers the breakers close by themselves, the watch
    sees CB-1 ok at its next poll, stops and resolves the incident."""
    switched(lab, THROTTLING)
    watch = {"bot_watch_interval_s": 0.3, "bot_watch_window_s": 20}
    async with running_flow(lab, slack_emulator, database_url, **watch) as flow:
        root_ts, _ = await flow.request("CB-A1", RUNBOOK)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert row["result"]["watch"] == {"checks": ["CB-1"], "window_s": 180.0}
        assert "read-only" in str(slack_emulator.views[0])
        await slack_emulator.async_wait_for(
            lambda: "still watching" in str(slack_emulator.thread("C0GENERAL", root_ts)),
            timeout=15,
        )
        lab.world.set_s3_fault(None)  # S3 recovers; the breakers' half-open probes succeed
        await resolved(flow, root_ts, within_s=30)
        texts = await verifications(flow)
        assert "still watching" in texts[0]
        assert "watch of" in texts[-1]
        assert "CB-1 ok" in texts[-1]
        assert writes(lab) == []


async def test_enabling_throttling_tunes_the_put_rate_down_and_s3_recovers(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """CB-A3: one PATCH sets THROTTLE_PUT_RATE 3000 -> 2500 (THROTTLE_ENABLED is already
    true); the agents roll, S3 stops throttling, the breakers close and CB-1/CB-4 verify."""
    switched(lab, THROTTLING)
    async with running_flow(lab, slack_emulator, database_url, bot_verify_delays_s="1,14") as flow:
        root_ts, _ = await flow.request("CB-A3", RUNBOOK)
        view = str(slack_emulator.views[0])
        assert "THROTTLE_PUT_RATE=3000" in view
        assert "THROTTLE_PUT_RATE=2500" in view
        assert "kubectl set env deployment/streamhouse-agent THROTTLE_PUT_RATE=3000" in view
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert row["result"]["env"] == {"THROTTLE_PUT_RATE": "2500"}
        assert writes(lab) == [("PATCH", WORKLOAD_PATH)]
        assert lab.world.agent_workload.env["THROTTLE_PUT_RATE"] == "2500"
        assert lab.world.s3_fault is None
        assert {agent.breaker_state for agent in lab.world.agents} == {0}
        await asyncio.to_thread(lab.time_passes)
        await resolved(flow, root_ts)
        texts = await verifications(flow)
        assert "CB-1 ok" in texts[-1]
        assert "CB-4 ok" in texts[-1]


async def test_enabling_throttling_is_refused_when_the_env_moved_since_the_preview(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Someone sets THROTTLE_PUT_RATE=2800 while the modal is open: CB-A3 refuses with what
    moved instead of writing over it."""
    switched(lab, THROTTLING)
    async with running_flow(lab, slack_emulator, database_url) as flow:
        root_ts, buttons_ts = await flow.diagnose(f"diagnose {RUNBOOK}", "CB-A3")
        await flow.click_request(buttons_ts, action="CB-A3", runbook=RUNBOOK)
        await slack_emulator.async_wait_for(lambda: slack_emulator.views, timeout=15)
        lab.world.set_env(lab.world.agent_workload.name, {"THROTTLE_PUT_RATE": "2800"})
        await flow.submit_request(root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "refused")
        assert "THROTTLE_PUT_RATE is now 2800, was 3000" in row["result"]["refused"]
        assert writes(lab) == []
