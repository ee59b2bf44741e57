"""Remediations of the wal-recovery runbook: WAL-A1 (watch), WAL-A2 (quarantine), WAL-A3
(rebuild from S3). RP-A4, which deletes ``*.old`` WALs, is in ``bot.executors.wal_cleanup``.

**Blast radius of WAL-A2/WAL-A3.** The runbook scales the whole agent workload to 0, moves
the file, and scales back. With one Deployment (runbook profile) or StatefulSet (upstream)
of several agents, that stops every agent and so every partition, and it cannot work as
written: with no pod left there is nothing to ``exec`` into. What the runbook wants from
the scale-down is that no process uses the WAL while it is moved. That holds without
stopping anyone else: the partition WAL-1 names has no writer, because its recovery
failed (a crash-looping agent, or upstream's "Failed to get writer"). So each executor
renames the file in the one affected pod (``exec mv``, an atomic rename on the same
volume, so nothing is copied and the backup survives the pod) and then deletes that pod
alone: its replacement starts without the file, and nothing can have reopened the old
one in between because the agent opens a WAL only when it (re)creates the partition's
writer. Blast radius: that pod (one agent of N) restarts, the partitions it leases are
unavailable until the replacement takes them back (a StatefulSet pod keeps its name and
agent id and reclaims them at once; a Deployment pod gets a new id and waits for the old
leases to expire), and the unflushed records of the named partition (WAL-5's window) are
no longer replayed. The other agents keep running.

Where the file goes:

- WAL-A2 moves ``<dir>/<name>.wal`` to ``<dir>/.<name>.wal.corrupt-<UTC stamp>``: a dot
  file, as ``ls`` hides it and neither the agent's recovery scan (``*.wal``) nor WAL-2's
  listing sees it, so the quarantined copy is kept for forensics without being counted
  as WAL backlog forever. The stamp is the preview's, so a retry targets the same name.
- WAL-A3 follows the runbook's ``mv <wal> <wal>.old``. That file stays visible, and RP-A4
  counts it as uploaded as soon as the partition's next segment reaches S3 (an upload
  newer than its last write), although its unflushed records never will: the preview
  says so.

``exec`` needs a running container. Upstream's agent keeps running when a WAL fails; an
agent in CrashLoopBackOff (the runbooks' story) accepts exec only between restarts, so the
``mv`` may fail there: the request then fails with the API's message and no pod is deleted.

WAL paths follow the profile (see ``handlers.wal_files``): ``<WAL_DIR>/<topic>-<partition>.wal``
in the runbooks, ``<WAL_DIR>/<org_id>/<topic>-<partition>-<agent_id>.wal`` upstream; the
files are found with ``find`` under the pod's ``WAL_DIR``, so both layouts work unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.approvals import ActionRequest
from bot.errors import BotError
from bot.executors.base import (
    NO_COOLDOWN,
    ActionContext,
    Executor,
    Outcome,
    Preview,
    StateChanged,
    Watch,
    params_of,
)
from bot.models import CheckResult, Diagnosis
from bot.settings import Settings
from bot.sources.base import Kubernetes, PodInfo, SourceError
from handlers.base import Target
from handlers.logs import agent_logs_or_note, require_kubernetes
from handlers.wal_files import DEFAULT_WAL_DIR
from handlers.wal_logs import partition_in
from handlers.wal_recovery import VERIFICATION

WATCH_WINDOW_S = 180.0  # WAL-A1: three minutes, past the WALCorruptionRate alert's "for 2m"
_RECOVERED = re.compile(r"(\d+) records recovered|recovered=(\d+)", re.IGNORECASE)
_SKIPPED = re.compile(r"(\d+) records skipped|skipped=(\d+)", re.IGNORECASE)


# -- finding a pod's WAL files --------------------------------------------------------------
def wal_root(pod: PodInfo) -> str:
    """The pod's WAL directory (``WAL_DIR``; upstream's org directories are below it)."""
    return pod.env.get("WAL_DIR", DEFAULT_WAL_DIR).rstrip("/") or "/"


def is_live_wal_of(name: str, partition: str) -> bool:
    """Whether ``name`` is the live WAL of ``topic-partition`` in either profile's naming
    (``orders-2.wal`` or ``orders-2-<agent_id>.wal``; not ``orders-20.wal``)."""
    return name.endswith(".wal") and (
        name == f"{partition}.wal" or name.startswith(f"{partition}-")
    )


async def find_files(kube: Kubernetes, pod: str, root: str, pattern: str) -> list[str]:
    """Paths under ``root`` in ``pod`` whose file name matches ``pattern`` (``find -name``)."""
    output = await kube.exec(pod, ["find", root, "-name", pattern])
    return sorted(line.strip() for line in output.splitlines() if line.strip())


def agent_pod(pods: Sequence[PodInfo], name: str) -> PodInfo:
    """The agent pod called ``name``; ``StateChanged`` naming the current pods otherwise."""
    found = next((pod for pod in pods if pod.name == name), None)
    if found is None:
        current = ", ".join(sorted(pod.name for pod in pods)) or "none"
        raise StateChanged(f"pod {name} no longer exists (agent pods now: {current})")
    return found


# -- what the runbook's checks said -----------------------------------------------------------
def evidence_of(diagnosis: Diagnosis, check_id: str) -> Mapping[str, Any]:
    """The evidence of one check of the diagnosis (empty when it did not run)."""
    result: CheckResult | None = diagnosis.check(check_id)
    return result.evidence if result is not None else {}


def failing_by_pod(diagnosis: Diagnosis, target: Target) -> dict[str, list[str]]:
    """WAL-1: the named failing partitions per pod, narrowed to the incident's target."""
    pods = evidence_of(diagnosis, "WAL-1").get("pods", {})
    wanted = None if target.topic is None else f"{target.topic}-{target.partition}"

    def chosen(partition: str) -> bool:
        return partition != "unnamed" and (wanted is None or partition == wanted)

    chosen_by_pod = {pod: sorted(filter(chosen, parts)) for pod, parts in pods.items()}
    return {pod: parts for pod, parts in sorted(chosen_by_pod.items()) if parts}


