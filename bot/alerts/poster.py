"""Turning stored alerts into Slack messages, at Slack's pace, once across replicas.

Intake only marks incidents changed; this worker (one per replica) does the Slack side:

1. **Summary first, critical first.** An alert incident without its summary message gets
   one: the root in ``BOT_ALERT_CHANNEL`` (or, for an alert message someone posted in a
   channel, a reply in that message's thread). Incidents are claimed with ``FOR UPDATE
   SKIP LOCKED`` and held until the message is recorded, so two replicas never post the
   same incident; each post takes a ``channel_pace`` slot first.
2. **Coalesced updates.** Later alert changes edit the summary in place (``chat.update``,
   not a new message) and, at most every ``NOTE_EVERY_S``, post one thread line such as
   "+37 more alerts, 12 resolved (25 firing now)".
3. **Diagnosis.** A routed incident runs its runbook's diagnosis (for the alert's target)
   and posts it in the thread, with the remediation buttons, as ``/streamhouse diagnose``
   would. A stopped bot's unfinished diagnosis is run again after ``STALE_DIAGNOSIS_S``.
4. **Resolution.** When every alert of an incident has resolved and no action request is
   undecided or running, the incident resolves itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg.rows import dict_row
from slack_sdk.errors import SlackApiError

from bot.alerts.store import AlertStore
from bot.deps import Deps
from bot.engine import run_all, run_runbook
from bot.errors import ConflictError
from bot.incidents import REPOINT_OUTBOX, Incident, IncidentStore
from bot.models import Diagnosis, Triage
from bot.pace import ChannelPace
from bot.profiles import profile_named
from bot.render.alerts import storm_update_text
from bot.render.diagnosis import render_diagnosis, render_triage
from bot.render.incident import render_incident_root
from bot.replies import Reply
from bot.sources.cache import cached
from bot.store.db import Connection
from bot.subcommands.diagnose import diagnosis_event
from bot.subcommands.incident import refresh_root_message
from handlers.base import CheckContext
from handlers.registry import ORDER, RUNBOOKS

log = logging.getLogger("bot.alerts")

POLL_S = 0.05
IDLE_POLL_S = 0.25
NOTE_EVERY_S = 10.0
EDIT_EVERY_S = 15.0  # a storm's summary edits, per incident (resolution edits at once)
STALE_DIAGNOSIS_S = 300
MAX_DIAGNOSES = 4
RESOLVER = "alertmanager"

_CLAIM = """
    SELECT id, channel, thread_ts, summary_ts, alerts_changed_at, alerts_posted_at,
           alerts_noted_at, diagnosis_state, origin
    FROM incidents i
    WHERE i.origin <> 'command'
      AND (
        (i.summary_ts IS NULL AND i.state <> 'resolved'
         AND NOT EXISTS (SELECT 1 FROM channel_pace p
                         WHERE p.channel = i.channel AND p.next_post_at > now()))
        OR (i.summary_ts IS NOT NULL
            AND i.alerts_changed_at > coalesce(i.alerts_posted_at, '-infinity')
            AND (coalesce(i.summary_edited_at, '-infinity') < now() - make_interval(secs => %s)
                 OR NOT EXISTS (SELECT 1 FROM alerts a
                                WHERE a.incident_id = i.id AND a.status = 'firing')))
      )
    ORDER BY (i.summary_ts IS NULL) DESC, i.severity_rank DESC, i.opened_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
"""
_SUMMARY_POSTED = """
    UPDATE incidents SET summary_ts = %s, thread_ts = coalesce(thread_ts, %s),
        alerts_posted_at = %s, alerts_noted_at = now()
    WHERE id = %s
"""
_POSTED_UP_TO = """
    UPDATE incidents SET alerts_posted_at = %s, summary_edited_at = now() WHERE id = %s
