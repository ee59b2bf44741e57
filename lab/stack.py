"""The whole lab: every fake and real component started around one ``World``.

``Lab`` starts, in order: a PostgreSQL for the Streamhouse metadata (embedded unless an
admin URL is given), the Kubernetes API fake, the agent metrics exporter, real Prometheus
and Alertmanager scraping it, S3/CloudWatch/STS on moto behind the fault layer, and the
schema registry fake. ``env()`` gives the variables that point the bot at all of it.

Switching scenario rebuilds the World in place (the fakes keep serving the same object),
re-seeds the metadata database and S3, and restarts Prometheus on fresh storage with a
backfilled history of the new scenario, so ``rate(...[5m])`` is right from the first
query and nothing of the previous scenario leaks into it. The asynchronous parts (the
metadata database and its lease simulator) run on the lab's own event loop thread, so
the lab is driven the same way from tests, benchmarks and the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from bot.store.embedded import EmbeddedPostgres
from lab.aws import AwsLab
from lab.kubernetes import KubernetesFake
from lab.metadata_db import MetadataDb
from lab.metrics.exporter import MetricsExporter
from lab.prometheus import PrometheusStack
from lab.scenarios import apply_scenario
from lab.schema_registry import SchemaRegistryFake
from lab.timelines import timeline_for
from lab.world import Profile, World

log = logging.getLogger("lab.stack")
T = TypeVar("T")

HISTORY_HOURS = 3.0
LEASE_TICK_S = 1.0


class _LoopThread:
    """An asyncio loop in a daemon thread for the lab's asynchronous components."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="lab-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coroutine`` on the lab loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and join the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


