"""The lease-conflicts runbook: lease liveness, log and skew classification, guard rails,
and the verdicts of the lab's lease scenarios in both profiles."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.models import CheckResult, Status
from bot.profiles import profile_named
from bot.sources.base import AgentRow, LeaseRow, PodInfo, Sample, Series, Sources
from bot.store import EmbeddedPostgres
from handlers import clock_skew, lease_model
from handlers import lease_conflicts as lc
from handlers.base import CheckContext, Target
from lab.stack import Lab
from tests.handlers import diagnose, running_lab

NOW_MS = 1_800_000_000_000
NOT_OK = (Status.WARNING, Status.CRITICAL)


def pod(
    name: str = "streamhouse-agent-0",
    *,
    phase: str = "Running",
    waiting: str | None = None,
    owner: tuple[str, str] | None = ("StatefulSet", "streamhouse-agent"),
    node: str | None = "node-a",
) -> PodInfo:
    """An agent pod as the Kubernetes source describes it."""
    return PodInfo(
        name=name, node=node, phase=phase, ready=phase == "Running", restart_count=0,
        waiting_reason=waiting, last_terminated_reason=None, last_terminated_at=None,
        started_at=None, labels={}, owner_kind=owner[0] if owner else None,
        owner_name=owner[1] if owner else None, env={}, memory_limit_bytes=None,
        memory_request_bytes=None, cpu_limit_cores=None, cpu_request_cores=None,
    )  # fmt: skip


def lease(
    holder: str, *, expires_in_s: float, topic: str = "orders", partition: int = 1
) -> LeaseRow:
    """A lease row expiring ``expires_in_s`` after ``NOW_MS`` (negative: already expired)."""
    return LeaseRow(topic, partition, holder, 42, NOW_MS + int(expires_in_s * 1000), NOW_MS)


def result(check_id: str, status: Status, **evidence: Any) -> CheckResult:
    """A hand-made check result for the guard rails."""
    return CheckResult(check_id, check_id, status, "", evidence)


def context(target: Target | None = None, profile: str = "upstream") -> CheckContext:
    """A context for guards (they read only the target and the profile)."""
    return CheckContext(Sources(), profile_named(profile), target or Target())


# -- LC-1 -----------------------------------------------------------------------------------
def test_holder_is_matched_to_its_pod_by_the_default_agent_id() -> None:
    """Upstream's AGENT_ID default is agent-<hostname>: the holder maps to that running pod."""
    holders = lease_model.find_holders({"agent-streamhouse-agent-0"}, [pod()], None, NOW_MS)
    assert holders["agent-streamhouse-agent-0"].pod == "streamhouse-agent-0"
    assert holders["agent-streamhouse-agent-0"].alive


@pytest.mark.parametrize(
    "holder_pod",
    [pod(phase="Failed"), pod(waiting="CrashLoopBackOff"), pod(name="streamhouse-agent-9")],
)
def test_holder_without_a_running_pod_is_dead(holder_pod: PodInfo) -> None:
    """A failed, crash-looping or missing pod makes the holder dead."""
    holders = lease_model.find_holders({"agent-streamhouse-agent-0"}, [holder_pod], None, NOW_MS)
    assert not holders["agent-streamhouse-agent-0"].alive


def test_stale_heartbeat_makes_a_running_holder_dead() -> None:
    """Upstream: a heartbeat older than 60 s (or no agents row) means the holder is dead."""
    stale = [AgentRow("agent-streamhouse-agent-0", "x:9090", NOW_MS - 120_000)]
    fresh = [AgentRow("agent-streamhouse-agent-0", "x:9090", NOW_MS - 5_000)]
    holder = "agent-streamhouse-agent-0"
    assert not lease_model.find_holders({holder}, [pod()], stale, NOW_MS)[holder].alive
    assert not lease_model.find_holders({holder}, [pod()], [], NOW_MS)[holder].alive
    assert lease_model.find_holders({holder}, [pod()], fresh, NOW_MS)[holder].alive


