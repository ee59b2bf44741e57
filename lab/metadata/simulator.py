"""One round of what live Streamhouse agents do with leases, against the real table.

Per round, at the world's ``now``:

1. every live agent (heartbeat ok and Running) renews each lease it holds, expired or not
   (upstream's upsert lets the same holder re-take its lease: epoch + 1);
2. a partition with no lease, or whose lease expired and whose holder is not live, is
   acquired by its round-robin assignee among the sorted live agents (upstream's assigner);
3. a lease of a holder that is not live but has not expired yet is left alone (*waiting*);
4. a *fight* (split brain, two live agents both sure they own a partition, as clock skew
   causes) makes the agent that does not hold the lease take it with a clock more than one
   lease ahead; the displaced holder then fails: one conflict per round, the holder flips
   every round and the epoch climbs by two.

Fights come from ``world.fighting_partitions``: each ``(topic, partition)`` pairs the
holder with the first other live agent. A fight ends for good, and its entry is removed
from the world, once either agent is no longer live or has restarted (a new
``started_at``) since the fight began: the runbook's "restart the conflicting agent"
fixes it.
No rebalancing of live holders' leases is simulated, so ownership is otherwise stable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from lab.metadata.leases import Conn, LeaseTable
from lab.metadata.snapshot import WorldView
from lab.world import Lease, Profile

Key = tuple[str, int]
AttemptKind = Literal["renew", "acquire", "steal"]


@dataclass(frozen=True)
class Attempt:
    """One agent's upsert on one partition."""

    key: Key
    agent_id: str
    kind: AttemptKind
    previous: Lease | None


@dataclass(frozen=True)
class LeaseChange:
    """A lease that moved to ``agent_id`` (``previous_holder`` None: it had no lease)."""

    topic: str
    partition: int
    agent_id: str
    epoch: int
    previous_holder: str | None


@dataclass(frozen=True)
class Conflict:
    """``agent_id`` wanted the lease (or lost it in a fight); ``holder`` has it."""

    topic: str
    partition: int
    agent_id: str
    holder: str


@dataclass
class TickReport:
    """What one round did."""

    at_ms: int
    renewed: list[Lease] = field(default_factory=list)
    acquired: list[LeaseChange] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    waiting: list[Lease] = field(default_factory=list)  # dead holder, not expired yet
    fights_ended: list[Key] = field(default_factory=list)


@dataclass(frozen=True)
class Fight:
    """Two live agents both claiming one partition; ``started`` are their processes' starts."""

    key: Key
    agents: tuple[str, str]
    started: tuple[datetime, datetime]

    def other(self, holder: str) -> str | None:
        """The fighter that does not hold the lease, None if ``holder`` is not a fighter."""
        first, second = self.agents
        return {first: second, second: first}.get(holder)

    def still_on(self, view: WorldView) -> bool:
        """Both fighters live, each still the process that began the fight (no restart)."""
        for agent_id, started in zip(self.agents, self.started, strict=True):
            agent = view.agent(agent_id)
            if agent is None or not agent.live or agent.started_at != started:
                return False
        return True


class FightBook:
    """The fights in progress, matched against what the world declares each round."""

    def __init__(self) -> None:
        self._fights: dict[Key, Fight] = {}

    def reconcile(
        self, view: WorldView, leases: dict[Key, Lease]
    ) -> tuple[dict[Key, Fight], list[Key]]:
        """Fights to play this round, and the declared fights that are over."""
        active: dict[Key, Fight] = {}
        ended: list[Key] = []
        for key in view.fighting_partitions:
            fight = self._fights.get(key) or _start_fight(view, leases, key)
            if fight is None:
                continue  # not startable yet (no live holder or no second live agent)
            if fight.still_on(view):
                active[key] = fight
            else:
                ended.append(key)
        self._fights = active
        return active, ended

    def clear(self) -> None:
        """Forget every fight (the database was re-seeded)."""
        self._fights.clear()


