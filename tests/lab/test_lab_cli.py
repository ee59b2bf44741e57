"""`streamhouse-bot lab up | down | scenarios` as a user runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg

from tests.lab.test_prometheus import require


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the console script to completion."""
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "bot", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_lab_scenarios_lists_every_scenario() -> None:
    """`lab scenarios` names each scenario with its variants."""
    result = cli("lab", "scenarios", env=dict(os.environ))
    assert result.returncode == 0
    for scenario in ("healthy", "circuit-breaker-open", "lease-conflict", "no-metrics", "cascade"):
        assert scenario in result.stdout
    assert "dead-holder" in result.stdout


def test_lab_up_with_an_unknown_scenario_is_a_usage_error(tmp_path: Path) -> None:
    """A mistyped scenario exits 2 naming the known ones."""
    env = {**os.environ, "STREAMHOUSE_LAB_PID_FILE": str(tmp_path / "lab.pid")}
    result = cli("lab", "up", "--scenario", "helthy", "--no-prometheus", env=env)
    assert result.returncode == 2
    assert "unknown scenario 'helthy'" in result.stderr
    assert "healthy" in result.stderr


def test_lab_up_prints_a_working_environment_and_lab_down_stops_it(tmp_path: Path) -> None:
    """`lab up` exports URLs that answer, reports its cold start, and `lab down` ends it."""
    require("prometheus")
    env = {**os.environ, "STREAMHOUSE_LAB_PID_FILE": str(tmp_path / "lab.pid")}
    env_file = tmp_path / "lab.env"
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [
            sys.executable,
            "-m",
            "bot",
            "lab",
            "up",
            "--scenario",
            "oom",
            "--env-file",
            str(env_file),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not env_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        exports = dict(re.findall(r"^export (\w+)=(.*)$", env_file.read_text(), re.M))
        for name in (
            "PROMETHEUS_URL",
            "KUBERNETES_API_URL",
            "SCHEMA_REGISTRY_URL",
            "AWS_ENDPOINT_URL",
        ):
            assert name in exports
        with urllib.request.urlopen(exports["PROMETHEUS_URL"] + "/-/ready", timeout=5) as ready:
            assert ready.status == 200
        with urllib.request.urlopen(
            exports["KUBERNETES_API_URL"] + "/api/v1/namespaces/streamhouse/pods", timeout=5
        ) as pods:
            assert b"OOMKilled" in pods.read()
        with psycopg.connect(exports["STREAMHOUSE_DATABASE_URL"].strip("'")) as conn:
            assert conn.execute("SELECT count(*) FROM partition_leases").fetchone() == (8,)
        assert cli("lab", "down", env=env).returncode == 0
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    seconds = float(re.search(r"lab up in ([\d.]+)s", stderr).group(1))  # type: ignore[union-attr]
    print(f"lab up cold start with Prometheus: {seconds:.1f}s")
