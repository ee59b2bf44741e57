"""A consistent copy of the parts of the ``World`` that the metadata database renders.

Taken under ``world.lock`` so a seed or a tick works from one moment of the world, and
then used without holding the lock while PostgreSQL is busy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from lab.world import Lease, Subject, World


@dataclass(frozen=True)
class AgentView:
    """One agent as the metadata database sees it."""

    agent_id: str
    pod: str
    node: str
    live: bool  # heartbeating and Running: renews its leases and may acquire others
    started_at: datetime


@dataclass(frozen=True)
class WorldView:
    """What a seed or a tick needs from the world, copied at one instant."""

    now: datetime
    org_id: str
    bucket: str
    agents: tuple[AgentView, ...]
    topics: dict[str, int]
    leases: tuple[Lease, ...]
    subjects: tuple[Subject, ...]
    global_compatibility: str
    last_uploads: dict[tuple[str, int], datetime]
    lease_ttl_ms: int
    fighting_partitions: tuple[tuple[str, int], ...]

    @property
    def now_ms(self) -> int:
        """``now`` in ms since the Unix epoch, the unit of every BIGINT time column."""
        return to_ms(self.now)

    @property
    def live_agent_ids(self) -> tuple[str, ...]:
        """Ids of the live agents, sorted (the order the upstream assigner uses)."""
        return tuple(sorted(agent.agent_id for agent in self.agents if agent.live))

    @property
    def partitions(self) -> tuple[tuple[str, int], ...]:
        """Every (topic, partition) of the world, sorted."""
        return tuple(
            (topic, partition)
            for topic in sorted(self.topics)
            for partition in range(self.topics[topic])
        )

    def agent(self, agent_id: str) -> AgentView | None:
        """The agent with ``agent_id``, if the world still has it."""
        return next((agent for agent in self.agents if agent.agent_id == agent_id), None)

    def is_live(self, agent_id: str) -> bool:
        """Whether ``agent_id`` is a live agent of the world."""
        agent = self.agent(agent_id)
        return agent is not None and agent.live


def to_ms(moment: datetime) -> int:
    """A timezone-aware datetime as ms since the Unix epoch."""
    return int(moment.timestamp() * 1000)


def take_view(world: World) -> WorldView:
    """Copy what the metadata database needs from ``world`` under its lock."""
    with world.lock:
        agents = tuple(
            AgentView(
                agent_id=agent.agent_id,
                pod=agent.pod,
                node=agent.node,
                live=agent.heartbeat_ok and agent.phase == "Running",
                started_at=agent.started_at,
            )
            for agent in world.agents
        )
        return WorldView(
            now=world.now(),
            org_id=world.org_id,
            bucket=world.bucket,
            agents=agents,
            topics=_topics_covering_leases(world.topics, world.leases),
            leases=tuple(replace(lease) for lease in world.leases),
            subjects=tuple(
                replace(subject, versions=list(subject.versions))
                for subject in world.subjects.values()
            ),
            global_compatibility=world.global_compatibility,
            last_uploads=dict(world.last_uploads),
            lease_ttl_ms=world.lease_ttl_ms,
            fighting_partitions=tuple(world.fighting_partitions),
        )


def _topics_covering_leases(topics: dict[str, int], leases: list[Lease]) -> dict[str, int]:
    """The world's topics, grown where a lease names a partition the topic lacks."""
    covered = dict(topics)
    for lease in leases:
        covered[lease.topic] = max(covered.get(lease.topic, 0), lease.partition + 1)
    return covered