def loss_window_text(diagnosis: Diagnosis, partition: str) -> str:
    """WAL-5's data-loss window of one partition, as the confirmation shows it."""
    window = evidence_of(diagnosis, "WAL-5").get("partitions", {}).get(partition)
    if not window or window.get("window_s") is None:
        return f"{partition}: loss window unknown (WAL-5)"
    bound = "up to " if window.get("upper_bound") else ""
    return f"{partition}: {bound}{window['window_s']} s of unflushed data (WAL-5)"


async def leases_held(ctx: ActionContext, pods: Sequence[PodInfo]) -> str:
    """The partitions the pods lease, from the metadata DB (or why they are unknown)."""
    what = "partitions the restarted pods lease"
    if ctx.sources.metadata is None:
        return f"{what}: unknown (no metadata DB configured)"
    try:
        readout = await ctx.sources.metadata.leases()
    except SourceError as error:
        return f"{what}: unknown ({error.detail})"
    if readout.hidden_by_rls:
        return f"{what}: unknown (row-level security hides the lease rows)"
    holders = {pod.env.get("AGENT_ID") or f"agent-{pod.name}" for pod in pods}
    held = sorted(f"{r.topic}-{r.partition}" for r in readout.rows if r.holder in holders)
    return f"{what}, unavailable until re-acquired: {', '.join(held) or 'none'}"


# -- WAL-A1: watch --------------------------------------------------------------------------
def recovery_counts(lines: Iterable[str], unnamed: str) -> dict[str, tuple[int, int]]:
    """Per partition, the newest (recovered, skipped) counts the WAL log lines report.

    A line naming no partition belongs to the last one named before it, else to
    ``unnamed`` (the pod); "N records skipped" may come on a line of its own.
    """
    counts: dict[str, tuple[int, int]] = {}
    current: str | None = None
    for line in lines:
        current = partition_in(line) or current
        recovered, skipped = _RECOVERED.search(line), _SKIPPED.search(line)
        if recovered is None and skipped is None:
            continue
        key = current or unnamed
        done, lost = counts.get(key, (0, 0))
        done = int(recovered[1] or recovered[2]) if recovered else done
        lost = int(skipped[1] or skipped[2]) if skipped else (0 if recovered else lost)
        counts[key] = (done, lost)
    return counts


async def recovery_report(ctx: ActionContext) -> dict[str, str]:
    """Per partition, the records its last WAL recovery recovered and skipped (agent logs)."""
    logs = await agent_logs_or_note(ctx.sources)
    report = {}
    for pod, lines in sorted(logs.lines.items()):
        wal_lines = [line for line in lines if "wal" in line.lower() or "skipped" in line]
        for key, (done, lost) in recovery_counts(wal_lines, pod).items():
            report[key] = f"{done} records recovered, {lost} skipped"
    return dict(sorted(report.items()))


