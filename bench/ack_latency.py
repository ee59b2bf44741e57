"""Ack latency of `/streamhouse help`: our bot vs a bare Bolt app, same machine, same run.

500 signed requests at concurrency 20 against each, after a warm-up. Both servers run in
their own event-loop thread and call the same Slack emulator; ours also records every
delivery in PostgreSQL (embedded) for retry de-duplication. Prints p50/p99 and the ratio.
Run with `python -m bench.ack_latency`.
Targets (issue 2): p99 ratio <= 1.3 and p99 under 50 ms on this machine.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bench.common import LoopThread, load, signed_command, summary
from bot.runtime import BotRuntime
from bot.settings import Settings
from bot.store.embedded import EmbeddedPostgres
from lab.slack import SlackEmulator

TOTAL, CONCURRENCY, WARMUP, ROUNDS = 500, 20, 50, 3


async def start_bare_bolt(emulator: SlackEmulator) -> tuple[web.AppRunner, int]:
    """A Bolt app whose only listener acks, served by aiohttp on a free port."""
    app = AsyncApp(
        signing_secret=emulator.signing_secret,
        client=AsyncWebClient(token=emulator.bot_token, base_url=emulator.api_url),
    )

    @app.command("/streamhouse")
    async def only_ack(ack: AsyncAck) -> None:
        await ack()

    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, int(port)


def measure(name: str, url: str, emulator: SlackEmulator) -> dict[str, float]:
    """Warm up, then load ``url`` and print its latency summary."""

    def request() -> tuple[bytes, dict[str, str]]:
        return signed_command(emulator.signing_secret, "help", emulator.new_response_url())

    asyncio.run(load(url, request, WARMUP, CONCURRENCY))
    return summary(name, asyncio.run(load(url, request, TOTAL, CONCURRENCY)))


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    emulator = SlackEmulator().start()
    postgres = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="bench-ack-")), ephemeral=True)
    database_url = postgres.start()
    servers = LoopThread()
    try:
        settings = Settings.model_validate(
            {
                "slack_bot_token": emulator.bot_token,
                "slack_signing_secret": emulator.signing_secret,
                "slack_api_url": emulator.api_url,
                "bot_database_url": database_url,
                "bot_http_host": "127.0.0.1",
                "bot_http_port": 0,
                "bot_log_level": "WARNING",
            }
        )
        bot = BotRuntime(settings)
        servers.run(bot.start())
        bare_runner, bare_port = servers.run(start_bare_bolt(emulator))
        print(f"{TOTAL} signed '/streamhouse help' requests, concurrency {CONCURRENCY}")
        print(f"{ROUNDS} interleaved rounds each (p99 of 500 samples is noisy: medians decide)")
        bare_url = f"http://127.0.0.1:{bare_port}/slack/events"
        rounds = [
            (
                measure("bare Bolt AsyncApp (ack only)", bare_url, emulator),
                measure("streamhouse-bot help", f"{bot.http_url}/slack/events", emulator),
            )
            for _ in range(ROUNDS)
        ]
        bare_p99 = statistics.median(b["p99_ms"] for b, _ in rounds)
        ours_p99 = statistics.median(o["p99_ms"] for _, o in rounds)
        ours_p50 = statistics.median(o["p50_ms"] for _, o in rounds)
        bare_p50 = statistics.median(b["p50_ms"] for b, _ in rounds)
        print(
            f"median p50: bare {bare_p50:.1f} ms, ours {ours_p50:.1f} ms; "
            f"median p99: bare {bare_p99:.1f} ms, ours {ours_p99:.1f} ms"
        )
        print(
            f"p99 ratio ours/bare = {ours_p99 / bare_p99:.2f} (target <= 1.3); "
            f"ours p99 {ours_p99:.1f} ms (target < 50 ms)"
        )
        servers.run(bot.stop())
        servers.run(bare_runner.cleanup())
    finally:
        servers.close()
        postgres.stop()
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
