"""circuit-breaker: the breaker's age and cause, S3 health, and the reset guard rails.

Pure logic first, on small hand-made inputs; then the runbook against the lab in both
profiles (one lab per profile, switched together, one switch per scenario).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime

import pytest

from bot.models import CheckResult, Diagnosis, Status
from bot.profiles import RUNBOOK as RUNBOOK_PROFILE
from bot.sources.base import Sources
from bot.store import EmbeddedPostgres
from handlers.base import CheckContext, Runbook
from handlers.breaker_state import BreakerReading, open_for, open_in_logs
from handlers.circuit_breaker import (
    RUNBOOK,
    breaker_verdict,
    five_xx_trend,
    guard_manual_reset,
    guard_throttle_fix,
    s3_error_verdict,
)
from handlers.logs import PodLogs
from handlers.s3_error_causes import cause_of_line
from lab.stack import Lab
from tests.handlers import diagnose
from tests.lab.test_prometheus import require

PROFILES = ("runbook", "upstream")
CTX = CheckContext(Sources(), RUNBOOK_PROFILE)


def result(check_id: str, status: Status, **evidence: object) -> CheckResult:
    """A hand-made check result."""
    return CheckResult(check_id, check_id, status, "", evidence)


# -- pure logic -----------------------------------------------------------------------------
def test_open_for_counts_back_to_the_start_of_the_trailing_open_run() -> None:
    """The breaker's age starts at the first point of the run that is still open."""
    points = ((0.0, 1.0), (30.0, 0.0), (60.0, 1.0), (90.0, 2.0), (120.0, 1.0))
    assert open_for(points, now_s=150.0) == 90.0
    assert open_for(((0.0, 1.0), (30.0, 0.0)), now_s=60.0) is None


def test_more_than_five_transitions_an_hour_is_flapping() -> None:
    """A closed breaker that changed state 8 times in an hour is a warning."""
    readings = [BreakerReading("agent-0", "put", 0, None, 8.0)]
    status, summary = breaker_verdict(readings)
    assert status is Status.WARNING
    assert "flapping" in summary


@pytest.mark.parametrize(
    ("line", "cause"),
    [
        ("WARN S3 error: 503 SlowDown: Please reduce your request rate", "throttling"),
        (
            "WARN S3 upload failed, retrying key=org-1/data/orders/0/1.seg attempt=2 "
            'error="Generic S3 error" is_throttle_error=true',
            "throttling",
        ),
        ("WARN S3 error: 403 AccessDenied: Access Denied", "credentials"),
        ('S3 upload failed error="ExpiredToken" is_throttle_error=false', "credentials"),
        ("S3 error: NoSuchBucket: The specified bucket does not exist", "bucket-config"),
        ("S3 upload failed: Connection refused (os error 111)", "network"),
        ("S3 upload failed: something odd", "other"),
        ("S3 upload failed, retrying key=org-1/data/orders/403/1.seg error=odd", "other"),
    ],
)
def test_log_lines_name_their_cause_in_both_wordings(line: str, cause: str) -> None:
    """Runbook and upstream S3 error lines are classified by what they say."""
    assert cause_of_line(line) == cause


def test_typed_error_metrics_outrank_log_lines() -> None:
    """Runbook profile: error_type="AccessDenied" names the cause even if logs are silent."""
    status, _, cause = s3_error_verdict({"503": 0.0, "AccessDenied": 25.0}, [])
    assert (status, cause) == (Status.CRITICAL, "credentials")


def test_no_error_series_and_no_logged_errors_is_unknown() -> None:
    """Without the error metric, a quiet log proves nothing: unknown, not ok."""
    status, summary, cause = s3_error_verdict(None, [])
    assert status is Status.UNKNOWN
    assert cause is None
    assert "no data" in summary


def test_errors_that_stopped_are_a_warning_with_their_cause() -> None:
    """No errors now, but the ones logged when the breaker opened still name the cause."""
    status, _, cause = s3_error_verdict({"retry": 0.0}, ["S3 upload failed ... SlowDown"])
    assert (status, cause) == (Status.WARNING, "throttling")


def test_rising_cloudwatch_5xx_are_told_apart_from_old_ones() -> None:
    """5xx growing in the last 15 minutes are rising; an old burst is not."""
    assert five_xx_trend([0.0] * 45 + [5.0] * 15) == (75.0, True)
    assert five_xx_trend([0.0] * 30 + [5.0] * 15 + [0.0] * 15) == (75.0, False)


