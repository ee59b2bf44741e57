"""Process control for the real Prometheus and Alertmanager of the lab.

``PrometheusStack`` writes its configuration into a temporary directory and runs the
Debian binaries from there: Prometheus scrapes the given targets every second, evaluates
the profile's rule file every second (a copy with ``for: 0s`` unless told otherwise) and
sends alerts to an Alertmanager that posts webhook v4 payloads, resolved ones included,
to the caller's receiver (the bot's ``/alertmanager``). Both listen on 127.0.0.1 on free
ports. ``backfill``/``backfill_history`` turn OpenMetrics into TSDB blocks with
``promtool`` before Prometheus starts, so a test gets hours of history in a second.

Errors:
    LabComponentError       base class of the errors below
    ├── ComponentMissing    a binary is not installed (the message names the Debian package)
    └── ComponentFailed     a process failed, exited early or was not ready in time
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from lab.metrics.exporter import (
    CounterIntegrator,
    Timeline,
    history_instants,
    history_openmetrics,
)
from lab.world import Profile, World

log = logging.getLogger(__name__)

RULES_DIR = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
SCRAPE_JOB = "lab"
# Backfilled samples end this long before now; Prometheus 2.42 takes live scrapes right
# after them, so rate() over the last minute is right from the first scrape on.
HISTORY_GAP = timedelta(seconds=10)
DENSE_TAIL = timedelta(minutes=6)  # covers rate() windows up to 5m plus the gap
_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


class LabComponentError(Exception):
    """A real component of the lab could not be used."""


class ComponentMissing(LabComponentError):
    """A binary is not installed; the message names the Debian package that has it."""


class ComponentFailed(LabComponentError):
    """A process failed, exited early or did not become ready in time."""


def find_binary(name: str) -> str:
    """The path of ``name``, or ``ComponentMissing`` naming its Debian package."""
    path = shutil.which(name)
    if path is None:
        package = _PACKAGES.get(name, name)
        raise ComponentMissing(
            f"{name} is not installed: install the Debian package {package!r} "
            f"(apt-get install -y --no-install-recommends {package})"
        )
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rules_file(profile: Profile) -> Path:
    """The deployable rule file of a profile (``deploy/prometheus/alerts-<profile>.yaml``)."""
    return RULES_DIR / f"alerts-{profile}.yaml"


def lab_rules(source: Path, rule_for: str | None) -> str:
    """The rule file as the lab loads it: with ``rule_for`` every rule's ``for:`` is
    replaced and group intervals are dropped (the global 1 s applies); ``None`` keeps it."""
    document = yaml.safe_load(source.read_text())
    if rule_for is not None:
        for group in document["groups"]:
            group.pop("interval", None)
            for rule in group["rules"]:
                if "alert" in rule:
                    rule["for"] = rule_for
    return yaml.safe_dump(document, sort_keys=False)


def prometheus_config(targets: Sequence[str], rules: Path, alertmanager: str) -> dict[str, Any]:
    """Scrape ``targets`` every second keeping their own labels; alert to ``alertmanager``."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": SCRAPE_JOB,
                # The exporter speaks for several jobs (agents, kubelet, node-exporter,
                # kube-state-metrics): their job/instance labels must win.
                "honor_labels": True,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }


def alertmanager_config(webhook_url: str | None, token: str | None = None) -> dict[str, Any]:
    """One route to one webhook receiver (none when ``webhook_url`` is None)."""
    receiver: dict[str, Any] = {"name": "lab"}
    if webhook_url is not None:
        webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
        if token is not None:
            webhook["http_config"] = {"authorization": {"credentials": token}}
        receiver["webhook_configs"] = [webhook]
    route = {
        "receiver": "lab",
        "group_by": ["alertname"],
        "group_wait": "1s",
        "group_interval": "1s",
        "repeat_interval": "24h",
    }
    return {"route": route, "receivers": [receiver]}


def _http(url: str, *, method: str = "GET", timeout: float = 2.0) -> Any:
    """GET/POST a loopback URL we built ourselves; the JSON body, or None when not JSON."""
    request = urllib.request.Request(url, method=method)  # noqa: S310 -- http://127.0.0.1 only
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 -- same
        body = response.read()
    try:
        return json.loads(body)
    except ValueError:
        return None


