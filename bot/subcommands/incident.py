"""``/streamhouse incident list | show ID | ack ID | resolve ID [note]``.

Argument errors are refused inside the acknowledgement; the rest answers privately. A
state change also updates the incident's root message in place, so the channel always
shows where the incident stands; its audit event reaches the thread through the outbox.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError

from bot.alerts.store import AlertStore
from bot.commands import CommandContext, Invocation
from bot.deps import Deps
from bot.errors import NotFoundError, UsageError
from bot.incidents import Incident, IncidentStore, normalise_incident_id
from bot.render.incident import (
    render_incident_changed,
    render_incident_list,
    render_incident_root,
    render_incident_show,
)
from bot.replies import Reply

log = logging.getLogger("bot.subcommands.incident")

VERBS = ("list", "show", "ack", "resolve")
_ALIASES = {"ls": "list", "acknowledge": "ack", "close": "resolve"}
USAGE = "`incident list`, `incident show SH-1`, `incident ack SH-1`, `incident resolve SH-1 [note]`"


@dataclass(frozen=True)
class IncidentCommand:
    """A parsed ``incident`` line: the verb, the incident id (not for ``list``), a note."""

    verb: str
    incident_id: str | None = None
    note: str | None = None


def validate_incident(invocation: Invocation) -> IncidentCommand:
    """Parse the words after ``incident`` (raises ``UsageError`` with a hint)."""
    if not invocation.args:
        raise UsageError("Say what to do with incidents.", hint=f"Use {USAGE}.")
    word, *rest = invocation.args
    verb = _ALIASES.get(word.lower(), word.lower())
    if verb not in VERBS:
        close = difflib.get_close_matches(verb, [*VERBS, *_ALIASES], n=1, cutoff=0.5)
        hint = f"Did you mean `incident {close[0]}`?" if close else f"Use {USAGE}."
        raise UsageError(f"`{word}` is not something I can do with incidents.", hint=hint)
    if verb == "list":
        if rest or invocation.options:
            raise UsageError("`incident list` takes no arguments.")
        return IncidentCommand(verb)
    if not rest:
        raise UsageError(
            f"`incident {verb}` needs an incident id.", hint=f"e.g. `incident {verb} SH-1`."
        )
    incident_id = normalise_incident_id(rest[0])
    if verb != "resolve" and (rest[1:] or invocation.options):
        raise UsageError(f"`incident {verb}` takes only an incident id.")
    # key=value words of a note were split off as options; they belong to the note.
    words = [*rest[1:], *(f"{key}={value}" for key, value in invocation.options.items())]
    return IncidentCommand(verb, incident_id, " ".join(words) or None)


async def run_incident(context: CommandContext, invocation: Invocation) -> Reply | None:
    """Run one ``incident`` verb; the answer is private to the person who asked."""
    command = validate_incident(invocation)
    deps = context.deps
    store = IncidentStore(deps.db)
    if command.verb == "list":
        return render_incident_list(await store.list_open())
    incident_id = command.incident_id or ""
    if command.verb == "show":
        incident = await store.get(incident_id)
        if incident is None:
            raise NotFoundError(
                f"There is no incident {incident_id}. `/streamhouse incident list` shows the "
                "open ones."
            )
        return render_incident_show(incident, await _permalink(deps, incident))
    if command.verb == "ack":
        incident = await store.acknowledge(incident_id, context.user_id)
    else:
        incident = await store.resolve(incident_id, context.user_id, command.note)
    await refresh_root_message(deps, incident)
    return render_incident_changed(incident)


async def refresh_root_message(deps: Deps, incident: Incident) -> None:
    """Replace the incident's root message with its current summary (``chat.update``).

    The store already holds the change and the audit event; a root message Slack will not
    update (deleted, bot removed) is logged rather than failing the command.
    """
    summary_ts = incident.summary_message_ts
    if summary_ts is None:
        return
    alerts = None
    if incident.origin != "command":
        alerts = await AlertStore(deps.db).summary(incident.id)
    payload = render_incident_root(incident, alerts).to_message()
    try:
        await deps.slack.chat_update(channel=incident.channel, ts=summary_ts, **payload)
    except SlackApiError as error:
        log.warning(
            "could not update the root message of %s: %s",
            incident.id,
            error.response.get("error", "unknown"),
        )


async def _permalink(deps: Deps, incident: Incident) -> str | None:
    if incident.thread_ts is None:
        return None
    try:
        response = await deps.slack.chat_getPermalink(
            channel=incident.channel, message_ts=incident.thread_ts
        )
    except SlackApiError:  # a link is a courtesy; the id is enough to find the thread
        return None
    link = response.get("permalink")
    return str(link) if link else None
