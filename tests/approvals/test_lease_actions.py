"""LC-A1..LC-A3 through Slack against the lease-conflict lab (runbook profile)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from bot.store import EmbeddedPostgres
from handlers.lease_conflicts import SCALED_DOWN_FROM
from lab.slack import SlackEmulator
from lab.stack import Lab
from tests.approvals.conftest import (
    APPROVER,
    CHANNEL,
    REQUESTER,
    Flow,
    requests_of,
    running_flow,
    started_lab,
    switched,
    verifications,
)

RUNBOOK = "lease-conflicts"
FAST = {"bot_verify_delays_s": "0.5,1.5"}
WORKLOAD = "/apis/apps/v1/namespaces/streamhouse/deployments/streamhouse-agent"


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One runbook-profile lab for the module; each test switches to its variant."""
    yield from started_lab(pg_server, ("lease-conflict", "dead-holder"))


def switched_to(lab: Lab, variant: str) -> Lab:
    """The lab in ``lease-conflict/<variant>`` with an empty request log."""
    return switched(lab, ("lease-conflict", variant), metrics=False)


def lease(lab: Lab, topic: str, partition: int) -> tuple[str, int]:
    """(holder, epoch) of one partition's lease, read from the lab's database."""
    with psycopg.connect(lab.env()["STREAMHOUSE_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT agent_id, lease_epoch FROM partition_leases "
            "WHERE topic = %s AND partition_id = %s",
            (topic, partition),
        ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def expire_leases_of_gone_agents(lab: Lab) -> None:
    """What waiting out the 30 s lease TTL does: leases of agents that left expire."""
    live = [agent.agent_id for agent in lab.world.agents]
    with psycopg.connect(lab.env()["STREAMHOUSE_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "UPDATE partition_leases SET lease_expires_at = 0 WHERE agent_id <> ALL(%s)", (live,)
        )
    lab.tick()


def replies(flow: Flow) -> list[tuple[str, dict[str, Any]]]:
    """(root ts, reply) of every thread reply under an incident root (one showing SH-N:
    its incident is stored and knows the thread)."""
    return [
        (root["ts"], reply)
        for root in flow.slack.messages(CHANNEL)
        if "SH-" in str(root)
        for reply in flow.slack.thread(CHANNEL, root["ts"])[1:]
    ]


async def diagnose(flow: Flow, command: str, action: str) -> tuple[str, str]:
    """Run ``command``; (incident root ts, ts of the new reply offering ``action``). A
    runbook with an open incident is diagnosed again in that incident's thread."""
    known = {reply["ts"] for _, reply in replies(flow)}
    await flow.driver.command(command, user_id=REQUESTER)

    def offered() -> tuple[str, str] | None:
        for root_ts, reply in replies(flow):
            fresh = reply["ts"] not in known
            if fresh and f"request-action:{action}" in str(reply.get("blocks")):
                return root_ts, str(reply["ts"])
        return None

    found: tuple[str, str] = await flow.slack.async_wait_for(offered, timeout=30)
    return found


async def request_action(
    flow: Flow, action: str, command: str = f"diagnose {RUNBOOK}"
) -> tuple[str, str]:
    """Diagnose, click ``action`` and submit the modal: (incident root ts, request id)."""
    root_ts, buttons_ts = await diagnose(flow, command, action)
    await flow.click_request(buttons_ts, action=action, runbook=RUNBOOK)
    return root_ts, await flow.submit_request(root_ts)


async def thread_says(flow: Flow, text: str) -> None:
    """Wait until a message of the channel or its threads contains ``text``."""

    def found() -> bool:
        roots = flow.slack.messages(CHANNEL)
        return any(text in str(flow.slack.thread(CHANNEL, m["ts"])) for m in roots)

    await flow.slack.async_wait_for(found, timeout=30)


def succeeded(row: dict[str, Any] | None) -> bool:
    """The newest request ran successfully."""
    return row is not None and row["state"] == "succeeded"


def refused(row: dict[str, Any] | None) -> bool:
    """The newest request was refused."""
    return row is not None and row["state"] == "refused"


# -- LC-A1 ---------------------------------------------------------------------------------
async def test_lease_reset_expires_the_approved_lease_and_a_live_agent_takes_it(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Each dead-holder lease, picked by the incident's target and approved by Bob, is
    expired by one guarded UPDATE; a live agent takes it (a higher epoch) and nothing else
    moves; the verification finds every lease held by a live agent (LC-1 ok). LC-2 may
    still see the live agents race for the freed lease, so the lab does not promise
    "fixed" here."""
    switched_to(lab, "dead-holder")
    dead = lab.world.agents[2].agent_id
    live = {agent.agent_id for agent in lab.world.agents[:2]}
    held = [(x.topic, x.partition, x.epoch) for x in lab.world.leases if x.holder == dead]
    assert len(held) == 2
    async with running_flow(lab, slack_emulator, database_url, **FAST) as flow:
        for topic, partition, epoch in held:
            command = f"diagnose {RUNBOOK} topic={topic} partition={partition}"
            root_ts, request_id = await request_action(flow, "LC-A1", command)
            modal = str(slack_emulator.views[-1])
            assert f"AND agent_id = '{dead}' AND lease_epoch = {epoch}" in modal
            others = {(x.topic, x.partition): x.holder for x in lab.world.leases}
            await flow.click("approve-request", request_id, APPROVER, root_ts)
            row = await flow.wait_row(succeeded)
            assert f"{topic}/{partition}" in row["result"]["text"]
            lab.tick()
            holder, new_epoch = lease(lab, topic, partition)
            assert holder in live
            assert new_epoch > epoch
            now = {(x.topic, x.partition): x.holder for x in lab.world.leases}
            moved = {key for key in now if now[key] != others.get(key)}
            assert moved == {(topic, partition)}
        texts = await verifications(flow, 4)
        assert all("LC-1 ok" in text for text in texts[-2:])
    assert requests_of(lab, "PATCH") == requests_of(lab, "DELETE") == []


async def test_lease_reset_refuses_an_ambiguous_target_and_a_lease_that_moved(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Two dead-holder leases and no target: no modal, a hint to name the partition. With
    a target, a lease a live agent took after the request is refused as a changed state."""
    switched_to(lab, "dead-holder")
    dead = lab.world.agents[2].agent_id
    topic, partition, epoch = next(
        (x.topic, x.partition, x.epoch) for x in lab.world.leases if x.holder == dead
    )
    async with running_flow(lab, slack_emulator, database_url, **FAST) as flow:
        _, buttons_ts = await diagnose(flow, f"diagnose {RUNBOOK}", "LC-A1")
        await flow.click_request(buttons_ts, action="LC-A1", runbook=RUNBOOK)
        await slack_emulator.async_wait_for(
            lambda: "Diagnose again with `topic=" in str(slack_emulator.responses()), timeout=15
        )
        assert slack_emulator.views == []
        command = f"diagnose {RUNBOOK} topic={topic} partition={partition}"
        root_ts, request_id = await request_action(flow, "LC-A1", command)
        with psycopg.connect(lab.env()["STREAMHOUSE_DATABASE_URL"], autocommit=True) as conn:
            conn.execute(  # someone else expired it; a live agent takes it next round
                "UPDATE partition_leases SET lease_expires_at = 0 "
                "WHERE topic = %s AND partition_id = %s",
                (topic, partition),
            )
        lab.tick()
        taken = lease(lab, topic, partition)
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        row = await flow.wait_row(refused)
        assert "state changed" in row["result"]["refused"]
        assert taken[0] != dead
        assert lease(lab, topic, partition)[0] == taken[0]
        assert epoch < taken[1]


# -- LC-A2 ---------------------------------------------------------------------------------
async def test_restart_deletes_one_conflicting_pod_then_the_cooldown_refuses(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Fighting agents: Alice's request (medium) deletes exactly the noisiest agent pod, the
    Deployment replaces it, the verification runs; a second restart within 10 min is refused."""
    switched_to(lab, "fighting")
    for _ in range(3):
        lab.tick()  # a few rounds of the fight
    pods_before = {agent.pod for agent in lab.world.agents}
    async with running_flow(lab, slack_emulator, database_url, **FAST) as flow:
        await request_action(flow, "LC-A2")
        row = await flow.wait_row(succeeded)
        pod = row["preview"]["params"]["pod"]
        assert pod in pods_before
        assert requests_of(lab, "DELETE") == [f"/api/v1/namespaces/streamhouse/pods/{pod}"]
        assert pod not in {agent.pod for agent in lab.world.agents}
        assert len(lab.world.agents) == 3
        assert await verifications(flow, 1)
        await request_action(flow, "LC-A2")
        again = await flow.wait_row(lambda r: refused(r) and r["id"] != row["id"])
        assert re.search(r"cooldown ends at \d\d:\d\d:\d\d UTC", again["result"]["refused"])
        assert len(requests_of(lab, "DELETE")) == 1


# -- LC-A3 ---------------------------------------------------------------------------------
async def test_scale_to_one_records_n_and_scales_back_only_once_ownership_is_stable(
    lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Scale down (Bob approves): N=3 recorded on the Deployment, one agent left. The
    scale-back is refused while the stopped agents' leases block partitions; once they
    expired and the agent took them, LC-A3 scales back to 3 and removes the record."""
    switched_to(lab, "fighting")
    lab.tick()
    async with running_flow(lab, slack_emulator, database_url, **FAST) as flow:
        root_ts, request_id = await request_action(flow, "LC-A3")
        assert "1 replica" in str(slack_emulator.views[-1])
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        await flow.wait_row(succeeded)
        assert lab.world.agent_workload.replicas == 1
        assert lab.world.agent_workload.notes == {SCALED_DOWN_FROM: "3"}
        assert requests_of(lab, "PATCH") == [WORKLOAD, f"{WORKLOAD}/scale"]
        await flow.driver.command(f"diagnose {RUNBOOK}", user_id=REQUESTER)
        await thread_says(flow, "lease ownership is not stable yet")
        expire_leases_of_gone_agents(lab)
        root_ts, request_id = await request_action(flow, "LC-A3")
        assert "3 replicas" in str(slack_emulator.views[-1])
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        await flow.wait_row(lambda r: succeeded(r) and r["id"] == request_id)
        assert lab.world.agent_workload.replicas == 3
        assert lab.world.agent_workload.notes == {}
        assert requests_of(lab, "PATCH")[2:] == [f"{WORKLOAD}/scale", WORKLOAD]
