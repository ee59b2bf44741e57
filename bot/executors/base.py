"""What an executor is: one remediation of the matrix that the bot can perform.

An executor reads the systems to build an exact ``Preview`` (target, current → new, the
API call, rollback, blast radius, and the ``params`` it will act on), and later performs
the action with the preview's ``params``: what the approver saw is what runs, and a write
that finds the state moved since (a replaced pod, a lease with a new epoch) refuses with
what changed (``StateChanged``) instead of acting on something nobody approved.

Watch actions (CB-A1, TH-A1, WAL-A1) change nothing: their result carries a ``Watch``
and the verification worker polls its checks over the window, stopping at the first
"fixed".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from bot.approvals import ActionRequest
from bot.errors import BotError
from bot.models import Diagnosis, JSONValue, Risk
from bot.profiles import Profile
from bot.settings import Settings
from bot.sources.base import Sources
from bot.sources.writers import Writers
from handlers.base import Target

NO_COOLDOWN = timedelta(0)


class StateChanged(BotError):
    """The system moved between the preview and the write; the message says how."""


@dataclass(frozen=True)
class ActionContext:
    """What an executor may use: uncached sources, the writers, the incident's target, and
    the runbook's diagnosis on data read just now (its evidence gives the parameters)."""

    sources: Sources
    writers: Writers
    settings: Settings
    profile: Profile
    target: Target
    diagnosis: Diagnosis


@dataclass(frozen=True)
class Preview:
    """Exactly what executing would do, read now. ``key`` names what is changed (the
    cooldown key, e.g. ``Deployment/streamhouse-agent`` or ``lease orders/3``); ``params``
    are the values ``execute`` acts on."""

    key: str
    target: str
    current: str
    new: str
    call: str
    rollback: str
    blast_radius: str
    params: Mapping[str, JSONValue] = field(default_factory=dict)
    # When this particular change is riskier than the action usually is (SR-A1 to NONE is
    # high, not medium), the risk that applies; None keeps the runbook's.
    risk: Risk | None = None

    def to_json(self) -> dict[str, JSONValue]:
        """As stored in the request (and shown in the modal)."""
        body = {**asdict(self), "params": dict(self.params)}
        body["risk"] = self.risk.value if self.risk is not None else None
        return body


@dataclass(frozen=True)
class Watch:
    """A watch action's follow-up: poll ``checks`` every interval for ``window_s``."""

    checks: tuple[str, ...]
    window_s: float

    def to_json(self) -> dict[str, JSONValue]:
        """As stored in the request's result."""
        return {"checks": list(self.checks), "window_s": self.window_s}


@dataclass(frozen=True)
class Outcome:
    """What an execution did: ``text`` for the thread, ``details`` for the record, and a
    ``watch`` for watch actions (instead of the runbook's verification)."""

    text: str
    details: Mapping[str, JSONValue] = field(default_factory=dict)
    watch: Watch | None = None

    def to_json(self) -> dict[str, JSONValue]:
        """As stored in the request's result."""
        body: dict[str, JSONValue] = {"text": self.text, **self.details}
        if self.watch is not None:
            body["watch"] = self.watch.to_json()
        return body


class Executor(Protocol):
    """One action of the matrix that the bot can perform."""

    def cooldown(self, settings: Settings) -> timedelta:
        """How long after an execution the same ``Preview.key`` may not be acted on again."""
        ...

    async def preview(self, ctx: ActionContext) -> Preview:
        """What executing would do, read now; ``BotError`` when it cannot apply at all."""
        ...

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        """What moved since ``request.preview`` was read (None: still as approved)."""
        ...

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        """Perform the action on ``request.preview["params"]``; idempotent."""
        ...


def params_of(request: ActionRequest) -> Mapping[str, Any]:
    """The parameters the approver saw."""
    params = request.preview.get("params")
    return params if isinstance(params, Mapping) else {}
