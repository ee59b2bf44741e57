"""The approval flow (issue 5): N incidents, each with a CB-A2 request approved by Bob.

Per request, the time from Bob's signed Approve click to the request row reaching
``succeeded`` (p50/p99, with where it goes: click → approved → executing → succeeded), and
the time until every audit event of those incidents has reached its Slack thread under
the emulator's per-channel chat.postMessage limit (a burst of 3, then 1 post/s, like
Slack's). Baseline, same run: one fresh run of the circuit-breaker runbook on uncached
sources (``action_context``, the guard re-evaluation every execution does), p50 of 20.

The lab (scenario ``circuit-breaker-open/recovered-10m``: real Prometheus, PostgreSQL, moto,
the Kubernetes fake) runs in its own process, as in ``bench.diagnose``. In that process a
rollout restart is recorded (annotation, revision) but leaves the agents as they were, so
the breakers stay stuck open and the guard allows CB-A2 for every one of the N incidents;
with the lab's own physics the first restart closes them and the other N - 1 requests are
rightly refused. The bot (embedded PostgreSQL, HTTP mode), with ``BOT_RESTART_COOLDOWN_S=0``
and verification an hour away, runs in its own event-loop thread; the Slack emulator and
the clicks run in this process.

Set-up is direct, not N diagnoses through Slack: each incident's root message is posted and
the incident opened (``IncidentStore``), the request created (``ApprovalStore``, with the
preview of ``preview_action``) and its message posted in the thread as the listener does.
The incidents are spread round-robin over ``--channels`` channels (default 16: the 800
audit posts of 200 approvals take 47 s at best at 1 post/s per channel, after a burst of 3
each). Set-up runs without the rate limit; 10 extra incidents are then approved one at a
time (the unloaded click → succeeded time). Once their audit events are posted the limit is
switched on and the N clicks start, at most ``--concurrency`` (10) requests between click
and outcome at a time.
Run with ``python -m bench.approvals`` (``--incidents 20`` for a quick run).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.common import LoopThread, percentile
from bot.approvals import ApprovalStore, NewRequest
from bot.deps import Deps
from bot.executors.execution import action_context, preview_action
from bot.incidents import IncidentStore
from bot.models import Risk
from bot.render.approval import request_message
from bot.runtime import BotRuntime
from bot.settings import Settings
from bot.store.embedded import EmbeddedPostgres
from bot.subcommands.diagnose import diagnosis_event
from bot.subcommands.incident import refresh_root_message
from handlers.base import Target
from handlers.registry import RUNBOOKS
from lab.slack import SlackDriver, SlackEmulator
from lab.slack.faults import DEFAULT_BURST, DEFAULT_PER_SECOND

SCENARIO = ("circuit-breaker-open", "recovered-10m")
RUNBOOK, ACTION = "circuit-breaker", "CB-A2"
REQUESTER, APPROVER = "U0ALICE", "U0BOB"
BASELINE_RUNS = 20
SETUP_CONCURRENCY = 20
SERIAL = 10
POLL_S = 0.01
DRAIN_TIMEOUT_S = 600.0
OUTCOMES = ("succeeded", "failed", "refused", "denied", "expired")


@dataclass(frozen=True)
class Pending:
    """A request waiting for its second approver, and where its buttons are."""

    request_id: str
    channel: str
    message_ts: str


@dataclass(frozen=True)
class Outcome:
    """One approved request: when it was clicked and when each state was reached."""

    request_id: str
    state: str
    clicked: datetime
    approved: datetime | None
    executing: datetime | None
    finished: datetime

    @property
    def latency(self) -> float:
        """Seconds from the click to the outcome."""
        return (self.finished - self.clicked).total_seconds()


# -- the lab, in its own process ----------------------------------------------------------
def serve_lab(env_file: Path) -> int:
    """The child process: the lab on the scenario with stuck breakers, until SIGTERM."""
    from lab.stack import Lab
    from lab.world import Agent

    lab = Lab("runbook")
    lab.start(*SCENARIO)

    def restart_leaves_agent(agent: Agent) -> None:
        """The pod keeps running as it was (no log line: CB-1 reads the breaker's)."""

    # The restart is still recorded on the Deployment (annotation, revision), only its
    # effect on the pods is dropped: every incident's guard keeps seeing a stuck breaker.
    lab.world._restart = restart_leaves_agent  # type: ignore[method-assign]
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(lab.env().items()))
    partial = env_file.with_suffix(".partial")
    partial.write_text(exports)
    partial.rename(env_file)
    try:
        stopped.wait()
    finally:
        lab.stop()
    return 0