"""
_NOTED = "UPDATE incidents SET alerts_noted_at = now() WHERE id = %s"
_CLAIM_DIAGNOSIS = """
    UPDATE incidents SET diagnosis_state = 'running', diagnosis_claimed_at = now()
    WHERE id = (
        SELECT id FROM incidents
        WHERE origin <> 'command' AND thread_ts IS NOT NULL AND summary_ts IS NOT NULL
          AND (diagnosis_state = 'wanted'
               OR (diagnosis_state = 'running'
                   AND diagnosis_claimed_at < now() - make_interval(secs => %s)))
        ORDER BY severity_rank DESC, opened_at
        LIMIT 1 FOR UPDATE SKIP LOCKED
    )
    RETURNING id
"""
_DIAGNOSED = "UPDATE incidents SET diagnosis_state = 'done' WHERE id = %s"
_RESOLVABLE = """
    SELECT i.id FROM incidents i
    WHERE i.id = %s AND i.state <> 'resolved'
      AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.incident_id = i.id AND a.status = 'firing')
      AND EXISTS (SELECT 1 FROM alerts a WHERE a.incident_id = i.id)
      AND NOT EXISTS (SELECT 1 FROM action_requests r WHERE r.incident_id = i.id
                      AND r.state IN ('pending', 'approved', 'executing'))
      AND i.diagnosis_state <> 'running'
