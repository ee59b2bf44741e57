"""A source that is down, hangs or refuses: the diagnosis degrades, names it, and is on time."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from bot.diagnose import DiagnoseRequest, run_request
from bot.models import Diagnosis, Status
from bot.profiles import profile_named
from bot.settings import StreamhouseSettings
from bot.sources.cache import cached
from bot.sources.factory import build_sources
from bot.store import EmbeddedPostgres
from handlers.base import Target
from handlers.registry import RUNBOOKS
from lab.stack import Lab

DEADLINE_S = 2.0


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """A runbook-profile lab without Prometheus (each test brings its own broken one)."""
    running = Lab("runbook", admin_url=pg_server.url(), prometheus=False)
    running.start("wal-corruption")
    yield running
    running.stop()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers: a hanging source."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def closed_port_url() -> str:
    """A URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def diagnose(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, runbook: str, prometheus_url: str
) -> tuple[Diagnosis, float]:
    """One runbook against the lab with Prometheus at ``prometheus_url``; and its wall time."""
    for key, value in {**lab.env(), "PROMETHEUS_URL": prometheus_url}.items():
        monkeypatch.setenv(key, value)
    settings = StreamhouseSettings(_env_file=None)  # type: ignore[call-arg]

    async def run() -> Diagnosis:
        source_set = build_sources(settings)
        try:
            outcome = await run_request(
                DiagnoseRequest((RUNBOOKS[runbook],), Target(), everything=False),
                cached(source_set.sources),
                profile_named("runbook"),
                runbook_base_url=settings.runbook_base_url,
                deadline_s=DEADLINE_S,
            )
        finally:
            await source_set.close()
        assert isinstance(outcome, Diagnosis)
        return outcome

    started = time.monotonic()
    outcome = asyncio.run(run())
    return outcome, time.monotonic() - started


def test_prometheus_down_makes_its_checks_unknown_naming_it(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prometheus refusing connections: its checks are unknown and say Prometheus is down;
    the runbook is not ok, and checks on other sources still report."""
    outcome, _ = diagnose(lab, monkeypatch, "circuit-breaker", closed_port_url())
    cb1 = outcome.check("CB-1")
    assert cb1 is not None
    assert cb1.status is Status.UNKNOWN
    assert "prometheus" in cb1.summary.lower()
    assert outcome.status is not Status.OK
    cb3 = outcome.check("CB-3")
    assert cb3 is not None
    assert cb3.status is Status.OK  # S3 itself is healthy in this scenario


def test_a_hanging_prometheus_is_named_and_the_result_is_on_time(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, silent_server: str
) -> None:
    """Prometheus accepting but never answering: the diagnosis is complete by the deadline
    (plus scheduling slack) and the stuck checks name Prometheus."""
    outcome, elapsed = diagnose(lab, monkeypatch, "circuit-breaker", silent_server)
    assert elapsed < DEADLINE_S + 2.5
    stuck = [c for c in outcome.checks if c.status is Status.UNKNOWN]
    assert stuck
    assert all("prometheus" in c.summary.lower() for c in stuck)


def test_forbidden_exec_falls_back_and_names_the_fallback(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With exec refused (the lab answers 403), WAL-2 uses another source and says which."""
    lab.world.exec_allowed = False
    outcome, _ = diagnose(lab, monkeypatch, "wal-recovery", closed_port_url())
    wal2 = outcome.check("WAL-2")
    assert wal2 is not None
    assert "kubernetes:exec" not in wal2.sources
    assert wal2.sources
    assert "exec" in wal2.summary.lower()