def test_latest_breaker_line_decides_when_the_metric_is_missing() -> None:
    """A pod whose last breaker line says closed is not reported open."""
    logs = PodLogs(
        {
            "agent-0": ["ERROR S3 circuit breaker open - rejecting request"],
            "agent-1": ["ERROR S3 circuit breaker open", "S3 circuit breaker closed"],
            "agent-2": ["INFO Circuit state transitioned: Closed -> Open"],
        }
    )
    assert open_in_logs(logs) == ["agent-0", "agent-2"]


def test_log_evidence_is_the_newest_lines_tagged_with_their_pod_and_cut() -> None:
    """Evidence keeps the newest matching lines, prefixed with the pod, cut to 200 chars."""
    logs = PodLogs({"agent-0": ["S3 error: one", "noise", "S3 error: two " + "x" * 300]})
    (line,) = logs.evidence("s3 error", limit=1)
    assert line.startswith("agent-0: S3 error: two")
    assert line.endswith("…")
    assert len(line) == len("agent-0: ") + 200


@pytest.mark.parametrize(
    ("age_s", "s3", "allowed", "reason"),
    [
        (60, Status.OK, False, "first 2 min"),
        (600, Status.CRITICAL, False, "S3 is not healthy"),
        (200, Status.OK, False, "wait until it has been open 5 min"),
        (600, Status.OK, True, None),
    ],
)
def test_manual_reset_needs_healthy_s3_and_five_minutes_open(
    age_s: int, s3: Status, allowed: bool, reason: str | None
) -> None:
    """CB-A2: refused in the first 2 min, while S3 fails, and before 5 min open."""
    results = {
        "CB-1": result("CB-1", Status.CRITICAL, newest_open_s=age_s),
        "CB-3": result("CB-3", s3),
    }
    ok, why = guard_manual_reset(results, CTX)
    assert ok is allowed
    assert (why is None) if reason is None else (reason in (why or ""))


def test_throttle_fix_only_for_throttling() -> None:
    """CB-A3 is refused when CB-2 found credential errors."""
    errors = CheckResult("CB-2", "", Status.CRITICAL, "", cause="credentials")
    allowed, why = guard_throttle_fix({"CB-2": errors}, CTX)
    assert not allowed
    assert "credentials" in (why or "")


# -- against the lab ------------------------------------------------------------------------
class BothProfiles:
    """One lab per profile, moved between scenarios together; diagnoses kept per scenario."""

    def __init__(self, labs: dict[str, Lab], scenario: str) -> None:
        self.labs = labs
        self.scenario = scenario
        self._diagnoses: dict[tuple[str, str, str], Diagnosis] = {}

    def switch(self, scenario: str, variant: str | None = None) -> None:
        """Both labs to ``scenario`` at once (each switch mostly waits on Prometheus)."""
        name = f"{scenario}/{variant}" if variant else scenario
        if name != self.scenario:
            with ThreadPoolExecutor(len(self.labs)) as pool:
                list(pool.map(lambda lab: lab.switch(scenario, variant), self.labs.values()))
            self.scenario = name

    def diagnosis(
        self, runbook: Runbook, profile: str, monkeypatch: pytest.MonkeyPatch
    ) -> Diagnosis:
        """``runbook`` diagnosed in ``profile``'s lab on the current scenario (once)."""
        key = (self.scenario, profile, runbook.id)
        if key not in self._diagnoses:
            self._diagnoses[key] = diagnose(self.labs[profile], monkeypatch, runbook)
        return self._diagnoses[key]


@contextmanager
def one_moto(labs: Mapping[str, Lab]) -> Iterator[None]:
    """Share moto between labs of one process.

    moto's state is process-wide: a lab's switch resets all of it (the other lab's bucket
    and CloudWatch data too), and a lab started later inherits what earlier labs left.
    While this is active, every re-seed resets moto once and seeds every lab's world, one
    at a time; on entry it clears what earlier labs left, on exit it leaves moto empty.
    """
    originals = {name: (lab.aws.reset, lab.aws.seed) for name, lab in labs.items()}
    reset_moto = next(iter(originals.values()))[0]
    lock = threading.Lock()

    def reseed_all(_uploads: Mapping[tuple[str, int], datetime] | None = None) -> None:
        with lock:
            reset_moto()
            for name, lab in labs.items():
                originals[name][1](lab.world.last_uploads)

    with pytest.MonkeyPatch.context() as patch:
        for lab in labs.values():
            patch.setattr(lab.aws, "reset", lambda: None)
            patch.setattr(lab.aws, "seed", reseed_all)
        reseed_all()
        try:
            yield
        finally:
            reset_moto()


