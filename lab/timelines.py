"""How a scenario got where it is: the world's state at past instants, for backfilled history.

A timeline is ``(world, at) -> None``: it sets the world to its state at ``at``. Made from
the present world (captured when the timeline is built), it returns the world to exactly
that state for any instant at or after the present, so the history ends where the live
scrapes begin. Scenarios whose past looks like their present need none.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from lab.metrics.exporter import Timeline
from lab.world import World


def _ramp(start: float, end: float, begins: datetime, ends: datetime, at: datetime) -> float:
    """``start`` before ``begins``, ``end`` after ``ends``, linear in between."""
    if at <= begins:
        return start
    if at >= ends:
        return end
    share = (at - begins) / (ends - begins)
    return start + (end - start) * share


def burst_timeline(world: World) -> Timeline:
    """s3-throttling/burst: ordinary demand until six minutes ago, then the spike."""
    now, spike = world.now(), world.traffic.put_demand_per_s
    normal = 800.0

    def at(w: World, moment: datetime) -> None:
        w.traffic.put_demand_per_s = spike if moment >= now - timedelta(minutes=6) else normal

    return at


def leak_timeline(world: World) -> Timeline:
    """oom: memory climbing for three hours while the load stays flat (RP-5's leak trend)."""
    now = world.now()
    present = {agent.pod: agent.memory_bytes for agent in world.agents}
    began = now - timedelta(hours=3)

    def at(w: World, moment: datetime) -> None:
        for agent in w.agents:
            final = present.get(agent.pod, agent.memory_bytes)
            agent.memory_bytes = int(_ramp(final * 0.4, final, began, now, moment))

    return at


def breaker_timeline(world: World) -> Timeline:
    """circuit-breaker-open / cascade: closed and error-free until S3 started failing."""
    opened = {a.pod: (a.breaker_state, a.breaker_opened_at) for a in world.agents}
    errors = (world.traffic.s3_503_per_s, world.traffic.s3_other_errors_per_s)
    first_open = min((o for _, o in opened.values() if o is not None), default=world.now())
    failing_since = first_open - timedelta(minutes=2)

    def at(w: World, moment: datetime) -> None:
        failing = moment >= failing_since
        w.traffic.s3_503_per_s = errors[0] if failing else 0.0
        w.traffic.s3_other_errors_per_s = errors[1] if failing else 0.0
        for agent in w.agents:
            state, since = opened.get(agent.pod, (agent.breaker_state, agent.breaker_opened_at))
            agent.breaker_state = state if since is None or moment >= since else 0

    return at


def cascade_timeline(world: World) -> Timeline:
    """cascade: throttling for 20 min, the breaker from 8 min ago, WAL growing since."""
    breaker = breaker_timeline(world)
    wal = {a.pod: [f.size_bytes for f in a.wal_files] for a in world.agents}
    now = world.now()

    def at(w: World, moment: datetime) -> None:
        breaker(w, moment)
        for agent in w.agents:
            for wal_file, final in zip(agent.wal_files, wal.get(agent.pod, []), strict=False):
                grown = _ramp(64 * 1024**2, final, now - timedelta(minutes=8), now, moment)
                wal_file.size_bytes = int(grown)

    return at


TIMELINES = {
    "s3-throttling/burst": burst_timeline,
    "oom": leak_timeline,
    "circuit-breaker-open/throttling-10m": breaker_timeline,
    "circuit-breaker-open/throttling-1m": breaker_timeline,
    "circuit-breaker-open/credentials-10m": breaker_timeline,
    "circuit-breaker-open/recovered-10m": breaker_timeline,
    "cascade": cascade_timeline,
}


def timeline_for(world: World) -> Timeline | None:
    """The timeline of the world's current scenario, if its past differs from its present."""
    builder = TIMELINES.get(world.scenario)
    return builder(world) if builder is not None else None