@pytest.mark.parametrize(
    ("expires_in_s", "alive", "expected"),
    [
        (120, True, Status.OK),
        (120, False, Status.CRITICAL),
        (-5, True, Status.WARNING),
        (-10, False, Status.WARNING),
        (-90, False, Status.CRITICAL),
    ],
)
def test_lease_verdict_follows_expiry_and_holder_liveness(
    expires_in_s: float, alive: bool, expected: Status
) -> None:
    """Live holder ok; dead holder blocking critical; expired and unclaimed critical after 30 s."""
    holder = lease_model.Holder("streamhouse-agent-0" if alive else None, alive, None)
    status, why = lease_model.judge_lease(
        lease("agent-x", expires_in_s=expires_in_s), holder, NOW_MS
    )
    assert status is expected, why


# -- LC-2 -----------------------------------------------------------------------------------
def test_conflict_lines_match_both_wordings() -> None:
    """The runbook's "Already held by" and upstream's "already leased" both count as conflicts."""
    found = lease_model.scan_lease_lines(
        [
            "ERROR Failed to acquire lease for orders-1: Already held by agent-a",
            "WARN Failed to acquire partition (may be held by another agent) error=Metadata "
            "error: Conflict: Partition orders/1 is already leased to another agent",
            "WARN Lease renewal failed: Stale epoch (current: 42, attempted: 41)",
            "ERROR Lease renewal failed and lease expired — evicting from cache",
            "INFO Acquired lease for partition orders-1, epoch: 43",
            "INFO Acquired partition lease topic=payments partition=2 epoch=7",
            "INFO No active leases to renew",
        ]
    )
    assert len(found.conflicts) == 3
    assert len(found.lost) == 1
    assert found.acquired == [("orders", 1), ("payments", 2)]


def test_one_failover_is_not_flipping_but_repeated_takeovers_are() -> None:
    """A single handover is normal; three acquisitions by two agents is a flipping holder."""
    failover = {"agent-a": [("orders", 1)], "agent-b": [("orders", 1)]}
    fight = {"agent-a": [("orders", 1), ("orders", 1)], "agent-b": [("orders", 1)]}
    assert lease_model.flipping_partitions(failover) == {}
    assert lease_model.flipping_partitions(fight) == {"orders/1": ["agent-a", "agent-b"]}


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        (("StatefulSet", "streamhouse-agent"), True),
        (("ReplicaSet", "streamhouse-agent-5d8f9c7b6"), True),
        (("ReplicaSet", "consumer-app-5d8f9c7b6"), False),
        (None, False),
    ],
)
def test_pod_belongs_to_the_agent_workload_only_through_its_owner(
    owner: tuple[str, str] | None, expected: bool
) -> None:
    """StatefulSet pods and the Deployment's ReplicaSet pods are agents; others are not."""
    assert lease_model.belongs_to_workload(pod(owner=owner), "streamhouse-agent") is expected


# -- LC-3 and LC-4 --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("offsets", "expected"),
    [({"a": 0.1, "b": -0.5}, Status.OK), ({"a": 0.0, "b": 2.5}, Status.WARNING),
     ({"a": -1.0, "b": 0.0, "c": 7.5}, Status.CRITICAL)],
)  # fmt: skip
def test_clock_spread_thresholds(offsets: dict[str, float], expected: Status) -> None:
    """A spread over 2 s is a warning, over 5 s critical."""
    assert clock_skew.judge_skew(offsets)[0] is expected


def test_node_is_read_from_the_node_label_or_the_instance_host() -> None:
    """node-exporter series name their node by label, or by the instance's host."""
    assert clock_skew.node_of({"node": "node-a", "instance": "10.0.0.1:9100"}) == "node-a"
    assert clock_skew.node_of({"instance": "node-b:9100"}) == "node-b"


@pytest.mark.parametrize(
    ("ratio", "conflicts", "expected"),
    [(0.99, 0.0, Status.OK), (0.99, 0.5, Status.WARNING), (0.90, None, Status.WARNING),
     (0.75, 0.0, Status.CRITICAL)],
)  # fmt: skip
def test_renewal_thresholds(ratio: float, conflicts: float | None, expected: Status) -> None:
    """Below 95 % a warning, below 80 % critical; a conflict rate over 0.01/s warns too."""
    assert lease_model.judge_renewals(ratio, conflicts) is expected


