"""``diagnose all`` against the lab: wall time vs the slowest single check and vs the sum.

Real Prometheus, PostgreSQL, moto and the Kubernetes fake (scenario ``cascade``, runbook
profile), started with ``streamhouse-bot lab up`` in their own process, as real systems
would be: in this process they would compete with the bot for the interpreter.
Prints: each check's time alone (its own empty cache, but warm connections, as in a
running bot), the slowest and the sum; ``diagnose all`` wall time over several runs
(p50, max) with the number of calls each source received; and the same with Prometheus
replaced by a server that accepts connections and never answers (the result must be
complete by the deadline + 0.5 s).
Run with ``python -m bench.diagnose``. Targets (issue 4): wall <= 1.3 x the slowest check,
p50 under 1.5 s here, hanging source complete by deadline + 0.5 s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.diagnose import DiagnoseRequest, run_request
from bot.models import Status, Triage
from bot.profiles import Profile, profile_named
from bot.settings import StreamhouseSettings
from bot.sources.cache import cached
from bot.sources.factory import SourceSet, build_sources
from handlers.base import CheckContext, Target
from handlers.registry import ORDER

RUNS = 15
DEADLINE_S = 3.0


def settings_for(env: dict[str, str]) -> StreamhouseSettings:
    """Settings from the lab's environment (AWS variables go to the process for boto3)."""
    for key, value in env.items():
        os.environ[key] = value
    return StreamhouseSettings(_env_file=None)  # type: ignore[call-arg]


async def time_each_check(source_set: SourceSet, profile: Profile) -> dict[str, float]:
    """Every check alone (its own empty cache, warm connections): seconds per check id."""
    timings: dict[str, float] = {}
    for runbook in ORDER:
        for spec in runbook.checks:
            ctx = CheckContext(cached(source_set.sources), profile, Target(), datetime.now(UTC))
            if spec.applies(ctx):
                started = time.perf_counter()
                await spec.run(ctx)
                timings[spec.id] = time.perf_counter() - started
    return timings


async def diagnose_all(
    source_set: SourceSet, settings: StreamhouseSettings, deadline_s: float
) -> tuple[float, Triage, dict[str, int]]:
    """One ``diagnose all`` with a fresh cache: wall seconds, the triage, calls per source."""
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
    assert isinstance(outcome, Triage)
    return wall, outcome, dict(sources.calls)


async def measure(
    settings: StreamhouseSettings,
) -> tuple[dict[str, float], list[float], Triage, dict[str, int]]:
    """Warm the sources once (as a running bot has them), then time checks and runs."""
    source_set = build_sources(settings)
    try:
        await diagnose_all(source_set, settings, 8.0)  # warm-up: connections, clients
        timings = await time_each_check(source_set, profile_named(settings.streamhouse_profile))
        walls, outcome, calls = [], None, {}
        for _ in range(RUNS):
            wall, outcome, calls = await diagnose_all(source_set, settings, 8.0)
            walls.append(wall)
    finally:
        await source_set.close()
    assert outcome is not None
    return timings, walls, outcome, calls


async def once(
    settings: StreamhouseSettings, deadline_s: float
) -> tuple[float, Triage, dict[str, int]]:
    """One cold ``diagnose all`` on its own sources."""
    source_set = build_sources(settings)
    try:
        return await diagnose_all(source_set, settings, deadline_s)
    finally:
        await source_set.close()


def silent_server() -> tuple[socket.socket, str]:
    """A TCP server that accepts connections and never answers (a hanging Prometheus)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    return server, f"http://127.0.0.1:{server.getsockname()[1]}"


def start_lab(directory: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """``streamhouse-bot lab up`` in a child process; its exported environment."""
    env_file = directory / "lab.env"
    child_env = {**os.environ, "STREAMHOUSE_LAB_PID_FILE": str(directory / "lab.pid")}
    command = [sys.executable, "-m", "bot", "lab", "up", "--scenario", "cascade"]
    child = subprocess.Popen(  # noqa: S603 - our own CLI
        [*command, "--env-file", str(env_file)], env=child_env, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not env_file.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if not env_file.exists():
        child.kill()
        raise RuntimeError("the lab did not come up")
    pairs = re.findall(r"^export (\w+)=(.*)$", env_file.read_text(), re.M)
    return child, {key: shlex.split(value)[0] for key, value in pairs}


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    directory = Path(tempfile.mkdtemp(prefix="bench-diag-"))
    child, env = start_lab(directory)
    try:
        settings = settings_for(env)
        report(*asyncio.run(measure(settings)))
        server, url = silent_server()
        os.environ["PROMETHEUS_URL"] = url
        hanging = StreamhouseSettings(_env_file=None)  # type: ignore[call-arg]
        wall, outcome, _ = asyncio.run(once(hanging, DEADLINE_S))
        unknown = sum(1 for d in outcome.diagnoses for c in d.checks if c.status is Status.UNKNOWN)
        print(
            f"Prometheus hanging: complete in {wall:.2f} s with deadline {DEADLINE_S:g} s "
            f"(target <= {DEADLINE_S + 0.5:g} s); {unknown} checks unknown"
        )
        server.close()
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    return 0


def report(
    timings: dict[str, float], walls: list[float], outcome: Triage, calls: dict[str, int]
) -> None:
    """Print the comparison with the slowest check and the sum of all checks."""
    slowest_id = max(timings, key=lambda k: timings[k])
    slowest, total = timings[slowest_id], sum(timings.values())
    print(
        f"{len(timings)} checks alone: slowest {slowest_id} {slowest * 1000:.0f} ms, "
        f"sum {total * 1000:.0f} ms"
    )
    p50 = statistics.median(walls)
    print(
        f"diagnose all x{RUNS}: p50 {p50 * 1000:.0f} ms, min {min(walls) * 1000:.0f} ms, "
        f"max {max(walls) * 1000:.0f} ms; "
        f"status {outcome.status.value}, root {outcome.root}"
    )
    print(
        f"  wall / slowest check = {p50 / slowest:.2f} (target <= 1.3); "
        f"wall / sum = {p50 / total:.2f}"
    )
    print(f"  calls per source: {calls}")


if __name__ == "__main__":
    sys.exit(main())
