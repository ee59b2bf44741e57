"""An aiohttp application on 127.0.0.1:<free port> in its own thread and event loop.

Every lab server (the Slack emulator, the Kubernetes fake, the metrics exporter, the S3
fault layer, the schema registry) runs this way, so neither a test's loop nor the bot's
ever runs lab code.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

_T = TypeVar("_T")


class ServerThread:
    """Runs an aiohttp application on 127.0.0.1:<free port> in its own thread and loop."""

    def __init__(
        self, make_app: Callable[[str], web.Application], name: str = "lab-server"
    ) -> None:
        self._make_app = make_app
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self.base_url = ""

    def start(self, timeout: float = 5.0) -> None:
        """Bind, start serving and return once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run,
            args=(self._loop, sock, ready, failure),
            name=self._name,
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"{self._name} did not start in time")
        if failure:
            self._thread.join(timeout)
            self._loop = self._thread = None
            raise RuntimeError(f"{self._name} failed to start") from failure[0]

    def on_stop(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` on the server loop before the server shuts down."""
        self._on_stop.append(callback)

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        ready: threading.Event,
        failure: list[BaseException],
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(sock))
        except Exception as exc:  # handed to start(), which raises it in the caller
            failure.append(exc)
            ready.set()
            loop.close()
            return
        loop.call_soon(ready.set)
        loop.run_forever()
        loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        app = self._make_app(self.base_url)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def _require_loop(self, coro: Coroutine[Any, Any, Any]) -> asyncio.AbstractEventLoop:
        if self._loop is None or not self._loop.is_running():
            coro.close()
            raise RuntimeError(f"{self._name} is not running")
        return self._loop

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None) -> _T:
        """Run a coroutine on the server loop from another thread, blocking for it."""
        loop = self._require_loop(coro)
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    async def arun(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run a coroutine on the server loop and await it from the caller's loop."""
        loop = self._require_loop(coro)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def stop(self, timeout: float = 5.0) -> None:
        """Close sockets, stop serving and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._loop = self._thread = None

    async def _shutdown(self) -> None:
        for callback in self._on_stop:
            await callback()
        if self._runner is not None:
            await self._runner.cleanup()
