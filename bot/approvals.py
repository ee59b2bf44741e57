"""The state machine of an action request (who is authorised: ``bot.approvers``).

Low and medium risk: an authorised requester's request is approved by the request itself.
High risk: a second, different authorised user must approve it.

States: pending → approved → executing → succeeded | failed; pending → denied | expired;
approved → refused (dry run, freeze, cooldown, guard rails on fresh data). Each move is one
``UPDATE ... WHERE id = %s AND state = '<from>' RETURNING``, committed with its audit event,
so of ten concurrent clicks exactly one moves the request and the others are told why not.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bot.audit import append_event
from bot.errors import ConflictError, NotFoundError
from bot.models import Risk
from bot.store.db import Connection, Database


class RequestState(StrEnum):
    """Where an action request is."""

    PENDING = "pending"
    APPROVED = "approved"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"
    EXPIRED = "expired"
    REFUSED = "refused"


_COLUMNS = (
    "id, incident_id, runbook, action_id, risk, target, requested_by, reason, preview, state, "
    "approved_by, decided_at, expires_at, created_at, executed_at, message_ts, result"
)
_INSERT = f"""
    INSERT INTO action_requests
        (id, incident_id, runbook, action_id, risk, target, requested_by, reason, preview,
         expires_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now() + %s)
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list, values are parameters
_GET = f"SELECT {_COLUMNS} FROM action_requests WHERE id = %s"  # noqa: S608 -- fixed columns
_APPROVE = f"""
    UPDATE action_requests SET state = 'approved', approved_by = %s, decided_at = now()
    WHERE id = %s AND state = 'pending' AND expires_at > now() AND requested_by <> %s
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list
_SELF_APPROVE = f"""
    UPDATE action_requests SET state = 'approved', approved_by = requested_by,
        decided_at = now()
    WHERE id = %s AND state = 'pending' AND expires_at > now() AND risk <> 'high'
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list
_DENY = f"""
    UPDATE action_requests SET state = 'denied', approved_by = %s, decided_at = now()
    WHERE id = %s AND state = 'pending' AND expires_at > now()
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list
_EXPIRE = f"""
    UPDATE action_requests SET state = 'expired', decided_at = now()
    WHERE id = %s AND state = 'pending' AND expires_at <= now()
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list
_START = f"""
    UPDATE action_requests SET state = 'executing', executed_at = now()
    WHERE id = %s AND state = 'approved'
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list
_REFUSE = f"""
    UPDATE action_requests SET state = 'refused', result = %s
    WHERE id = %s AND state = 'approved'
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list
_FINISH = f"""
    UPDATE action_requests SET state = %s, result = %s
    WHERE id = %s AND state = 'executing'
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list
_SET_MESSAGE = "UPDATE action_requests SET message_ts = %s WHERE id = %s"
_STALE_APPROVED = f"""
    SELECT {_COLUMNS} FROM action_requests
    WHERE state = 'approved' AND decided_at < now() - make_interval(secs => %s)
    ORDER BY decided_at
"""  # noqa: S608 -- fixed column list
_ABANDON_EXECUTING = f"""
    UPDATE action_requests SET state = 'failed', result = %s
    WHERE state = 'executing' AND executed_at < now() - make_interval(secs => %s)
    RETURNING {_COLUMNS}
"""  # noqa: S608 -- fixed column list
_LAST_EXECUTION = """
    SELECT max(executed_at) FROM action_requests
    WHERE action_id = %s AND target = %s AND executed_at IS NOT NULL AND id <> %s
