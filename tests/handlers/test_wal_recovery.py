"""wal-recovery: WAL log findings, the WAL listing and its fallbacks, loss windows, guards.

Pure logic first, on small hand-made inputs; then the runbook against the lab in both
profiles (one lab per profile at a time, one switch per scenario).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.models import CheckResult, Diagnosis, Status
from bot.profiles import RUNBOOK as RUNBOOK_PROFILE
from bot.sources.base import Sources
from bot.store import EmbeddedPostgres
from handlers.base import CheckContext, Runbook, Target
from handlers.sizes import GIB, MIB
from handlers.wal_files import KUBELET, PodWal, WalFileSeen, parse_ls
from handlers.wal_logs import partition_in, read_wal_lines
from handlers.wal_recovery import RUNBOOK, named_partitions_only, pod_wal_verdict
from lab.stack import Lab
from lab.world import Profile
from tests.handlers import diagnose, running_lab

PROFILES: tuple[Profile, ...] = ("runbook", "upstream")
CTX = CheckContext(Sources(), RUNBOOK_PROFILE)
NOW = datetime(2026, 3, 24, 12, 0, 30, tzinfo=UTC)


def result(check_id: str, status: Status, **evidence: object) -> CheckResult:
    """A hand-made check result."""
    return CheckResult(check_id, check_id, status, "", evidence)


# -- pure logic -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "partition"),
    [
        (
            "ERROR Failed to recover WAL for partition orders-2: CRC mismatch at offset 4096",
            "orders-2",
        ),
        ("INFO  Starting WAL recovery for orders-2", "orders-2"),
        (
            "WARN Corrupted WAL record (CRC mismatch), skipping path=/data/wal/orders-2.wal",
            "orders-2",
        ),
        (
            "INFO WAL opened path=/data/wal/5f0c/my-topic-3-agent-streamhouse-agent-1.wal",
            "my-topic-3",
        ),
        ("ERROR Failed to get writer: WAL I/O error topic=orders partition=2", "orders-2"),
        ("ERROR WAL recovery failed: CRC mismatch at offset 4096", None),
    ],
)
def test_partitions_are_read_from_both_wordings(line: str, partition: str | None) -> None:
    """Runbook phrases, upstream fields and WAL paths all name the partition."""
    assert partition_in(line) == partition


def test_a_failure_without_a_partition_belongs_to_the_last_one_named() -> None:
    """The runbook's "WAL recovery failed" line follows "Starting WAL recovery for X"."""
    found = read_wal_lines(
        [
            "Agent started",
            "INFO  Starting WAL recovery for orders-2",
            "ERROR WAL recovery failed: CRC mismatch at offset 4096",
        ]
    )
    assert found.failing == ("orders-2",)
    assert "CRC mismatch" in found.lines[0]


def test_a_later_recovery_clears_the_partitions_failure() -> None:
    """A failure followed by "WAL recovery completed" is recovered, not failing."""
    found = read_wal_lines(
        [
            "WARN Corrupted WAL record (CRC mismatch), skipping path=/data/wal/orders-2.wal",
            "INFO WAL for orders-2 moved aside (kept as .wal.bak)",
            "WARN Partial record at end of WAL, truncating",
        ]
    )
    assert found.failing == ()
    assert found.recovered == ("orders-2",)
    assert found.soft == ("WARN Partial record at end of WAL, truncating",)


def test_ls_listings_give_sizes_partitions_and_modification_times() -> None:
    """Both the plain listing (minutes) and ``--time-style=+%s`` (seconds) are read."""
    plain = (
        "total 196608\n"
        "drwxr-xr-x 2 root root 4096 Jan 01 00:00 5f0c6a9e\n"
        "-rw-r--r-- 1 root root 188743680 Mar 24 12:00 orders-2.wal\n"
    )
    files, directories = parse_ls(plain, NOW)
    assert directories == ["5f0c6a9e"]
    assert files[0].key == "orders-2"
    assert files[0].size_bytes == 188743680
    assert files[0].modified_at == datetime(2026, 3, 24, 12, 0, tzinfo=UTC)
    assert files[0].mtime_slack_s == 59
    exact, _ = parse_ls("-rw-r--r-- 1 sh sh 10 1774353600 orders-1-agent-a.wal.old\n", NOW)
    assert (exact[0].key, exact[0].mtime_slack_s, exact[0].name) == (
        "orders-1",
        0,
        "orders-1-agent-a.wal.old",
    )


