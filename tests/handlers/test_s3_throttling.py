"""s3-throttling: burst or sustained overload, traffic shapes, and the limit guard rails.

Pure logic first, on small hand-made inputs; then the runbook against the lab in both
profiles (one lab per profile, switched together, one switch per scenario).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bot.models import CheckResult, Status
from bot.profiles import RUNBOOK as RUNBOOK_PROFILE
from bot.profiles import UPSTREAM
from bot.sources.base import Sources
from bot.store import EmbeddedPostgres
from handlers import circuit_breaker
from handlers.base import CheckContext
from handlers.put_limiter import allowed_share
from handlers.s3_throttling import (
    RUNBOOK,
    demand_verdict,
    guard_raise_limit,
    guard_scale_out,
    guard_wait_for_burst,
    slowdown_verdict,
)
from handlers.traffic_shape import traffic_shape
from tests.handlers.test_circuit_breaker import PROFILES, BothProfiles, start_both

RUNBOOK_CTX = CheckContext(Sources(), RUNBOOK_PROFILE)


def demand(cause: str | None, status: Status = Status.WARNING, **evidence: object) -> CheckResult:
    """A hand-made TH-3 result."""
    return CheckResult("TH-3", "TH-3", status, "", evidence, cause=cause)


# -- pure logic -----------------------------------------------------------------------------
def test_demand_above_the_limit_only_lately_is_a_burst() -> None:
    """Demand over the limit now but not over most of the hour is a burst."""
    assert demand_verdict(3600, 800, 3000)[2] == "burst"
    assert demand_verdict(4800, 4800, 3000)[:3:2] == (Status.CRITICAL, "sustained overload")
    assert demand_verdict(800, 800, 3000)[0] is Status.OK


@pytest.mark.parametrize(
    ("values", "capacity", "shape"),
    [
        ([800.0] * 54 + [2250.0] * 6, 2250.0, "spike"),
        ([2250.0] * 60, 2250.0, "plateau"),
        ([800.0] * 60, 9000.0, "steady"),
        (([300.0] * 5 + [1500.0] * 5) * 6, None, "periodic"),
        ([800.0] * 57 + [10.0] * 3, None, "drop"),
        ([0.0] * 60, None, "idle"),
    ],
)
def test_traffic_shapes(values: list[float], capacity: float | None, shape: str) -> None:
    """An hour of PUT rates is told apart as spike, plateau, steady, periodic, drop or idle."""
    assert traffic_shape(values, capacity) == shape


def test_an_open_breaker_is_not_throttling() -> None:
    """Circuit-open decisions are the breaker's: the limiter's share leaves them out."""
    assert allowed_share({"allowed": 0.0, "circuit_open": 800.0}, "allowed") is None
    by_decision = {"allow": 45.0, "rate_limited": 5.0, "circuit_open": 50.0}
    assert allowed_share(by_decision, "allow") == 0.9


def test_503s_mean_limits_too_high_and_none_while_throttled_too_conservative() -> None:
    """TH-4 names the direction the limits are wrong in."""
    assert slowdown_verdict(0.5, throttled=False)[2] == "limits too high"
    assert slowdown_verdict(0.0, throttled=True)[2] == "limits too conservative"
    assert slowdown_verdict(0.0, throttled=False)[0] is Status.OK


def test_raise_is_capped_by_last_weeks_peak_demand() -> None:
    """TH-A2 is refused when 1.2 x last week's peak is not above the current limit."""
    results = {"TH-3": demand(None, Status.OK, put_limit=3000.0, peak_put_per_s_7d=800.0)}
    allowed, why = guard_raise_limit(results, RUNBOOK_CTX)
    assert not allowed
    assert "960/s" in (why or "")
    results = {"TH-3": demand("burst", put_limit=3000.0, peak_put_per_s_7d=3600.0)}
    assert guard_raise_limit(results, RUNBOOK_CTX) == (True, None)


