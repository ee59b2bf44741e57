"""resource-pressure: usage against limits, disk, the leak trend, and the guard rails.

Pure logic first, on small hand-made inputs; then the runbook against the lab in both
profiles (one lab per profile at a time, one switch per scenario).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.models import CheckResult, Diagnosis, Status
from bot.profiles import RUNBOOK as RUNBOOK_PROFILE
from bot.sources.base import PodInfo, Sources
from bot.store import EmbeddedPostgres
from handlers.base import CheckContext
from handlers.resource_model import (
    MEMORY_LIMIT_CEILING_BYTES,
    disk_verdict,
    is_leak,
    pod_pressure,
    proposed_memory_limit,
    relative_change,
)
from handlers.resource_pressure import (
    MAX_AGENT_REPLICAS,
    RUNBOOK,
    delete_uploaded_guard,
    grow_claim_guard,
    raise_memory_guard,
    scale_guard,
)
from handlers.sizes import GIB
from lab.world import Profile
from tests.handlers.test_wal_recovery import ScenarioLab, start_lab

PROFILES: tuple[Profile, ...] = ("runbook", "upstream")
CTX = CheckContext(Sources(), RUNBOOK_PROFILE)
NOW = datetime(2026, 3, 24, 12, 0, tzinfo=UTC)


def result(
    check_id: str, status: Status, cause: str | None = None, **evidence: object
) -> CheckResult:
    """A hand-made check result."""
    return CheckResult(check_id, check_id, status, "", evidence, cause=cause)


def pod(**changes: object) -> PodInfo:
    """An agent pod with a 4 GiB / 2 CPU limit, running, never restarted."""
    base: dict[str, object] = {
        "name": "agent-0",
        "node": "node-a",
        "phase": "Running",
        "ready": True,
        "restart_count": 0,
        "waiting_reason": None,
        "last_terminated_reason": None,
        "last_terminated_at": None,
        "started_at": NOW - timedelta(days=1),
        "labels": {},
        "owner_kind": "Deployment",
        "owner_name": "streamhouse-agent",
        "env": {},
        "memory_limit_bytes": 4 * GIB,
        "memory_request_bytes": 2 * GIB,
        "cpu_limit_cores": 2.0,
        "cpu_request_cores": 1.0,
    }
    return PodInfo(**{**base, **changes})  # type: ignore[arg-type]


# -- pure logic -----------------------------------------------------------------------------
def test_oom_kills_and_high_memory_are_critical_cpu_a_warning() -> None:
    """OOMKilled within the hour or >= 85 % of the limit is critical; > 3 cores a warning."""
    killed = pod(last_terminated_reason="OOMKilled", last_terminated_at=NOW - timedelta(minutes=2))
    assert pod_pressure(killed, 1 * GIB, 0.5, NOW)[0] is Status.CRITICAL
    assert pod_pressure(pod(), int(3.5 * GIB), 0.5, NOW)[0] is Status.CRITICAL
    assert pod_pressure(pod(), 1 * GIB, 3.5, NOW)[0] is Status.WARNING
    assert pod_pressure(pod(), 1 * GIB, 0.5, NOW) == (Status.OK, "agent-0: memory 25% of 4.0 GiB")
    assert pod_pressure(pod(), None, None, NOW)[0] is Status.UNKNOWN
    old_kill = pod(last_terminated_reason="OOMKilled", last_terminated_at=NOW - timedelta(days=1))
    assert pod_pressure(old_kill, 1 * GIB, 0.5, NOW)[0] is Status.OK


def test_disk_verdicts_use_the_volume_and_the_wal_size() -> None:
    """> 90 % used or > 10 GiB of WAL is critical; an unseen WAL is bounded by the volume."""
    assert disk_verdict((48 * GIB, 50 * GIB), None)[0] is Status.CRITICAL
    assert disk_verdict((20 * GIB, 50 * GIB), 12 * GIB)[0] is Status.CRITICAL
    assert disk_verdict((5 * GIB, 50 * GIB), None) == (
        Status.OK,
        "volume 10% used of 50.0 GiB, WAL ≤ 5.0 GiB",
    )
    assert disk_verdict((20 * GIB, 50 * GIB), None)[0] is Status.UNKNOWN
    assert disk_verdict("kubelet unreachable", None)[0] is Status.UNKNOWN


def test_trend_ignores_a_partial_first_rate_point() -> None:
    """Quarter medians: a low first point does not read as growing load."""
    flat = [(i * 300.0, 1.5) for i in range(37)]
    flat[0] = (0.0, 0.08)
    assert relative_change(flat) == 0.0
    rising = [(i * 300.0, 1.0 + i / 36) for i in range(37)]
    assert (relative_change(rising) or 0) > 0.5
    assert relative_change(flat[:6]) is None  # under an hour of history


def test_a_leak_is_rising_memory_on_flat_load() -> None:
    """Memory +20 % with load within 10 % is a leak; memory that follows load is not."""
    assert is_leak(1.0, 0.0)
    assert is_leak(0.5, None)
    assert not is_leak(0.5, 0.6)
    assert not is_leak(0.05, 0.0)


def test_memory_limit_doubles_up_to_the_ceiling() -> None:
    """RP-A1 proposes 2x the current limit, never above the ceiling, and needs pressure."""
    assert proposed_memory_limit(4 * GIB) == 8 * GIB
    assert proposed_memory_limit(12 * GIB) == MEMORY_LIMIT_CEILING_BYTES
    limits = result("RP-3", Status.OK, memory_limit_bytes=4 * GIB)
    oom = {"RP-1": result("RP-1", Status.CRITICAL, "oom"), "RP-3": limits}
    assert raise_memory_guard(oom, CTX) == (True, "memory limit 4.0 GiB -> 8.0 GiB")
    calm = {"RP-1": result("RP-1", Status.OK), "RP-3": limits}
    assert not raise_memory_guard(calm, CTX)[0]
    at_ceiling = result("RP-3", Status.OK, memory_limit_bytes=MEMORY_LIMIT_CEILING_BYTES)
    allowed, reason = raise_memory_guard({**oom, "RP-3": at_ceiling}, CTX)
    assert not allowed
    assert "ceiling" in (reason or "")


def test_scaling_stops_at_the_configured_maximum() -> None:
    """RP-A2 adds one agent while that stays within ``MAX_AGENT_REPLICAS``."""
    assert scale_guard({"RP-3": result("RP-3", Status.OK, replicas=3)}, CTX)[0]
    full = {"RP-3": result("RP-3", Status.OK, replicas=MAX_AGENT_REPLICAS)}
    assert not scale_guard(full, CTX)[0]


def test_claims_grow_only_when_full_and_expandable() -> None:
    """RP-A3 needs a full disk and a StorageClass that allows expansion."""
    claim = {"phase": "Bound", "storage_class": "gp3", "expandable": True}
    full = result("RP-2", Status.CRITICAL, "disk-full", claims={"streamhouse-wal": claim})
    assert grow_claim_guard({"RP-2": full}, CTX) == (True, None)
    rigid = result(
        "RP-2",
        Status.CRITICAL,
        "disk-full",
        claims={"streamhouse-wal": {**claim, "expandable": False}},
    )
    allowed, reason = grow_claim_guard({"RP-2": rigid}, CTX)
    assert not allowed
    assert "StorageClass" in (reason or "")
    assert not grow_claim_guard({"RP-2": result("RP-2", Status.OK, claims={})}, CTX)[0]


def test_only_wal_files_proven_in_s3_may_be_deleted() -> None:
    """RP-A4: blocked without visible *.old files or without proof; names the proven ones."""
    assert not delete_uploaded_guard({"RP-2": result("RP-2", Status.OK, old_wal_files=[])}, CTX)[0]
    unproven = [{"pod": "agent-0", "file": "orders-0.wal.old", "in_s3": False}]
    assert not delete_uploaded_guard(
        {"RP-2": result("RP-2", Status.OK, old_wal_files=unproven)}, CTX
    )[0]
    proven = [*unproven, {"pod": "agent-1", "file": "orders-1.wal.old", "in_s3": True}]
    allowed, reason = delete_uploaded_guard(
        {"RP-2": result("RP-2", Status.OK, old_wal_files=proven)}, CTX
    )
    assert allowed
    assert reason == "delete only agent-1:orders-1.wal.old"


# -- against the lab ------------------------------------------------------------------------
@pytest.fixture(scope="module", params=PROFILES)
def lab(request: pytest.FixtureRequest, pg_server: EmbeddedPostgres) -> Iterator[ScenarioLab]:
    """A lab of each profile for this module."""
    yield from start_lab(request.param, pg_server)


def checks(diagnosis: Diagnosis) -> dict[str, CheckResult]:
    """The diagnosis' checks by id."""
    return {check.id: check for check in diagnosis.checks}