def test_wal_size_verdicts() -> None:
    """Over 10 GiB is critical, one file ten times the rest a warning, unseen files unknown."""
    big = PodWal("p", "prometheus", (WalFileSeen("orders-0", 12 * GIB),))
    skewed = PodWal(
        "p", "kubernetes:exec", (WalFileSeen("a", 180 * MIB), WalFileSeen("b", 12 * MIB))
    )
    unseen = PodWal("p", KUBELET, None, volume_used_bytes=5 * GIB)
    crowded = PodWal("p", KUBELET, None, volume_used_bytes=40 * GIB)
    assert pod_wal_verdict(big)[0] is Status.CRITICAL
    assert pod_wal_verdict(skewed)[0] is Status.WARNING
    assert pod_wal_verdict(unseen)[0] is Status.UNKNOWN
    assert pod_wal_verdict(crowded)[0] is Status.WARNING
    assert pod_wal_verdict(PodWal("p", "prometheus", ()))[1] == "no WAL backlog"


def test_quarantine_needs_a_partition_named_by_wal1() -> None:
    """WAL-A2/A3 are blocked without a failing partition, and for another partition."""
    quiet = {"WAL-1": result("WAL-1", Status.OK, failing_partitions=[])}
    assert named_partitions_only(quiet, CTX)[0] is False
    failing = {
        "WAL-1": result("WAL-1", Status.CRITICAL, failing_partitions=["orders-2"]),
        "WAL-5": result(
            "WAL-5",
            Status.CRITICAL,
            partitions={"orders-2": {"window_s": 120, "upper_bound": True}},
        ),
    }
    allowed, reason = named_partitions_only(failing, CTX)
    assert allowed
    assert "orders-2: up to 120 s" in (reason or "")
    elsewhere = CheckContext(Sources(), RUNBOOK_PROFILE, Target(topic="orders", partition=0))
    blocked, why = named_partitions_only(failing, elsewhere)
    assert not blocked
    assert "not orders-0" in (why or "")


def test_corruption_outranks_the_other_causes() -> None:
    """The probable cause prefers corruption over disk-full, growth and restarts."""
    results = {
        "WAL-1": CheckResult("WAL-1", "", Status.CRITICAL, "", cause="corruption"),
        "WAL-3": CheckResult("WAL-3", "", Status.CRITICAL, "", cause="disk-full"),
        "WAL-4": CheckResult("WAL-4", "", Status.CRITICAL, "", cause="oom"),
    }
    assert RUNBOOK.probable_cause(results) == "corruption"
    assert RUNBOOK.probable_cause({"WAL-4": results["WAL-4"]}) == "oom"
    assert RUNBOOK.probable_cause({}) is None


# -- against the lab ------------------------------------------------------------------------
class ScenarioLab:
    """A running lab that switches only when the scenario changes; exec refused by default.

    One lab at a time: every lab's moto shares one in-process backend, so a second lab's
    switch (``/moto-api/reset``) would wipe this one's bucket.
    """

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.current: tuple[str, bool] = ("healthy", True)

    def on(self, scenario: str, *, metrics: bool = True) -> None:
        """Move to ``scenario``; ``metrics=False`` leaves Prometheus as it was."""
        name, fresh = self.current
        if name != scenario or (metrics and not fresh):
            self.lab.switch(scenario, metrics=metrics)
            self.current = (scenario, metrics)
        self.lab.world.exec_allowed = False

    def changed(self) -> None:
        """The test moved the world itself: the next ``on`` switches again."""
        self.current = ("changed", False)

    def diagnose(
        self,
        monkeypatch: pytest.MonkeyPatch,
        runbook: Runbook = RUNBOOK,
        target: Target | None = None,
        database_role: str = "owner",
    ) -> Diagnosis:
        """``runbook`` diagnosed in this lab through the real sources."""
        return diagnose(self.lab, monkeypatch, runbook, target=target, database_role=database_role)


def start_lab(profile: Profile, pg_server: EmbeddedPostgres) -> Iterator[ScenarioLab]:
    """A healthy lab of ``profile`` (skips without Prometheus), stopped afterwards."""
    for lab in running_lab(profile, pg_server):
        yield ScenarioLab(lab)


@pytest.fixture(scope="module", params=PROFILES)
def lab(request: pytest.FixtureRequest, pg_server: EmbeddedPostgres) -> Iterator[ScenarioLab]:
    """A lab of each profile for this module."""
    yield from start_lab(request.param, pg_server)


def checks(diagnosis: Diagnosis) -> dict[str, CheckResult]:
    """The diagnosis' checks by id."""
    return {check.id: check for check in diagnosis.checks}


