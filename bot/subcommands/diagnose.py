"""``/streamhouse diagnose [runbook|all] [topic=… partition=… agent=…]`` in Slack.

Acknowledged at once (bad arguments are refused inside the acknowledgement). One message
goes to the channel and heads a thread; the diagnosis is posted in that thread with every
check pending and updated in place as checks finish. When the result is not ``ok`` an
incident is opened and the channel message becomes its root (``SH-n``, state, who); a
healthy result opens nothing and the channel message says so in one line, so routine
checks make no incident noise.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.commands import CommandContext, Invocation
from bot.deps import Deps
from bot.diagnose import DiagnoseRequest, parse_diagnose, run_request
from bot.errors import BotError
from bot.incidents import Incident, IncidentStore
from bot.models import CheckResult, Diagnosis, Status, Triage
from bot.profiles import profile_named
from bot.progress import ProgressMessage
from bot.render.diagnosis import (
    render_diagnosis,
    render_progress,
    render_thread_root,
    render_triage,
)
from bot.replies import Reply
from bot.sources.cache import cached
from bot.subcommands.incident import refresh_root_message
from handlers.base import CheckContext, Target

Plan = list[tuple[str, str, str]]
Outcome = Diagnosis | Triage

log = logging.getLogger("bot.subcommands.diagnose")


def validate_diagnose(invocation: Invocation) -> DiagnoseRequest:
    """Parse the arguments (raises ``UsageError``), without running anything."""
    return parse_diagnose(invocation)


def plan_of(request: DiagnoseRequest, ctx: CheckContext) -> Plan:
    """Every check that will run, as ``(runbook id, check id, title)``, in runbook order."""
    return [
        (runbook.id, spec.id, spec.title)
        for runbook in request.runbooks
        for spec in runbook.checks_for(ctx)
    ]


async def run_diagnose(context: CommandContext, invocation: Invocation) -> Reply | None:
    """Post the diagnosis in a thread, live, and open an incident if it is not ok."""
    deps = context.deps
    channel = context.channel_id or ""
    request = parse_diagnose(invocation)
    title = request_title(request)
    store = IncidentStore(deps.db)
    ongoing = await _ongoing_incident(store, channel, request)
    if ongoing is not None and ongoing.thread_ts is not None:
        root_ts = ongoing.thread_ts  # a repeated diagnosis goes into the incident's thread
    else:
        root_ts = await _post_root(deps, channel, render_thread_root(title, None))
    profile = profile_named(deps.settings.streamhouse_profile)
    sources = cached(deps.sources.sources)
    plan = plan_of(request, CheckContext(sources, profile, request.target, datetime.now(UTC)))
    results: dict[tuple[str, str], CheckResult] = {}
    progress = ProgressMessage(
        deps.slack,
        channel,
        lambda: render_progress(request.label, plan, results),
        thread_ts=root_ts,
    )
    await progress.start()

    async def on_check(runbook_id: str, result: CheckResult) -> None:
        results[(runbook_id, result.id)] = result
        progress.changed()

    outcome = await run_request(
        request,
        sources,
        profile,
        runbook_base_url=deps.settings.runbook_base_url,
        on_check=on_check,
    )
    final = render_diagnosis(outcome) if isinstance(outcome, Diagnosis) else render_triage(outcome)
    await progress.finish(final)
    if ongoing is not None:
        event = diagnosis_event(outcome)
        updated = await store.add_diagnosis(ongoing.id, outcome.status, event, context.user_id)
        await refresh_root_message(deps, updated)
        return Reply(text=f"{ongoing.id} is open for this already: the diagnosis is in its thread.")
    if outcome.status is Status.OK:
        await _update_root(deps, channel, root_ts, render_thread_root(title, outcome))
        return None
    incident = await store.open(
        runbook_of(outcome),
        incident_title(outcome, request.target),
        outcome.status,
        channel,
        context.user_id,
        thread_ts=root_ts,
        diagnosis=diagnosis_event(outcome),
        target=target_fields(request.target),
    )
    await refresh_root_message(deps, incident)
    return None


async def _ongoing_incident(
    store: IncidentStore, channel: str, request: DiagnoseRequest
) -> Incident | None:
    """The open incident a diagnosis of one runbook belongs to (never for ``all``)."""
    if request.everything or not channel:
        return None
    return await store.find_open(request.runbooks[0].id, channel, target_fields(request.target))


def target_fields(target: Target) -> dict[str, Any]:
    """The target's set fields, as the incident stores them (``Target(**fields)`` again)."""
    return {key: value for key, value in asdict(target).items() if value is not None}


def request_title(request: DiagnoseRequest) -> str:
    """What is being diagnosed, with the target: ``lease-conflicts (topic=orders)``."""
    target = describe_target(request.target)
    return f"{request.label} ({target})" if target else request.label


def describe_target(target: Target) -> str:
    """``topic=orders partition=1`` for the target's set fields; empty when none."""
    fields = (("topic", target.topic), ("partition", target.partition), ("agent", target.agent))
    return " ".join(f"{name}={value}" for name, value in fields if value is not None)


def runbook_of(outcome: Outcome) -> str | None:
    """The runbook an incident belongs to: the one diagnosed, or triage's probable root."""
    if isinstance(outcome, Diagnosis):
        return outcome.runbook
    return outcome.root or (outcome.diagnoses[0].runbook if outcome.diagnoses else None)


def incident_title(outcome: Outcome, target: Target) -> str:
    """The runbook's title (for triage: the probable root's, else the worst one's), plus the
    target asked about; the same runbook ``runbook_of`` names."""
    if isinstance(outcome, Diagnosis):
        base = outcome.title
    else:
        chosen = runbook_of(outcome)
        titles = {d.runbook: d.title for d in outcome.diagnoses}
        base = titles.get(chosen or "", "Streamhouse triage")
    described = describe_target(target)
    return f"{base} ({described})" if described else base


def diagnosis_event(outcome: Outcome) -> dict[str, Any]:
    """The audit body of a diagnosis: verdict, summary and each check's status."""
    diagnoses = [outcome] if isinstance(outcome, Diagnosis) else list(outcome.diagnoses)
    return {
        "text": f"{outcome.status.value}: {outcome.summary}",
        "status": outcome.status.value,
        "checks": {c.id: c.status.value for d in diagnoses for c in d.checks},
    }


async def _post_root(deps: Deps, channel: str, reply: Reply) -> str:
    try:
        response = await deps.slack.chat_postMessage(channel=channel, **reply.to_message())
    except SlackApiError as error:
        code = error.response.get("error", "unknown")
        raise BotError(
            f"I could not post in this channel ({code}). Invite me with `/invite @streamhouse`, "
            "or run `streamhouse-bot diagnose` from a terminal."
        ) from error
    return str(response["ts"])


async def _update_root(deps: Deps, channel: str, ts: str, reply: Reply) -> None:
    try:
        await deps.slack.chat_update(channel=channel, ts=ts, **reply.to_message())
    except SlackApiError as error:  # the thread already holds the result
        log.warning("could not update the diagnosis root message: %s", error.response.get("error"))
