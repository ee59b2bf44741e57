"""Buttons and the request modal of approved actions.

A remediation button (``request-action:<ID>``, value ``runbook|action``) opens a modal with
the exact preview and a required reason; its submission creates the request. Low and
medium risk run at once for an authorised requester; high risk is posted "awaiting a
second approver" with Approve/Deny buttons that carry only the request id. Every listener
acknowledges first; refusals are ``BotError``s that the one error handler explains.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.approvals import ActionRequest, ApprovalStore, NewRequest
from bot.deps import Deps
from bot.errors import BotError, NotAuthorizedError, SourceUnavailableError
from bot.executors.execution import preview_action
from bot.executors.lifecycle import run_approved, show_outcome
from bot.ids import ActionId, BlockId, CallbackId
from bot.incidents import IncidentStore
from bot.listeners.errors import on_listener_error
from bot.models import Risk
from bot.render.approval import request_message, request_modal
from bot.sources.base import SourceError
from handlers.registry import RUNBOOKS

log = logging.getLogger("bot.listeners.actions")


async def on_open_runbook(ack: AsyncAck) -> None:
    """A link button: nothing to do but acknowledge."""
    await ack()


async def on_action_requested(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond
) -> None:
    """Open the request modal (preview + reason) for an authorised user."""
    await ack()
    await _explaining_refusals(_open_request_modal(body, context["deps"]), body, respond)


async def _open_request_modal(body: dict[str, Any], deps: Deps) -> None:
    user = str(body["user"]["id"])
    runbook_id, _, action_id = str(body["actions"][0].get("value", "")).partition("|")
    store = ApprovalStore(deps.db)
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id", ""))
    thread = str(message.get("thread_ts") or message.get("ts") or "")
    incident_id = await store.incident_for_thread(channel, thread)
    if incident_id is None:
        raise BotError("This diagnosis has no incident, so its actions cannot be requested.")
    await _require_approver(deps, store, user, incident_id, f"request {action_id}")
    runbook = RUNBOOKS.get(runbook_id)
    spec = next((a for a in runbook.actions if a.id == action_id), None) if runbook else None
    if runbook is None or spec is None:
        raise BotError(f"`{action_id}` is not an action of a known runbook.")
    try:
        preview = (await preview_action(deps, incident_id, runbook_id, action_id)).to_json()
    except SourceError as error:
        raise SourceUnavailableError(
            f"I could not read what {action_id} would change ({error.detail}); try again."
        ) from error
    metadata = json.dumps(
        {"incident": incident_id, "runbook": runbook_id, "action": action_id, "preview": preview}
    )
    view = request_modal(f"{action_id}: {spec.title}", preview, metadata)
    await deps.slack.views_open(trigger_id=body["trigger_id"], view=view)


async def on_request_submitted(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    """Create the request; run it at once unless it is high risk."""
    reason = _reason(view)
    if reason is None:
        await ack(response_action="errors", errors={BlockId.ACTION_REASON: "Give a reason."})
        return
    await ack()
    # A modal has no response URL: a refusal here is logged (the click already checked).
    await _explaining_refusals(_create_request(body, view, reason, context["deps"]), body, None)


async def _create_request(
    body: dict[str, Any], view: dict[str, Any], reason: str, deps: Deps
) -> None:
    user = str(body["user"]["id"])
    metadata = json.loads(view.get("private_metadata") or "{}")
    store = ApprovalStore(deps.db)
    await _require_approver(deps, store, user, metadata["incident"], f"run {metadata['action']}")
    runbook = RUNBOOKS[metadata["runbook"]]
    spec = next(a for a in runbook.actions if a.id == metadata["action"])
    preview = metadata["preview"]
    new = NewRequest(
        incident_id=metadata["incident"],
        runbook=runbook.id,
        action_id=spec.id,
        risk=Risk(preview["risk"]) if preview.get("risk") else spec.risk,
        target=str(preview["key"]),
        requested_by=user,
        reason=reason,
        preview=preview,
    )
    request = await store.create(new, timedelta(seconds=deps.settings.bot_request_ttl_s))
    await _post_request(deps, store, request)
    if request.risk.value != "high":
        await run_approved(deps, await store.approve_own(request.id))


async def on_approve_clicked(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond
) -> None:
    """A second approver approves: the request runs once, however many clicks arrive."""
    await ack()
    await _explaining_refusals(_approve(body, context["deps"]), body, respond)


async def _approve(body: dict[str, Any], deps: Deps) -> None:
    user = str(body["user"]["id"])
    store = ApprovalStore(deps.db)
    request = await store.get(str(body["actions"][0]["value"]))
    await _require_approver(deps, store, user, request.incident_id, f"approve {request.action_id}")
    try:
        approved = await store.approve(request.id, user)
    except BotError:
        await show_outcome(deps, await store.get(request.id))
        raise
    await run_approved(deps, approved)


async def on_deny_clicked(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond
) -> None:
    """An approver denies the request; its buttons are replaced by the decision."""
    await ack()
    await _explaining_refusals(_deny(body, context["deps"]), body, respond)


async def _deny(body: dict[str, Any], deps: Deps) -> None:
    user = str(body["user"]["id"])
    store = ApprovalStore(deps.db)
    request = await store.get(str(body["actions"][0]["value"]))
    await _require_approver(deps, store, user, request.incident_id, f"deny {request.action_id}")
    await show_outcome(deps, await store.deny(request.id, user))


async def _explaining_refusals(
    work: Coroutine[Any, Any, None], body: dict[str, Any], respond: AsyncRespond | None
) -> None:
    """Run ``work``; a refusal is explained by the one error handler's mapping.

    Raising it out of the listener instead would race Bolt: an error within its 10 ms ack
    polling after ``ack()`` turns the already sent acknowledgement into a 404.
    """
    try:
        await work
    except BotError as error:
        await on_listener_error(error, body, respond)


async def _require_approver(
    deps: Deps, store: ApprovalStore, user: str, incident_id: str, doing: str
) -> None:
    try:
        await deps.approvers.require(user, doing)
    except NotAuthorizedError:
        await store.audit_refusal(incident_id, user, f"{user} is not an approver: cannot {doing}")
        raise


async def _post_request(deps: Deps, store: ApprovalStore, request: ActionRequest) -> None:
    incident = await IncidentStore(deps.db).get(request.incident_id)
    if incident is None or incident.thread_ts is None:
        return
    payload = request_message(request).to_message()
    response = await deps.slack.chat_postMessage(
        channel=incident.channel, thread_ts=incident.thread_ts, **payload
    )
    await store.set_message(request.id, str(response["ts"]))


def _reason(view: dict[str, Any]) -> str | None:
    values = (view.get("state") or {}).get("values") or {}
    field = (values.get(BlockId.ACTION_REASON) or {}).get(ActionId.REASON_INPUT) or {}
    text = str(field.get("value") or "").strip()
    return text or None


def register_actions(app: AsyncApp) -> None:
    """Attach the button and modal listeners to ``app``."""
    app.action(ActionId.OPEN_RUNBOOK.value)(on_open_runbook)
    app.action(re.compile(rf"^{ActionId.REQUEST_ACTION.value}:"))(on_action_requested)
    app.action(ActionId.APPROVE_REQUEST.value)(on_approve_clicked)
    app.action(ActionId.DENY_REQUEST.value)(on_deny_clicked)
    app.view(CallbackId.ACTION_REQUEST.value)(on_request_submitted)