def report_text(report: Mapping[str, str]) -> str:
    """The recovery counts for the thread, or that no recovery has reported yet."""
    if not report:
        return "no agent has logged recovered/skipped counts yet"
    return "; ".join(f"{key}: {counts}" for key, counts in report.items())


class WatchRecovery:
    """WAL-A1: change nothing; watch the WAL checks while the agent skips corrupted records."""

    def cooldown(self, settings: Settings) -> timedelta:
        return NO_COOLDOWN

    async def preview(self, ctx: ActionContext) -> Preview:
        wal1 = ctx.diagnosis.check("WAL-1")
        named = sorted(
            {p for parts in failing_by_pod(ctx.diagnosis, ctx.target).values() for p in parts}
        )
        where = ", ".join(named) or "every agent's WAL"
        minutes = WATCH_WINDOW_S / 60
        return Preview(
            key=f"watch WAL {where}",
            target=f"WAL recovery of {where}",
            current=(wal1.summary if wal1 else "WAL-1 did not run")
            + f"; {report_text(await recovery_report(ctx))}",
            new=f"nothing changes; {', '.join(VERIFICATION)} re-checked for {minutes:g} min",
            call="none: read-only (pod logs and status, WAL listing)",
            rollback="none needed: nothing is changed",
            blast_radius="none: read-only",
            params={"partitions": named, "checks": list(VERIFICATION)},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        return None  # watching applies to whatever state there is

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        report = await recovery_report(ctx)
        partitions = params_of(request).get("partitions") or []
        where = ", ".join(partitions) or "the agents' WAL"
        minutes = WATCH_WINDOW_S / 60
        return Outcome(
            f"watching the recovery of {where} for {minutes:g} min; so far {report_text(report)}",
            {"recovery": dict(report), "partitions": list(partitions)},
            Watch(VERIFICATION, WATCH_WINDOW_S),
        )


# -- WAL-A2 / WAL-A3: set the WAL aside, restart its pod -----------------------------------
@dataclass(frozen=True)
class Move:
    """One WAL file to rename inside its pod."""

    pod: str
    partition: str
    path: str
    aside: str

    def to_json(self) -> dict[str, str]:
        """As stored in the preview's params."""
        return {
            "pod": self.pod,
            "partition": self.partition,
            "path": self.path,
            "aside": self.aside,
        }


def quarantine_name(path: str, stamp: str) -> str:
    """WAL-A2's hidden backup beside the WAL: ``<dir>/.<name>.corrupt-<stamp>``."""
    directory, _, name = path.rpartition("/")
    return f"{directory}/.{name}.corrupt-{stamp}"


def rebuild_name(path: str, stamp: str) -> str:
    """WAL-A3's rename from the runbook: ``<wal>.old``."""
    return f"{path}.old"


@dataclass(frozen=True)
class SetAsideWal:
    """WAL-A2/WAL-A3: rename the failing partition's WAL in its pod, then delete that pod."""

    aside_name: Callable[[str, str], str]  # (WAL path, the preview's stamp) -> new path
    purpose: str
    rollback_note: str

    def cooldown(self, settings: Settings) -> timedelta:
        # The guard is the limit: once the WAL is aside, WAL-1 no longer names the
        # partition, so the action is not offered again until it fails anew.
        return NO_COOLDOWN

    async def preview(self, ctx: ActionContext) -> Preview:
        kube = require_kubernetes(ctx.sources)
        writer = ctx.writers.require_kubernetes()
        failing = failing_by_pod(ctx.diagnosis, ctx.target)
        if not failing:
            raise BotError("WAL-1 names no partition whose WAL fails to recover; nothing to move.")
        pods = await kube.agent_pods()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        moves = [
            move
            for name, partitions in failing.items()
            for move in await self._moves(kube, agent_pod(pods, name), partitions, stamp)
        ]
        restarted = sorted({move.pod for move in moves})
        affected = [pod for pod in pods if pod.name in restarted]
        partitions = sorted({move.partition for move in moves})
        return Preview(
            key=f"WAL {', '.join(partitions)}",
            target=", ".join(f"{m.pod}:{m.path}" for m in moves),
            current=", ".join(f"{m.path} (the live WAL of {m.partition})" for m in moves),
            new=", ".join(m.aside for m in moves) + f"; {self.purpose}",
            call="; ".join(
                [writer.exec_call(m.pod, ["mv", m.path, m.aside]) for m in moves]
                + [writer.delete_pod_call(pod) for pod in restarted]
            ),
            rollback=self.rollback_note
            + ": "
            + "; ".join(f"mv {m.aside} {m.path}" for m in moves)
            + " in the replacement pod, then delete it again (it will fail on the file again)",
            blast_radius=f"{len(restarted)} of {len(pods)} agent pods restarted: "
            f"{', '.join(restarted)} ({restart_note(ctx.profile.agent_workload_kind)}); "
            f"{await leases_held(ctx, affected)}; the other agents keep running. Data no "
            "longer replayed: " + "; ".join(loss_window_text(ctx.diagnosis, p) for p in partitions),
            params={"moves": [m.to_json() for m in moves], "pods": restarted},
        )

    async def _moves(
        self, kube: Kubernetes, pod: PodInfo, partitions: Sequence[str], stamp: str
    ) -> list[Move]:
        root = wal_root(pod)
        moves = []
        for partition in partitions:
            seen = await find_files(kube, pod.name, root, f"*{partition}*")
            live = [p for p in seen if is_live_wal_of(p.rpartition("/")[2], partition)]
            if not live:
                raise BotError(f"No WAL file of {partition} under {root} in pod {pod.name}.")
            for path in live:
                aside = self.aside_name(path, stamp)
                if aside in seen:
                    raise BotError(
                        f"{aside} already exists in pod {pod.name}; move or delete it first."
                    )
                moves.append(Move(pod.name, partition, path, aside))
        return moves

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        kube = require_kubernetes(ctx.sources)
        pods = await kube.agent_pods()
        try:
            for move in moves_of(request):
                seen = await files_beside(kube, agent_pod(pods, move.pod), move.partition)
                if move.path not in seen:
                    return f"{move.path} is no longer in pod {move.pod}"
                if move.aside in seen:
                    return f"{move.aside} already exists in pod {move.pod}"
        except StateChanged as moved:
            return str(moved)
        return None

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        kube = require_kubernetes(ctx.sources)
        writer = ctx.writers.require_kubernetes()
        pods = await kube.agent_pods()
        moved = []
        for move in moves_of(request):
            seen = await files_beside(kube, agent_pod(pods, move.pod), move.partition)
            if move.path in seen:
                await writer.run_in_pod(move.pod, ["mv", move.path, move.aside])
            elif move.aside not in seen:
                raise StateChanged(f"{move.path} is gone from pod {move.pod} and was not moved")
            moved.append(f"{move.path} → {move.aside}")
        restarted = [str(name) for name in params_of(request).get("pods") or []]
        deleted = [name for name in restarted if await writer.delete_pod(name)]
        return Outcome(
            f"moved {'; '.join(moved)}, then deleted {', '.join(restarted)}: the replacement "
            "starts without the file",
            {"moved": moved, "pods_deleted": deleted},
        )


async def files_beside(kube: Kubernetes, pod: PodInfo, partition: str) -> set[str]:
    """Every path under the pod's WAL directory whose name mentions ``partition``."""
    return set(await find_files(kube, pod.name, wal_root(pod), f"*{partition}*"))


def restart_note(kind: str) -> str:
    """What deleting one agent pod does to its leases, by workload kind."""
    if kind == "StatefulSet":
        return "it comes back with the same name and agent id and reclaims its leases at once"
    return (
        "its replacement gets a new name and agent id, so its partitions wait for the old "
        "leases to expire"
    )


def moves_of(request: ActionRequest) -> list[Move]:
    """The renames the approver saw."""
    moves = params_of(request).get("moves") or []
    return [Move(m["pod"], m["partition"], m["path"], m["aside"]) for m in moves]


EXECUTORS: dict[str, Executor] = {
    "WAL-A1": WatchRecovery(),
    "WAL-A2": SetAsideWal(
        quarantine_name,
        "the pod restarts with a new, empty WAL for the partition; the corrupted file is "
        "kept beside it, hidden from the agent, for forensics",
        "move the file back",
    ),
    "WAL-A3": SetAsideWal(
        rebuild_name,
        "the pod restarts with an empty WAL and rebuilds the partition from S3; the old file "
        "stays as .old. Its unflushed records never reach S3, yet RP-A4 counts it as uploaded "
        "after the partition's next upload: copy it elsewhere first if they matter",
        "rename it back",
    ),
}
