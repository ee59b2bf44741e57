"""An alert storm (issue 6): 5,000 Alertmanager alerts in 25 groups over 20 s.

Every alert is ``CircuitBreakerOpen`` (routed to the circuit-breaker runbook) with one of
25 ``namespace`` values (the 25 groups, so the 25 incidents) and its own ``pod`` label (so
its own fingerprint); all share one ``startsAt``. Alertmanager batches per group, so each
webhook body carries ``--batch`` (5) alerts of one group. Every alert is first sent firing;
30 % of each group's alerts are later sent again as resolved (same fingerprint and
``startsAt``), in bodies of their own, interleaved with the firing bodies still to come.
The bodies are spread evenly over ``--seconds`` and sent by ``--clients`` (20) concurrent
clients, each taking the next body when its time has come (open loop).

The bot (embedded PostgreSQL, HTTP mode, ``BOT_POST_INTERVAL_S`` at its default 1.0 s)
posts into one alert channel on the Slack emulator with the emulator's per-channel
``chat.postMessage`` limit switched on (a burst of 3, then 1 post/s, like Slack's); its
Prometheus points at a closed port, so each diagnosis ends quickly as unknown. The bot runs
in its own event-loop thread; the emulator and the clients run in this process.

Printed: incidents created (must be 25), alerts stored (must be 5,000), intake latency
p50/p99 (target p99 < 20 ms), posts per second in the alert channel (target <= 1
sustained, bursts <= 3), the time from the first alert sent until every incident's root
is posted (target < 30 s), and the peak RSS. Baseline, same run and same bot: ``GET
/healthz`` (an aiohttp round trip and nothing else) sent on the same schedule by the same
clients just before the storm, and the ratio; ``/healthz`` probes during the storm show
how busy the bot's event loop is.
Run with ``python -m bench.alert_storm`` (``--alerts 500 --seconds 5`` for a quick run).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import math
import resource
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from bench.common import LoopThread, percentile
from bot.runtime import BotRuntime
from bot.settings import Settings
from bot.store.embedded import EmbeddedPostgres
from lab.slack import SlackEmulator
from lab.slack.faults import DEFAULT_BURST, DEFAULT_PER_SECOND

CHANNEL = "C0ALERTS"
TOKEN = "bench-alertmanager-token"
ALERTNAME = "CircuitBreakerOpen"
STARTS_AT = "2026-11-27T10:00:00.000Z"
ENDS_AT = "2026-11-27T10:30:00.000Z"
ZERO_TIME = "0001-01-01T00:00:00Z"
SEVERITIES = ("critical", "warning")
RESOLVED_SHARE = 0.3
RESOLVED_LAG_S = 1.5  # a resolved body goes out this long after its alerts' last firing one
PROBE_EVERY_S = 0.05
POLL_S = 0.05
SUSTAINED_WINDOW_S = 10


@dataclass(frozen=True)
class Body:
    """One webhook delivery, serialised in advance, and when to send it (s after start)."""

    at: float
    data: bytes
    alerts: int
    resolved: bool


@dataclass(frozen=True)
class Sent:
    """One request as a client saw it."""

    scheduled: float
    started: float
    latency: float
    status: int


# -- the storm ----------------------------------------------------------------------------
def one_alert(group: int, number: int, status: str) -> dict[str, Any]:
    """Alert ``number`` of ``group``; its fingerprint is derived from its labels, as
    Alertmanager does, so the firing and resolved copies share it."""
    labels = {
        "alertname": ALERTNAME,
        "namespace": f"storm-{group:02d}",
        "pod": f"agent-{number:04d}",
        "severity": SEVERITIES[number % len(SEVERITIES)],
    }
    digest = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"S3 circuit breaker open on {labels['pod']}"},
        "startsAt": STARTS_AT,
        "endsAt": ZERO_TIME if status == "firing" else ENDS_AT,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=streamhouse_circuit_breaker_open",
        "fingerprint": digest,
    }


def webhook_body(group: int, alerts: list[dict[str, Any]]) -> bytes:
    """A webhook v4 body of one group's alerts, as Alertmanager builds it."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    namespace = f"storm-{group:02d}"
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{ALERTNAME}", namespace="{namespace}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "streamhouse-bot",
        "groupLabels": {"alertname": ALERTNAME, "namespace": namespace},
        "commonLabels": {"alertname": ALERTNAME, "namespace": namespace},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }
    return json.dumps(body).encode()


