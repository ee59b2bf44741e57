"""EmbeddedPostgres: a real server that stops for good, keeps data, and survives crashes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bot.store import EmbeddedPostgres, EmbeddedServerError
from tests.fixtures.postgres import new_temp_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
# Starts a server on argv[1], writes note argv[2], prints the postmaster's pid and dies
# without stop(), as a crashed bot would.
CRASHING_OWNER = """
import os, sys, psycopg
from pathlib import Path
from bot.store import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1]))
with psycopg.connect(server.start(), autocommit=True) as conn:
    conn.execute("INSERT INTO notes VALUES (%s)", (sys.argv[2],))
print(server.pid, flush=True)
os._exit(1)
"""


@pytest.fixture
def data_dir(pg_server: EmbeddedPostgres) -> Iterator[Path]:
    """A fresh /tmp dir for a test's own server (pg_server: skip where PostgreSQL can't run)."""
    path = new_temp_dir("streamhouse-test-embedded-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster_dir(pg_server: EmbeddedPostgres) -> Iterator[Path]:
    """A persistent cluster with a ``notes`` table, stopped; initdb runs once per module.

    Tests start and stop their own server on it and tell their rows apart by unique text.
    """
    path = new_temp_dir("streamhouse-test-cluster-")
    with EmbeddedPostgres(path) as server, psycopg.connect(server.url()) as conn:
        conn.execute("CREATE TABLE notes (body text)")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def unique_note() -> str:
    return f"note-{uuid.uuid4().hex}"


def process_exists(pid: int) -> bool:
    """Whether pid is a live process (a zombie awaiting its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def write_note(url: str, body: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (body text)")
        conn.execute("INSERT INTO notes VALUES (%s)", (body,))


def read_notes(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT body FROM notes")]


def test_stop_ends_the_postmaster_process(cluster_dir: Path) -> None:
    """After stop() the postmaster has exited and been reaped, not just been asked to."""
    server = EmbeddedPostgres(cluster_dir)
    write_note(server.start(), unique_note())
    pid = server.pid
    assert pid is not None
    assert process_exists(pid)
    server.stop()
    assert not server.is_running()
    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_restarting_on_the_same_dir_keeps_the_data(cluster_dir: Path) -> None:
    """A second server on the same data dir sees what the first one wrote."""
    note = unique_note()
    with EmbeddedPostgres(cluster_dir) as first:
        write_note(first.url(), note)
    with EmbeddedPostgres(cluster_dir) as second:
        assert note in read_notes(second.url())


def test_a_server_left_by_a_crashed_owner_is_replaced_and_data_kept(cluster_dir: Path) -> None:
    """A postmaster orphaned by a crash is stopped and a fresh one serves the same data."""
    note = unique_note()
    crashed = subprocess.run(  # noqa: S603 -- our own interpreter and script
        [sys.executable, "-c", CRASHING_OWNER, str(cluster_dir), note],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    orphan_pid = int(crashed.stdout.split()[0])
    assert process_exists(orphan_pid), crashed.stderr
    with EmbeddedPostgres(cluster_dir) as server:
        assert not process_exists(orphan_pid)
        assert server.pid != orphan_pid
        assert note in read_notes(server.url())


def test_stale_lock_files_naming_another_process_do_not_block_start(cluster_dir: Path) -> None:
    """Lock files naming a live non-PostgreSQL pid are dropped; that process is untouched."""
    pgdata = cluster_dir / "pgdata"
    # Owned like the cluster: PostgreSQL itself ignores pids it may not signal (EPERM).
    owner = pgdata.stat().st_uid if os.geteuid() == 0 else None
    with subprocess.Popen(["sleep", "30"], user=owner) as bystander:  # noqa: S607 -- coreutils
        try:
            # What a SIGKILLed postmaster leaves behind, its pid now reused by the bystander.
            for name in ("postmaster.pid", ".s.PGSQL.5432.lock"):
                (pgdata / name).write_text(f"{bystander.pid}\n{pgdata}\n0\n5432\n")
            with EmbeddedPostgres(cluster_dir) as server:
                write_note(server.url(), unique_note())
            assert bystander.poll() is None
        finally:
            bystander.kill()


def test_a_second_owner_of_a_running_dir_is_refused(pg_server: EmbeddedPostgres) -> None:
    """While one server runs in a dir, another instance there fails clearly and harmlessly."""
    with pytest.raises(EmbeddedServerError, match="in use by another process"):
        EmbeddedPostgres(pg_server.data_dir).start()
    assert pg_server.is_running()
    with psycopg.connect(pg_server.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_ephemeral_server_removes_its_data_dir_on_stop(data_dir: Path) -> None:
    """An ephemeral server's data dir exists while it runs and is gone after stop()."""
    server = EmbeddedPostgres(data_dir / "eph", ephemeral=True)
    write_note(server.start(), "temporary")
    assert (data_dir / "eph" / "pgdata" / "PG_VERSION").exists()
    server.stop()
    assert not (data_dir / "eph").exists()


def test_tcp_port_serves_a_loopback_tcp_url(data_dir: Path) -> None:
    """With tcp_port=0 the server picks a free port and the URL connects over TCP."""
    with EmbeddedPostgres(data_dir, ephemeral=True, tcp_port=0) as server:
        url = server.url("postgres")
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        with psycopg.connect(url) as conn:
            assert conn.info.host == "127.0.0.1"


def test_missing_binaries_raise_a_store_error_naming_them(data_dir: Path) -> None:
    """A bin dir without PostgreSQL fails with the path, and leaves the dir free for later."""
    empty_bin = data_dir / "no-binaries"
    empty_bin.mkdir()
    server = EmbeddedPostgres(data_dir / "cluster", bin_dir=empty_bin)
    for _ in range(2):  # the second try proves the first released the owner lock
        with pytest.raises(EmbeddedServerError, match=re.escape(str(empty_bin / "initdb"))):
            server.start()


def test_an_unusable_data_dir_raises_a_store_error(data_dir: Path) -> None:
    """A data dir that cannot be created (a file is in the way) fails with a StoreError."""
    blocker = data_dir / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(EmbeddedServerError, match=r"cannot run PostgreSQL in .*a-file/store"):
        EmbeddedPostgres(blocker / "store").start()
