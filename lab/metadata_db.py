"""The lab's Streamhouse metadata database: real PostgreSQL rendered from the ``World``.

``MetadataDb.create`` makes a database (``streamhouse_lab_<profile>`` by default) with the
profile's schema: the runbook spelling (``partition_leases.agent_id``/``lease_epoch``,
30 s leases) or the upstream subset of ``001_schema.sql`` (``leader_agent_id``/``epoch``,
5 min leases, ``agents``, organizations, row-level security, ``set_tenant_context``).
Tables belong to the owner role ``streamhouse``; ``streamhouse_reader`` may SELECT and
UPDATE ``partition_leases`` but has no BYPASSRLS, so upstream it sees no tenant rows
until it sets ``app.current_organization_id``. ``owner_url`` and ``reader_url`` connect
as each.

``seed`` replaces the rows with the world's; ``tick`` plays one round of the agents' lease
upserts (see ``lab.metadata.simulator``) and copies the resulting leases into
``world.leases``; ``start_background`` ticks on its own so the lab reacts to the bot.
A round that hands a dead holder's lease to a live agent, or ends a fight, with no
such trouble left, stops the lease conflicts and renewal failures of the metrics.

Example::

    db = await MetadataDb.create(server.url(), world)
    await db.seed()
    db.start_background(interval=1.0)
    ...
    await db.drop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

import psycopg

from lab.metadata.admin import (
    Roles,
    admin_url_for,
    apply_schema,
    create_database,
    drop_database,
    ensure_roles,
    grant_reader,
    url_for,
)
from lab.metadata.leases import LeaseTable
from lab.metadata.profiles import Spelling, spelling_for
from lab.metadata.seed import seed_world
from lab.metadata.simulator import FightBook, TickReport, log_lines, plan_round, play_round
from lab.metadata.snapshot import WorldView, take_view
from lab.world import Lease, Profile, World

__all__ = ["MetadataDb", "Roles", "TickReport"]

_log = logging.getLogger("lab.metadata")
SKEWED_CLOCK_S = 2.0  # a node clock off by more keeps agents colliding (LC-3's warning)


class MetadataDb:
    """One lab metadata database bound to a ``World``; build it with ``create``."""

    def __init__(
        self,
        world: World,
        *,
        spelling: Spelling,
        database: str,
        admin_url: str,
        roles: Roles,
        conn: psycopg.AsyncConnection[Any],
        lease_duration_ms: int | None,
        log_events: bool,
    ) -> None:
        self.world = world
        self.spelling = spelling
        self.database = database
        self._lease_override = lease_duration_ms
        self.owner_url = url_for(
            admin_url, user=roles.owner, password=roles.owner_password, database=database
        )
        self.reader_url = url_for(
            admin_url, user=roles.reader, password=roles.reader_password, database=database
        )
        self.conflicts_total = 0  # conflicts produced by ticks since the last seed
        self.last_error: Exception | None = None  # the last background tick's failure
        self._admin_url = admin_url
        self._conn = conn
        self._log_events = log_events
        self._table = LeaseTable(spelling, world.org_id)
        self._fights = FightBook()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def create(
        cls,
        admin_url: str,
        world: World,
        *,
        database: str | None = None,
        lease_duration_ms: int | None = None,
        roles: Roles | None = None,
        replace: bool = True,
        log_events: bool = True,
    ) -> MetadataDb:
        """Create roles, the database (replacing one of that name) and the profile's schema.

        ``admin_url`` must connect as a role that may create roles and databases.
        ``log_events`` appends lease acquisitions and conflicts to the agents' logs;
        ``lease_duration_ms`` overrides ``world.lease_ttl_ms``.
        """
        spelling = spelling_for(world.profile)
        roles = roles or Roles()
        name = database or f"streamhouse_lab_{world.profile}"
        await ensure_roles(admin_url, roles)
        await create_database(admin_url, name, roles.owner, replace=replace)
        owner_url = url_for(
            admin_url, user=roles.owner, password=roles.owner_password, database=name
        )
        await apply_schema(owner_url, spelling)
        await grant_reader(admin_url_for(admin_url, name), name, roles)
        conn = await psycopg.AsyncConnection.connect(owner_url, autocommit=True)
        return cls(
            world,
            spelling=spelling,
            database=name,
            admin_url=admin_url,
            roles=roles,
            conn=conn,
            lease_duration_ms=lease_duration_ms,
            log_events=log_events,
        )

    @property
    def profile(self) -> Profile:
        """The world's profile, which decides the schema's spelling."""
        return self.spelling.profile

    @property
    def lease_duration_ms(self) -> int:
        """The lease duration agents use: the override given to ``create``, else the world's."""
        return self._lease_override or self.world.lease_ttl_ms

    # -- rows ------------------------------------------------------------------------------
    async def seed(self, world: World | None = None) -> None:
        """Replace every row with the world's; leases not in the world are assigned.

        With ``world``, the database is rebound to it first (a scenario switch without a
        new database); it must have this database's profile. Resets ``conflicts_total``.
        Seed right after building a scenario, with background ticks stopped or the build
        under ``world.lock``: a tick in between would copy the old rows' leases into the
        new world's ``leases``, which this seed would then keep.
        """
        async with self._lock:
            if world is not None:
                self._rebind(world)
            view = take_view(self.world)
            duration = self._lease_override or view.lease_ttl_ms
            leases = await seed_world(self._conn, self.spelling, view, duration)
            self._fights.clear()
            self.conflicts_total, self.last_error = 0, None
        with self.world.lock:
            self.world.leases = [replace(lease) for lease in leases]
            self.world.touch()

    def _rebind(self, world: World) -> None:
        if world.profile != self.profile:
            raise ValueError(f"a {self.profile} database cannot render a {world.profile} world")
        self.world = world
        self._table = LeaseTable(self.spelling, world.org_id)

    async def read_leases(self) -> list[Lease]:
        """Every lease row (expired ones too) in World terms, by topic and partition."""
        async with self._lock:
            return await self._table.read(self._conn)

    # -- the agents' lease physics --------------------------------------------------------
    async def tick(self) -> TickReport:
        """One round of heartbeats and lease upserts by the live agents, in one transaction."""
        async with self._lock:
            view = take_view(self.world)
            async with self._conn.transaction():
                report = await self._play(view)
                leases = await self._table.read(self._conn)
        self.conflicts_total += len(report.conflicts)
        self._publish(report, leases)
        return report

    async def _play(self, view: WorldView) -> TickReport:
        conn = self._conn
        await self._table.heartbeat(conn, view)
        current = {(lease.topic, lease.partition): lease for lease in await self._table.read(conn)}
        fights, ended = self._fights.reconcile(view, current)
        known = await self._table.partitions(conn)
        acquirable = set(view.partitions) if known is None else known
        attempts, waiting = plan_round(view, current, fights, acquirable)
        duration = self._lease_override or view.lease_ttl_ms
        report = await play_round(conn, self._table, view, attempts, duration)
        report.waiting, report.fights_ended = waiting, ended
        return report

    def _publish(self, report: TickReport, leases: list[Lease]) -> None:
        """Copy the round's outcome into the world so every other fake agrees."""
        with self.world.lock:
            self.world.leases = leases
            if report.fights_ended:
                ended = set(report.fights_ended)
                self.world.fighting_partitions = [
                    key for key in self.world.fighting_partitions if key not in ended
                ]
            if _trouble_ended(self.world, report, leases):
                # The conflicts came from the blocked or fought-over partitions: once a live
                # agent holds each of them, renewals succeed and nobody collides any more.
                self.world.traffic.lease_conflicts_per_s = 0.0
                self.world.traffic.lease_renewal_failure_ratio = 0.0
            if self._log_events:
                for agent_id, line in log_lines(report, self.profile):
                    agent = next((a for a in self.world.agents if a.agent_id == agent_id), None)
                    if agent is not None:
                        agent.log(line, self.world.now())
            self.world.touch()

    # -- background ticking ---------------------------------------------------------------
    def start_background(self, interval: float = 1.0) -> None:
        """Tick every ``interval`` seconds in a task of the running event loop."""
        if self._task is not None and not self._task.done():
            return
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._tick_forever(interval), name=f"{self.database}-ticks")

    async def stop_background(self) -> None:
        """Stop the background ticks (waits for a round in progress to finish or cancel)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _tick_forever(self, interval: float) -> None:
        while True:
            try:
                await self.tick()
            except Exception as error:  # a lab loop must outlive one failed round
                self.last_error = error
                _log.exception("metadata tick failed in %s", self.database)
            await asyncio.sleep(interval)

    # -- lifecycle --------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop ticking and close the owner connection; the database stays."""
        await self.stop_background()
        await self._conn.close()

    async def drop(self) -> None:
        """Close, then drop the database (the cluster-wide roles stay for other databases)."""
        await self.close()
        await drop_database(self._admin_url, self.database)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _trouble_ended(world: World, report: TickReport, leases: list[Lease]) -> bool:
    """This round moved a dead holder's lease to a live agent or ended a fight, and no
    lease is left with a holder that is not live, no fight goes on and no clock is skewed
    (call under ``world.lock``)."""
    live = {a.agent_id for a in world.agents if a.heartbeat_ok and a.phase == "Running"}
    took_over = any(c.previous_holder not in (None, *live) for c in report.acquired)
    if not (took_over or report.fights_ended):
        return False
    skewed = any(abs(node.clock_offset_seconds) > SKEWED_CLOCK_S for node in world.nodes)
    stuck = any(lease.holder not in live for lease in leases)
    return not (stuck or skewed or world.fighting_partitions)
