"""RP-A1 (raise the memory limit), RP-A2 (scale out) and RP-A3 (grow the WAL claim) through
Slack against the oom and disk-full labs.

RP-5 (part of RP-V) needs an hour of memory history: right after a rollout the new pods
have none, so "fixed" can only be seen once time has passed. ``Lab.time_passes`` restarts the
lab's Prometheus with hours of the world as it is now, as the throttling tests do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bot.store import EmbeddedPostgres
from lab.slack import SlackEmulator
from lab.stack import Lab
from lab.world import GIB, Resources
from tests.approvals.conftest import (
    Flow,
    resolved,
    running_flow,
    started_lab,
    switched,
    verifications,
    writes,
)

OOM = ("oom", "default")
DISK_FULL = ("disk-full", "default")
RUNBOOK = "resource-pressure"
WORKLOAD_PATH = "/apis/apps/v1/namespaces/streamhouse/deployments/streamhouse-agent"
CLAIM_PATH = "/api/v1/namespaces/streamhouse/persistentvolumeclaims/streamhouse-wal"
FAST = {"bot_verify_delays_s": "0.5,20"}  # the last run comes after ``Lab.time_passes``


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One runbook-profile lab for the module (each test switches to its scenario)."""
    yield from started_lab(pg_server, OOM)


async def clicked(flow: Flow, action: str) -> str:
    """Diagnose resource-pressure, click ``action`` and wait for its modal (the preview is
    read by then): the incident's root ts."""
    root_ts, buttons_ts = await flow.diagnose(f"diagnose {RUNBOOK}", action)
    opened = len(flow.slack.views)
    await flow.click_request(buttons_ts, action=action, runbook=RUNBOOK)
    await flow.slack.async_wait_for(lambda: len(flow.slack.views) > opened, timeout=15)
    return root_ts


async def test_raising_the_memory_limit_stops_the_oom_kills_and_verifies_fixed(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """RP-A1: one PATCH of the agent container's limit 4Gi -> 8Gi; the new pods fit, and
    once their memory has an hour of history RP-V says fixed and the incident resolves."""
    switched(lab, OOM)
    async with running_flow(lab, slack_emulator, database_url, **FAST) as flow:
        root_ts = await clicked(flow, "RP-A1")
        await flow.submit_request(root_ts)
        view = str(slack_emulator.views[0])
        assert "memory limit 4Gi" in view
        assert "memory limit 8Gi" in view
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert row["result"]["limit"] == "8Gi"
        assert writes(lab) == [("PATCH", WORKLOAD_PATH)]
        world = lab.world
        assert world.agent_workload.resources.memory_limit_bytes == 8 * GIB
        assert all(a.phase == "Running" and a.last_terminated_reason is None for a in world.agents)
        first = await verifications(flow)
        assert "RP-1 ok" in first[0]
        await asyncio.to_thread(lab.time_passes)
        await resolved(flow, root_ts)
        assert "RP-5 ok" in (await verifications(flow, 2))[-1]


async def test_a_limit_changed_after_the_preview_is_refused_with_what_moved(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Someone sets 4.5Gi (still too small) between the click and the submit: refused."""
    switched(lab, OOM)
    async with running_flow(lab, slack_emulator, database_url, **FAST) as flow:
        root_ts = await clicked(flow, "RP-A1")
        lab.world.set_resources("streamhouse-agent", Resources(memory_limit_bytes=4608 * 2**20))
        await flow.submit_request(root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "refused")
        assert "memory limit is now 4608Mi, was 4Gi" in row["result"]["refused"]
        assert writes(lab) == []


async def test_scaling_out_adds_one_agent_and_runs_the_verification(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """RP-A2: PATCH of the scale subresource 3 -> 4; the load spreads so every agent fits
    its limit again; the verification runs (the kills stay in lastState for an hour)."""
    switched(lab, OOM)
    async with running_flow(lab, slack_emulator, database_url, bot_verify_delays_s="0.5") as flow:
        root_ts = await clicked(flow, "RP-A2")
        await flow.submit_request(root_ts)
        assert "4 replicas" in str(slack_emulator.views[0])
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert row["result"]["replicas"] == 4
        assert writes(lab) == [("PATCH", WORKLOAD_PATH + "/scale")]
        assert lab.world.agent_workload.replicas == 4
        assert all(agent.phase == "Running" for agent in lab.world.agents)
        text = (await verifications(flow))[0]
        assert "verification of" in text
        assert "RP-1" in text


async def test_growing_the_wal_claim_frees_the_disk_and_verifies_fixed(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """RP-A3: the shared claim 50Gi -> 100Gi in one PATCH; the agents flush and truncate
    their WAL, RP-2 is ok and the incident resolves."""
    switched(lab, DISK_FULL)
    async with running_flow(lab, slack_emulator, database_url, bot_verify_delays_s="0.5") as flow:
        root_ts = await clicked(flow, "RP-A3")
        await flow.submit_request(root_ts)
        assert "streamhouse-wal 50Gi" in str(slack_emulator.views[0])
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert row["result"]["claims"][0]["size"] == "100Gi"
        assert writes(lab) == [("PATCH", CLAIM_PATH)]
        agent = lab.world.agents[0]
        assert agent.volume_capacity_bytes == 100 * GIB
        assert agent.volume_used_bytes / agent.volume_capacity_bytes < 0.5
        await resolved(flow, root_ts)
        assert "RP-2 ok" in (await verifications(flow))[-1]


async def test_a_storage_class_without_expansion_is_refused(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """The StorageClass stops allowing expansion after the preview: the guard refuses."""
    switched(lab, DISK_FULL)
    async with running_flow(lab, slack_emulator, database_url) as flow:
        root_ts = await clicked(flow, "RP-A3")
        with lab.world.lock:
            lab.world.storage_class_expandable = False
            lab.world.touch()
        await flow.submit_request(root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "refused")
        assert "does not allow volume expansion" in row["result"]["refused"]
        assert writes(lab) == []
        assert lab.world.agents[0].volume_capacity_bytes == 50 * GIB