def test_raise_is_refused_while_s3_answers_503() -> None:
    """TH-A2 is refused when TH-4 shows real 503s."""
    slowdowns = CheckResult("TH-4", "", Status.CRITICAL, "", cause="limits too high")
    results = {"TH-3": demand("burst", put_limit=3000.0), "TH-4": slowdowns}
    allowed, why = guard_raise_limit(results, RUNBOOK_CTX)
    assert not allowed
    assert "503" in (why or "")


def test_raise_is_refused_upstream_where_the_variable_is_ignored() -> None:
    """Upstream Streamhouse does not read THROTTLE_PUT_RATE, so raising it is refused."""
    results = {"TH-3": demand("burst", put_limit=3000.0, peak_put_per_s_7d=3600.0)}
    allowed, why = guard_raise_limit(results, CheckContext(Sources(), UPSTREAM))
    assert not allowed
    assert "THROTTLE_PUT_RATE" in (why or "")


def test_waiting_is_for_bursts_and_scaling_for_sustained_overload() -> None:
    """TH-A1 needs a burst, TH-A3 a sustained overload."""
    burst, overload = {"TH-3": demand("burst")}, {"TH-3": demand("sustained overload")}
    assert guard_wait_for_burst(burst, RUNBOOK_CTX) == (True, None)
    assert guard_wait_for_burst(overload, RUNBOOK_CTX)[0] is False
    assert guard_scale_out(overload, RUNBOOK_CTX) == (True, None)
    assert guard_scale_out(burst, RUNBOOK_CTX)[0] is False


# -- against the lab ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def labs(pg_server: EmbeddedPostgres) -> Iterator[BothProfiles]:
    """Both profiles' labs for this module, starting healthy."""
    yield from start_both(pg_server, "healthy")


@pytest.mark.parametrize("profile", PROFILES)
def test_healthy_s3_runbooks_are_all_ok(
    labs: BothProfiles, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`healthy`: every check of both S3 runbooks is ok; upstream's TH-4 reads CloudWatch."""
    labs.switch("healthy")
    for runbook in (RUNBOOK, circuit_breaker.RUNBOOK):
        diagnosis = labs.diagnosis(runbook, profile, monkeypatch)
        assert [c.id for c in diagnosis.checks if c.status is not Status.OK] == []
        assert diagnosis.probable_cause is None
    slowdowns = labs.diagnosis(RUNBOOK, profile, monkeypatch).check("TH-4")
    expected = ("prometheus",) if profile == "runbook" else ("cloudwatch", "kubernetes:logs")
    assert slowdowns is not None
    assert slowdowns.sources == expected


@pytest.mark.parametrize("profile", PROFILES)
def test_burst_offers_waiting_not_scaling(
    labs: BothProfiles, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`burst`: not ok, cause burst, a spike on the chart; wait allowed, scale-out refused."""
    labs.switch("s3-throttling", "burst")
    diagnosis = labs.diagnosis(RUNBOOK, profile, monkeypatch)
    json.dumps(diagnosis.to_json())  # evidence, the chart included, must be JSON-able
    assert diagnosis.status in (Status.WARNING, Status.CRITICAL)
    assert diagnosis.probable_cause == "burst"
    assert diagnosis.check("TH-5").evidence["shape"] == "spike"  # type: ignore[union-attr]
    actions = {a.id: a for a in diagnosis.actions}
    assert actions["TH-A1"].allowed
    assert not actions["TH-A3"].allowed


@pytest.mark.parametrize("profile", PROFILES)
def test_sustained_overload_offers_scaling_out(
    labs: BothProfiles, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sustained`: cause sustained overload, a plateau at the limit; scale-out allowed."""
    labs.switch("s3-throttling", "sustained")
    diagnosis = labs.diagnosis(RUNBOOK, profile, monkeypatch)
    assert diagnosis.probable_cause == "sustained overload"
    assert diagnosis.check("TH-5").evidence["shape"] == "plateau"  # type: ignore[union-attr]
    actions = {a.id: a for a in diagnosis.actions}
    assert actions["TH-A3"].allowed
    assert not actions["TH-A1"].allowed
