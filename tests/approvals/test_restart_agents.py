"""CB-A2 (restart the agents) through Slack against the circuit-breaker lab."""

from __future__ import annotations

import asyncio
import re

from lab.slack import SlackEmulator
from lab.stack import Lab
from tests.approvals.conftest import (
    ACTION,
    APPROVER,
    CHANNEL,
    GROUP_APPROVER,
    OUTSIDER,
    REQUESTER,
    Flow,
    requests_of,
    resolved,
    running_flow,
)

WORKLOAD_PATH = "/apis/apps/v1/namespaces/streamhouse/deployments/streamhouse-agent"


def thread_text(flow: Flow, root_ts: str) -> str:
    """Everything posted in the incident thread, as one string."""
    return str(flow.slack.thread(CHANNEL, root_ts))


async def requested(flow: Flow) -> tuple[str, str]:
    """Diagnose, click CB-A2 and submit the modal: (incident root ts, request id)."""
    return await flow.request(ACTION, "circuit-breaker")


async def test_ten_concurrent_approvals_restart_once_and_verification_resolves(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Ten clicks on Approve → one PATCH; the pods are replaced, verification says fixed, the
    buttons become the outcome and the incident resolves."""
    async with running_flow(fresh_lab, slack_emulator, database_url) as flow:
        root_ts, request_id = await requested(flow)
        view = slack_emulator.views[0]
        assert "Blast radius" in str(view)
        assert "PATCH" in str(view)
        assert "Awaiting a second approver" in thread_text(flow, root_ts)
        pods_before = {p.pod for p in fresh_lab.world.agents}
        await asyncio.gather(
            *(flow.click("approve-request", request_id, APPROVER, root_ts) for _ in range(10))
        )
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert row["approved_by"] == APPROVER
        assert requests_of(fresh_lab, "PATCH") == [WORKLOAD_PATH]
        assert {p.pod for p in fresh_lab.world.agents}.isdisjoint(pods_before)
        message = await flow.shown(row["message_ts"], "succeeded")
        assert "approve-request" not in message
        await resolved(flow, root_ts)
        text = thread_text(flow, root_ts)
        assert "fixed" in text
        kinds = [kind for kind, _, _ in await flow.audit_kinds()]
        assert kinds.count("action.executing") == 1
        for kind in ("action.requested", "action.approved", "action.succeeded"):
            assert kind in kinds
        assert "incident.mitigating" in kinds
        assert "incident.resolved" in kinds


async def test_outsider_cannot_request_and_is_audited(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """A user who is no approver gets no modal; the refusal is in the audit log."""
    async with running_flow(fresh_lab, slack_emulator, database_url) as flow:
        _, buttons_ts = await flow.diagnose()
        response = await flow.click_request(buttons_ts, user=OUTSIDER)
        assert response.status == 200
        await slack_emulator.async_wait_for(
            lambda: "not an approver" in str(slack_emulator.responses()), timeout=10
        )
        assert slack_emulator.views == []
        events = await flow.audit_kinds()
        assert ("action.refused", OUTSIDER) in [(kind, actor) for kind, actor, _ in events]
        assert requests_of(fresh_lab, "PATCH") == []


async def test_requester_cannot_approve_their_own_request_and_a_deny_ends_it(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Alice requests, Alice clicks Approve: refused, audited, still pending, nothing runs;
    Bob's Deny then replaces the buttons with the decision."""
    async with running_flow(fresh_lab, slack_emulator, database_url) as flow:
        root_ts, request_id = await requested(flow)
        await flow.click("approve-request", request_id, REQUESTER, root_ts)
        await slack_emulator.async_wait_for(
            lambda: "cannot approve it" in str(slack_emulator.responses()), timeout=10
        )
        row = await flow.row()
        assert row is not None
        assert row["state"] == "pending"
        assert requests_of(fresh_lab, "PATCH") == []
        texts = [text for kind, _, text in await flow.audit_kinds() if kind == "action.refused"]
        assert any("own" in text for text in texts)
        await flow.click("deny-request", request_id, APPROVER, root_ts)
        denied = await flow.wait_row(lambda r: r is not None and r["state"] == "denied")
        message = await flow.shown(denied["message_ts"], "denied")
        assert "approve-request" not in message
        assert requests_of(fresh_lab, "PATCH") == []


async def test_expired_request_is_refused(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Approving after the request's time is up marks it expired and runs nothing."""
    async with running_flow(fresh_lab, slack_emulator, database_url, bot_request_ttl_s=0.5) as flow:
        root_ts, request_id = await requested(flow)
        await asyncio.sleep(1.0)
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "expired")
        assert row["approved_by"] is None
        assert requests_of(fresh_lab, "PATCH") == []
        await slack_emulator.async_wait_for(  # the answer follows the stored state
            lambda: "has expired" in str(slack_emulator.responses()), timeout=15
        )


async def test_dry_run_previews_without_executing(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """BOT_DRY_RUN=true: approved by a member of the approver group, refused as a dry run."""
    async with running_flow(fresh_lab, slack_emulator, database_url, bot_dry_run=True) as flow:
        root_ts, request_id = await requested(flow)
        await flow.click("approve-request", request_id, GROUP_APPROVER, root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "refused")
        assert row["approved_by"] == GROUP_APPROVER
        assert "dry run" in row["result"]["refused"]
        assert "target" in row["result"]["preview"]
        assert requests_of(fresh_lab, "PATCH") == []


async def test_freeze_stops_execution_and_only_approvers_may_set_it(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """An outsider cannot freeze; Alice can, and Bob's approval is then refused."""
    async with running_flow(fresh_lab, slack_emulator, database_url) as flow:
        await flow.driver.command("freeze on", user_id=OUTSIDER)
        await slack_emulator.async_wait_for(
            lambda: "not an approver" in str(slack_emulator.responses()), timeout=10
        )
        await flow.driver.command("freeze on", user_id=REQUESTER)
        await slack_emulator.async_wait_for(
            lambda: "Actions are frozen" in str(slack_emulator.responses()), timeout=10
        )
        root_ts, request_id = await requested(flow)
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "refused")
        assert "frozen" in row["result"]["refused"]
        assert requests_of(fresh_lab, "PATCH") == []


async def test_cooldown_refuses_and_says_when_it_ends(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """A restart of the same workload 2 min ago: refused until 10 min after it."""
    async with running_flow(fresh_lab, slack_emulator, database_url) as flow:
        root_ts, request_id = await requested(flow)
        await flow.sql(
            "INSERT INTO action_requests (id, incident_id, runbook, action_id, risk, target, "
            "requested_by, reason, preview, state, expires_at, created_at, executed_at) "
            "SELECT 'earlier', incident_id, runbook, action_id, risk, target, requested_by, "
            "reason, preview, 'succeeded', expires_at, now() - interval '3 minutes', "
            "now() - interval '2 minutes' "
            "FROM action_requests WHERE id = %s",
            request_id,
        )
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        row = await flow.wait_row(
            lambda r: r is not None and r["id"] == request_id and r["state"] == "refused"
        )
        assert re.search(r"cooldown ends at \d\d:\d\d:\d\d UTC", row["result"]["refused"])
        assert requests_of(fresh_lab, "PATCH") == []


async def test_state_change_before_execution_is_refused_with_what_changed(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """S3 fails again between request and approval: the guard on fresh data refuses."""
    async with running_flow(fresh_lab, slack_emulator, database_url) as flow:
        root_ts, request_id = await requested(flow)
        fresh_lab.world.set_s3_fault("SlowDown")
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "refused")
        assert "state changed" in row["result"]["refused"]
        assert "S3 is not healthy" in row["result"]["refused"]
        assert requests_of(fresh_lab, "PATCH") == []
        message = await flow.shown(row["message_ts"], "refused")
        assert "approve-request" not in message


async def test_verification_resumes_after_a_bot_restart(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """The bot stops right after the restart; a new bot on the same database runs the
    pending verification and resolves the incident."""
    slow = {"bot_verify_delays_s": "3"}
    async with running_flow(fresh_lab, slack_emulator, database_url, **slow) as flow:
        root_ts, request_id = await requested(flow)
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
    assert "action.verification" not in [kind for kind, _, _ in await flow.audit_kinds()]
    async with running_flow(fresh_lab, slack_emulator, database_url, **slow) as flow:
        await resolved(flow, root_ts)
        kinds = [kind for kind, _, _ in await flow.audit_kinds()]
        assert kinds.count("action.verification") == 1
        assert requests_of(fresh_lab, "PATCH") == [WORKLOAD_PATH]