def start_lab(directory: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """This module's ``--serve-lab`` in a child process; the lab's environment."""
    env_file = directory / "lab.env"
    command = [sys.executable, "-m", "bench.approvals", "--serve-lab", str(env_file)]
    child = subprocess.Popen(command, stderr=subprocess.DEVNULL)  # noqa: S603 - our own module
    deadline = time.monotonic() + 120
    while not env_file.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if not env_file.exists():
        child.kill()
        raise RuntimeError("the lab did not come up")
    pairs = re.findall(r"^export (\w+)=(.*)$", env_file.read_text(), re.M)
    return child, {key: shlex.split(value)[0] for key, value in pairs}


# -- set-up: incidents, requests and their messages ---------------------------------------
async def create_requests(deps: Deps, channels: list[str], count: int) -> list[Pending]:
    """``count`` open incidents, each with a pending CB-A2 request by Alice in its thread."""
    diagnosis = (await action_context(deps, RUNBOOK, Target())).diagnosis
    spec = next(a for a in RUNBOOKS[RUNBOOK].actions if a.id == ACTION)
    incidents, approvals = IncidentStore(deps.db), ApprovalStore(deps.db)
    ttl = timedelta(seconds=deps.settings.bot_request_ttl_s)
    previews: list[dict[str, Any]] = []

    async def one(number: int) -> Pending:
        channel = channels[number % len(channels)]
        root = await deps.slack.chat_postMessage(channel=channel, text=f"{diagnosis.title}")
        incident = await incidents.open(
            RUNBOOK,
            diagnosis.title,
            diagnosis.status,
            channel,
            REQUESTER,
            thread_ts=str(root["ts"]),
            diagnosis=diagnosis_event(diagnosis),
        )
        await refresh_root_message(deps, incident)
        if not previews:  # what the modal showed: the same target for every incident
            previews.append((await preview_action(deps, incident.id, RUNBOOK, ACTION)).to_json())
        preview = previews[0]
        new = NewRequest(
            incident_id=incident.id,
            runbook=RUNBOOK,
            action_id=ACTION,
            risk=Risk(preview["risk"]) if preview.get("risk") else spec.risk,
            target=str(preview["key"]),
            requested_by=REQUESTER,
            reason="breaker stuck open after S3 recovered",
            preview=preview,
        )
        request = await approvals.create(new, ttl)
        payload = request_message(request).to_message()
        posted = await deps.slack.chat_postMessage(
            channel=channel, thread_ts=incident.thread_ts, **payload
        )
        await approvals.set_message(request.id, str(posted["ts"]))
        return Pending(request.id, channel, str(posted["ts"]))

    pending = [await one(0)]
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def gated(number: int) -> Pending:
        async with gate:
            return await one(number)

    pending += await asyncio.gather(*(gated(n) for n in range(1, count)))
    return pending


async def baseline(deps: Deps) -> list[float]:
    """Seconds of one fresh ``action_context`` (the runbook on uncached sources), x20."""
    await action_context(deps, RUNBOOK, Target())  # warm-up
    timings = []
    for _ in range(BASELINE_RUNS):
        started = time.perf_counter()
        await action_context(deps, RUNBOOK, Target())
        timings.append(time.perf_counter() - started)
    return timings


# -- the database, read from this process -------------------------------------------------
async def scalar(database_url: str, query: str, *params: Any) -> Any:
    """The first column of the first row of ``query``."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(query, params)
        row = await cursor.fetchone()
    return None if row is None else row[0]


async def wait_until_posted(database_url: str, limit_s: float) -> float:
    """Poll until no audit event waits for Slack; the monotonic time it was seen."""
    deadline = time.monotonic() + limit_s
    query = "SELECT count(*) FROM audit_outbox WHERE posted_ts IS NULL"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            cursor = await conn.execute(query)
            row = await cursor.fetchone()
            if row is not None and row[0] == 0:
                return time.monotonic()
            await asyncio.sleep(0.1)
    raise RuntimeError(f"audit events still unposted after {limit_s:.0f} s")


# -- the clicks ---------------------------------------------------------------------------
async def approve_all(
    driver: SlackDriver, database_url: str, pending: list[Pending], concurrency: int
) -> list[Outcome]:
    """Bob clicks Approve on every request, ``concurrency`` outstanding at a time; each slot
    is held from the click until the request has an outcome."""
    outstanding: dict[str, asyncio.Future[None]] = {}
    clicked: dict[str, datetime] = {}
    stop = asyncio.Event()

    async def watch() -> None:
        query = "SELECT id FROM action_requests WHERE id = ANY(%s) AND state = ANY(%s)"
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            while not stop.is_set():
                if outstanding:
                    cursor = await conn.execute(query, (list(outstanding), list(OUTCOMES)))
                    for (request_id,) in await cursor.fetchall():
                        future = outstanding.pop(request_id, None)
                        if future is not None and not future.done():
                            future.set_result(None)
                await asyncio.sleep(POLL_S)

    gate = asyncio.Semaphore(concurrency)

    async def click(item: Pending) -> None:
        async with gate:
            done = asyncio.get_running_loop().create_future()
            outstanding[item.request_id] = done
            clicked[item.request_id] = datetime.now(UTC)
            response = await driver.block_action(
                "approve-request",
                item.request_id,
                user_id=APPROVER,
                channel_id=item.channel,
                message_ts=item.message_ts,
            )
            if response.status != 200:
                raise RuntimeError(f"the click on {item.request_id} got HTTP {response.status}")
            await asyncio.wait_for(done, timeout=60)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(*(click(item) for item in pending))
    finally:
        stop.set()
        await watcher
    return await outcomes(database_url, clicked)


async def outcomes(database_url: str, clicked: dict[str, datetime]) -> list[Outcome]:
    """Each request's states with their times; the outcome's time is its audit event's."""
    query = """
        SELECT r.id, r.state, r.decided_at, r.executed_at, e.at
        FROM action_requests r JOIN audit_events e
          ON e.body->>'request' = r.id AND e.kind = 'action.' || r.state
        WHERE r.id = ANY(%s)
    """
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(query, (list(clicked),))
        rows = await cursor.fetchall()
    return [Outcome(row[0], row[1], clicked[row[0]], row[2], row[3], row[4]) for row in rows]


# -- report -------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    """Milliseconds, for a line of the report."""
    return f"{seconds * 1000:.0f} ms"


def spread(name: str, values: list[float]) -> None:
    """One line: p50, p99 and max of ``values`` (seconds)."""
    print(
        f"  {name:<34} p50 {ms(percentile(values, 0.5)):>8}  p99 {ms(percentile(values, 0.99)):>8}"
        f"  max {ms(max(values)):>8}"
    )


def report_clicks(results: list[Outcome], wall: float, concurrency: int) -> float:
    """Click → succeeded latencies and their parts; returns the p50 in seconds."""
    states: dict[str, int] = {}
    for result in results:
        states[result.state] = states.get(result.state, 0) + 1
    done = [r for r in results if r.state == "succeeded"]
    print(
        f"{len(results)} approvals by {APPROVER} (concurrency {concurrency}): outcomes {states}; "
        f"wall {wall:.1f} s ({len(results) / wall:.1f} approvals/s)"
    )
    if not done:
        raise RuntimeError("no request succeeded")
    total = [r.latency for r in done]
    spread("click -> succeeded", total)
    steps = [
        (
            (r.approved - r.clicked).total_seconds(),
            (r.executing - r.approved).total_seconds(),
            (r.finished - r.executing).total_seconds(),
        )
        for r in done
        if r.approved is not None and r.executing is not None
    ]
    spread("  click -> approved", [step[0] for step in steps])
    spread("  approved -> executing (guard)", [step[1] for step in steps])
    spread("  executing -> succeeded (PATCH)", [step[2] for step in steps])
    return percentile(total, 0.5)


def audit_posts(emulator: SlackEmulator, since: datetime) -> tuple[int, int, datetime | None]:
    """Audit lines posted since ``since`` (HTTP 200), 429 answers, the last post's time."""
    posted, limited, last = 0, 0, None
    for call in emulator.calls_to("chat.postMessage"):
        at = call.at if call.at.tzinfo else call.at.replace(tzinfo=UTC)
        if at < since or not str(call.params.get("text", "")).startswith("#"):
            continue
        if call.http_status == 429:
            limited += 1
        elif call.ok:
            posted += 1
            last = at if last is None or at > last else last
    return posted, limited, last


def thread_audit_lines(emulator: SlackEmulator, channels: list[str]) -> int:
    """Audit lines (``#<event id> ...``) found in the channels' threads."""
    return sum(
        1
        for channel in channels
        for message in emulator.messages(channel, include_replies=True)
        if message.get("thread_ts") not in (None, message.get("ts"))
        and re.match(r"#\d+ ", str(message.get("text", "")))
    )


# -- main ---------------------------------------------------------------------------------
def bot_settings(emulator: SlackEmulator, database_url: str, env: dict[str, str]) -> Settings:
    """The bot on the lab: Alice and Bob approve, no cooldown, verification an hour away."""
    for key, value in env.items():
        if key.startswith("AWS_"):
            os.environ[key] = value  # boto3 reads them from the environment
    values: dict[str, Any] = {k.lower(): v for k, v in env.items() if not k.startswith("AWS_")}
    values.update(
        slack_bot_token=emulator.bot_token,
        slack_signing_secret=emulator.signing_secret,
        slack_api_url=emulator.api_url,
        bot_database_url=database_url,
        bot_http_host="127.0.0.1",
        bot_http_port=0,
        bot_log_level="ERROR",
        bot_approvers=f"{REQUESTER},{APPROVER}",
        bot_restart_cooldown_s=0,
        bot_verify_delays_s="3600",
    )
    return Settings.model_validate(values)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """``--incidents``, ``--channels``, ``--concurrency`` (and the lab child's flag)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--serve-lab", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve_lab is not None:
        return serve_lab(args.serve_lab)
    logging.basicConfig(level=logging.ERROR)
    began = time.monotonic()
    directory = Path(tempfile.mkdtemp(prefix="bench-approvals-"))
    child, env = start_lab(directory)
    emulator = SlackEmulator().start()
    emulator.set_rate_limit(burst=None)
    channels = [f"C0BENCH{n:02d}" for n in range(args.channels)]
    for channel in channels:
        emulator.add_channel(channel, channel.lower())
    postgres = EmbeddedPostgres(directory / "bot-db", ephemeral=True)
    database_url = postgres.start()
    servers = LoopThread()
    try:
        bot = BotRuntime(bot_settings(emulator, database_url, env))
        servers.run(bot.start())
        measure(args, bot, servers, emulator, channels, database_url)
        servers.run(bot.stop())
    finally:
        servers.close()
        postgres.stop()
        emulator.stop()
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak RSS of this process (bot + Slack emulator + clicks): {peak_mb:.0f} MB; "
        f"whole benchmark {time.monotonic() - began:.0f} s"
    )
    return 0


def measure(
    args: argparse.Namespace,
    bot: BotRuntime,
    servers: LoopThread,
    emulator: SlackEmulator,
    channels: list[str],
    database_url: str,
) -> None:
    """Set up, time the baseline, click, wait for the audit trail, and print it all."""
    started = time.monotonic()
    count = args.incidents + SERIAL
    pending: list[Pending] = servers.run(create_requests(bot.deps, channels, count))
    asyncio.run(wait_until_posted(database_url, DRAIN_TIMEOUT_S))
    print(
        f"set-up: {count} incidents ({SERIAL} for the unloaded sample) over {len(channels)} "
        f"channels, each with a pending {ACTION} request by {REQUESTER}; "
        f"{time.monotonic() - started:.1f} s"
    )
    timings: list[float] = servers.run(baseline(bot.deps))
    base_p50 = statistics.median(timings)
    print(
        f"baseline: one fresh {RUNBOOK} runbook run (action_context) x{BASELINE_RUNS}: "
        f"p50 {ms(base_p50)}, min {ms(min(timings))}, max {ms(max(timings))}"
    )

    def click(items: list[Pending], concurrency: int) -> list[Outcome]:
        async def run() -> list[Outcome]:
            async with SlackDriver(emulator, bot_url=f"{bot.http_url}/slack/events") as driver:
                return await approve_all(driver, database_url, items, concurrency)

        return asyncio.run(run())

    serial = click(pending[:SERIAL], 1)
    serial_p50 = percentile([r.latency for r in serial if r.state == "succeeded"], 0.5)
    print(
        f"unloaded: {SERIAL} approvals one at a time: click -> succeeded p50 {ms(serial_p50)} "
        f"= {serial_p50 / base_p50:.1f} x the baseline"
    )
    asyncio.run(wait_until_posted(database_url, DRAIN_TIMEOUT_S))
    setup_events = int(asyncio.run(scalar(database_url, "SELECT count(*) FROM audit_outbox")))
    emulator.set_rate_limit(burst=DEFAULT_BURST, per_second=DEFAULT_PER_SECOND)
    first_click = datetime.now(UTC)
    clicks_began = time.monotonic()
    results = click(pending[SERIAL:], args.concurrency)
    wall = time.monotonic() - clicks_began
    p50 = report_clicks(results, wall, args.concurrency)
    print(f"  click -> succeeded p50 = {p50 / base_p50:.1f} x the baseline runbook run")
    drained = asyncio.run(wait_until_posted(database_url, DRAIN_TIMEOUT_S))
    events = int(asyncio.run(scalar(database_url, "SELECT count(*) FROM audit_outbox")))
    fresh = events - setup_events
    posted, limited, last = audit_posts(emulator, first_click)
    span = (last - first_click).total_seconds() if last else drained - clicks_began
    limit = len(channels) * DEFAULT_PER_SECOND
    in_threads = thread_audit_lines(emulator, channels)
    print(
        f"audit trail: {fresh} events of the approvals, all in their threads "
        f"{span:.1f} s after the first click ({drained - clicks_began - wall:.1f} s after "
        f"the last outcome)"
    )
    print(
        f"  {posted / span:.2f} posts/s achieved vs the limit {limit:g}/s "
        f"({len(channels)} channels x {DEFAULT_PER_SECOND:g}/s, burst {DEFAULT_BURST}); "
        f"best possible ~{max(0.0, fresh - DEFAULT_BURST * len(channels)) / limit:.1f} s; "
        f"{limited} posts answered 429"
    )
    print(
        f"  Slack threads hold {in_threads} audit lines for {events} audit events "
        f"({'match' if in_threads == events else 'MISMATCH'})"
    )


if __name__ == "__main__":
    sys.exit(main())
