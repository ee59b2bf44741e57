"""SR-A1 (a subject's compatibility mode) and SR-A2 (restart the registry) through Slack
against the schema-incompatible lab.

From Slack there is no candidate schema, so SR-A1 goes one step looser than BACKWARD:
NONE, which is high risk (Bob approves). The producers' refused schema then registers;
SR-3 rightly reports the breaking change it brings, so SR-V says "not fixed" and the
incident stays open (the runbook's next steps are for people: redeploy the consumers,
restore the mode).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.store import EmbeddedPostgres
from lab.slack import SlackEmulator
from lab.stack import Lab
from tests.approvals.conftest import (
    APPROVER,
    running_flow,
    started_lab,
    switched,
    verifications,
    writes,
)

SCENARIO = ("schema-incompatible", "default")
RUNBOOK = "schema-registry"
DIAGNOSE = f"diagnose {RUNBOOK} topic=orders"
REGISTRY_PATH = "/apis/apps/v1/namespaces/streamhouse/deployments/streamhouse-schema-registry"
CONFIG_LINE = "Subject config updated subject=orders-value"


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One runbook-profile lab for the module."""
    yield from started_lab(pg_server, SCENARIO)


@pytest.fixture
def fresh_lab(lab: Lab) -> Lab:
    """The lab back in the scenario, with an empty request log."""
    return switched(lab, SCENARIO)


def mode_changes(lab: Lab) -> list[str]:
    """The registry's log lines of subject mode changes for orders-value."""
    return [line.text for line in lab.world.registry_logs if CONFIG_LINE in line.text]


async def test_mode_to_none_needs_a_second_approver_then_the_schema_registers(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """SR-A1 shows BACKWARD → NONE, waits for Bob, then one PUT /config/orders-value: the
    refused schema registers as v3 and the verification runs (and says not fixed)."""
    async with running_flow(fresh_lab, slack_emulator, database_url) as flow:
        root_ts, request_id = await flow.request("SR-A1", RUNBOOK, DIAGNOSE)
        view = str(slack_emulator.views[0])
        assert "BACKWARD" in view
        assert "NONE" in view
        assert "PUT" in view
        assert "/config/orders-value" in view
        row = await flow.wait_row(lambda r: r is not None and r["id"] == request_id)
        assert (row["risk"], row["state"]) == ("high", "pending")
        assert mode_changes(fresh_lab) == []
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert row["result"]["mode"] == "NONE"
        world = fresh_lab.world
        assert world.subjects["orders-value"].compatibility == "NONE"
        assert mode_changes(fresh_lab) == [f"INFO {CONFIG_LINE} compatibility=none"]
        assert len(world.subjects["orders-value"].versions) == 3
        assert world.pending_schema is None
        assert writes(fresh_lab) == []
        text = (await verifications(flow))[0]
        assert "SR-3 warning" in text
        assert "not fixed" in text


async def test_a_mode_moved_before_approval_is_refused_with_what_moved(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """Someone sets FORWARD while the request waits for Bob: his approval is refused."""
    async with running_flow(fresh_lab, slack_emulator, database_url) as flow:
        root_ts, request_id = await flow.request("SR-A1", RUNBOOK, DIAGNOSE)
        fresh_lab.registry.registry.set_mode("orders-value", "FORWARD")
        await flow.click("approve-request", request_id, APPROVER, root_ts)
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "refused")
        assert "orders-value's mode is now FORWARD, was BACKWARD" in row["result"]["refused"]
        assert fresh_lab.world.subjects["orders-value"].compatibility == "FORWARD"
        assert len(mode_changes(fresh_lab)) == 1  # only the test's own change


async def test_clearing_the_cache_restarts_the_registry_deployment_once(
    fresh_lab: Lab, slack_emulator: SlackEmulator, database_url: str, aws_env: None
) -> None:
    """SR-A2 (medium, runs on submit): one PATCH stamping the registry's pod template; its
    log starts empty; the verification runs (the schema is still refused: not fixed)."""
    async with running_flow(fresh_lab, slack_emulator, database_url) as flow:
        await flow.request("SR-A2", RUNBOOK, DIAGNOSE)
        assert "streamhouse-schema-registry" in str(slack_emulator.views[0])
        row = await flow.wait_row(lambda r: r is not None and r["state"] == "succeeded")
        assert writes(fresh_lab) == [("PATCH", REGISTRY_PATH)]
        workload = fresh_lab.world.registry_workload
        assert workload.annotations["kubectl.kubernetes.io/restartedAt"]
        assert row["result"]["stamp"]
        assert fresh_lab.world.subjects["orders-value"].compatibility is None
        text = (await verifications(flow))[0]
        assert "SR-1" in text
        assert "not fixed" in text
