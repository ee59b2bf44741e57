"""TH-A1 (wait out a burst), TH-A2 (raise the PUT limit) and TH-A3 (scale out) through Slack
against the s3-throttling lab.

The throttling checks read 5-minute rates, so a fix shows in them minutes later. Where a
test needs the verification to see the world after the fix, ``Lab.time_passes`` restarts the
lab's Prometheus with hours of the world as it is now (the check windows then no longer
reach back to before the fix), the way ``Lab.switch`` does for a new scenario.
"""

from __future__ import annotations

import asyncio
import re
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

BURST = ("s3-throttling", "burst")
SUSTAINED = ("s3-throttling", "sustained")
RUNBOOK = "s3-throttling"
WORKLOAD_PATH = "/apis/apps/v1/namespaces/streamhouse/deployments/streamhouse-agent"
FAST = {"bot_verify_delays_s": "1,14"}  # the last run comes after ``Lab.time_passes``
ALLOWED = re.compile(r"allowed (\d+)% of PUTs")


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One runbook-profile lab for the module (each test switches to its scenario)."""
    yield from started_lab(pg_server, SUSTAINED)


async def test_waiting_out_a_burst_watches_until_the_limiter_allows_again(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """TH-A1 changes nothing; once the burst is over the watch sees TH-2 ok, stops and
    resolves the incident."""
    switched(lab, BURST)
    watch = {"bot_watch_interval_s": 0.5, "bot_watch_window_s": 40}
    async with running_flow(lab, slack_emulator, database_url, **watch) as flow:
        root_ts, _ = await flow.request("TH-A1", RUNBOOK)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert row["result"]["watch"] == {"checks": ["TH-2"], "window_s": 600.0}
        assert "nothing changes" in str(slack_emulator.views[0])
        with lab.world.lock:  # the producers' burst ends
            lab.world.traffic.put_demand_per_s = 800.0
            lab.world.touch()
        await asyncio.to_thread(lab.time_passes)
        await resolved(flow, root_ts)
        texts = await verifications(flow)
        assert "watch of" in texts[-1]
        assert "TH-2 ok" in texts[-1]
        assert writes(lab) == []


async def test_raising_the_put_limit_patches_the_env_once_and_verifies_fixed(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """TH-A2 on a sustained overload: one PATCH of the env (which rolls the pods; no second
    restart), THROTTLE_PUT_RATE 3000 -> 3500, and TH-2/TH-4/TH-1 ok afterwards."""
    switched(lab, SUSTAINED)
    pods_before = {agent.pod for agent in lab.world.agents}
    revision = lab.world.agent_workload.revision
    async with running_flow(lab, slack_emulator, database_url, **FAST) as flow:
        root_ts, _ = await flow.request("TH-A2", RUNBOOK)
        view = str(slack_emulator.views[0])
        assert "THROTTLE_PUT_RATE=3000" in view
        assert "THROTTLE_PUT_RATE=3500" in view
        assert "ceiling 3500/s" in view
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert row["result"]["env"] == {"THROTTLE_PUT_RATE": "3500"}
        assert writes(lab) == [("PATCH", WORKLOAD_PATH)]
        assert lab.world.agent_workload.env["THROTTLE_PUT_RATE"] == "3500"
        assert lab.world.agent_workload.revision == revision + 1
        assert {agent.pod for agent in lab.world.agents}.isdisjoint(pods_before)
        await asyncio.to_thread(lab.time_passes)
        await resolved(flow, root_ts)
        texts = await verifications(flow)
        assert "verification of" in texts[-1]
        assert all(f"{check} ok" in texts[-1] for check in ("TH-1", "TH-2", "TH-4"))


async def test_raising_the_limit_is_refused_when_s3_starts_answering_503(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """S3 sends 503 SlowDown between the preview and the submit: the guard rail on fresh data
    refuses TH-A2 and nothing is written."""
    switched(lab, SUSTAINED)
    async with running_flow(lab, slack_emulator, database_url, **FAST) as flow:
        root_ts, buttons_ts = await flow.diagnose(f"diagnose {RUNBOOK}", "TH-A2")
        await flow.click_request(buttons_ts, action="TH-A2", runbook=RUNBOOK)
        await slack_emulator.async_wait_for(lambda: slack_emulator.views, timeout=15)
        with lab.world.lock:
            lab.world.traffic.s3_503_per_s = 5.0
            lab.world.touch()
        await asyncio.sleep(2.5)  # two scrapes
        await flow.submit_request(root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "refused")
        assert "503 SlowDown" in row["result"]["refused"]
        assert writes(lab) == []
        assert lab.world.agent_workload.env["THROTTLE_PUT_RATE"] == "3000"


async def test_scaling_out_adds_one_agent_and_the_limiter_allows_more(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """TH-A3: 3 -> 4 replicas through the scale subresource; the existing pods keep running,
    the demand spreads over four agents and the verification reads a larger allowed share."""
    switched(lab, SUSTAINED)
    pods_before = {agent.pod for agent in lab.world.agents}
    async with running_flow(lab, slack_emulator, database_url, **FAST) as flow:
        _, _ = await flow.request("TH-A3", RUNBOOK)
        assert "3 replicas" in str(slack_emulator.views[0])
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert row["result"]["replicas"] == 4
        assert writes(lab) == [("PATCH", f"{WORKLOAD_PATH}/scale")]
        assert lab.world.agent_workload.replicas == 4
        assert pods_before < {agent.pod for agent in lab.world.agents}
        await asyncio.to_thread(lab.time_passes)

        texts = await verifications(flow, 2)
        assert len(texts) == 2, texts
        before_fix = 750 / 1600  # each agent allowed 750 of its 1600 PUT/s
        found = ALLOWED.search(texts[-1])
        assert found is not None, texts[-1]
        assert int(found[1]) / 100 > before_fix