def storm(alerts: int, groups: int, seconds: float, batch: int) -> list[Body]:
    """The bodies of the storm in sending order, each with its time.

    Firing bodies go round-robin over the groups; each group's first ``RESOLVED_SHARE`` of
    alerts are sent again resolved, ``RESOLVED_LAG_S`` after the body that fired the last
    of them (or at the end, whichever is first). All bodies are spread evenly over
    ``seconds``."""
    per_group = [alerts // groups + (1 if g < alerts % groups else 0) for g in range(groups)]
    firing: list[tuple[int, list[int]]] = []  # (group, alert numbers), in sending order
    chunks = [
        [list(range(n, min(n + batch, count))) for n in range(0, count, batch)]
        for count in per_group
    ]
    for round_ in range(max(len(c) for c in chunks)):
        firing += [(g, chunks[g][round_]) for g in range(groups) if round_ < len(chunks[g])]
    slot = seconds / max(1, len(firing) + sum(math.ceil(c * RESOLVED_SHARE) for c in per_group))
    lag = RESOLVED_LAG_S / slot  # in firing positions
    fired_at = {(g, n): index for index, (g, numbers) in enumerate(firing) for n in numbers}
    planned: list[tuple[float, int, list[dict[str, Any]], bool]] = [
        (float(index), g, [one_alert(g, n, "firing") for n in numbers], False)
        for index, (g, numbers) in enumerate(firing)
    ]
    for g, count in enumerate(per_group):
        resolved = list(range(math.ceil(count * RESOLVED_SHARE)))
        for start in range(0, len(resolved), batch):
            numbers = resolved[start : start + batch]
            position = max(fired_at[(g, n)] for n in numbers) + lag + 0.5
            alerts_ = [one_alert(g, n, "resolved") for n in numbers]
            planned.append((min(position, len(firing) - 0.5), g, alerts_, True))
    planned.sort(key=lambda item: item[0])
    every = seconds / len(planned)
    return [
        Body(index * every, webhook_body(g, alerts_), len(alerts_), resolved)
        for index, (_, g, alerts_, resolved) in enumerate(planned)
    ]


# -- the clients --------------------------------------------------------------------------
async def send_all(
    url: str,
    bodies: list[Body],
    clients: int,
    *,
    method: str = "POST",
    probe_url: str | None = None,
) -> tuple[list[Sent], list[float], float]:
    """Send ``bodies`` at their times with ``clients`` concurrent clients; also probe
    ``probe_url`` every ``PROBE_EVERY_S`` meanwhile. (requests, probe latencies, the
    wall-clock start as ``time.time()``)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    queue: asyncio.Queue[Body] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    sent: list[Sent] = []
    probes: list[float] = []
    done = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=clients + 1)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        wall = time.time()

        async def client() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                delay = began + body.at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                started = time.perf_counter()
                async with session.request(method, url, data=body.data, headers=headers) as r:
                    await r.read()
                    status = r.status
                sent.append(Sent(body.at, started - began, time.perf_counter() - started, status))

        async def probe() -> None:
            assert probe_url is not None  # only started with a URL
            while not done.is_set():
                started = time.perf_counter()
                async with session.get(probe_url) as response:
                    await response.read()
                probes.append(time.perf_counter() - started)
                await asyncio.sleep(PROBE_EVERY_S)

        prober = asyncio.create_task(probe()) if probe_url else None
        await asyncio.gather(*(client() for _ in range(clients)))
        done.set()
        if prober is not None:
            await prober
    return sent, probes, wall


# -- the database and Slack, read from this process ---------------------------------------
async def scalar(database_url: str, query: str) -> int:
    """The single number ``query`` returns."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(query)
        row = await cursor.fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


async def wait_for(database_url: str, query: str, wanted: int, limit_s: float) -> bool:
    """Poll ``query`` until it returns ``wanted``; False after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            cursor = await conn.execute(query)
            row = await cursor.fetchone()
            if row is not None and int(row[0]) >= wanted:
                return True
            await asyncio.sleep(POLL_S)
    return False


def post_calls(emulator: SlackEmulator, since: float) -> list[tuple[float, bool, bool]]:
    """chat.postMessage calls in the alert channel since ``since`` (``time.time()``):
    (seconds after ``since``, accepted, top-level)."""
    calls = []
    for call in emulator.calls_to("chat.postMessage"):
        if call.params.get("channel") != CHANNEL:
            continue
        at = call.at if call.at.tzinfo else call.at.replace(tzinfo=UTC)
        offset = at.timestamp() - since
        if offset >= 0:
            calls.append((offset, call.ok, not call.params.get("thread_ts")))
    return calls


def max_per_window(offsets: list[float], window: float) -> int:
    """The most of ``offsets`` in any sliding window of ``window`` seconds."""
    ordered, best, low = sorted(offsets), 0, 0
    for high, value in enumerate(ordered):
        while value - ordered[low] >= window:
            low += 1
        best = max(best, high - low + 1)
    return best


# -- report -------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    """Milliseconds, for the report."""
    return f"{seconds * 1000:.1f} ms"


def latency_line(name: str, values: list[float]) -> tuple[float, float]:
    """Print p50/p99/max of ``values`` (seconds); return (p50, p99)."""
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    print(
        f"  {name:<44} n={len(values):<5} p50 {ms(p50):>9}  p99 {ms(p99):>9}  "
        f"max {ms(max(values)):>9}"
    )
    return p50, p99


def check(ok: bool) -> str:
    """``ok`` or ``MISSED``, for a target."""
    return "ok" if ok else "MISSED"


def report_posts(emulator: SlackEmulator, since: float, roots_at: float | None) -> None:
    """Posts per second in the alert channel: accepted, attempted and refused (429)."""
    calls = post_calls(emulator, since)
    accepted = [offset for offset, ok, _ in calls if ok]
    attempts = [offset for offset, _, _ in calls]
    refused = len(attempts) - len(accepted)
    per_second = Counter(int(offset) for offset in accepted)
    tried_per_second = Counter(int(offset) for offset in attempts)
    peak_1s = max(per_second.values(), default=0)
    sliding = max_per_window(accepted, 1.0)
    sustained = max_per_window(accepted, SUSTAINED_WINDOW_S) / SUSTAINED_WINDOW_S
    roots = sum(1 for _, ok, top in calls if ok and top)
    print(
        f"Slack posts in {CHANNEL}: {len(accepted)} accepted ({roots} roots, "
        f"{len(accepted) - roots} thread replies), {refused} answered 429, "
        f"{len(emulator.calls_to('chat.update'))} chat.update edits"
    )
    print(
        f"  highest posts in any second: {peak_1s} (calendar second), {sliding} (sliding 1 s); "
        f"attempts incl. 429: {max(tried_per_second.values(), default=0)} "
        f"(target bursts <= {DEFAULT_BURST}: {check(sliding <= DEFAULT_BURST)})"
    )
    print(
        f"  highest sustained rate: {sustained:.2f} posts/s over any {SUSTAINED_WINDOW_S} s "
        f"(target <= 1: {check(sustained <= 1.0)})"
    )
    if roots_at is not None and accepted:
        before = sum(1 for offset in accepted if offset <= roots_at)
        print(
            f"  until the last root: {before} posts in {roots_at:.1f} s "
            f"({before / roots_at:.2f}/s), of which "
            f"{sum(1 for o, ok, top in calls if ok and top and o <= roots_at)} roots"
        )


# -- main ---------------------------------------------------------------------------------
def closed_port() -> int:
    """A loopback port nothing listens on (the bot's Prometheus: diagnoses end fast)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_settings(emulator: SlackEmulator, database_url: str) -> Settings:
    """The bot posting alert incidents in ``CHANNEL`` at Slack's pace (1 post/s)."""
    return Settings.model_validate(
        {
            "slack_bot_token": emulator.bot_token,
            "slack_signing_secret": emulator.signing_secret,
            "slack_api_url": emulator.api_url,
            "bot_database_url": database_url,
            "bot_http_host": "127.0.0.1",
            "bot_http_port": 0,
            "bot_log_level": "ERROR",
            "bot_alert_channel": CHANNEL,
            "bot_alertmanager_token": TOKEN,
            "prometheus_url": f"http://127.0.0.1:{closed_port()}",
        }
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    """``--alerts``, ``--groups``, ``--seconds``, ``--clients``, ``--batch``, ``--drain``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--batch", type=int, default=5, help="alerts per webhook body")
    parser.add_argument(
        "--drain", type=float, default=180.0, help="how long to wait for every thread post (s)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.CRITICAL)
    began = time.monotonic()
    emulator = SlackEmulator().start()
    emulator.add_channel(CHANNEL, "alerts")
    emulator.set_rate_limit(burst=DEFAULT_BURST, per_second=DEFAULT_PER_SECOND)
    postgres = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="bench-storm-")), ephemeral=True)
    database_url = postgres.start()
    servers = LoopThread()
    try:
        bot = BotRuntime(bot_settings(emulator, database_url))
        servers.run(bot.start())
        measure(args, bot, emulator, database_url)
        servers.run(bot.stop())
    finally:
        servers.close()
        postgres.stop()
        emulator.stop()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak RSS of this process (bot + Slack emulator + clients; PostgreSQL apart): "
        f"{peak_mb:.0f} MB; whole benchmark {time.monotonic() - began:.0f} s"
    )
    return 0


def measure(
    args: argparse.Namespace, bot: BotRuntime, emulator: SlackEmulator, database_url: str
) -> None:
    """The baseline, the storm, the wait for the roots and the thread posts; the report."""
    bodies = storm(args.alerts, args.groups, args.seconds, args.batch)
    resolved = sum(body.alerts for body in bodies if body.resolved)
    print(
        f"{args.alerts} alerts ({resolved} of them sent again resolved) in {args.groups} groups: "
        f"{len(bodies)} webhook bodies of <= {args.batch} alerts over {args.seconds:g} s "
        f"({len(bodies) / args.seconds:.0f} requests/s), {args.clients} concurrent clients"
    )
    print(
        f"bot: BOT_POST_INTERVAL_S={bot.settings.bot_post_interval_s:g}; emulator limit on "
        f"chat.postMessage: burst {DEFAULT_BURST}, then {DEFAULT_PER_SECOND:g}/s per channel"
    )
    health = [Body(body.at, b"", 0, False) for body in bodies]
    base, _, _ = asyncio.run(
        send_all(f"{bot.http_url}/healthz", health, args.clients, method="GET")
    )
    sent, probes, since = asyncio.run(
        send_all(
            f"{bot.http_url}/alertmanager",
            bodies,
            args.clients,
            probe_url=f"{bot.http_url}/healthz",
        )
    )
    storm_s = max(s.started + s.latency for s in sent)
    failed = Counter(s.status for s in sent if s.status != 200)
    late = max(s.started - s.scheduled for s in sent)
    rooted = asyncio.run(
        wait_for(
            database_url,
            "SELECT count(*) FROM incidents WHERE summary_ts IS NOT NULL",
            args.groups,
            max(120.0, args.seconds * 6),
        )
    )
    roots = sorted(o for o, ok, top in post_calls(emulator, since) if ok and top)
    roots_at = roots[-1] if rooted and roots else None
    incidents = asyncio.run(scalar(database_url, "SELECT count(*) FROM incidents"))
    stored = asyncio.run(scalar(database_url, "SELECT count(*) FROM alerts"))
    received = asyncio.run(scalar(database_url, "SELECT sum(received_count) FROM alerts"))
    still_firing = asyncio.run(
        scalar(database_url, "SELECT count(*) FROM alerts WHERE status = 'firing'")
    )

    print(
        f"sent in {storm_s:.1f} s: {len(sent)} requests, "
        f"{sum(1 for s in sent if s.status == 200)} answered 200"
        + (f", others {dict(failed)}" if failed else "")
        + f"; the clients were at most {ms(late)} behind schedule"
    )
    print(
        f"incidents created: {incidents} (must be {args.groups}: {check(incidents == args.groups)})"
    )
    print(
        f"alerts stored: {stored} (must be {args.alerts}: {check(stored == args.alerts)}); "
        f"{still_firing} firing, {stored - still_firing} resolved; "
        f"{received} deliveries of them recorded"
    )
    print("intake latency (client: request sent -> answer read):")
    _, base_p99 = latency_line(
        "baseline GET /healthz, same schedule, idle", [s.latency for s in base]
    )
    base_p50 = percentile([s.latency for s in base], 0.5)
    p50, p99 = latency_line("POST /alertmanager", [s.latency for s in sent])
    if probes:
        latency_line(f"GET /healthz during the storm, every {PROBE_EVERY_S * 1000:.0f} ms", probes)
    print(
        f"  ratio /alertmanager : /healthz = {p50 / base_p50:.1f}x at p50, "
        f"{p99 / base_p99:.1f}x at p99; p99 {ms(p99)} (target < 20 ms: {check(p99 < 0.020)})"
    )
    if roots_at is None:
        print(f"every incident's root posted: NOT within the wait ({len(roots)} roots posted)")
    else:
        print(
            f"every incident's root posted {roots_at:.1f} s after the first alert was sent "
            f"(target < 30 s: {check(roots_at < 30.0)}); "
            f"the first root after {roots[0]:.1f} s"
        )
    drained_at = None
    if asyncio.run(
        wait_for(
            database_url,
            "SELECT (SELECT count(*) FROM audit_outbox WHERE posted_ts IS NULL) = 0"
            " AND (SELECT count(*) FROM incidents WHERE diagnosis_state <> 'done') = 0"
            " AND (SELECT count(*) FROM incidents WHERE alerts_changed_at > alerts_posted_at)"
            " = 0",
            1,
            args.drain,
        )
    ):
        drained_at = time.time() - since
    outbox = asyncio.run(scalar(database_url, "SELECT count(*) FROM audit_outbox"))
    if drained_at is None:
        print(f"thread posts (diagnoses, audit lines, notes): still pending after {args.drain:g} s")
    else:
        print(
            f"every thread post (diagnoses, {outbox} audit lines, notes) and root edit done "
            f"{drained_at:.1f} s after the first alert"
        )
    report_posts(emulator, since, roots_at)


if __name__ == "__main__":
    sys.exit(main())