"""
_INCIDENT_FOR_THREAD = "SELECT id FROM incidents WHERE channel = %s AND thread_ts = %s"
_INCIDENT_PLACE = "SELECT channel, thread_ts FROM incidents WHERE id = %s"
_FROZEN = 'SELECT frozen FROM "freeze" WHERE id'
_SET_FREEZE = 'UPDATE "freeze" SET frozen = %s, frozen_by = %s, frozen_at = now() WHERE id'


@dataclass(frozen=True)
class ActionRequest:
    """One stored request; ``preview`` is what the requester saw, ``result`` what happened."""

    id: str
    incident_id: str
    runbook: str
    action_id: str
    risk: Risk
    target: str
    requested_by: str
    reason: str
    preview: dict[str, Any]
    state: RequestState
    approved_by: str | None
    decided_at: datetime | None
    expires_at: datetime
    created_at: datetime
    executed_at: datetime | None
    message_ts: str | None
    result: dict[str, Any] | None

    def age_of_decision_s(self) -> float:
        """Seconds since the request was approved or denied (0 when undecided)."""
        if self.decided_at is None:
            return 0.0
        return (datetime.now(UTC) - self.decided_at).total_seconds()

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ActionRequest:
        """A request from a ``dict_row``; times in UTC, enums parsed."""
        values = dict(row)
        values["risk"] = Risk(values["risk"])
        values["state"] = RequestState(values["state"])
        for key in ("decided_at", "expires_at", "created_at", "executed_at"):
            if values[key] is not None:
                values[key] = values[key].astimezone(UTC)
        return cls(**values)


@dataclass(frozen=True)
class NewRequest:
    """What a submitted modal asks for."""

    incident_id: str
    runbook: str
    action_id: str
    risk: Risk
    target: str
    requested_by: str
    reason: str
    preview: Mapping[str, Any]


def new_request_id() -> str:
    """An opaque, unguessable token; a button carries nothing else."""
    return "req_" + secrets.token_urlsafe(18)


class ApprovalStore:
    """Create and move action requests in ``db``; every move is audited with it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def incident_for_thread(self, channel: str, thread_ts: str) -> str | None:
        """The incident whose thread starts at ``thread_ts`` in ``channel``, if any."""
        async with self._db.pool.connection() as conn:
            cursor = await conn.execute(_INCIDENT_FOR_THREAD, (channel, thread_ts))
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def create(self, new: NewRequest, ttl: timedelta) -> ActionRequest:
        """A pending request, audited as ``action.requested``."""
        params = (
            new_request_id(),
            new.incident_id,
            new.runbook,
            new.action_id,
            new.risk.value,
            new.target,
            new.requested_by,
            new.reason,
            Jsonb(dict(new.preview)),
            ttl,
        )
        async with self._db.pool.connection() as conn, conn.transaction():
            row = await _fetch_one(conn, _INSERT, params)
            assert row is not None  # noqa: S101 -- INSERT ... RETURNING always returns a row
            request = ActionRequest.from_row(row)
            text = (
                f"{request.requested_by} requested {request.action_id} ({request.risk.value} "
                f"risk) on {request.target}: {request.reason}"
            )
            await _audit(conn, request, "action.requested", text, request.requested_by)
        return request

    async def get(self, request_id: str) -> ActionRequest:
        """The request, or ``NotFoundError``."""
        async with self._db.pool.connection() as conn:
            return await _require(conn, request_id)

    async def set_message(self, request_id: str, message_ts: str) -> None:
        """Remember the thread message that shows the request (to replace its buttons)."""
        async with self._db.pool.connection() as conn:
            await conn.execute(_SET_MESSAGE, (message_ts, request_id))

    async def approve(self, request_id: str, approver: str) -> ActionRequest:
        """pending → approved by a second person; the requester themself is refused."""
        return await self._decide(request_id, _APPROVE, (approver, request_id, approver), approver)

    async def approve_own(self, request_id: str) -> ActionRequest:
        """pending → approved by the requester: low and medium risk only."""
        return await self._decide(request_id, _SELF_APPROVE, (request_id,), None)

    async def deny(self, request_id: str, user: str) -> ActionRequest:
        """pending → denied."""
        return await self._decide(request_id, _DENY, (user, request_id), user)

    async def _decide(
        self, request_id: str, query: str, params: tuple[Any, ...], actor: str | None
    ) -> ActionRequest:
        # A refusal is raised after the commit: marking a request expired, or auditing a
        # self-approval, must not be rolled back with the error.
        refused: ConflictError | None = None
        async with self._db.pool.connection() as conn, conn.transaction():
            row = await _fetch_one(conn, query, params)
            if row is None:
                refused = await self._why_not(conn, request_id, actor)
            else:
                request = ActionRequest.from_row(row)
                who = request.approved_by or actor
                text = f"{who} {request.state.value} {request.action_id} ({request.id})"
                await _audit(conn, request, f"action.{request.state.value}", text, who)
        if refused is not None:
            raise refused
        return request

    async def _why_not(self, conn: Connection, request_id: str, actor: str | None) -> ConflictError:
        """Why a decision did not apply; an expired request is marked so (and audited)."""
        request = await _require(conn, request_id)
        if request.state is RequestState.PENDING and request.expires_at <= datetime.now(UTC):
            row = await _fetch_one(conn, _EXPIRE, (request_id,))
            if row is not None:
                expired = ActionRequest.from_row(row)
                text = f"{expired.action_id} request {expired.id} expired undecided"
                await _audit(conn, expired, "action.expired", text, None)
            return ConflictError(f"This request for {request.action_id} has expired; ask again.")
        if request.state is RequestState.EXPIRED:
            return ConflictError(f"This request for {request.action_id} has expired; ask again.")
        if request.state is RequestState.PENDING and actor == request.requested_by:
            text = f"{actor} tried to approve their own {request.action_id} request {request.id}"
            await _audit(conn, request, "action.refused", text, actor)
            return ConflictError(
                "You requested this action, so you cannot approve it: a high-risk action "
                "needs a second approver."
            )
        who = f" by {request.approved_by}" if request.approved_by else ""
        return ConflictError(
            f"This request is already {request.state.value}{who}; nothing changed."
        )

    async def start(self, request_id: str) -> ActionRequest | None:
        """approved → executing; None when another click got there first."""
        async with self._db.pool.connection() as conn, conn.transaction():
            row = await _fetch_one(conn, _START, (request_id,))
            if row is None:
                return None
            request = ActionRequest.from_row(row)
            text = f"executing {request.action_id} on {request.target} ({request.id})"
            await _audit(conn, request, "action.executing", text, None)
        return request

    async def refuse(
        self, request_id: str, why: str, result: Mapping[str, Any]
    ) -> ActionRequest | None:
        """approved → refused, with the reason; None when it was not approved any more."""
        body = {"refused": why, **result}
        async with self._db.pool.connection() as conn, conn.transaction():
            row = await _fetch_one(conn, _REFUSE, (Jsonb(body), request_id))
            if row is None:
                return None
            request = ActionRequest.from_row(row)
            text = f"{request.action_id} refused: {why}"
            await _audit(conn, request, "action.refused", text, None)
        return request

    async def finish(
        self, request_id: str, succeeded: bool, result: Mapping[str, Any]
    ) -> ActionRequest | None:
        """executing → succeeded | failed, with what happened."""
        state = RequestState.SUCCEEDED if succeeded else RequestState.FAILED
        async with self._db.pool.connection() as conn, conn.transaction():
            row = await _fetch_one(conn, _FINISH, (state.value, Jsonb(dict(result)), request_id))
            if row is None:
                return None
            request = ActionRequest.from_row(row)
            text = f"{request.action_id} {state.value}: {result.get('text', '')}".strip()
            await _audit(conn, request, f"action.{state.value}", text, None)
        return request

    async def stale_approved(self, older_than_s: float) -> list[ActionRequest]:
        """Requests approved more than ``older_than_s`` ago and never started."""
        async with self._db.pool.connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(_STALE_APPROVED, (older_than_s,))
            return [ActionRequest.from_row(row) for row in await cursor.fetchall()]

    async def abandon_executing(self, older_than_s: float) -> list[ActionRequest]:
        """executing → failed for executions cut off (by a stop) ``older_than_s`` ago."""
        text = (
            "outcome unknown: the bot stopped while executing; check the target's state "
            "before asking again"
        )
        async with self._db.pool.connection() as conn, conn.transaction():
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(_ABANDON_EXECUTING, (Jsonb({"text": text}), older_than_s))
            abandoned = [ActionRequest.from_row(row) for row in await cursor.fetchall()]
            for request in abandoned:
                await _audit(conn, request, "action.failed", f"{request.action_id} {text}", None)
        return abandoned

    async def last_execution(self, request: ActionRequest) -> datetime | None:
        """When the same action last ran on the same target (other requests)."""
        async with self._db.pool.connection() as conn:
            cursor = await conn.execute(
                _LAST_EXECUTION, (request.action_id, request.target, request.id)
            )
            row = await cursor.fetchone()
        return None if row is None or row[0] is None else row[0].astimezone(UTC)

    async def audit_refusal(self, incident_id: str, user: str, text: str) -> None:
        """Record a refused attempt that changed nothing (e.g. a user who is not an approver)."""
        async with self._db.pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(_INCIDENT_PLACE, (incident_id,))
            place = await cursor.fetchone()
            if place is None:
                return
            await append_event(
                conn,
                incident_id,
                "action.refused",
                {"text": text},
                actor=user,
                channel=place[0],
                thread_ts=place[1],
            )

    async def frozen(self) -> bool:
        """Whether executions are frozen."""
        async with self._db.pool.connection() as conn:
            cursor = await conn.execute(_FROZEN)
            row = await cursor.fetchone()
        return bool(row and row[0])

    async def set_frozen(self, frozen: bool, user: str) -> None:
        """``/streamhouse freeze on|off``."""
        async with self._db.pool.connection() as conn:
            await conn.execute(_SET_FREEZE, (frozen, user))


async def _require(conn: Connection, request_id: str) -> ActionRequest:
    row = await _fetch_one(conn, _GET, (request_id,))
    if row is None:
        raise NotFoundError("That action request does not exist (any more).")
    return ActionRequest.from_row(row)


async def _fetch_one(
    conn: Connection, query: str, params: tuple[Any, ...]
) -> dict[str, Any] | None:
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(query, params)
    return await cursor.fetchone()


async def _audit(
    conn: Connection, request: ActionRequest, kind: str, text: str, actor: str | None
) -> None:
    cursor = await conn.execute(_INCIDENT_PLACE, (request.incident_id,))
    place = await cursor.fetchone()
    channel, thread_ts = (place[0], place[1]) if place else ("", None)
    body = {"text": text, "request": request.id, "action": request.action_id}
    await append_event(
        conn, request.incident_id, kind, body, actor=actor, channel=channel, thread_ts=thread_ts
    )
