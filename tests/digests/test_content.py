"""What changed since a channel's last digest, read from the bot's database and rendered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from bot.approvals import ApprovalStore, NewRequest
from bot.digests.content import changes_for, read_activity
from bot.digests.panels import Panel
from bot.incidents import IncidentStore
from bot.models import Risk, Status
from bot.render.digest import render_digest
from bot.store import Database

HEALTHY = [Panel("disk", "Disk usage", "40% used", "warning over 85%", Status.OK)]


async def new_request(db: Database, incident_id: str, action: str) -> str:
    """A pending request for ``action`` on the agents, asked by Alice."""
    new = NewRequest(
        incident_id, "circuit-breaker", action, Risk.MEDIUM, "deployment/agent", "U0ALICE", "", {}
    )
    return (await ApprovalStore(db).create(new, timedelta(minutes=15))).id


async def sql(database_url: str, query: str, *params: object) -> None:
    """One statement against the bot's database (a state the flow would have reached)."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute(query, params)


async def test_changes_since_the_last_digest(db: Database, database_url: str) -> None:
    incidents = IncidentStore(db)
    before = datetime.now(UTC) - timedelta(minutes=1)
    old = await incidents.open("wal", "Old WAL trouble", Status.WARNING, "C0GENERAL", "U0ALICE")
    await sql(database_url, "UPDATE incidents SET opened_at = now() - interval '2 days'")
    await incidents.resolve(old.id, "U0CAROL", "fixed")
    new = await incidents.open("circuit-breaker", "Breaker open", Status.CRITICAL, "C0X", None)
    done = await new_request(db, new.id, "CB-A2")
    await sql(
        database_url,
        "UPDATE action_requests SET state = 'failed', approved_by = 'U0BOB', "
        "executed_at = now() WHERE id = %s",
        done,
    )
    waiting = await new_request(db, new.id, "CB-A3")
    lapsed = await new_request(db, new.id, "CB-A1")
    await sql(database_url, "UPDATE action_requests SET expires_at = now() WHERE id = %s", lapsed)
    now = datetime.now(UTC)
    changes = changes_for(await read_activity(db, before, now), before)
    assert [i.id for i in changes.opened] == [new.id]
    assert [i.id for i in changes.resolved] == [old.id]
    assert [(a.id, a.state, a.approved_by) for a in changes.executed] == [(done, "failed", "U0BOB")]
    assert [a.id for a in changes.pending] == [waiting]
    assert [a.id for a in changes.expired] == [lapsed]
    assert [i.id for i in changes.open_incidents] == [new.id]
    text = str(render_digest(HEALTHY, changes, {}, schedule="hourly", chart=True).to_slack())
    assert f"Resolved *{old.id}* Old WAL trouble by <@U0CAROL>" in text
    assert f"Opened *{new.id}* Breaker open by the bot" in text
    assert "`CB-A2` on `deployment/agent` failed" in text
    assert "expired without a decision" in text
    assert "waits for approval" in text

    later = changes_for(await read_activity(db, now, now), now)
    assert not later.changed
    assert not later.calm


async def test_nothing_changed_and_nothing_open_is_calm(db: Database) -> None:
    since = datetime.now(UTC) - timedelta(hours=1)
    changes = changes_for(await read_activity(db, since, datetime.now(UTC)), since)
    assert changes.calm
    reply = render_digest(HEALTHY, changes, {}, schedule="hourly", chart=True)
    assert len(reply.blocks) == 1
    assert "nothing changed since <!date^" in reply.text
