"""Pure lease logic of the lease-conflicts runbook: who holds a lease and whether the holder
is alive, and what the agents' log lines say about leases. Thresholds:

- A holder is alive with a running pod and, where heartbeats are recorded (upstream), one
  within ``HEARTBEAT_LIVENESS_MS`` = 60 s; a lease expired for over ``UNCLAIMED_AFTER_S``
  = 30 s with a dead holder is critical (LC-1).
- A partition acquired ``FLIP_ACQUISITIONS`` = 3 times by two or more agents is flipping
  (LC-2).
- Renewal success below ``RENEWAL_WARNING`` = 0.95 is a warning, below
  ``RENEWAL_CRITICAL`` = 0.80 critical; conflicts above ``CONFLICT_RATE_WARNING`` = 0.01/s
  at least a warning (LC-4).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.models import Status
from bot.sources.base import AgentRow, LeaseRow, PodInfo

HEARTBEAT_LIVENESS_MS = 60_000
UNCLAIMED_AFTER_S = 30.0
FLIP_ACQUISITIONS = 3
RENEWAL_WARNING = 0.95
RENEWAL_CRITICAL = 0.80
CONFLICT_RATE_WARNING = 0.01

# The runbook's wording and upstream's real messages (streamhouse-facts.md §6).
STALE_EPOCH = re.compile(r"stale epoch|stale write rejected", re.IGNORECASE)
CONFLICT = re.compile(
    r"already held by|already leased to another agent|may be held by another agent|lease conflict",
    re.IGNORECASE,
)
LOST = re.compile(r"lost lease|lease renewal failed|lease expired", re.IGNORECASE)
ACQUIRED = re.compile(
    r"acquired (?:partition )?lease(?: for partition (?P<rb_topic>\S+)-(?P<rb_partition>\d+)"
    r"| topic=(?P<topic>\S+) partition=(?P<partition>\d+))",
    re.IGNORECASE,
)


# -- lease holders ------------------------------------------------------------------------
def agent_ids_of(pod: PodInfo) -> set[str]:
    """The agent ids a pod runs as: its ``AGENT_ID``, else upstream's ``agent-<hostname>``."""
    configured = pod.env.get("AGENT_ID")
    return {configured} if configured else {f"agent-{pod.name}", pod.name}


def pod_is_live(pod: PodInfo) -> bool:
    """The agent container runs (not a failed pod, not crash-looping, not still starting)."""
    return pod.phase == "Running" and pod.waiting_reason is None


@dataclass(frozen=True)
class Holder:
    """What the bot knows of one lease holder."""

    pod: str | None  # the pod running as this agent, if any
    pod_live: bool
    heartbeat_age_s: float | None  # None: heartbeats not recorded (runbook profile)

    @property
    def alive(self) -> bool:
        """A running pod and, where heartbeats are recorded, one within the liveness window."""
        fresh = self.heartbeat_age_s is None or self.heartbeat_age_s * 1000 <= HEARTBEAT_LIVENESS_MS
        return self.pod_live and fresh


def find_holders(
    holders: set[str], pods: Sequence[PodInfo], agents: Sequence[AgentRow] | None, now_ms: int
) -> dict[str, Holder]:
    """Each holder's pod and heartbeat age; with an agents table, no row means no heartbeat."""
    pod_of = {agent_id: pod for pod in pods for agent_id in agent_ids_of(pod)}
    beats = {row.agent_id: row.last_heartbeat_ms for row in agents or ()}
    found = {}
    for holder in sorted(holders):
        pod = pod_of.get(holder)
        age: float | None = None
        if agents is not None:
            beat = beats.get(holder)
            age = float("inf") if beat is None else max(0.0, (now_ms - beat) / 1000)
        live = pod is not None and pod_is_live(pod)
        found[holder] = Holder(pod.name if pod else None, live, age)
    return found


def judge_lease(row: LeaseRow, holder: Holder, now_ms: int) -> tuple[Status, str]:
    """One lease's verdict and why, from its expiry and its holder's liveness."""
    expired_s = (now_ms - row.expires_at_ms) / 1000
    if expired_s < 0 and holder.alive:
        return Status.OK, "held by a live agent"
    if expired_s < 0:
        return Status.CRITICAL, f"holder is dead; blocks the partition for {-expired_s:.0f} s more"
    if holder.alive:
        return Status.WARNING, f"expired {expired_s:.0f} s ago under a live holder: renewals fail"
    if expired_s > UNCLAIMED_AFTER_S:
        return Status.CRITICAL, f"expired {expired_s:.0f} s ago and no agent has taken it"
    return Status.WARNING, f"expired {expired_s:.0f} s ago; waiting for another agent to take it"