"""


@dataclass(frozen=True)
class Claimed:
    """An incident this worker holds while it updates Slack."""

    id: str
    channel: str
    thread_ts: str | None
    summary_ts: str | None
    changed_at: datetime | None
    posted_at: datetime | None
    noted_at: datetime | None
    origin: str


class AlertPoster:
    """One replica's Slack side of alert intake."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._pace = ChannelPace(deps.db, deps.settings.bot_post_interval_s)
        self._alerts = AlertStore(deps.db)
        self._incidents = IncidentStore(deps.db)
        self._diagnoses: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Post summaries, updates and diagnoses until ``stop`` is set."""
        while not stop.is_set():
            busy = False
            try:
                busy = await self.work_once()
                await self._start_diagnoses()
            except Exception:  # one failure must not stop alert posting for good
                log.exception("posting alert incidents failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=POLL_S if busy else IDLE_POLL_S)
        for task in list(self._diagnoses):
            task.cancel()
        await asyncio.gather(*self._diagnoses, return_exceptions=True)

    async def work_once(self) -> bool:
        """Bring one incident's Slack messages up to date; False when none needed it."""
        resolvable: str | None = None
        async with self._deps.db.pool.connection() as conn, conn.transaction():
            claimed = await _claim(conn)
            if claimed is None:
                return False
            if claimed.summary_ts is None:
                await self._post_summary(conn, claimed)
            else:
                await self._update(conn, claimed)
                resolvable = claimed.id
        if resolvable is not None:
            await self._resolve_if_done(resolvable)
        return True

    async def _post_summary(self, conn: Connection, claimed: Claimed) -> None:
        if not await self._pace.take(claimed.channel, root=True):
            return
        incident = await self._incidents.get(claimed.id)
        assert incident is not None  # noqa: S101 -- the row is locked by this transaction
        reply = render_incident_root(incident, await self._alerts.summary(claimed.id))
        ts = await self._post(claimed.channel, reply, thread_ts=claimed.thread_ts)
        if ts is None:
            return
        thread_ts = claimed.thread_ts or ts
        await conn.execute(_SUMMARY_POSTED, (ts, thread_ts, claimed.changed_at, claimed.id))
        await conn.execute(REPOINT_OUTBOX, (thread_ts, claimed.id))

    async def _update(self, conn: Connection, claimed: Claimed) -> None:
        incident = await self._incidents.get(claimed.id)
        assert incident is not None  # noqa: S101 -- the row is locked by this transaction
        await refresh_root_message(self._deps, incident)
        await conn.execute(_POSTED_UP_TO, (claimed.changed_at, claimed.id))
        await self._note(conn, claimed)

    async def _note(self, conn: Connection, claimed: Claimed) -> None:
        """One batched line in the thread for what changed since the last one."""
        noted_at = claimed.noted_at or datetime.min.replace(tzinfo=UTC)
        if (datetime.now(UTC) - noted_at).total_seconds() < NOTE_EVERY_S:
            return
        new, resolved, firing = await self._alerts.changes_since(claimed.id, noted_at)
        if not (new or resolved) or not await self._pace.take(claimed.channel):
            return
        text = storm_update_text(new, resolved, firing)
        if await self._post(claimed.channel, Reply(text=text), thread_ts=claimed.thread_ts):
            await conn.execute(_NOTED, (claimed.id,))

    async def _post(self, channel: str, reply: Reply, *, thread_ts: str | None) -> str | None:
        payload = reply.to_message()
        try:
            response = await self._deps.slack.chat_postMessage(
                channel=channel, thread_ts=thread_ts, **payload
            )
        except SlackApiError as error:
            retry_after = error.response.headers.get("Retry-After") if error.response else None
            if retry_after is not None:
                await self._pace.push_back(channel, float(retry_after))
            log.warning("could not post in %s: %s", channel, error.response.get("error"))
            return None
        return str(response["ts"])

    async def _resolve_if_done(self, incident_id: str) -> None:
        async with self._deps.db.pool.connection() as conn:
            cursor = await conn.execute(_RESOLVABLE, (incident_id,))
            if await cursor.fetchone() is None:
                return
        note = "every alert resolved"
        try:
            incident = await self._incidents.resolve(incident_id, RESOLVER, note)
        except ConflictError:  # resolved meanwhile by someone else
            return
        await refresh_root_message(self._deps, incident)

    # -- diagnoses ---------------------------------------------------------------------------
    async def _start_diagnoses(self) -> None:
        while len(self._diagnoses) < MAX_DIAGNOSES:
            async with self._deps.db.pool.connection() as conn:
                cursor = await conn.execute(_CLAIM_DIAGNOSIS, (STALE_DIAGNOSIS_S,))
                row = await cursor.fetchone()
            if row is None:
                return
            task = asyncio.create_task(self._diagnose(str(row[0])))
            self._diagnoses.add(task)
            task.add_done_callback(self._diagnoses.discard)

    async def _diagnose(self, incident_id: str) -> None:
        """Run the incident's runbook and post the result in its thread."""
        try:
            incident = await self._incidents.get(incident_id)
            if incident is None or incident.thread_ts is None:
                return
            outcome = await self._run(incident)
            reply = (
                render_diagnosis(outcome)
                if isinstance(outcome, Diagnosis)
                else render_triage(outcome)
            )
            await self._wait_for_slot(incident)
            await self._post(incident.channel, reply, thread_ts=incident.thread_ts)
            deps = self._deps
            updated = await self._incidents.add_diagnosis(
                incident_id, outcome.status, diagnosis_event(outcome), None
            )
            async with deps.db.pool.connection() as conn:
                await conn.execute(_DIAGNOSED, (incident_id,))
            await refresh_root_message(deps, updated)
        except Exception:
            log.exception("diagnosing %s failed; it is tried again later", incident_id)

    async def _run(self, incident: Incident) -> Diagnosis | Triage:
        """The incident's runbook for its target; every runbook when none is known (an
        alert message someone asked the bot to diagnose)."""
        deps = self._deps
        profile = profile_named(deps.settings.streamhouse_profile)
        target = incident.diagnosis_target()
        ctx = CheckContext(cached(deps.sources.sources), profile, target, datetime.now(UTC))
        base_url = deps.settings.runbook_base_url
        if incident.runbook is None:
            return await run_all(ORDER, ctx, runbook_base_url=base_url)
        return await run_runbook(RUNBOOKS[incident.runbook], ctx, runbook_base_url=base_url)

    async def _wait_for_slot(self, incident: Incident, timeout_s: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not await self._pace.take(incident.channel):
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.1)


async def _claim(conn: Connection) -> Claimed | None:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(_CLAIM, (EDIT_EVERY_S,))
    row = await cursor.fetchone()
    if row is None:
        return None
    return Claimed(
        id=str(row["id"]),
        channel=str(row["channel"]),
        thread_ts=row["thread_ts"],
        summary_ts=row["summary_ts"],
        changed_at=row["alerts_changed_at"],
        posted_at=row["alerts_posted_at"],
        noted_at=row["alerts_noted_at"],
        origin=str(row["origin"]),
    )