class EmptyPrometheus:
    """Prometheus where Streamhouse registers its families but never sets them (upstream)."""

    async def instant(self, query: str) -> list[Sample]:
        """No series for any query."""
        return []

    async def range(
        self, query: str, *, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        """No series for any query."""
        return []


async def test_renewals_without_series_are_unknown_not_ok() -> None:
    """No lease_renewals_total series means "not instrumented": LC-4 is unknown."""
    ctx = CheckContext(Sources(prometheus=EmptyPrometheus()), profile_named("upstream"))
    outcome = await lc.check_renewals.run(ctx)
    assert outcome.status is Status.UNKNOWN
    assert "streamhouse_lease_renewals_total" in outcome.summary


# -- guard rails and cause ------------------------------------------------------------------
DEAD = {"topic": "orders", "partition": 2, "holder": "agent-streamhouse-agent-2", "epoch": 42}


def test_lease_reset_is_allowed_only_for_a_dead_holder_of_the_target() -> None:
    """LC-A1 needs LC-1's dead holder, and for a given target the dead holder must be its."""
    lc1 = {"LC-1": result("LC-1", Status.CRITICAL, reset_candidates=[DEAD], leases=[], total=8)}
    assert lc.guard_lease_reset(lc1, context()) == (True, None)
    other = context(Target(topic="orders", partition=1))
    assert not lc.guard_lease_reset(lc1, other)[0]
    unknown = {"LC-1": result("LC-1", Status.UNKNOWN)}
    allowed, reason = lc.guard_lease_reset(unknown, context())
    assert not allowed
    assert "LC-1" in (reason or "")


def test_agent_restart_refuses_a_pod_outside_the_agent_workload() -> None:
    """LC-A2 restarts only pods of the agent workload, and only when one reports conflicts."""
    pods = [
        {"pod": "streamhouse-agent-1", "agent_id": "agent-streamhouse-agent-1",
         "in_workload": True, "conflicts": 3, "lost_leases": 0},
        {"pod": "debug-shell", "agent_id": "agent-debug-shell",
         "in_workload": False, "conflicts": 0, "lost_leases": 0},
    ]  # fmt: skip
    lc2 = {"LC-2": result("LC-2", Status.CRITICAL, pods=pods)}
    assert lc.guard_agent_restart(lc2, context())[0]
    assert not lc.guard_agent_restart(lc2, context(Target(agent="debug-shell")))[0]
    quiet = {"LC-2": result("LC-2", Status.OK, pods=[{**pods[0], "conflicts": 0}])}
    assert not lc.guard_agent_restart(quiet, context())[0]


def test_scale_to_one_needs_the_replica_count_to_restore() -> None:
    """LC-A3 records N: without a known replica count there is nothing to scale back to."""
    failing = {"LC-2": result("LC-2", Status.CRITICAL, agent_replicas=None)}
    allowed, reason = lc.guard_scale_to_one(failing, context())
    assert not allowed
    assert "N" in (reason or "")
    known = {"LC-2": result("LC-2", Status.CRITICAL, agent_replicas=3)}
    assert lc.guard_scale_to_one(known, context())[0]


def test_probable_cause_prefers_the_dead_holder_and_skew_over_their_symptoms() -> None:
    """Conflicts and failed renewals follow from a dead holder or skewed clocks."""
    results = {
        "LC-1": CheckResult("LC-1", "", Status.CRITICAL, "", cause="dead-holder"),
        "LC-2": CheckResult("LC-2", "", Status.CRITICAL, "", cause="lease-conflicts"),
        "LC-3": CheckResult("LC-3", "", Status.CRITICAL, "", cause="clock-skew"),
    }
    assert lc.probable_cause(results) == "dead-holder"
    results["LC-1"] = CheckResult("LC-1", "", Status.OK, "")
    assert lc.probable_cause(results) == "clock-skew"


# -- against the lab ------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["runbook", "upstream"])
def lab(request: pytest.FixtureRequest, pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One running lab per profile, shared by the module."""
    yield from running_lab(request.param, pg_server)


def test_healthy_lab_passes_every_check(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """`healthy`: every lease held by a live agent, no conflicts, no skew, all checks ok."""
    diagnosis = diagnose(lab, monkeypatch, lc.RUNBOOK)
    assert [(c.id, c.status) for c in diagnosis.checks if c.status is not Status.OK] == []
    assert not next(a for a in diagnosis.actions if a.id == "LC-A1").allowed


def test_dead_holder_is_critical_and_allows_the_guarded_reset(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dead-holder`: LC-1 critical; LC-A1 allowed, with the holder and epoch to guard on."""
    lab.switch("lease-conflict", "dead-holder", metrics=False)
    diagnosis = diagnose(lab, monkeypatch, lc.RUNBOOK)
    assert diagnosis.status is Status.CRITICAL
    lc1 = diagnosis.check("LC-1")
    assert lc1 is not None
    assert lc1.status is Status.CRITICAL
    dead = lab.world.agents[2].agent_id
    candidates = lc1.evidence["reset_candidates"]
    assert candidates
    assert {c["holder"] for c in candidates} == {dead}
    seeded = {(x.topic, x.partition): x.epoch for x in lab.world.leases}
    assert all(c["epoch"] == seeded[(c["topic"], c["partition"])] for c in candidates)
    assert next(a for a in diagnosis.actions if a.id == "LC-A1").allowed
    assert diagnosis.probable_cause == "dead-holder"


def test_fighting_agents_show_conflicts_and_block_the_reset(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fighting`: LC-2 finds conflicts and the flipping holder; LC-A1 is blocked (holder alive)."""
    lab.switch("lease-conflict", "fighting", metrics=False)
    for _ in range(3):
        lab.tick()  # three rounds of the fight
    diagnosis = diagnose(lab, monkeypatch, lc.RUNBOOK, target=Target(topic="orders", partition=1))
    assert diagnosis.status in NOT_OK
    lc2 = diagnosis.check("LC-2")
    assert lc2 is not None
    assert lc2.status is Status.CRITICAL
    assert lc2.evidence["lines"]
    assert "orders/1" in lc2.evidence["flipping"]
    reset = next(a for a in diagnosis.actions if a.id == "LC-A1")
    assert not reset.allowed
    assert "alive" in (reset.blocked_reason or "")
    assert next(a for a in diagnosis.actions if a.id == "LC-A2").allowed


def test_reader_role_blinded_by_row_level_security_is_unknown_with_the_hint(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upstream RLS hides every lease from a non-owner role: LC-1 says so, never "no conflicts"."""
    if lab.profile != "upstream":
        pytest.skip("row-level security exists in the upstream schema only")
    diagnosis = diagnose(lab, monkeypatch, lc.RUNBOOK, database_role="reader")
    lc1 = diagnosis.check("LC-1")
    assert lc1 is not None
    assert lc1.status is Status.UNKNOWN
    assert "app.current_organization_id" in lc1.summary
    assert lc1.evidence["hidden_by_rls"]
    assert not next(a for a in diagnosis.actions if a.id == "LC-A1").allowed


def test_clock_skew_is_critical_from_node_exporter(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`clock-skew`: a node 7.5 s off makes LC-3 critical and the probable cause."""
    lab.switch("lease-conflict", "clock-skew")
    diagnosis = diagnose(lab, monkeypatch, lc.RUNBOOK)
    lc3 = diagnosis.check("LC-3")
    assert lc3 is not None
    assert lc3.status is Status.CRITICAL
    assert lc3.evidence["spread_s"] == pytest.approx(7.5)
    assert diagnosis.probable_cause == "clock-skew"
    lc4 = diagnosis.check("LC-4")
    assert lc4 is not None
    assert lc4.status is Status.WARNING  # 90 % renewals


def test_clock_skew_falls_back_to_date_in_the_pods(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without Prometheus, LC-3 execs `date +%s`; where RBAC refuses exec it is unknown."""
    lab.world.exec_allowed = True
    try:
        diagnosis = diagnose(lab, monkeypatch, lc.RUNBOOK, without_prometheus=True)
    finally:
        lab.world.exec_allowed = False
    lc3 = diagnosis.check("LC-3")
    assert lc3 is not None
    assert lc3.status is Status.CRITICAL, lc3.summary
    assert "kubernetes:exec" in lc3.sources
    refused = diagnose(lab, monkeypatch, lc.RUNBOOK, without_prometheus=True).check("LC-3")
    assert refused is not None
    assert refused.status is Status.UNKNOWN
    assert "forbidden" in refused.summary