def lease_json(row: LeaseRow, holder: Holder, status: Status, why: str, now_ms: int) -> Any:
    """One lease for evidence, with its holder's liveness and the verdict."""
    age = holder.heartbeat_age_s
    return {
        "topic": row.topic,
        "partition": row.partition,
        "holder": row.holder,
        "epoch": row.epoch,
        "expires_at": datetime.fromtimestamp(row.expires_at_ms / 1000, UTC).isoformat(),
        "state": "ACTIVE" if row.expires_at_ms > now_ms else "EXPIRED",
        "holder_pod": holder.pod,
        "holder_alive": holder.alive,
        "heartbeat_age_s": None if age is None or age == float("inf") else round(age, 1),
        "status": status.value,
        "why": why,
    }


def holders_summary(
    total: int, troubled: Sequence[tuple[LeaseRow, str]], dead: Sequence[LeaseRow], holders: int
) -> str:
    """LC-1's summary: dead holders first, else the first troubled lease, else all well."""
    if dead:
        first, names = dead[0], ", ".join(sorted({row.holder for row in dead}))
        return (
            f"{len(dead)} of {total} leases held by {names}, which has no live pod or heartbeat "
            f"(e.g. {first.topic}/{first.partition} at epoch {first.epoch})"
        )
    if troubled:
        row, why = troubled[0]
        return f"{len(troubled)} of {total} leases in trouble: {row.topic}/{row.partition} {why}"
    return f"{total} leases, all held by live agents ({holders} holders)"


# -- lease lines in the agents' logs -------------------------------------------------------
@dataclass
class LeaseLogFindings:
    """What one agent's log says about leases."""

    conflicts: list[str] = field(default_factory=list)  # incl. stale epochs
    lost: list[str] = field(default_factory=list)
    acquired: list[tuple[str, int]] = field(default_factory=list)  # (topic, partition)


def scan_lease_lines(lines: Sequence[str]) -> LeaseLogFindings:
    """Sort an agent's log lines into conflicts (and stale epochs), lost leases, acquisitions."""
    found = LeaseLogFindings()
    for line in lines:
        if STALE_EPOCH.search(line) or CONFLICT.search(line):
            found.conflicts.append(line)
        elif LOST.search(line):
            found.lost.append(line)
        elif taken := ACQUIRED.search(line):
            topic = taken["rb_topic"] or taken["topic"]
            found.acquired.append((topic, int(taken["rb_partition"] or taken["partition"])))
    return found


def flipping_partitions(acquired: Mapping[str, Sequence[tuple[str, int]]]) -> dict[str, list[str]]:
    """Partitions acquired ``FLIP_ACQUISITIONS`` times or more by two or more agents."""
    takers: defaultdict[tuple[str, int], list[str]] = defaultdict(list)
    for agent_id, partitions in acquired.items():
        for partition in partitions:
            takers[partition].append(agent_id)
    return {
        f"{topic}/{partition}": sorted(set(agents))
        for (topic, partition), agents in sorted(takers.items())
        if len(agents) >= FLIP_ACQUISITIONS and len(set(agents)) > 1
    }


def belongs_to_workload(pod: PodInfo, workload: str) -> bool:
    """Whether the agent workload (a StatefulSet, or a Deployment's ReplicaSet) owns the pod."""
    if pod.owner_kind == "StatefulSet":
        return pod.owner_name == workload
    return pod.owner_kind == "ReplicaSet" and (pod.owner_name or "").startswith(f"{workload}-")


def judge_lease_logs(
    found: Mapping[str, LeaseLogFindings], flips: Mapping[str, list[str]], tail: int
) -> tuple[Status, str, str | None]:
    """LC-2's verdict: flipping holders, else conflicts, else lost leases, else quiet."""
    conflicts = sum(len(f.conflicts) for f in found.values())
    lost = sum(len(f.lost) for f in found.values())
    if flips:
        summary = f"holder keeps changing on {', '.join(flips)}; {conflicts} conflict lines"
        return Status.CRITICAL, summary, "split-brain"
    if conflicts:
        pods = sum(1 for f in found.values() if f.conflicts)
        summary = f"{conflicts} lease conflict lines from {pods} agent(s)"
        return Status.CRITICAL, summary, "lease-conflicts"
    if lost:
        return Status.WARNING, f"{lost} lost-lease lines, no conflicts", "renewal-failures"
    return Status.OK, f"no lease conflict in the last {tail} lines of {len(found)} agents", None


# -- renewals ------------------------------------------------------------------------------
def judge_renewals(ratio: float, conflicts_per_s: float | None) -> Status:
    """Renewal success thresholds; a conflict rate over the alert's raises it to a warning."""
    if ratio < RENEWAL_CRITICAL:
        return Status.CRITICAL
    if ratio < RENEWAL_WARNING or (conflicts_per_s or 0.0) > CONFLICT_RATE_WARNING:
        return Status.WARNING
    return Status.OK
