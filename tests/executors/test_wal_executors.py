"""WAL-A1..A3 and RP-A4: their pure decisions, and the lab shell's mv/rm in both profiles."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from bot.executors.wal import (
    failing_by_pod,
    is_live_wal_of,
    loss_window_text,
    quarantine_name,
    rebuild_name,
    recovery_counts,
)
from bot.executors.wal_cleanup import OldWal, proof_moved, proven_files, unproven_files
from bot.models import CheckResult, Diagnosis, JSONValue, Status
from handlers.base import Target
from lab.kubernetes.meta import Cluster
from lab.kubernetes.shell import Result, run
from lab.scenarios import apply_scenario
from lab.world import GIB, ORG_ID, World

NOW = datetime(2026, 1, 31, 11, 0, tzinfo=UTC)


def diagnosis(**evidence: Mapping[str, JSONValue]) -> Diagnosis:
    """A diagnosis whose checks (``WAL_1=...``) carry only the given evidence."""
    checks = tuple(
        CheckResult(name.replace("_", "-"), name, Status.CRITICAL, "", found)
        for name, found in evidence.items()
    )
    return Diagnosis("wal-recovery", "", Status.CRITICAL, "", checks, (), None, "", NOW, NOW)


# -- naming -------------------------------------------------------------------------------
def test_live_wal_names_follow_both_profiles() -> None:
    """Runbook ``orders-2.wal`` and upstream ``orders-2-<agent>.wal``; not orders-20 or asides."""
    assert is_live_wal_of("orders-2.wal", "orders-2")
    assert is_live_wal_of("orders-2-agent-streamhouse-agent-1.wal", "orders-2")
    assert not is_live_wal_of("orders-20.wal", "orders-2")
    assert not is_live_wal_of("orders-2.wal.old", "orders-2")
    assert not is_live_wal_of(".orders-2.wal.corrupt-20260131T110000Z", "orders-2")


def test_aside_names_keep_the_directory() -> None:
    """WAL-A2 hides the quarantined copy beside the WAL; WAL-A3 appends the runbook's .old."""
    upstream = f"/data/wal/{ORG_ID}/orders-2-agent-streamhouse-agent-1.wal"
    assert quarantine_name(upstream, "20260131T110000Z") == (
        f"/data/wal/{ORG_ID}/.orders-2-agent-streamhouse-agent-1.wal.corrupt-20260131T110000Z"
    )
    assert rebuild_name("/data/wal/orders-2.wal", "ignored") == "/data/wal/orders-2.wal.old"


# -- what the checks said -----------------------------------------------------------------
def test_failing_partitions_per_pod_follow_the_target() -> None:
    """WAL-1's named partitions per pod; an incident about orders-0 narrows them to none."""
    found = diagnosis(
        WAL_1={"pods": {"agent-b": ["orders-2", "unnamed"], "agent-a": ["payments-1"]}}
    )
    assert failing_by_pod(found, Target()) == {
        "agent-a": ["payments-1"],
        "agent-b": ["orders-2"],
    }
    assert failing_by_pod(found, Target("orders", 2)) == {"agent-b": ["orders-2"]}
    assert failing_by_pod(found, Target("orders", 0)) == {}


def test_loss_window_is_shown_as_wal5_measured_it() -> None:
    """An upper bound says "up to"; a missing window says unknown."""
    found = diagnosis(WAL_5={"partitions": {"orders-2": {"window_s": 90, "upper_bound": True}}})
    assert loss_window_text(found, "orders-2") == ("orders-2: up to 90 s of unflushed data (WAL-5)")
    assert loss_window_text(found, "orders-3") == "orders-3: loss window unknown (WAL-5)"


def test_recovery_counts_read_runbook_and_upstream_lines() -> None:
    """The newest counts per partition; a skipped-count line of its own; unnamed lines."""
    runbook = [
        "INFO  Starting WAL recovery for orders-0",
        "INFO WAL recovery completed: 1523 records recovered",
        "WARN 12 records skipped due to corruption (1.2% data loss)",
        "INFO WAL recovery completed for orders-3: 40 records recovered",
    ]
    assert recovery_counts(runbook, "pod-a") == {"orders-0": (1523, 12), "orders-3": (40, 0)}
    upstream = ["INFO WAL recovery complete recovered=7 topic=orders partition=2"]
    assert recovery_counts(upstream, "pod-a") == {"orders-2": (7, 0)}
    bare = ["INFO WAL recovery: 9 records recovered, 1 records skipped (corruption)"]
    assert recovery_counts(bare, "pod-a") == {"pod-a": (9, 1)}