class Lab:
    """A running simulated Streamhouse deployment for one profile."""

    def __init__(
        self,
        profile: Profile = "runbook",
        *,
        admin_url: str | None = None,
        webhook_url: str | None = None,
        webhook_token: str | None = None,
        prometheus: bool = True,
        history_hours: float = HISTORY_HOURS,
    ) -> None:
        self.world = World(profile)
        self._admin_url = admin_url
        self._webhook = (webhook_url, webhook_token)
        self._with_prometheus = prometheus
        self._history_hours = history_hours
        self._loop: _LoopThread | None = None
        self._postgres: EmbeddedPostgres | None = None
        self.kubernetes = KubernetesFake(self.world)
        self.exporter = MetricsExporter(self.world)
        self.aws = AwsLab(self.world)
        self.registry = SchemaRegistryFake(self.world)
        self.metadata: MetadataDb | None = None
        self.prometheus: PrometheusStack | None = None
        self.cold_start_seconds: float | None = None

    @property
    def profile(self) -> Profile:
        """Which spelling the lab speaks."""
        return self.world.profile

    # -- life cycle ------------------------------------------------------------------------
    def start(self, scenario: str = "healthy", variant: str | None = None) -> float:
        """Start everything on ``scenario``; returns the cold-start time in seconds."""
        began = time.monotonic()
        try:
            apply_scenario(self.world, scenario, variant)
            self._loop = _LoopThread()
            for component in (self.kubernetes, self.exporter, self.aws, self.registry):
                component.start()
            self.aws.clear()  # moto's backend is per process: drop what an earlier lab left
            self.aws.seed(self.world.last_uploads)
            self.metadata = self._loop.run(self._open_metadata())
            if self._with_prometheus:
                self.prometheus = self._new_prometheus()
                self._start_prometheus()
        except BaseException:
            self.stop()
            raise
        self.cold_start_seconds = time.monotonic() - began
        log.info("lab up in %.1fs (%s, %s)", self.cold_start_seconds, self.profile, scenario)
        return self.cold_start_seconds

    async def _open_metadata(self) -> MetadataDb:
        if self._admin_url is None:
            data_dir = Path(tempfile.mkdtemp(prefix="lab-metadata-"))
            self._postgres = EmbeddedPostgres(data_dir, ephemeral=True)
            self._admin_url = await asyncio.to_thread(self._postgres.start)
        metadata = await MetadataDb.create(self._admin_url, self.world)
        await metadata.seed()
        metadata.start_background(LEASE_TICK_S)
        return metadata

    def _new_prometheus(self) -> PrometheusStack:
        return PrometheusStack(
            [self.exporter.target],
            profile=self.profile,
            webhook_url=self._webhook[0],
            webhook_token=self._webhook[1],
        )

    def _start_prometheus(self) -> None:
        if self.prometheus is None:
            return
        with self.world.lock:  # the timeline rewinds the world while history is written
            self.prometheus.backfill_history(
                self.world,
                hours=self._history_hours,
                counters=self.exporter.counters,
                timeline=timeline_for(self.world),
            )
        # Waiting for the first live scrape matters: only series Prometheus has scraped get
        # staleness markers when they vanish (a replaced pod), backfilled ones linger 5 min.
        self.prometheus.start()

    def _running(self) -> tuple[_LoopThread, MetadataDb]:
        if self._loop is None or self.metadata is None:
            raise RuntimeError("the lab is not running; call start() first")
        return self._loop, self.metadata

    def switch(self, scenario: str, variant: str | None = None, *, metrics: bool = True) -> str:
        """Move the whole lab to another scenario; returns the variant used.

        Only Prometheus restarts (about 6 s, most of it Prometheus' target refresh). With
        ``metrics=False`` it is left as it was, for callers that will not query it before
        the next switch: its data then still describes the previous scenario.
        """
        loop, metadata = self._running()
        loop.run(metadata.stop_background())
        chosen = apply_scenario(self.world, scenario, variant)
        loop.run(self._reseed(metadata))
        self.aws.clear()
        self.aws.seed(self.world.last_uploads)
        if self.prometheus is not None and metrics:
            self.prometheus.restart_fresh()  # stops scraping before the counters restart
            self.exporter.counters.reset()
            self._start_prometheus()
        return chosen

    def time_passes(self, hours: float = 1.5) -> None:
        """Prometheus restarted on fresh storage with ``hours`` of history of the world as it
        is now, the counters continuing from it, so rate windows no longer reach back before
        a change (blocking, about 6 s)."""
        prometheus = self.prometheus
        if prometheus is None:
            raise RuntimeError("the lab runs without Prometheus")
        prometheus.restart_fresh()
        self.exporter.counters.reset()
        with self.world.lock:
            prometheus.backfill_history(self.world, hours=hours, counters=self.exporter.counters)
        prometheus.start()

    async def _reseed(self, metadata: MetadataDb) -> None:
        await metadata.seed(self.world)
        metadata.start_background(LEASE_TICK_S)

    def tick(self) -> None:
        """One round of the lease simulator now (tests use it instead of waiting)."""
        loop, metadata = self._running()
        loop.run(metadata.tick())

    def stop(self) -> None:
        """Stop everything that was started, in reverse order."""
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None
        if self._loop is not None:
            if self.metadata is not None:
                self._loop.run(self._close_metadata(self.metadata))
                self.metadata = None
            self._loop.close()
            self._loop = None
        for component in (self.registry, self.aws, self.exporter, self.kubernetes):
            component.stop()
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None

    @staticmethod
    async def _close_metadata(metadata: MetadataDb) -> None:
        await metadata.stop_background()
        await metadata.drop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what the bot needs ----------------------------------------------------------------
    def env(self, *, database_role: str = "owner") -> dict[str, str]:
        """Environment variables that point the bot at this lab."""
        _, metadata = self._running()
        values = {
            "STREAMHOUSE_PROFILE": self.profile,
            "KUBERNETES_API_URL": self.kubernetes.url,
            "STREAMHOUSE_NAMESPACE": self.world.namespace,
            "STREAMHOUSE_DATABASE_URL": metadata.owner_url
            if database_role == "owner"
            else metadata.reader_url,
            "SCHEMA_REGISTRY_URL": self.registry.url,
            **self.aws.env(),
        }
        if self.prometheus is not None:
            values["PROMETHEUS_URL"] = self.prometheus.prometheus_url
        return values
