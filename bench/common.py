"""Shared pieces of the benchmarks: servers in their own threads, percentiles, signed load."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier


class LoopThread:
    """An event loop in a background thread, so a server never shares the load generator's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Awaitable[Any]) -> Any:
        """Run ``coroutine`` on the thread's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the loop and the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def summary(name: str, latencies: list[float]) -> dict[str, float]:
    """p50/p99/mean in milliseconds, printed on one line."""
    result = {
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }
    print(
        f"{name:<28} n={len(latencies):<5} p50={result['p50_ms']:7.2f} ms  "
        f"p99={result['p99_ms']:7.2f} ms  mean={result['mean_ms']:7.2f} ms"
    )
    return result


def signed_command(secret: str, text: str, response_url: str) -> tuple[bytes, dict[str, str]]:
    """A slash command body and the headers Slack would send with it."""
    body = urlencode(
        {
            "token": "legacy",
            "team_id": "T0EMULATOR",
            "channel_id": "C0GENERAL",
            "user_id": "U0ALICE",
            "command": "/streamhouse",
            "text": text,
            "response_url": response_url,
            "trigger_id": uuid.uuid4().hex,
        }
    ).encode()
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }
    return body, headers


async def load(
    url: str, make_request: Callable[[], tuple[bytes, dict[str, str]]], total: int, concurrency: int
) -> list[float]:
    """Send ``total`` requests with at most ``concurrency`` in flight; latencies in seconds."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            body, headers = make_request()
            async with gate:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one() for _ in range(total)))
    return latencies
