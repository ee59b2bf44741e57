"""Runbook ``partition-lease-conflicts.md`` (lease-conflicts, severity HIGH).

Checks LC-1..LC-5, actions LC-A1..LC-A3, guidance LC-G; LC-V verifies with LC-1, LC-2 and
LC-4. Thresholds (module constants):

- LC-1: a lease whose holder has no running pod, or (upstream) no heartbeat within
  ``HEARTBEAT_LIVENESS_MS`` = 60 s, is critical while it blocks the partition; one expired
  for over ``UNCLAIMED_AFTER_S`` = 30 s (a rebalance) with a dead holder is critical too.
  A rising epoch is normal (upstream bumps it on every renewal) and the TTL differs (30 s
  in the runbooks, 5 min upstream), so expiry is read from the row, never assumed.
- LC-2: "Already held by" / "already leased to another agent" and "Stale epoch" are
  critical, "Lost lease" / "Lease renewal failed" a warning, in each agent's last
  ``LOG_TAIL`` = 200 lines; a partition acquired ``FLIP_ACQUISITIONS`` = 3 times by two
  or more agents is flipping (critical).
- LC-3: clock spread between the nodes of agent pods above ``SKEW_WARNING_S`` = 2 s is a
  warning, above ``SKEW_CRITICAL_S`` = 5 s critical.
- LC-4: renewal success below ``RENEWAL_WARNING`` = 0.95 is a warning, below
  ``RENEWAL_CRITICAL`` = 0.80 critical; conflicts above ``CONFLICT_RATE_WARNING`` = 0.01/s
  (the PartitionLeaseConflicts alert) at least a warning.
- LC-5: connections at ``CONNECTIONS_WARNING`` = 80 % of max (critical at
  ``CONNECTIONS_CRITICAL`` = 95 %), a query running over ``SLOW_QUERY_S`` = 30 s, or a
  lock wait on the lease table, is a warning.
- LC-A2: at most one agent pod restarted per ``RESTART_COOLDOWN`` (10 min), enforced when
  the restart is carried out; this guard checks that the pod belongs to the agent workload.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.models import CheckResult, Risk, Status
from bot.sources.base import (
    AgentRow,
    Kubernetes,
    LeaseReadout,
    LeaseRow,
    MetadataDb,
    PodInfo,
    Prometheus,
    SourceError,
    SourceNotConfigured,
)
from handlers.base import ActionSpec, CheckContext, Results, Runbook, check, no_data
from handlers.logs import LOGS_SOURCE, agent_logs, cut, require_kubernetes

HEARTBEAT_LIVENESS_MS = 60_000
UNCLAIMED_AFTER_S = 30.0
LOG_TAIL = 200
FLIP_ACQUISITIONS = 3
SKEW_WARNING_S = 2.0
SKEW_CRITICAL_S = 5.0
RENEWAL_WARNING = 0.95
RENEWAL_CRITICAL = 0.80
CONFLICT_RATE_WARNING = 0.01
CONNECTIONS_WARNING = 0.80
CONNECTIONS_CRITICAL = 0.95
SLOW_QUERY_S = 30.0
RESTART_COOLDOWN = timedelta(minutes=10)
NODE_EXPORTER = "prometheus:node-exporter"
EVIDENCE_LEASES = 10
EVIDENCE_LINES = 5
RLS_HINT = (
    "give the bot's database role BYPASSRLS, or set STREAMHOUSE_ORGANIZATION_ID so that it "
    "sets app.current_organization_id before reading partition_leases"
)
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


def _metadata(ctx: CheckContext) -> MetadataDb:
    if ctx.sources.metadata is None:
        raise SourceNotConfigured("metadata-db", "STREAMHOUSE_DATABASE_URL is not set")
    return ctx.sources.metadata


def _prometheus(ctx: CheckContext) -> Prometheus:
    if ctx.sources.prometheus is None:
        raise SourceNotConfigured("prometheus", "PROMETHEUS_URL is not set")
    return ctx.sources.prometheus


def _failing(result: CheckResult | None) -> bool:
    return result is not None and result.status in (Status.WARNING, Status.CRITICAL)


# -- LC-1: who holds each lease, and is the holder alive ------------------------------------
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


def _lease_json(row: LeaseRow, holder: Holder, status: Status, why: str, now_ms: int) -> Any:
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


LEASES_TITLE = "Lease holders: epoch, expiry and whether each holder is alive"


def _invisible_leases(readout: LeaseReadout, ctx: CheckContext) -> CheckResult:
    target = ctx.target
    where = f" for {target.topic}/{target.partition}" if target.topic else ""
    if not readout.hidden_by_rls:
        return no_data("LC-1", LEASES_TITLE, f"no partition_leases rows{where}", "metadata-db")
    note = readout.note or f"row-level security hides partition_leases from {readout.role}"
    return CheckResult(
        id="LC-1",
        title=LEASES_TITLE,
        status=Status.UNKNOWN,
        summary=f"cannot see the leases{where}, which is not 'no conflicts': {note}",
        evidence={"role": readout.role, "hidden_by_rls": True, "note": note, "hint": RLS_HINT},
        sources=("metadata-db",),
    )


@check("LC-1", LEASES_TITLE)
async def check_lease_holders(ctx: CheckContext) -> CheckResult:
    """Every lease (or the target's) with its holder's pod and heartbeat."""
    metadata = _metadata(ctx)
    readout = await metadata.leases(ctx.target.topic, ctx.target.partition)
    if not readout.rows:
        return _invisible_leases(readout, ctx)
    pods = await require_kubernetes(ctx.sources).agent_pods()
    agents = await metadata.agents()
    now = readout.db_now_ms
    holders = find_holders({row.holder for row in readout.rows}, pods, agents, now)
    judged = sorted(
        ((row, *judge_lease(row, holders[row.holder], now)) for row in readout.rows),
        key=lambda item: -item[1].rank,
    )
    troubled = [(row, why) for row, status, why in judged if status is not Status.OK]
    dead = [row for row, _ in troubled if not holders[row.holder].alive]
    evidence = {
        "leases": [
            _lease_json(row, holders[row.holder], status, why, now)
            for row, status, why in judged[:EVIDENCE_LEASES]
        ],
        "total": len(judged),
        "troubled": len(troubled),
        # What LC-A1's approver sees; the reset's UPDATE is guarded by this holder and epoch.
        "reset_candidates": [
            {"topic": r.topic, "partition": r.partition, "holder": r.holder, "epoch": r.epoch}
            for r in dead
        ],
    }
    return CheckResult(
        id="LC-1",
        title=LEASES_TITLE,
        status=Status.worst([status for _, status, _ in judged]),
        summary=_holders_summary(len(judged), troubled, dead, len(holders)),
        evidence=evidence,
        sources=("metadata-db", "kubernetes"),
        cause="dead-holder" if dead else ("renewal-failures" if troubled else None),
    )


def _holders_summary(
    total: int, troubled: Sequence[tuple[LeaseRow, str]], dead: Sequence[LeaseRow], holders: int
) -> str:
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


# -- LC-2: lease events in the agents' logs -------------------------------------------------
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


async def _replicas(k8s: Kubernetes) -> int | None:
    try:
        return (await k8s.agent_workload()).replicas
    except SourceError:
        return None  # only LC-A3 needs it, and it says so


LOGS_TITLE = "Lease conflicts, stale epochs and lost leases in the agents' logs"


@check("LC-2", LOGS_TITLE)
async def check_lease_logs(ctx: CheckContext) -> CheckResult:
    """Conflict lines per agent pod, and partitions whose holder keeps changing."""
    k8s = require_kubernetes(ctx.sources)
    pods = await k8s.agent_pods()
    logs = await agent_logs(ctx.sources, tail=LOG_TAIL)
    if not logs.lines:
        return no_data("LC-2", LOGS_TITLE, "no agent pod to read", LOGS_SOURCE)
    found = {pod: scan_lease_lines(lines) for pod, lines in logs.lines.items()}
    agent_of = {pod.name: min(agent_ids_of(pod)) for pod in pods}
    flips = flipping_partitions({agent_of.get(p, p): f.acquired for p, f in found.items()})
    per_pod = [
        {
            "pod": pod.name,
            "agent_id": agent_of[pod.name],
            "in_workload": belongs_to_workload(pod, ctx.profile.agent_workload),
            "conflicts": len(found[pod.name].conflicts) if pod.name in found else None,
            "lost_leases": len(found[pod.name].lost) if pod.name in found else None,
        }
        for pod in pods
    ]
    evidence = {
        "pods": per_pod,
        "flipping": flips,
        "lines": logs.evidence(f"{STALE_EPOCH.pattern}|{CONFLICT.pattern}|{LOST.pattern}"),
        "unreadable": dict(logs.unreadable),
        "agent_replicas": await _replicas(k8s),
    }
    status, summary, cause = _judge_lease_logs(found, flips)
    return CheckResult("LC-2", LOGS_TITLE, status, summary, evidence, (LOGS_SOURCE,), cause)


def _judge_lease_logs(
    found: Mapping[str, LeaseLogFindings], flips: Mapping[str, list[str]]
) -> tuple[Status, str, str | None]:
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
    return Status.OK, f"no lease conflict in the last {LOG_TAIL} lines of {len(found)} agents", None


# -- LC-3: clock skew between the agents' nodes ---------------------------------------------
def node_of(labels: Mapping[str, str]) -> str | None:
    """The node a node-exporter series describes (a node label, else the instance's host)."""
    for key in ("node", "kubernetes_node", "nodename"):
        if labels.get(key):
            return labels[key]
    instance = labels.get("instance")
    return instance.rsplit(":", 1)[0] if instance else None


def judge_skew(offsets: Mapping[str, float]) -> tuple[Status, float]:
    """The clock spread between nodes (max - min offset) and its verdict."""
    spread = max(offsets.values()) - min(offsets.values())
    if spread > SKEW_CRITICAL_S:
        return Status.CRITICAL, spread
    return (Status.WARNING if spread > SKEW_WARNING_S else Status.OK), spread


async def _metric_offsets(ctx: CheckContext, nodes: set[str]) -> tuple[dict[str, float], str]:
    """Offsets of ``nodes`` from node-exporter, else why there are none."""
    metric = ctx.profile.metric("node_timex_offset_seconds")
    try:
        samples = await _prometheus(ctx).instant(str(metric))
    except SourceError as error:
        return {}, f"{error.source}: {error.detail}"
    offsets = {node: s.value for s in samples if (node := node_of(s.labels)) in nodes}
    return offsets, "" if offsets else f"{metric} has no series for {', '.join(sorted(nodes))}"


async def _exec_offsets(k8s: Kubernetes, pods: Sequence[PodInfo]) -> dict[str, float]:
    """One live pod per node runs ``date +%s``: its clock minus the bot's."""
    one_per_node = {pod.node: pod for pod in pods if pod.node and pod_is_live(pod)}

    async def offset(pod: PodInfo) -> float:
        output = await k8s.exec(pod.name, ["date", "+%s"])
        return float(output.strip()) - datetime.now(UTC).timestamp()

    values = await asyncio.gather(*(offset(pod) for pod in one_per_node.values()))
    return dict(zip(one_per_node, values, strict=True))


SKEW_TITLE = "Clock skew between the nodes running agents"


@check("LC-3", SKEW_TITLE)
async def check_clock_skew(ctx: CheckContext) -> CheckResult:
    """node-exporter's clock offsets of the agents' nodes; ``date +%s`` in the pods else."""
    k8s = require_kubernetes(ctx.sources)
    pods = await k8s.agent_pods()
    nodes = {pod.node for pod in pods if pod.node}
    offsets, why_not = await _metric_offsets(ctx, nodes)
    # node-exporter, not Streamhouse: present even where Streamhouse is not instrumented.
    sources: tuple[str, ...] = (NODE_EXPORTER,)
    evidence: dict[str, Any] = {}
    if not offsets:  # RBAC may refuse exec: the check then says both reasons
        sources, evidence["fallback"] = (NODE_EXPORTER, "kubernetes:exec"), f"{why_not}; `date +%s`"
        try:
            offsets = await _exec_offsets(k8s, pods)
        except SourceError as error:
            what = f"{why_not}; the fallback `date +%s` failed: {error.detail}"
            return replace(no_data("LC-3", SKEW_TITLE, what, "kubernetes:exec"), sources=sources)
    if not offsets:
        return no_data("LC-3", SKEW_TITLE, "no running agent pod on any node", "kubernetes")
    status, spread = judge_skew(offsets)
    furthest = max(offsets, key=lambda node: abs(offsets[node]))
    evidence |= {
        "offsets_s": {node: round(value, 3) for node, value in sorted(offsets.items())},
        "spread_s": round(spread, 3),
        "nodes_without_data": sorted(nodes - set(offsets)),
    }
    summary = (
        f"clock spread {spread:.1f} s across {len(offsets)} agent nodes "
        f"({furthest} off by {offsets[furthest]:+.1f} s)"
    )
    cause = "clock-skew" if status is not Status.OK else None
    return CheckResult("LC-3", SKEW_TITLE, status, summary, evidence, sources, cause)


# -- LC-4: renewal success and conflict rate ------------------------------------------------
def judge_renewals(ratio: float, conflicts_per_s: float | None) -> Status:
    """Renewal success thresholds; a conflict rate over the alert's raises it to a warning."""
    if ratio < RENEWAL_CRITICAL:
        return Status.CRITICAL
    if ratio < RENEWAL_WARNING or (conflicts_per_s or 0.0) > CONFLICT_RATE_WARNING:
        return Status.WARNING
    return Status.OK


RENEWALS_TITLE = "Lease renewal success and conflict rate over 5 min"


@check("LC-4", RENEWALS_TITLE)
async def check_renewals(ctx: CheckContext) -> CheckResult:
    """``rate(lease_renewals_total{result="success"}[5m]) / rate(lease_renewals_total[5m])``."""
    prometheus = _prometheus(ctx)
    renewals = ctx.profile.metric("lease_renewals_total")
    rates = await prometheus.instant(f"sum by (instance, result) (rate({renewals}[5m]))")
    if not rates:
        return no_data("LC-4", RENEWALS_TITLE, f"{renewals} has no series (not instrumented)")
    success: defaultdict[str, float] = defaultdict(float)
    total: defaultdict[str, float] = defaultdict(float)
    for sample in rates:
        agent = sample.labels.get("instance", "?")
        total[agent] += sample.value
        success[agent] += sample.value if sample.labels.get("result") == "success" else 0.0
    if sum(total.values()) <= 0:
        return no_data("LC-4", RENEWALS_TITLE, f"{renewals} shows no renewal in 5 min")
    ratio = sum(success.values()) / sum(total.values())
    conflicts_metric = ctx.profile.metric("lease_conflicts_total")
    conflict_rates = await prometheus.instant(f"sum(rate({conflicts_metric}[5m]))")
    conflicts = conflict_rates[0].value if conflict_rates else None
    status = judge_renewals(ratio, conflicts)
    evidence = {
        "success_ratio": round(ratio, 4),
        "per_agent": {a: round(success[a] / total[a], 4) for a in sorted(total) if total[a] > 0},
        "conflicts_per_s": None if conflicts is None else round(conflicts, 4),
    }
    rate = "no conflict metric" if conflicts is None else f"{conflicts:.2f} conflicts/s"
    summary = f"{ratio:.0%} of lease renewals succeed; {rate}"
    cause = "renewal-failures" if status is not Status.OK else None
    return CheckResult("LC-4", RENEWALS_TITLE, status, summary, evidence, ("prometheus",), cause)


# -- LC-5: metadata database health ---------------------------------------------------------
DATABASE_TITLE = "Metadata database: connections, slow queries, lease lock waits"


@check("LC-5", DATABASE_TITLE)
async def check_metadata_database(ctx: CheckContext) -> CheckResult:
    """``pg_stat_activity`` connections and long queries, ``pg_locks`` on ``partition_leases``."""
    health = await _metadata(ctx).health()
    usage = health.connections / health.max_connections if health.max_connections else 0.0
    slow = [(pid, secs, query) for pid, secs, query in health.long_queries if secs > SLOW_QUERY_S]
    statuses, problems = [Status.OK], []
    if usage >= CONNECTIONS_WARNING:
        statuses.append(Status.CRITICAL if usage >= CONNECTIONS_CRITICAL else Status.WARNING)
        problems.append(f"{health.connections}/{health.max_connections} connections in use")
    if slow:
        statuses.append(Status.WARNING)
        problems.append(f"{len(slow)} queries running over {SLOW_QUERY_S:.0f} s")
    if health.lease_lock_waits:
        statuses.append(Status.WARNING)
        problems.append(f"{health.lease_lock_waits} sessions waiting on partition_leases locks")
    status = Status.worst(statuses)
    summary = "; ".join(problems) or (
        f"{health.connections}/{health.max_connections} connections, no slow query, no lock wait"
    )
    evidence = {
        "connections": health.connections,
        "max_connections": health.max_connections,
        "slow_queries": [{"pid": p, "seconds": round(s, 1), "query": cut(q)} for p, s, q in slow],
        "lease_lock_waits": health.lease_lock_waits,
    }
    cause = "metadata-db" if status is not Status.OK else None
    return CheckResult("LC-5", DATABASE_TITLE, status, summary, evidence, ("metadata-db",), cause)


# -- actions --------------------------------------------------------------------------------
def _about_target(lease: Mapping[str, Any], ctx: CheckContext) -> bool:
    topic, partition = ctx.target.topic, ctx.target.partition
    return topic in (None, lease["topic"]) and partition in (None, lease["partition"])


def guard_lease_reset(results: Results, ctx: CheckContext) -> tuple[bool, str | None]:
    """LC-A1: only a lease LC-1 shows held by a dead holder (the target's, if one is given)."""
    holders = results.get("LC-1")
    if holders is None or holders.status is Status.UNKNOWN:
        return False, "LC-1 could not read the leases, so nobody can confirm the holder is dead"
    if any(_about_target(lease, ctx) for lease in holders.evidence.get("reset_candidates", [])):
        return True, None
    targeted = [lease for lease in holders.evidence.get("leases", []) if _about_target(lease, ctx)]
    if ctx.target.topic and targeted:
        lease = targeted[0]
        held = f"{lease['topic']}/{lease['partition']} is held by {lease['holder']}, which is alive"
    else:
        held = f"all {holders.evidence.get('total', 0)} leases have live holders"
    return False, (
        f"LC-1 shows {held}: a live holder re-takes a forcibly expired lease at its next "
        "renewal; restart the conflicting agent (LC-A2) instead"
    )


def guard_agent_restart(results: Results, ctx: CheckContext) -> tuple[bool, str | None]:
    """LC-A2: the pod to delete (the target agent, else one logging conflicts) is an agent's."""
    logs = results.get("LC-2")
    if logs is None or logs.status is Status.UNKNOWN:
        return False, "LC-2 could not read the agents' logs, so no conflicting agent is known"
    pods: list[dict[str, Any]] = list(logs.evidence.get("pods", []))
    workload = ctx.profile.agent_workload
    if ctx.target.agent:
        wanted = [p for p in pods if ctx.target.agent in (p["pod"], p["agent_id"])]
    else:
        wanted = [p for p in pods if p["conflicts"]]
        if not wanted:
            return False, "no agent logs lease conflicts; there is no conflicting agent to restart"
    if not any(pod["in_workload"] for pod in wanted):
        return False, f"{ctx.target.agent or 'the conflicting pod'} is not a pod of {workload}"
    return True, None


def guard_scale_to_one(results: Results, ctx: CheckContext) -> tuple[bool, str | None]:
    """LC-A3: N (to restore later) is known and above one, and agents fail to coordinate."""
    logs = results.get("LC-2")
    replicas = logs.evidence.get("agent_replicas") if logs else None
    if replicas is None:
        return False, "the agent workload's replica count is unknown: there is no N to restore"
    if replicas <= 1:
        return False, f"{ctx.profile.agent_workload} already runs a single agent"
    if not (_failing(logs) or _failing(results.get("LC-4"))):
        return False, "LC-2 and LC-4 show the agents coordinating; scaling down only costs capacity"
    return True, None


VERIFICATION = ("LC-1", "LC-2", "LC-4")  # LC-V: owners stable, no conflicts, renewals > 95 %
ACTIONS = (
    ActionSpec("LC-A1", "Force lease reset: expire the dead holder's lease", Risk.HIGH,
               guard_lease_reset, VERIFICATION),
    ActionSpec("LC-A2", "Restart the conflicting agent (delete its pod)", Risk.MEDIUM,
               guard_agent_restart, VERIFICATION),
    ActionSpec("LC-A3", "Scale agents to 1, then back to N once stable", Risk.HIGH,
               guard_scale_to_one, VERIFICATION),
)  # fmt: skip
GUIDANCE = (
    "Clock skew: run NTP/chrony on every node (`chronyc tracking`), then restart the agents.",
    "Renewals failing on short hiccups: a longer lease trades slower failover for resilience "
    "(upstream already uses 5 min leases renewed every 10 s; the runbooks assume 30 s).",
    "Lease queries timing out: compare the agents' metadata pool (upstream 20 connections "
    "each) with PostgreSQL's max_connections.",
)
# The most explaining first: a dead holder or skewed clocks cause conflicts and failed renewals.
CAUSE_ORDER = ("LC-1", "LC-3", "LC-5", "LC-2", "LC-4")


def probable_cause(results: Results) -> str | None:
    """The cause label of the first failing check, in order of how much it explains."""
    for check_id in CAUSE_ORDER:
        result = results.get(check_id)
        if _failing(result) and result is not None and result.cause:
            return result.cause
    return None


RUNBOOK = Runbook(
    id="lease-conflicts",
    title="Partition lease conflicts",
    file="partition-lease-conflicts.md",
    checks=(
        check_lease_holders,
        check_lease_logs,
        check_clock_skew,
        check_renewals,
        check_metadata_database,
    ),
    actions=ACTIONS,
    probable_cause=probable_cause,
    guidance=GUIDANCE,
)
