"""SR-A1's choice of mode and SR-A2's upstream refusal (pure decisions)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import pytest

from bot.errors import BotError
from bot.executors.schema_registry import (
    UPSTREAM_HAS_NO_REGISTRY_WORKLOAD,
    looser_modes,
    mode_accepting,
    new_mode,
)
from bot.models import Risk
from handlers import avro_diff
from handlers.schema_registry import mode_change_risk
from lab.scenarios import ORDERS_V2_COMPATIBLE, ORDERS_V2_INCOMPATIBLE


def accepts_against(
    latest: Mapping[str, object], candidate: Mapping[str, object]
) -> Callable[[str], bool]:
    """Whether ``candidate`` follows ``latest`` under a mode (the bot's Avro check)."""
    old, new = (avro_diff.parse(json.dumps(s)) for s in (latest, candidate))
    return lambda mode: not avro_diff.compatibility_problems(mode, new, old)


def test_looser_modes_go_strict_to_loose_keeping_the_direction_first() -> None:
    """From FULL: the transitive pair (BACKWARD first), the plain pair, NONE last."""
    assert looser_modes("FULL") == [
        "BACKWARD_TRANSITIVE",
        "FORWARD_TRANSITIVE",
        "BACKWARD",
        "FORWARD",
        "NONE",
    ]
    assert looser_modes("BACKWARD") == ["FORWARD", "NONE"]
    assert looser_modes("FORWARD_TRANSITIVE")[:2] == ["BACKWARD_TRANSITIVE", "FORWARD"]


def test_a_removed_required_field_gets_forward_not_none() -> None:
    """The runbook's own answer: under BACKWARD the removal is refused, FORWARD accepts it."""
    accepts = accepts_against(ORDERS_V2_COMPATIBLE, ORDERS_V2_INCOMPATIBLE)
    assert not accepts("BACKWARD")
    assert mode_accepting("BACKWARD", accepts) == "FORWARD"
    mode, why = new_mode("BACKWARD", "BACKWARD", accepts=accepts, refused=True)
    assert mode == "FORWARD"
    assert "candidate" in why
    assert mode_change_risk(mode) is Risk.MEDIUM


def test_without_a_candidate_one_step_looser_and_none_is_high_risk() -> None:
    """Refused registrations and no candidate: the next looser mode in the same direction."""
    assert new_mode("FULL_TRANSITIVE", "BACKWARD", accepts=None, refused=True)[0] == "FULL"
    assert new_mode("FULL", "BACKWARD", accepts=None, refused=True)[0] == "BACKWARD_TRANSITIVE"
    assert new_mode("FORWARD", "BACKWARD", accepts=None, refused=True)[0] == "NONE"
    mode, _ = new_mode("BACKWARD", "BACKWARD", accepts=None, refused=True)
    assert mode == "NONE"
    assert mode_change_risk(mode) is Risk.HIGH


def test_a_subject_in_none_goes_back_to_checking() -> None:
    """After a force-register: the global default, or BACKWARD when the global is NONE too."""
    assert new_mode("NONE", "FULL", accepts=None, refused=True)[0] == "FULL"
    assert new_mode("NONE", "NONE", accepts=None, refused=False)[0] == "BACKWARD"


def test_nothing_to_change_is_refused_with_the_reason() -> None:
    """No refused registration and a checked subject; or a candidate that already passes."""
    with pytest.raises(BotError, match="Nothing calls for a mode change"):
        new_mode("BACKWARD", "BACKWARD", accepts=None, refused=False)
    passes = accepts_against(ORDERS_V2_COMPATIBLE, ORDERS_V2_COMPATIBLE)
    with pytest.raises(BotError, match="already registers under BACKWARD"):
        new_mode("BACKWARD", "BACKWARD", accepts=passes, refused=False)


def test_upstream_refusal_explains_where_the_registry_runs() -> None:
    """SR-A2 upstream: the registry is part of the unified server."""
    assert "unified server" in UPSTREAM_HAS_NO_REGISTRY_WORKLOAD
    assert "/schemas" in UPSTREAM_HAS_NO_REGISTRY_WORKLOAD