def allowed(diagnosis: Diagnosis) -> dict[str, bool]:
    """Each action's verdict."""
    return {action.id: action.allowed for action in diagnosis.actions}


def test_healthy_agents_are_all_ok(lab: ScenarioLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Healthy (1 GiB of a 4 GiB limit, 10 % disk, flat memory): every check ok."""
    lab.on("healthy")
    diagnosis = lab.diagnose(monkeypatch, RUNBOOK)
    assert [(c.id, c.summary) for c in diagnosis.checks if c.status is not Status.OK] == []
    assert allowed(diagnosis)["RP-A1"] is False


def test_oom_is_critical_with_a_leak_trend_and_allows_more_memory(
    lab: ScenarioLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oom: OOMKilled at 97 % of the limit, memory rising on flat load, RP-A1 allowed."""
    lab.on("oom")
    diagnosis = lab.diagnose(monkeypatch, RUNBOOK)
    found = checks(diagnosis)
    assert diagnosis.status is Status.CRITICAL
    assert found["RP-1"].status is Status.CRITICAL
    assert "OOMKilled" in found["RP-1"].summary
    for reading in found["RP-1"].evidence["pods"].values():
        assert reading["memory_bytes"] >= 0.85 * reading["memory_limit_bytes"]
    assert found["RP-5"].status in (Status.WARNING, Status.CRITICAL)
    assert "leak trend" in found["RP-5"].summary
    assert diagnosis.probable_cause == "oom"
    assert allowed(diagnosis)["RP-A1"] is True


def test_full_disk_is_critical_and_the_claim_may_grow(
    lab: ScenarioLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """disk-full: RP-2 critical (96 % used); RP-A3 allowed only while the class expands."""
    lab.on("disk-full", metrics=False)
    diagnosis = lab.diagnose(monkeypatch, RUNBOOK)
    disk = checks(diagnosis)["RP-2"]
    assert disk.status is Status.CRITICAL
    assert disk.cause == "disk-full"
    assert allowed(diagnosis)["RP-A3"] is True
    lab.lab.world.storage_class_expandable = False
    try:
        rigid = next(a for a in lab.diagnose(monkeypatch, RUNBOOK).actions if a.id == "RP-A3")
    finally:
        lab.lab.world.storage_class_expandable = True
    assert not rigid.allowed
    assert "StorageClass" in (rigid.blocked_reason or "")


def test_without_streamhouse_metrics_the_breakdown_is_unknown(
    lab: ScenarioLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """no-metrics: RP-4 has no data (unknown); RP-5 still reads cAdvisor and says so."""
    if lab.lab.profile != "upstream":
        pytest.skip("upstream is where the metrics are missing today; one profile suffices")
    lab.on("no-metrics")
    diagnosis = lab.diagnose(monkeypatch, RUNBOOK)
    found = checks(diagnosis)
    assert found["RP-4"].status is Status.UNKNOWN
    assert found["RP-5"].sources == ("prometheus:cadvisor",)
    assert diagnosis.status is not Status.OK
