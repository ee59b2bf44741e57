"""Runbook ``partition-lease-conflicts.md`` (lease-conflicts, severity HIGH).

Checks LC-1..LC-5, actions LC-A1..LC-A3, guidance LC-G; LC-V verifies with LC-1, LC-2 and
LC-4. Thresholds (module constants here; those of the pure verdicts in
``handlers.lease_model`` (LC-1, LC-2's flipping, LC-4) and ``handlers.clock_skew`` (LC-3)):

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

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from bot.models import CheckResult, Risk, Status
from bot.sources.base import Kubernetes, LeaseReadout, SourceError
from handlers.base import ActionSpec, CheckContext, Results, Runbook, check, no_data
from handlers.clock_skew import NODE_EXPORTER, exec_offsets, judge_skew, metric_offsets
from handlers.lease_model import (
    CONFLICT,
    LOST,
    STALE_EPOCH,
    agent_ids_of,
    belongs_to_workload,
    find_holders,
    flipping_partitions,
    holders_summary,
    judge_lease,
    judge_lease_logs,
    judge_renewals,
    lease_json,
    scan_lease_lines,
)
from handlers.logs import LOGS_SOURCE, agent_logs, cut, require_kubernetes
from handlers.promql import prometheus_of
from handlers.results import failing, first_failing_cause
from handlers.sources import metadata_of

LOG_TAIL = 200
CONNECTIONS_WARNING = 0.80
CONNECTIONS_CRITICAL = 0.95
SLOW_QUERY_S = 30.0
RESTART_COOLDOWN = timedelta(minutes=10)
EVIDENCE_LEASES = 10
EVIDENCE_LINES = 5
# LC-A3 records the replica count to restore on the agent workload itself.
SCALED_DOWN_FROM = "streamhouse-chatops/scaled-down-from"
RLS_HINT = (
    "give the bot's database role BYPASSRLS, or set STREAMHOUSE_ORGANIZATION_ID so that it "
    "sets app.current_organization_id before reading partition_leases"
)


# -- LC-1: who holds each lease, and is the holder alive ------------------------------------
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
    metadata = metadata_of(ctx)
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
            lease_json(row, holders[row.holder], status, why, now)
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
        summary=holders_summary(len(judged), troubled, dead, len(holders)),
        evidence=evidence,
        sources=("metadata-db", "kubernetes"),
        cause="dead-holder" if dead else ("renewal-failures" if troubled else None),
    )


# -- LC-2: lease events in the agents' logs -------------------------------------------------
async def _replicas(k8s: Kubernetes) -> tuple[int | None, int | None]:
    """The agent workload's replicas and the N an LC-A3 scale-down recorded (or None)."""
    try:
        workload = await k8s.agent_workload()
    except SourceError:
        return None, None  # only LC-A3 needs them, and it says so
    recorded = workload.annotations.get(SCALED_DOWN_FROM, "")
    return workload.replicas, int(recorded) if recorded.isdigit() else None


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
    replicas, scaled_down_from = await _replicas(k8s)
    evidence = {
        "pods": per_pod,
        "flipping": flips,
        "lines": logs.evidence(f"{STALE_EPOCH.pattern}|{CONFLICT.pattern}|{LOST.pattern}"),
        "unreadable": dict(logs.unreadable),
        "agent_replicas": replicas,
        "agent_scaled_down_from": scaled_down_from,  # LC-A3's N to restore, if recorded
    }
    status, summary, cause = judge_lease_logs(found, flips, LOG_TAIL)
    return CheckResult("LC-2", LOGS_TITLE, status, summary, evidence, (LOGS_SOURCE,), cause)


# -- LC-3: clock skew between the agents' nodes ---------------------------------------------
SKEW_TITLE = "Clock skew between the nodes running agents"


@check("LC-3", SKEW_TITLE)
async def check_clock_skew(ctx: CheckContext) -> CheckResult:
    """node-exporter's clock offsets of the agents' nodes; ``date +%s`` in the pods else."""
    k8s = require_kubernetes(ctx.sources)
    pods = await k8s.agent_pods()
    nodes = {pod.node for pod in pods if pod.node}
    offsets, why_not = await metric_offsets(ctx, nodes)
    # node-exporter, not Streamhouse: present even where Streamhouse is not instrumented.
    sources: tuple[str, ...] = (NODE_EXPORTER,)
    evidence: dict[str, Any] = {}
    if not offsets:  # RBAC may refuse exec: the check then says both reasons
        sources, evidence["fallback"] = (NODE_EXPORTER, "kubernetes:exec"), f"{why_not}; `date +%s`"
        try:
            offsets = await exec_offsets(k8s, pods)
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
RENEWALS_TITLE = "Lease renewal success and conflict rate over 5 min"


@check("LC-4", RENEWALS_TITLE)
async def check_renewals(ctx: CheckContext) -> CheckResult:
    """``rate(lease_renewals_total{result="success"}[5m]) / rate(lease_renewals_total[5m])``."""
    prometheus = prometheus_of(ctx)
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
    health = await metadata_of(ctx).health()
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
    """LC-A3, two phases. Scale down: N (to restore later) is known and above one, and the
    agents fail to coordinate. Scale back (one replica and a recorded N): only once LC-V's
    ownership is stable (LC-1 ok, no partition changing hands in LC-2)."""
    logs = results.get("LC-2")
    replicas = logs.evidence.get("agent_replicas") if logs else None
    restore_to = logs.evidence.get("agent_scaled_down_from") if logs else None
    if replicas is None:
        return False, "the agent workload's replica count is unknown: there is no N to restore"
    if replicas == 1 and restore_to:
        return _ownership_stable(results, restore_to)
    if replicas <= 1:
        return False, f"{ctx.profile.agent_workload} already runs a single agent"
    if not (failing(logs) or failing(results.get("LC-4"))):
        return False, "LC-2 and LC-4 show the agents coordinating; scaling down only costs capacity"
    return True, None


def _ownership_stable(results: Results, restore_to: int) -> tuple[bool, str | None]:
    """Whether the scale back to ``restore_to`` may go ahead: owners settled, none flipping."""
    holders, logs = results.get("LC-1"), results.get("LC-2")
    wait = f"; scale back to {restore_to} once ownership is stable"
    if holders is None or holders.status is not Status.OK:
        seen = holders.summary if holders else "LC-1 did not run"
        return False, f"lease ownership is not stable yet ({seen}){wait}"
    flipping = logs.evidence.get("flipping") if logs else None
    if flipping:
        return False, f"partitions still change hands ({', '.join(flipping)}){wait}"
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
    return first_failing_cause(results, CAUSE_ORDER)


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
