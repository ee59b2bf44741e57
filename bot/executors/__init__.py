"""Every remediation the bot can perform, by action id (ids are unique across runbooks).

One module per runbook holds its executors (``EXECUTORS``); ``bot.executors.execution``
runs an approved request through one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from bot.errors import BotError
from bot.executors import (
    circuit_breaker,
    leases,
    resources,
    schema_registry,
    throttling,
    wal,
    wal_cleanup,
)
from bot.executors.base import (
    ActionContext,
    Executor,
    Outcome,
    Preview,
    StateChanged,
    Watch,
)
from bot.sources.writers import Writers

EXECUTORS: Mapping[str, Executor] = MappingProxyType(
    {
        **circuit_breaker.EXECUTORS,
        **throttling.EXECUTORS,
        **wal.EXECUTORS,
        **leases.EXECUTORS,
        **schema_registry.EXECUTORS,
        **resources.EXECUTORS,
        **wal_cleanup.EXECUTORS,
    }
)


def executor_for(action_id: str) -> Executor:
    """The executor of ``action_id``, or a ``BotError`` saying it is not automated yet."""
    found = EXECUTORS.get(action_id)
    if found is None:
        raise BotError(
            f"{action_id} cannot be run from Slack yet; follow the runbook link for the manual "
            "steps."
        )
    return found


__all__ = [
    "EXECUTORS",
    "ActionContext",
    "Executor",
    "Outcome",
    "Preview",
    "StateChanged",
    "Watch",
    "Writers",
    "executor_for",
]
