"""RP-A4 (delete WAL files already uploaded) through Slack against the disk-full lab.

Every agent's volume is 96 % full: a 4 GiB WAL beside an 8 GiB ``orders-<n>.wal.old``
uploaded hours ago, and one ``payments-1.wal.old`` newer than its partition's last upload
(not proven to be in S3, so it must stay).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.store import EmbeddedPostgres
from lab.slack import SlackEmulator
from lab.stack import Lab
from lab.world import GIB
from tests.approvals.conftest import (
    APPROVER,
    final_verification,
    resolved,
    running_flow,
    started_lab,
    switched,
    writes,
)

SCENARIO = ("disk-full", "default")


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One runbook-profile lab with full WAL volumes."""
    yield from started_lab(pg_server, SCENARIO)


def back_to_scenario(lab: Lab, *, metrics: bool) -> Lab:
    """The lab back in the scenario, exec allowed, the request log empty."""
    switched(lab, SCENARIO, metrics=metrics)
    lab.world.exec_allowed = True
    return lab


@pytest.fixture
def fresh_lab(lab: Lab) -> Lab:
    """The scenario with Prometheus reloaded: the new pods' memory history is what RP-1
    and RP-5 read when RP-V verifies."""
    return back_to_scenario(lab, metrics=True)


@pytest.fixture
def quick_lab(lab: Lab) -> Lab:
    """The scenario without reloading Prometheus, for tests that never verify."""
    return back_to_scenario(lab, metrics=False)


def aside_files(lab: Lab) -> dict[str, list[str]]:
    """The files set aside on each agent's volume, by pod."""
    return {agent.pod: sorted(agent.wal_aside) for agent in lab.world.agents}


async def test_deletes_exactly_the_proven_files_and_the_disk_verifies(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Bob approves: the three uploaded ``orders-*.wal.old`` go, ``payments-1.wal.old``
    stays, 8 GiB is freed per agent, no pod restarts, and RP-V resolves the incident."""
    world = fresh_lab.world
    used = {agent.pod: agent.volume_used_bytes for agent in world.agents}
    unproven = world.agents[-1]
    async with running_flow(
        fresh_lab, slack_emulator, database_url, bot_verify_delays_s="0.5,1.5"
    ) as flow:
        root_ts, request_id = await flow.request("RP-A4", "resource-pressure")
        view = str(slack_emulator.views[-1])
        assert "3 *.old WAL file(s)" in view
        assert f"kept (not proven in S3): {unproven.pod}:payments-1.wal.old" in view
        assert "rm -f /data/wal/orders-0.wal.old" in view
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert "deleted 3 *.old WAL file(s) already in S3, 24.0 GiB freed" in row["result"]["text"]
        assert writes(fresh_lab) == []
        assert aside_files(fresh_lab) == {
            agent.pod: ["payments-1.wal.old"] if agent is unproven else [] for agent in world.agents
        }
        assert all(a.volume_used_bytes == used[a.pod] - 8 * GIB for a in world.agents)
        assert all(len(a.wal_files) == 1 for a in world.agents)
        await resolved(flow, root_ts)
        verdict = await final_verification(flow, or_fixed=True)
        assert verdict["fixed"] is True
        assert verdict["checks"] == {"RP-1": "ok", "RP-2": "ok", "RP-5": "ok"}


async def test_refuses_when_the_proven_files_changed_before_approval(
    quick_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Someone deletes one of the approved files by hand: the list no longer matches, the
    request is refused naming the file, and nothing else is deleted."""
    world = quick_lab.world
    first = world.agents[0]
    async with running_flow(quick_lab, slack_emulator, database_url) as flow:
        root_ts, request_id = await flow.request("RP-A4", "resource-pressure")
        assert world.delete_aside_wal(first.pod, "orders-0.wal.old")
        before = aside_files(quick_lab)
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "refused")
        refused = row["result"]["refused"]
        assert "state changed" in refused
        assert f"no longer proven or gone: {first.pod}:orders-0.wal.old" in refused
        assert aside_files(quick_lab) == before