def _start_fight(view: WorldView, leases: dict[Key, Lease], key: Key) -> Fight | None:
    """A fight between the live holder and the first other live agent, if both exist."""
    lease = leases.get(key)
    holder = view.agent(lease.holder) if lease else None
    if holder is None or not holder.live:
        return None
    challenger = next((view.agent(a) for a in view.live_agent_ids if a != holder.agent_id), None)
    if challenger is None:
        return None
    return Fight(
        key, (holder.agent_id, challenger.agent_id), (holder.started_at, challenger.started_at)
    )


def plan_round(
    view: WorldView, leases: dict[Key, Lease], fights: dict[Key, Fight], acquirable: set[Key]
) -> tuple[list[Attempt], list[Lease]]:
    """The upserts live agents make this round, and the leases left waiting for expiry."""
    attempts: list[Attempt] = []
    waiting: list[Lease] = []
    live = view.live_agent_ids
    for index, key in enumerate(view.partitions):
        lease = leases.get(key)
        if lease is not None and view.is_live(lease.holder):
            attempts.append(Attempt(key, lease.holder, "renew", lease))
            fight = fights.get(key)
            challenger = fight.other(lease.holder) if fight else None
            if challenger is not None:
                attempts.append(Attempt(key, challenger, "steal", lease))
        elif lease is not None and lease.expires_at_ms >= view.now_ms:
            waiting.append(lease)
        elif live and key in acquirable:
            attempts.append(Attempt(key, live[index % len(live)], "acquire", lease))
    return attempts, waiting


async def play_round(
    conn: Conn, table: LeaseTable, view: WorldView, attempts: list[Attempt], duration_ms: int
) -> TickReport:
    """Run the attempts in order and classify what happened."""
    report = TickReport(at_ms=view.now_ms)
    for attempt in attempts:
        # A stealer's clock runs more than one lease ahead: it sees a fresh renewal expired.
        seen_now = view.now_ms + duration_ms + 1 if attempt.kind == "steal" else view.now_ms
        won = await table.acquire(
            conn,
            attempt.key,
            attempt.agent_id,
            now_ms=view.now_ms,
            seen_now_ms=seen_now,
            duration_ms=duration_ms,
        )
        if won is None:
            current = await table.read_one(conn, *attempt.key)
            holder = current.holder if current else "nobody"
            report.conflicts.append(Conflict(*attempt.key, attempt.agent_id, holder))
        else:
            _record_win(report, attempt, won)
    return report


def _record_win(report: TickReport, attempt: Attempt, won: Lease) -> None:
    previous = attempt.previous.holder if attempt.previous else None
    if previous == won.holder:
        report.renewed.append(won)
        return
    report.acquired.append(LeaseChange(won.topic, won.partition, won.holder, won.epoch, previous))
    if attempt.kind == "steal" and previous is not None:
        report.conflicts.append(Conflict(won.topic, won.partition, previous, won.holder))


def log_lines(report: TickReport, profile: Profile) -> list[tuple[str, str]]:
    """(agent_id, log line) for acquisitions and conflicts, in the profile's wording.

    The runbook profile uses the runbook's lines; upstream the lines the code really logs
    (streamhouse-facts.md §6). Renewals are not logged (upstream logs them every 10 s).
    """
    lines: list[tuple[str, str]] = []
    for change in report.acquired:
        if profile == "runbook":
            text = (
                f"INFO Acquired lease for partition {change.topic}-{change.partition},"
                f" epoch: {change.epoch}"
            )
        else:
            text = (
                f"INFO Acquired partition lease topic={change.topic}"
                f" partition={change.partition} epoch={change.epoch}"
            )
        lines.append((change.agent_id, text))
    for conflict in report.conflicts:
        if profile == "runbook":
            text = (
                f"ERROR Failed to acquire lease for {conflict.topic}-{conflict.partition}:"
                f" Already held by {conflict.holder}"
            )
        else:
            text = (
                f"WARN Failed to acquire partition (may be held by another agent)"
                f" topic={conflict.topic} partition={conflict.partition}"
                f" error=Metadata error: Conflict: Partition"
                f" {conflict.topic}/{conflict.partition} is already leased to another agent"
            )
        lines.append((conflict.agent_id, text))
    return lines
