"""Polling helpers: wait until a condition over emulator state becomes true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


def poll(predicate: Callable[[], _T], *, timeout: float, interval: float) -> _T:
    """Call `predicate` until it returns something truthy; return it or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout}s (last: {value!r})")
        time.sleep(interval)


async def apoll(predicate: Callable[[], _T], *, deadline_s: float, interval: float) -> _T:
    """Like `poll`, sleeping with asyncio so the caller's event loop keeps running."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {deadline_s}s (last: {value!r})")
        await asyncio.sleep(interval)
