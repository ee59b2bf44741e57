"""One thread pool for the blocking SDKs (kubernetes, boto3), sized for a diagnosis.

``asyncio.to_thread`` uses the loop's default pool (a handful of threads on a small
machine); ``diagnose all`` issues dozens of blocking calls at once, which would queue
behind each other and make the slowest check wait for the others.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

SOURCE_THREADS = 32
_EXECUTOR = ThreadPoolExecutor(max_workers=SOURCE_THREADS, thread_name_prefix="source")


async def in_thread(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking call on the sources' pool and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_EXECUTOR, functools.partial(function, *args, **kwargs))
