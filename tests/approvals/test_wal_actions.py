"""WAL-A1..WAL-A3 through Slack against the wal-corruption lab (runbook profile).

The corrupted WAL of orders-2 sits on the second agent, which crash-loops. Exec is allowed
(the bot's role has pods/exec); the lab's shell applies ``mv`` through the World's physics.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.store import EmbeddedPostgres
from lab.slack import SlackEmulator
from lab.stack import Lab
from lab.world import Agent
from tests.approvals.conftest import (
    APPROVER,
    final_verification,
    resolved,
    running_flow,
    started_lab,
    switched,
    verification_bodies,
    writes,
)

SCENARIO = ("wal-corruption", "default")
PODS = "/api/v1/namespaces/streamhouse/pods"
RUNBOOK = "wal-recovery"
FAST = {"bot_verify_delays_s": "0.5,1.5"}


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One runbook-profile lab with a corrupted WAL on one agent."""
    yield from started_lab(pg_server, SCENARIO)


@pytest.fixture
def fresh_lab(lab: Lab) -> Lab:
    """The lab back in the scenario, exec allowed, the request log empty (no WAL check
    reads Prometheus while exec lists the files, so it keeps its first load)."""
    switched(lab, SCENARIO, metrics=False)
    lab.world.exec_allowed = True
    return lab


def broken_agent(lab: Lab) -> Agent:
    """The agent whose orders-2 WAL is corrupted."""
    return next(a for a in lab.world.agents if any(w.corrupted for w in a.wal_files))


async def test_quarantine_moves_the_wal_aside_restarts_one_pod_and_verifies(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """WAL-A2: the preview names the loss window and one pod of three; after Bob approves,
    the WAL is hidden aside, only that pod is deleted (no scaling), the agent runs again
    and verification resolves the incident."""
    broken = broken_agent(fresh_lab)
    pod, others = broken.pod, {a.pod for a in fresh_lab.world.agents if a is not broken}
    async with running_flow(fresh_lab, slack_emulator, database_url, **FAST) as flow:
        root_ts, request_id = await flow.request("WAL-A2", RUNBOOK)
        view = str(slack_emulator.views[-1])
        assert "orders-2: up to" in view
        assert "unflushed data (WAL-5)" in view
        assert f"1 of 3 agent pods restarted: {pod} (its replacement gets a new name" in view
        assert f"exec {pod} -- mv /data/wal/orders-2.wal /data/wal/.orders-2.wal.corrupt-" in view
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert writes(fresh_lab) == [("DELETE", f"{PODS}/{pod}")]
        [aside] = broken.wal_aside
        assert aside.startswith(".orders-2.wal.corrupt-")
        assert [(w.topic, w.partition) for w in broken.wal_files] == [("orders", 3)]
        assert (broken.phase, broken.pod != pod) == ("Running", True)
        assert {a.pod for a in fresh_lab.world.agents if a is not broken} == others
        assert "moved /data/wal/orders-2.wal" in row["result"]["text"]
        await resolved(flow, root_ts)
        assert (await verification_bodies(flow))[-1]["fixed"] is True


async def test_rebuild_renames_the_wal_to_old_and_restarts_the_agent(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """WAL-A3: ``mv orders-2.wal orders-2.wal.old`` as the runbook writes it, one pod
    deleted; verification finds the agent running, no WAL error and no live WAL outlier
    (the ``.old`` file waits for RP-A4), and the incident resolves."""
    broken = broken_agent(fresh_lab)
    pod = broken.pod
    async with running_flow(fresh_lab, slack_emulator, database_url, **FAST) as flow:
        root_ts, request_id = await flow.request("WAL-A3", RUNBOOK)
        assert "mv /data/wal/orders-2.wal /data/wal/orders-2.wal.old" in str(
            slack_emulator.views[-1]
        )
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert writes(fresh_lab) == [("DELETE", f"{PODS}/{pod}")]
        assert list(broken.wal_aside) == ["orders-2.wal.old"]
        assert broken.phase == "Running"
        found = await final_verification(flow)
        assert found["checks"] == {"WAL-1": "ok", "WAL-2": "ok", "WAL-4": "ok"}
        await resolved(flow, root_ts)


async def test_watch_reports_the_recovery_counts_and_resolves_when_the_agent_recovers(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """WAL-A1 (low risk): runs on submit and changes nothing; the agent recovers by itself
    (records skipped) while the modal is open, so the outcome reports the counts and the
    first watch poll finds the WAL healthy."""
    world = fresh_lab.world
    broken = broken_agent(fresh_lab)
    watch = {**FAST, "bot_watch_interval_s": 0.3, "bot_watch_window_s": 2}
    async with running_flow(fresh_lab, slack_emulator, database_url, **watch) as flow:
        root_ts, buttons_ts = await flow.diagnose("diagnose wal-recovery", "WAL-A1")
        await flow.click_request(buttons_ts, action="WAL-A1", runbook="wal-recovery")
        with world.lock:  # the agent's next start skips the bad records; the first upload
            wal = next(w for w in broken.wal_files if w.corrupted)  # truncates the WAL
            wal.corrupted, wal.records_recovered, wal.records_skipped = False, 1523, 12
            wal.size_bytes = 0
        world.delete_pod(broken.pod)
        await flow.submit_request(root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert "orders-2: 1523 records recovered, 12 skipped" in row["result"]["text"]
        assert row["result"]["watch"]["checks"] == ["WAL-4", "WAL-1", "WAL-2"]
        assert writes(fresh_lab) == []
        await resolved(flow, root_ts)
        assert (await verification_bodies(flow))[-1]["fixed"] is True


async def test_quarantine_refuses_when_the_wal_is_gone_before_approval(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """The file disappears between request and approval (WAL-1 still names orders-2): the
    request is refused with what changed; no pod is deleted, nothing moved."""
    broken = broken_agent(fresh_lab)
    async with running_flow(fresh_lab, slack_emulator, database_url, **FAST) as flow:
        root_ts, request_id = await flow.request("WAL-A2", RUNBOOK)
        with fresh_lab.world.lock:
            broken.wal_files = [w for w in broken.wal_files if not w.corrupted]
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "refused")
        refused = row["result"]["refused"]
        assert "state changed" in refused
        assert f"/data/wal/orders-2.wal is no longer in pod {broken.pod}" in refused
        assert writes(fresh_lab) == []
        assert broken.wal_aside == {}
