"""``/streamhouse diagnose [runbook|all] [topic=… partition=… agent=…]`` in Slack.

Acknowledged at once (bad arguments are refused inside the acknowledgement); the result is
posted to the channel immediately with every check pending and updated in place as checks
finish, then replaced by the final diagnosis.
"""

from __future__ import annotations

from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError

from bot.commands import CommandContext, Invocation
from bot.diagnose import DiagnoseRequest, parse_diagnose, run_request
from bot.errors import BotError
from bot.models import CheckResult, Diagnosis
from bot.profiles import profile_named
from bot.progress import ProgressMessage
from bot.render.diagnosis import render_diagnosis, render_progress, render_triage
from bot.replies import Reply
from bot.sources.cache import cached
from handlers.base import CheckContext

Plan = list[tuple[str, str, str]]


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
    """Post the diagnosis in the channel, live; nothing to send back through the ack."""
    deps = context.deps
    request = parse_diagnose(invocation)
    profile = profile_named(deps.settings.streamhouse_profile)
    sources = cached(deps.sources.sources)
    plan = plan_of(request, CheckContext(sources, profile, request.target, datetime.now(UTC)))
    results: dict[tuple[str, str], CheckResult] = {}
    progress = ProgressMessage(
        deps.slack, context.channel_id or "", lambda: render_progress(request.label, plan, results)
    )
    try:
        await progress.start()
    except SlackApiError as error:
        code = error.response.get("error", "unknown")
        raise BotError(
            f"I could not post in this channel ({code}). Invite me with `/invite @streamhouse`, "
            "or run `streamhouse-bot diagnose` from a terminal."
        ) from error

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
    return None