def test_healthy_wal_is_ok_through_the_wal_gauge(
    lab: ScenarioLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Healthy: every check ok; with exec refused, WAL-2 says it used the WAL gauge."""
    lab.on("healthy")
    diagnosis = lab.diagnose(monkeypatch)
    assert [(c.id, c.status) for c in diagnosis.checks if c.status is not Status.OK] == []
    wal2 = checks(diagnosis)["WAL-2"]
    assert wal2.sources == ("prometheus",)
    assert "exec unavailable" in wal2.summary


def test_corrupted_wal_names_the_partition_and_allows_quarantine(
    lab: ScenarioLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wal-corruption: orders-2 fails, the pod crash-loops, > 60 s is at risk, WAL-A2 allowed."""
    lab.on("wal-corruption", metrics=False)
    diagnosis = lab.diagnose(monkeypatch)
    found = checks(diagnosis)
    assert diagnosis.status is Status.CRITICAL
    assert found["WAL-1"].status is Status.CRITICAL
    assert found["WAL-1"].evidence["failing_partitions"] == ["orders-2"]
    assert "orders-2" in found["WAL-1"].summary
    assert found["WAL-4"].status is Status.CRITICAL
    assert "CrashLoopBackOff" in found["WAL-4"].summary
    window = found["WAL-5"].evidence["partitions"]["orders-2"]
    assert found["WAL-5"].status is Status.CRITICAL
    assert window["window_s"] > 60
    assert diagnosis.probable_cause == "corruption"
    allowed = {a.id: a.allowed for a in diagnosis.actions}
    assert allowed == {"WAL-A1": True, "WAL-A2": True, "WAL-A3": True}


def test_quarantine_of_a_healthy_partition_is_refused(
    lab: ScenarioLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wal-corruption, asked about orders-0: WAL-A2 is blocked and names orders-2."""
    lab.on("wal-corruption", metrics=False)
    target = Target(topic="orders", partition=0)
    diagnosis = lab.diagnose(monkeypatch, target=target)
    quarantine = next(a for a in diagnosis.actions if a.id == "WAL-A2")
    assert not quarantine.allowed
    assert "orders-2" in (quarantine.blocked_reason or "")


def test_exec_lists_the_wal_files_when_rbac_allows(
    lab: ScenarioLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With exec allowed, WAL-2 reads ``ls -l`` and flags the 180 MiB WAL of orders-2."""
    lab.on("wal-corruption", metrics=False)
    lab.lab.world.exec_allowed = True
    wal2 = checks(lab.diagnose(monkeypatch))["WAL-2"]
    assert wal2.sources == ("kubernetes:exec",)
    assert wal2.status is Status.WARNING
    assert "orders-2" in wal2.summary


def test_segments_hidden_by_row_level_security_leave_the_window_unknown(
    lab: ScenarioLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upstream, as a role RLS blinds: WAL-5 is unknown and says why; WAL-A2 stays allowed."""
    if lab.lab.profile != "upstream":
        pytest.skip("row-level security exists in the upstream schema only")
    lab.on("wal-corruption", metrics=False)
    diagnosis = lab.diagnose(monkeypatch, database_role="reader")
    wal5 = checks(diagnosis)["WAL-5"]
    assert wal5.status is Status.UNKNOWN
    assert "row-level security" in wal5.summary
    assert next(a for a in diagnosis.actions if a.id == "WAL-A2").allowed


def test_quarantine_and_restart_clear_the_failure(
    lab: ScenarioLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After WAL-A2's steps (WAL moved aside, pod restarted), WAL-1 names no failure."""
    lab.on("wal-corruption", metrics=False)
    world = lab.lab.world
    broken = next(agent for agent in world.agents if agent.phase == "CrashLoopBackOff")
    assert world.quarantine_wal(broken.pod, "orders", 2)
    world.delete_pod(broken.pod)
    lab.changed()
    found = checks(lab.diagnose(monkeypatch))
    assert found["WAL-1"].status in (Status.OK, Status.WARNING)
    assert found["WAL-1"].evidence["failing_partitions"] == []


def test_full_disk_is_critical_on_the_wal_volume(
    lab: ScenarioLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """disk-full: WAL-3 critical (4 % free) and the probable cause is the disk."""
    lab.on("disk-full", metrics=False)
    diagnosis = lab.diagnose(monkeypatch)
    wal3 = checks(diagnosis)["WAL-3"]
    assert wal3.status is Status.CRITICAL
    assert all(ratio < 0.10 for ratio in wal3.evidence["free_ratio"].values())
    assert diagnosis.probable_cause == "disk-full"


def test_without_metrics_the_wal_listing_is_unknown(
    lab: ScenarioLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """no-metrics: exec refused and no WAL gauge leave only volume stats: WAL-2 unknown."""
    lab.on("no-metrics")
    diagnosis = lab.diagnose(monkeypatch)
    wal2 = checks(diagnosis)["WAL-2"]
    assert wal2.status is Status.UNKNOWN
    assert wal2.sources == ("kubernetes:kubelet-stats",)
    assert diagnosis.status is not Status.OK
