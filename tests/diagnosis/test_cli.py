"""`streamhouse-bot diagnose` in a shell: same words as Slack, JSON contract, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bot.store import EmbeddedPostgres
from lab.stack import Lab
from tests.app.test_settings import clean_env
from tests.lab.test_prometheus import require


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """A runbook-profile lab with a dead lease holder."""
    require("prometheus")
    running = Lab("runbook", admin_url=pg_server.url())
    running.start("lease-conflict", "dead-holder")
    yield running
    running.stop()


def cli(*words: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``streamhouse-bot diagnose`` as a user would."""
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "bot", "diagnose", *words],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_json_follows_the_contract_and_exit_code_is_1_when_critical(lab: Lab) -> None:
    """`diagnose leases --json`: the contract's keys, matrix ids, and exit code 1."""
    result = cli("leases", "--json", env={**clean_env(), **lab.env()})
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert {"runbook", "status", "summary", "checks", "actions"} <= set(report)
    assert report["runbook"] == "lease-conflicts"
    assert report["status"] == "critical"
    assert [c["id"] for c in report["checks"]] == ["LC-1", "LC-2", "LC-3", "LC-4", "LC-5"]
    assert {"id", "title", "status", "summary", "evidence"} <= set(report["checks"][0])
    lc_a1 = next(a for a in report["actions"] if a["id"] == "LC-A1")
    assert lc_a1 == {**lc_a1, "risk": "high", "allowed": True, "blocked_reason": None}


def test_readable_report_for_all(lab: Lab) -> None:
    """`diagnose all` prints the triage with every runbook and marks each check."""
    result = cli("all", env={**clean_env(), **lab.env()})
    assert result.returncode == 1
    assert "Streamhouse triage: CRITICAL" in result.stdout
    assert "[CRIT] LC-1" in result.stdout


def test_typo_is_a_usage_error(lab: Lab) -> None:
    """A mistyped runbook exits 2 with a suggestion, like in Slack."""
    result = cli("lese", env={**clean_env(), **lab.env()})
    assert result.returncode == 2
    assert "Did you mean lease?" in result.stderr or "Did you mean leases?" in result.stderr


def test_nothing_configured_is_unknown_not_ok() -> None:
    """With no source configured at all, the verdict is unknown (exit 3) and says what to set."""
    result = cli("cb", env={**clean_env(), "HOME": os.environ.get("HOME", "/tmp")})  # noqa: S108
    assert result.returncode == 3, result.stdout + result.stderr
    assert "PROMETHEUS_URL" in result.stdout