def start_both(
    pg_server: EmbeddedPostgres, scenario: str, variant: str | None = None
) -> Iterator[BothProfiles]:
    """A lab per profile on ``scenario`` (skips without Prometheus), stopped afterwards."""
    require("prometheus")
    labs: dict[str, Lab] = {}
    try:
        for profile in PROFILES:  # one at a time: both create databases from template1
            labs[profile] = Lab(profile, admin_url=pg_server.url())  # type: ignore[arg-type]
            labs[profile].start(scenario, variant)
        with one_moto(labs):
            yield BothProfiles(labs, f"{scenario}/{variant}" if variant else scenario)
    finally:
        for lab in labs.values():
            lab.stop()


@pytest.fixture(scope="module")
def labs(pg_server: EmbeddedPostgres) -> Iterator[BothProfiles]:
    """Both profiles' labs for this module, starting where the first test needs them."""
    yield from start_both(pg_server, "circuit-breaker-open", "throttling-10m")


def on(
    labs: BothProfiles, profile: str, monkeypatch: pytest.MonkeyPatch, variant: str
) -> Diagnosis:
    """The circuit-breaker diagnosis on ``circuit-breaker-open/<variant>``."""
    labs.switch("circuit-breaker-open", variant)
    return labs.diagnosis(RUNBOOK, profile, monkeypatch)


def actions(diagnosis: Diagnosis) -> dict[str, tuple[bool, str | None]]:
    """Each action's (allowed, blocked reason)."""
    return {a.id: (a.allowed, a.blocked_reason) for a in diagnosis.actions}


@pytest.mark.parametrize("profile", PROFILES)
def test_throttling_opened_breaker_blocks_reset_and_offers_throttle_fix(
    labs: BothProfiles, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`throttling-10m`: critical, cause throttling, no reset while S3 fails, fix allowed."""
    diagnosis = on(labs, profile, monkeypatch, "throttling-10m")
    json.dumps(diagnosis.to_json())  # evidence must be JSON-able
    assert diagnosis.status is Status.CRITICAL
    assert diagnosis.probable_cause == "throttling"
    assert diagnosis.check("CB-3").status is Status.CRITICAL  # type: ignore[union-attr]
    allowed = actions(diagnosis)
    assert allowed["CB-A2"][0] is False
    assert "S3 is not healthy" in (allowed["CB-A2"][1] or "")
    assert allowed["CB-A3"] == (True, None)
    assert allowed["CB-A1"] == (True, None)


@pytest.mark.parametrize("profile", PROFILES)
def test_credential_errors_are_not_fixed_by_throttling(
    labs: BothProfiles, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`credentials-10m`: cause credentials, and the throttle fix is refused."""
    diagnosis = on(labs, profile, monkeypatch, "credentials-10m")
    assert diagnosis.probable_cause == "credentials"
    allowed, reason = actions(diagnosis)["CB-A3"]
    assert not allowed
    assert "credentials" in (reason or "")


@pytest.mark.parametrize("profile", PROFILES)
def test_recovered_s3_allows_the_manual_reset(
    labs: BothProfiles, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`recovered-10m`: S3 is healthy again, the breaker is still open: reset allowed."""
    diagnosis = on(labs, profile, monkeypatch, "recovered-10m")
    assert diagnosis.check("CB-1").status is Status.CRITICAL  # type: ignore[union-attr]
    assert diagnosis.check("CB-3").status is Status.OK  # type: ignore[union-attr]
    assert actions(diagnosis)["CB-A2"] == (True, None)


@pytest.mark.parametrize("profile", PROFILES)
def test_freshly_opened_breaker_refuses_reset(
    labs: BothProfiles, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`throttling-1m`: the reset is refused because the breaker opened a minute ago."""
    diagnosis = on(labs, profile, monkeypatch, "throttling-1m")
    allowed, reason = actions(diagnosis)["CB-A2"]
    assert not allowed
    assert "first 2 min after opening" in (reason or "")
