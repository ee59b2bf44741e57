"""LC-A1..LC-A3 through Slack against the lease-conflict lab (runbook profile)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest

from bot.store import EmbeddedPostgres
from handlers.lease_conflicts import SCALED_DOWN_FROM
from lab.slack import SlackEmulator
from lab.stack import Lab
from tests.approvals.conftest import APPROVER, CHANNEL, Flow, running_flow, started_lab

RUNBOOK = "lease-conflicts"
FAST = {"bot_verify_delays_s": "0.5,1.5"}
WORKLOAD = "/apis/apps/v1/namespaces/streamhouse/deployments/streamhouse-agent"


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One runbook-profile lab for the module; each test switches to its variant."""
    yield from started_lab(pg_server, ("lease-conflict", "dead-holder"))


def switched(lab: Lab, variant: str) -> Lab:
    """The lab in ``lease-conflict/<variant>`` with an empty request log."""
    lab.switch("lease-conflict", variant, metrics=False)
    lab.kubernetes.clear_requests()
    return lab


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


def requests_of(lab: Lab, method: str) -> list[str]:
    """The paths of the lab Kubernetes API's requests with ``method``."""
    return [r.path for r in lab.kubernetes.requests if r.method == method]


async def request_action(flow: Flow, action: str, command: str = f"diagnose {RUNBOOK}") -> tuple[str, str]:
    """Diagnose, click ``action`` and submit the modal: (incident root ts, request id)."""
    root_ts, buttons_ts = await flow.diagnose(command, action)
    await flow.click_request(buttons_ts, action=action, runbook=RUNBOOK)
    return root_ts, await flow.submit_request(root_ts)


async def verification_texts(flow: Flow, count: int) -> list[str]:
    """The first ``count`` verification audit texts, once recorded."""

    async def recorded() -> list[str] | None:
        texts = [t for kind, _, t in await flow.audit_kinds() if kind == "action.verification"]
        return texts if len(texts) >= count else None

    for _ in range(150):
        found = await recorded()
        if found:
            return found
        await flow.slack.async_wait_for(lambda: False, timeout=0.1) if False else None
        import asyncio

        await asyncio.sleep(0.1)
    raise AssertionError("no verification was recorded")