def test_only_proven_old_files_are_listed_and_a_change_is_named() -> None:
    """RP-2's in_s3 flags split the files; the approved list must match the proven one."""
    found = diagnosis(
        RP_2={
            "old_wal_files": [
                {"pod": "a", "file": "orders-0.wal.old", "in_s3": True},
                {"pod": "b", "file": "payments-1.wal.old", "in_s3": False},
            ]
        }
    )
    assert proven_files(found) == [("a", "orders-0.wal.old")]
    assert unproven_files(found) == ["b:payments-1.wal.old"]
    approved = [OldWal("a", "/data/wal/orders-0.wal.old", GIB)]
    assert proof_moved(approved, proven_files(found)) is None
    moved = proof_moved(approved, [("c", "orders-1.wal.old")])
    assert moved is not None
    assert "no longer proven or gone: a:orders-0.wal.old" in moved
    assert "newly proven: c:orders-1.wal.old" in moved


# -- the lab shell: mv and rm through the World's physics ------------------------------------
def cluster(profile: str, scenario: str) -> Cluster:
    """A lab cluster of ``profile`` in ``scenario`` (no server: the shell is called directly)."""
    world = World(profile)  # type: ignore[arg-type]
    apply_scenario(world, scenario)
    return Cluster(world, NOW)


def sh(lab: Cluster, pod: str, *command: str) -> Result:
    """One command in ``pod``, as exec runs it."""
    with lab.world.lock:
        return run(lab, pod, list(command))


def test_upstream_quarantine_moves_the_file_aside_in_the_org_directory() -> None:
    """Upstream paths carry the org and agent id; the hidden copy survives, ls hides it."""
    lab = cluster("upstream", "wal-corruption")
    agent = lab.world.agents[1]
    found = sh(lab, agent.pod, "find", "/data/wal", "-name", "*orders-2*").stdout.split()
    live = f"/data/wal/{ORG_ID}/orders-2-{agent.agent_id}.wal"
    assert found == [live]
    aside = quarantine_name(live, "20260131T110000Z")
    assert sh(lab, agent.pod, "mv", live, aside).exit_code == 0
    assert [(w.topic, w.partition) for w in agent.wal_files] == [("orders", 3)]
    listing = sh(lab, agent.pod, "ls", "-l", f"/data/wal/{ORG_ID}").stdout
    assert ".corrupt-" not in listing
    assert ".corrupt-" in sh(lab, agent.pod, "ls", "-la", f"/data/wal/{ORG_ID}").stdout
    assert sh(lab, agent.pod, "find", "/data/wal", "-name", "*orders-2*").stdout.split() == [aside]
    again = sh(lab, agent.pod, "mv", live, aside)
    assert again.exit_code == 1
    assert "cannot stat" in again.stderr
    lab.world.delete_pod(agent.pod)
    assert agent.phase == "Running"


def test_runbook_rm_deletes_only_files_set_aside_and_frees_the_volume() -> None:
    """disk-full: rm of an .old file frees its size; a live WAL is refused; -f is idempotent."""
    lab = cluster("runbook", "disk-full")
    agent = lab.world.agents[0]
    used = agent.volume_used_bytes
    assert sh(lab, agent.pod, "rm", "-f", "/data/wal/orders-0.wal").exit_code == 1
    assert sh(lab, agent.pod, "rm", "-f", "/data/wal/orders-0.wal.old").exit_code == 0
    assert agent.volume_used_bytes == used - 8 * GIB
    assert agent.wal_aside == {}
    assert sh(lab, agent.pod, "rm", "-f", "/data/wal/orders-0.wal.old").exit_code == 0
    assert sh(lab, agent.pod, "rm", "/data/wal/orders-0.wal.old").exit_code == 1
    assert [w.partition for w in agent.wal_files] == [0]


def test_upstream_old_files_carry_the_agent_id() -> None:
    """disk-full upstream: the rotated WAL is ``<topic>-<partition>-<agent_id>.wal.old``."""
    lab = cluster("upstream", "disk-full")
    agent = lab.world.agents[0]
    found = sh(lab, agent.pod, "find", "/data/wal", "-name", "*.old").stdout.split()
    assert found == [f"/data/wal/{ORG_ID}/orders-0-{agent.agent_id}.wal.old"]
