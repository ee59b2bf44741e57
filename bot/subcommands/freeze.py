"""``/streamhouse freeze on|off``: stop (or allow again) every action execution.

Only approvers may change it. While frozen, approved requests are refused at execution
time with the reason, and the refusal is audited like any other.
"""

from __future__ import annotations

from bot.approvals import ApprovalStore
from bot.commands import CommandContext, Invocation
from bot.errors import UsageError
from bot.replies import Reply

USAGE = "`freeze on` stops every action execution, `freeze off` allows them again"


def validate_freeze(invocation: Invocation) -> bool:
    """``on`` → True, ``off`` → False; anything else is a ``UsageError``."""
    words = [word.lower() for word in invocation.args]
    if invocation.options or words not in (["on"], ["off"]):
        raise UsageError("Say `freeze on` or `freeze off`.", hint=f"Use {USAGE}.")
    return words == ["on"]


async def run_freeze(context: CommandContext, invocation: Invocation) -> Reply | None:
    """Set the freeze for an approver; say what it means now."""
    frozen = validate_freeze(invocation)
    user = context.user_id or ""
    await context.deps.approvers.require(user, "freeze or unfreeze actions")
    await ApprovalStore(context.deps.db).set_frozen(frozen, user)
    if frozen:
        return Reply(
            text=":ice_cube: Actions are frozen: nothing will be executed until `freeze off`."
        )
    return Reply(text=":white_check_mark: Actions are no longer frozen.")
