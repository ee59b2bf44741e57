"""``diagnose all`` against the lab: wall time vs the slowest single check and vs the sum.

Real Prometheus, PostgreSQL, moto and the Kubernetes fake (scenario ``cascade``, runbook
profile). Prints: each check's time alone (fresh, uncached sources), the slowest and the
sum; ``diagnose all`` wall time over several runs (p50, max) with the number of calls each
source received; and the same with Prometheus replaced by a server that accepts
connections and never answers (the result must be complete by the deadline + 0.5 s).
Run with ``python -m bench.diagnose``. Targets (issue 4): wall <= 1.3 x the slowest check,
p50 under 1.5 s here, hanging source complete by deadline + 0.5 s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.sources.cache import cached
from bot.sources.factory import build_sources

from bot.diagnose import DiagnoseRequest, run_request
from bot.models import Status, Triage
from bot.profiles import profile_named
from bot.settings import StreamhouseSettings
from bot.store.embedded import EmbeddedPostgres
from handlers.base import CheckContext, Target
from handlers.registry import ORDER
from lab.stack import Lab

RUNS = 7
DEADLINE_S = 3.0


def settings_for(env: dict[str, str]) -> StreamhouseSettings:
    """Settings from the lab's environment (AWS variables go to the process for boto3)."""
    for key, value in env.items():
        os.environ[key] = value
    return StreamhouseSettings(_env_file=None)  # type: ignore[call-arg]


async def time_each_check(settings: StreamhouseSettings) -> dict[str, float]:
    """Every check alone, on fresh uncached sources: seconds per check id."""
    profile = profile_named(settings.streamhouse_profile)
    timings: dict[str, float] = {}
    for runbook in ORDER:
        for spec in runbook.checks:
            source_set = build_sources(settings)
            ctx = CheckContext(cached(source_set.sources), profile, Target(), datetime.now(UTC))
            if not spec.applies(ctx):
                await source_set.close()
                continue
            started = time.perf_counter()
            await spec.run(ctx)
            timings[spec.id] = time.perf_counter() - started
            await source_set.close()
    return timings


async def diagnose_all(
    settings: StreamhouseSettings, deadline_s: float
) -> tuple[float, Triage, dict[str, int]]:
    """One ``diagnose all``: wall seconds, the triage, calls per source."""
    source_set = build_sources(settings)
    sources = cached(source_set.sources)
    started = time.perf_counter()
    outcome = await run_request(
        DiagnoseRequest(ORDER, Target(), everything=True),
        sources,
        profile_named(settings.streamhouse_profile),
        runbook_base_url=settings.runbook_base_url,
        deadline_s=deadline_s,
    )
    wall = time.perf_counter() - started
    await source_set.close()
    assert isinstance(outcome, Triage)
    return wall, outcome, dict(sources.calls)


def silent_server() -> tuple[socket.socket, str]:
    """A TCP server that accepts connections and never answers (a hanging Prometheus)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    return server, f"http://127.0.0.1:{server.getsockname()[1]}"


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    postgres = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="bench-diag-")), ephemeral=True)
    lab = Lab("runbook", admin_url=postgres.start())
    try:
        lab.start("cascade")
        settings = settings_for(lab.env())
        timings = asyncio.run(time_each_check(settings))
        slowest_id = max(timings, key=lambda k: timings[k])
        slowest, total = timings[slowest_id], sum(timings.values())
        print(
            f"{len(timings)} checks alone: slowest {slowest_id} {slowest * 1000:.0f} ms, "
            f"sum {total * 1000:.0f} ms"
        )
        walls, calls = [], {}
        for _ in range(RUNS):
            wall, outcome, calls = asyncio.run(diagnose_all(settings, 8.0))
            walls.append(wall)
        p50 = statistics.median(walls)
        print(
            f"diagnose all x{RUNS}: p50 {p50 * 1000:.0f} ms, max {max(walls) * 1000:.0f} ms; "
            f"status {outcome.status.value}, root {outcome.root}"
        )
        print(
            f"  wall / slowest check = {p50 / slowest:.2f} (target <= 1.3); "
            f"wall / sum = {p50 / total:.2f}"
        )
        print(f"  calls per source: {calls}")
        server, url = silent_server()
        os.environ["PROMETHEUS_URL"] = url
        hanging = StreamhouseSettings(_env_file=None)  # type: ignore[call-arg]
        wall, outcome, _ = asyncio.run(diagnose_all(hanging, DEADLINE_S))
        unknown = sum(1 for d in outcome.diagnoses for c in d.checks if c.status is Status.UNKNOWN)
        print(
            f"Prometheus hanging: complete in {wall:.2f} s with deadline {DEADLINE_S:g} s "
            f"(target <= {DEADLINE_S + 0.5:g} s); {unknown} checks unknown"
        )
        server.close()
    finally:
        lab.stop()
        postgres.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
