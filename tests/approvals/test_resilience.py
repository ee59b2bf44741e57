"""An incident survives Slack failing and the bot restarting; a fix that does not hold
is reported loudly and leaves the incident open."""

from __future__ import annotations

import asyncio
import re

import psycopg

from lab.slack import SlackEmulator
from lab.stack import Lab
from tests.approvals.conftest import APPROVER, CHANNEL, Flow, requests_of, resolved, running_flow
from tests.approvals.test_restart_agents import WORKLOAD_PATH, requested

EVENT_ID = re.compile(r"^#(\d+) ")


def thread_event_ids(slack: SlackEmulator, root_ts: str) -> list[int]:
    """The audit event ids mirrored into the incident thread, in the thread's order."""
    replies = slack.thread(CHANNEL, root_ts)[1:]
    return [int(m[1]) for reply in replies if (m := EVENT_ID.match(str(reply.get("text", ""))))]


async def incident_event_ids(flow: Flow) -> list[int]:
    """The ids of every audit event of the (only) incident, in order."""
    async with await psycopg.AsyncConnection.connect(flow.database_url) as conn:
        cursor = await conn.execute(
            "SELECT e.id FROM audit_events e JOIN audit_outbox o ON o.event_id = e.id "
            "WHERE e.incident_id IS NOT NULL ORDER BY e.id"
        )
        return [row[0] for row in await cursor.fetchall()]


async def incident_state(flow: Flow) -> str:
    """The state of the newest incident."""
    async with await psycopg.AsyncConnection.connect(flow.database_url) as conn:
        cursor = await conn.execute("SELECT state FROM incidents ORDER BY opened_at DESC LIMIT 1")
        row = await cursor.fetchone()
    assert row is not None
    return str(row[0])


async def test_slack_errors_and_a_restart_lose_and_double_no_audit_event(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Slack answers 500 three times and 429 twice while the approval runs; the bot is
    stopped before its verification and a new one takes over. Every audit event of the
    incident reaches the thread exactly once, in order, and the verification resumes."""
    slow = {"bot_verify_delays_s": "2"}
    async with running_flow(fresh_lab, slack_emulator, database_url, **slow) as flow:
        root_ts, request_id = await requested(flow)
        slack_emulator.fail_next("chat.postMessage", status=500, times=3)
        slack_emulator.fail_next("chat.postMessage", status=429, retry_after=1, times=2)
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
    kinds = [kind for kind, _, _ in await flow.audit_kinds()]
    assert "action.verification" not in kinds  # stopped before the verification ran
    async with running_flow(fresh_lab, slack_emulator, database_url, **slow) as flow:
        await resolved(flow, root_ts)
        expected = await incident_event_ids(flow)
        await slack_emulator.async_wait_for(
            lambda: len(thread_event_ids(slack_emulator, root_ts)) >= len(expected), timeout=60
        )
        assert thread_event_ids(slack_emulator, root_ts) == expected
    kinds = [kind for kind, _, _ in await flow.audit_kinds()]
    assert kinds.count("action.verification") == 1
    assert kinds.count("incident.resolved") == 1


async def test_a_fix_that_does_not_hold_is_reported_and_leaves_the_incident_open(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """The agents restart, then S3 fails again and the new pods open their breakers before
    the last verification: it says "NOT FIXED" and the incident stays open (mitigating)."""
    delays = {"bot_verify_delays_s": "1.5,4"}
    async with running_flow(fresh_lab, slack_emulator, database_url, **delays) as flow:
        root_ts, request_id = await requested(flow)
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        fresh_lab.world.set_s3_fault("SlowDown")
        fresh_lab.world.rollout_restart(fresh_lab.world.agent_workload.name)
        await slack_emulator.async_wait_for(
            lambda: "NOT FIXED" in str(slack_emulator.thread(CHANNEL, root_ts)), timeout=30
        )
        events = [(kind, text) for kind, _, text in await flow.audit_kinds()]
        verdicts = [text for kind, text in events if kind == "action.verification"]
        assert "NOT FIXED" in verdicts[-1]
        assert "CB-1 critical" in verdicts[-1]
        assert "incident.resolved" not in [kind for kind, _ in events]
        assert await incident_state(flow) == "mitigating"
        root = str(slack_emulator.message(CHANNEL, root_ts))
        assert "resolved" not in root.lower()


async def test_requests_left_half_way_by_a_stopped_bot_are_finished_by_the_next(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Approved but never run → run now (guards re-checked); approved longer ago than the
    request TTL → refused as stale; cut off while executing → failed, "outcome unknown"."""
    async with running_flow(fresh_lab, slack_emulator, database_url) as flow:
        _, request_id = await requested(flow)
        await flow.sql(
            "UPDATE action_requests SET state = 'approved', approved_by = %s, "
            "decided_at = now() - interval '2 minutes' WHERE id = %s",
            APPROVER,
            request_id,
        )
        for clone, state, column, ago in (
            ("stale", "approved", "decided_at", "20 minutes"),
            ("cut-off", "executing", "executed_at", "5 minutes"),
        ):
            await flow.sql(
                "INSERT INTO action_requests (id, incident_id, runbook, action_id, risk, "
                f"target, requested_by, reason, preview, state, expires_at, {column}) "
                "SELECT %s, incident_id, runbook, action_id, risk, 'Deployment/elsewhere', "
                f"requested_by, reason, preview, %s, expires_at, now() - interval '{ago}' "
                "FROM action_requests WHERE id = %s",
                clone,
                state,
                request_id,
            )
    assert requests_of(fresh_lab, "PATCH") == []
    async with running_flow(fresh_lab, slack_emulator, database_url) as flow:

        async def settled() -> dict[str, tuple[str, str]]:
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                cursor = await conn.execute(
                    "SELECT id, state, coalesce(result->>'text', result->>'refused', '') "
                    "FROM action_requests"
                )
                return {row[0]: (row[1], row[2]) for row in await cursor.fetchall()}

        deadline = asyncio.get_running_loop().time() + 30
        while True:
            rows = await settled()
            if rows[request_id][0] == "succeeded" and rows["stale"][0] == "refused":
                break
            assert asyncio.get_running_loop().time() < deadline, rows
            await asyncio.sleep(0.2)
        assert rows["cut-off"][0] == "failed"
        assert "outcome unknown" in rows["cut-off"][1]
        assert "stale" in rows["stale"][1]
        assert requests_of(fresh_lab, "PATCH") == [WORKLOAD_PATH]
