"""views.open, views.update and views.push: modals with ids, hashes and a push stack."""

from __future__ import annotations

import copy
import time
from typing import Any

from lab.slack.api import ApiRequest, SlackError
from lab.slack.methods_chat import raise_problem, with_block_ids
from lab.slack.state import APP_ID, BOT_ID, TEAM_ID, Workspace
from lab.slack.validation import check_view

# Slack allows at most three views in a modal's stack.
MAX_VIEW_STACK = 3


def _view_param(req: ApiRequest) -> dict[str, Any]:
    view = req.json_param("view")
    problem = check_view(view)
    if problem is not None:
        raise_problem(problem)
    if not isinstance(view, dict):  # check_view already refused it; this narrows the type
        raise SlackError("invalid_arguments")
    return view


def _new_hash(ws: Workspace) -> str:
    return f"{int(time.time())}.{ws.next_id('')}"


def _render(
    ws: Workspace, view: dict[str, Any], view_id: str, *, root_id: str, previous_id: str | None
) -> dict[str, Any]:
    """Build the stored view object in the shape views.* return it."""
    return {
        "id": view_id,
        "team_id": TEAM_ID,
        "type": view.get("type", "modal"),
        "blocks": with_block_ids(view.get("blocks") or []),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": {}},
        "hash": _new_hash(ws),
        "title": view.get("title"),
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
        "close": view.get("close"),
        "submit": view.get("submit"),
        "previous_view_id": previous_id,
        "root_view_id": root_id,
        "app_id": APP_ID,
        "external_id": view.get("external_id", ""),
        "app_installed_team_id": TEAM_ID,
        "bot_id": BOT_ID,
    }


def open_view(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """views.open: open a modal with a fresh (< 3 s, unused) trigger_id."""
    view = _view_param(req)
    ws.consume_trigger_id(req.str_param("trigger_id") or req.str_param("interactivity_pointer"))
    view_id = ws.next_id("V")
    stored = _render(ws, view, view_id, root_id=view_id, previous_id=None)
    ws.views[view_id] = stored
    return {"view": copy.deepcopy(stored)}


def _find_view(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    view_id, external_id = req.str_param("view_id"), req.str_param("external_id")
    if view_id is None and external_id is None:
        raise SlackError("invalid_arguments", errors=["view_id or external_id is required"])
    for stored in ws.views.values():
        if stored["id"] == view_id or (external_id and stored["external_id"] == external_id):
            return stored
    raise SlackError("not_found")


def update_view(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """views.update: replace a view; a stale `hash` is `hash_conflict`."""
    view = _view_param(req)
    current = _find_view(ws, req)
    expected = req.str_param("hash")
    if expected is not None and expected != current["hash"]:
        raise SlackError("hash_conflict")
    stored = _render(
        ws,
        view,
        current["id"],
        root_id=current["root_view_id"],
        previous_id=current["previous_view_id"],
    )
    ws.views[current["id"]] = stored
    return {"view": copy.deepcopy(stored)}


def push_view(ws: Workspace, req: ApiRequest) -> dict[str, Any]:
    """views.push: push a view on top of the most recent modal (at most 3 deep)."""
    view = _view_param(req)
    ws.consume_trigger_id(req.str_param("trigger_id") or req.str_param("interactivity_pointer"))
    if not ws.views:
        raise SlackError("not_found")
    top = list(ws.views.values())[-1]
    if _stack_depth(ws, top) >= MAX_VIEW_STACK:
        raise SlackError("push_limit_reached")
    view_id = ws.next_id("V")
    stored = _render(ws, view, view_id, root_id=top["root_view_id"], previous_id=top["id"])
    ws.views[view_id] = stored
    return {"view": copy.deepcopy(stored)}


def _stack_depth(ws: Workspace, view: dict[str, Any]) -> int:
    depth, current = 1, view
    while current.get("previous_view_id") in ws.views:
        current = ws.views[current["previous_view_id"]]
        depth += 1
    return depth