class _Process:
    """One child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name, self._argv, self._log_path = name, argv, log_path
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log_path.open("wb") as output:
            # argv is our own: an absolute binary path and flags we built.
            self._popen = subprocess.Popen(  # noqa: S603
                self._argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
            )

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self._popen is None:
            return
        if self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(timeout)
        self._popen = None

    def log_tail(self, lines: int = 15) -> str:
        if not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])


def _wait_until(
    ready: Callable[[], bool], *, what: str, timeout: float, processes: Sequence[_Process]
) -> None:
    """Poll ``ready`` until it holds; fail early when one of ``processes`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        for process in processes:
            if not process.running:
                raise ComponentFailed(f"{process.name} exited:\n{process.log_tail()}")
        try:
            if ready():
                return
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            tails = "\n".join(f"{p.name}:\n{p.log_tail()}" for p in processes)
            raise ComponentFailed(f"{what} not ready after {timeout:.0f}s\n{tails}")
        time.sleep(0.1)


class PrometheusStack:
    """A real Prometheus and Alertmanager scraping the lab, in a temporary directory.

    ``targets`` are ``host:port`` of metrics endpoints (``MetricsExporter.target``);
    ``profile`` picks ``deploy/prometheus/alerts-<profile>.yaml`` unless ``rules`` is given;
    ``rule_for`` replaces every ``for:`` in the copy Prometheus loads (None keeps them).
    URLs are known before ``start`` so a bot can be configured first.
    """

    def __init__(
        self,
        targets: Sequence[str],
        *,
        profile: Profile = "runbook",
        webhook_url: str | None = None,
        webhook_token: str | None = None,
        rules: Path | None = None,
        rule_for: str | None = "0s",
    ) -> None:
        self._binaries = {name: find_binary(name) for name in _PACKAGES}
        self.targets = list(targets)
        self.rules = rules or rules_file(profile)
        self.rule_for = rule_for
        self._webhook = (webhook_url, webhook_token)
        self.directory = Path(tempfile.mkdtemp(prefix="lab-prometheus-"))
        self._tsdb = self.directory / "tsdb"
        self._tsdb.mkdir()
        self._ports = (free_port(), free_port())
        self._processes: list[_Process] = []
        self.cold_start_seconds: float | None = None

    @property
    def prometheus_url(self) -> str:
        """``http://127.0.0.1:<port>`` of Prometheus."""
        return f"http://127.0.0.1:{self._ports[0]}"

    @property
    def alertmanager_url(self) -> str:
        """``http://127.0.0.1:<port>`` of Alertmanager."""
        return f"http://127.0.0.1:{self._ports[1]}"

    # -- history ---------------------------------------------------------------------------
    def backfill(self, openmetrics_text: str) -> None:
        """Write timestamped OpenMetrics samples into the TSDB (before ``start`` only)."""
        if self._processes:
            raise RuntimeError("backfill before start(): Prometheus owns its TSDB once running")
        source = self.directory / f"backfill-{len(list(self.directory.glob('*.om')))}.om"
        source.write_text(openmetrics_text)
        argv = [self._binaries["promtool"], "tsdb", "create-blocks-from", "openmetrics"]
        began = time.monotonic()
        # argv is our own: an absolute binary path and files we wrote.
        done = subprocess.run(  # noqa: S603
            [*argv, "--quiet", str(source), str(self._tsdb)], capture_output=True, check=False
        )
        if done.returncode != 0:
            raise ComponentFailed(
                f"promtool backfill failed: {done.stderr.decode(errors='replace')}"
            )
        log.info("promtool backfill took %.2fs", time.monotonic() - began)

    def backfill_history(
        self,
        world: World,
        *,
        hours: float = 3.0,
        step: timedelta = timedelta(seconds=15),
        dense: timedelta = DENSE_TAIL,
        gap: timedelta = HISTORY_GAP,
        counters: CounterIntegrator | None = None,
        timeline: Timeline | None = None,
    ) -> tuple[datetime, datetime]:
        """Backfill ``hours`` of the World's series ending ``gap`` before now.

        Samples are ``step`` apart, and a second apart over the last ``dense`` (so rate()
        windows reaching into live data are exact). Pass the exporter's ``counters`` so
        live counters continue from the history, and a ``timeline`` to shape it (see
        ``lab.metrics.exporter.history_openmetrics``). Returns the (start, end) of it.
        """
        end = datetime.now(UTC) - gap
        start = end - timedelta(hours=hours)
        instants = history_instants(start, end, step, dense)
        text = history_openmetrics(world, instants, counters=counters, timeline=timeline)
        self.backfill(text)
        return start, end

    # -- processes -------------------------------------------------------------------------
    def start(self, timeout: float = 30.0, *, wait_for_scrape: bool = True) -> float:
        """Start both and wait until they serve; returns the cold start (s).

        With ``wait_for_scrape`` it also waits for the first live scrape of every target
        (about 5 s: Prometheus refreshes targets every 5 s). After a backfill of the same
        world, queries are already right without it.
        """
        if self._processes:
            raise RuntimeError("the stack is already running")
        if not self._tsdb.exists():
            raise RuntimeError("a stopped stack cannot start again: create a new one")
        began = time.monotonic()
        self._write_configs()
        self._processes = [self._alertmanager_process(), self._prometheus_process()]
        for process in self._processes:
            process.start()
        waits = [(self._alertmanager_ready, "Alertmanager"), (self._prometheus_ready, "Prometheus")]
        if wait_for_scrape:
            waits.append((self._scraped, "the first scrape"))
        try:
            for ready, what in waits:
                _wait_until(ready, what=what, timeout=timeout, processes=self._processes)
        except LabComponentError:
            self.stop()
            raise
        self.cold_start_seconds = time.monotonic() - began
        log.info("Prometheus + Alertmanager cold start: %.1fs", self.cold_start_seconds)
        return self.cold_start_seconds

    def _write_configs(self) -> None:
        lab_copy = self.directory / "rules.yaml"
        lab_copy.write_text(lab_rules(self.rules, self.rule_for))
        alertmanager = self.alertmanager_url.removeprefix("http://")
        config = prometheus_config(self.targets, lab_copy, alertmanager)
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self._write_alertmanager_config()

    def _write_alertmanager_config(self) -> None:
        config = alertmanager_config(*self._webhook)
        (self.directory / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def _prometheus_process(self) -> _Process:
        argv = [
            self._binaries["prometheus"],
            f"--config.file={self.directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={self._tsdb}",
            f"--web.listen-address=127.0.0.1:{self._ports[0]}",
            "--web.enable-lifecycle",
            # With backfilled history, rules fire before Alertmanager is discovered; the
            # default 1m resend delay would hold the first notification back a minute.
            "--rules.alert.resend-delay=1s",
            "--log.level=warn",
        ]
        return _Process("prometheus", argv, self.directory / "prometheus.log")

    def _alertmanager_process(self) -> _Process:
        argv = [
            self._binaries["prometheus-alertmanager"],
            f"--config.file={self.directory / 'alertmanager.yml'}",
            f"--storage.path={self.directory / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{self._ports[1]}",
            "--cluster.listen-address=",  # keeps it off 0.0.0.0:9094
            "--log.level=warn",
        ]
        return _Process("alertmanager", argv, self.directory / "alertmanager.log")

    def _alertmanager_ready(self) -> bool:
        _http(f"{self.alertmanager_url}/-/ready")
        return True

    def _prometheus_ready(self) -> bool:
        _http(f"{self.prometheus_url}/-/ready")
        return True

    def _scraped(self) -> bool:
        return len(self.query(f'up{{job="{SCRAPE_JOB}"}}')) >= len(self.targets)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate both processes, wait for them, and delete the temporary directory."""
        self._stop_processes(timeout)
        shutil.rmtree(self.directory, ignore_errors=True)

    def restart_fresh(self, timeout: float = 10.0) -> None:
        """Stop both and wipe their storage, keeping directory, ports and settings: the
        stack can be backfilled and started again at the same URLs."""
        self._stop_processes(timeout)
        for storage in (self._tsdb, self.directory / "alertmanager"):
            shutil.rmtree(storage, ignore_errors=True)
        for source in self.directory.glob("*.om"):
            source.unlink()
        self._tsdb.mkdir()

    def _stop_processes(self, timeout: float) -> None:
        for process in reversed(self._processes):
            process.stop(timeout)
        self._processes = []

    # -- changes while running ---------------------------------------------------------------
    def reload_rules(self, rules: Path | None = None) -> None:
        """Re-read the rule file (or switch to ``rules``) and make Prometheus load it."""
        self.rules = rules or self.rules
        (self.directory / "rules.yaml").write_text(lab_rules(self.rules, self.rule_for))
        _http(f"{self.prometheus_url}/-/reload", method="POST", timeout=10)

    def set_webhook(self, url: str | None, token: str | None = None) -> None:
        """Point Alertmanager's receiver at another webhook URL (reloads if running)."""
        self._webhook = (url, token)
        if self._processes:
            self._write_alertmanager_config()
            _http(f"{self.alertmanager_url}/-/reload", method="POST", timeout=10)

    # -- queries -----------------------------------------------------------------------------
    def query(self, promql: str) -> list[dict[str, Any]]:
        """``/api/v1/query`` now; the result vector."""
        return self._api("query", {"query": promql})

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[dict[str, Any]]:
        """``/api/v1/query_range``; the result matrix."""
        params = {
            "query": promql,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step.total_seconds():g}",
        }
        return self._api("query_range", params)

    def _api(self, endpoint: str, params: dict[str, str]) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        body = _http(url, timeout=10)
        if not isinstance(body, dict) or body.get("status") != "success":
            raise ComponentFailed(f"Prometheus {endpoint} failed: {body!r}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def __enter__(self) -> PrometheusStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
