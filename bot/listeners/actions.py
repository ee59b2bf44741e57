"""Buttons on diagnosis messages.

"Open runbook" is a link: Slack still delivers the click, which only needs acknowledging.
Remediation buttons carry ``runbook|action``; executing them needs the approval flow,
which this version does not have yet, so the clicker is told so privately.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.ids import ActionId
from bot.render.help import error_reply


async def on_open_runbook(ack: AsyncAck) -> None:
    """A link button: nothing to do but acknowledge."""
    await ack()


async def on_action_requested(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
    """Explain, privately, that actions cannot be run from Slack yet."""
    await ack()
    action = str(body.get("actions", [{}])[0].get("value", "")).partition("|")[2] or "this action"
    message = (
        f"{action} can't be run from Slack yet: it needs an approval flow, which this "
        "version of the bot does not have. Follow the runbook link for the manual steps."
    )
    await respond(**error_reply(message).to_slack(), replace_original=False)


def register_actions(app: AsyncApp) -> None:
    """Attach the button listeners to ``app``."""
    app.action(ActionId.OPEN_RUNBOOK.value)(on_open_runbook)
    app.action(re.compile(rf"^{ActionId.REQUEST_ACTION.value}:"))(on_action_requested)
