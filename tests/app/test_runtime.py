"""The bot as a process and its HTTP endpoints: embedded database, readiness, metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from bot.runtime import BotRuntime
from lab.slack import SlackDriver, SlackEmulator
from tests.app.test_settings import clean_env
from tests.fixtures.bot import make_settings


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postmaster_pid(data_dir: Path) -> int | None:
    """The PID recorded by the running PostgreSQL under ``data_dir``, if any."""
    for pid_file in data_dir.rglob("postmaster.pid"):
        return int(pid_file.read_text().splitlines()[0])
    return None


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def wait_ready(url: str, proc: subprocess.Popen[str], within: float = 60.0) -> int:
    """Poll ``/readyz`` until it answers 200 (or the process dies, or time runs out)."""
    deadline = time.monotonic() + within
    status = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            pass
        time.sleep(0.2)
    return status


def test_run_without_database_url_uses_embedded_postgres(
    slack_emulator: SlackEmulator,
) -> None:
    """`streamhouse-bot run` with no BOT_DATABASE_URL is ready on its own PostgreSQL, and
    stopping the bot stops that database."""
    data_dir = Path(tempfile.mkdtemp(prefix="shbot-embedded-"))
    port = free_port()
    env = clean_env(
        SLACK_BOT_TOKEN=slack_emulator.bot_token,
        SLACK_SIGNING_SECRET=slack_emulator.signing_secret,
        SLACK_API_URL=slack_emulator.api_url,
        BOT_DATA_DIR=str(data_dir),
        BOT_HTTP_HOST="127.0.0.1",
        BOT_HTTP_PORT=str(port),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_ready(f"http://127.0.0.1:{port}", proc) == 200
        pid = postmaster_pid(data_dir)
        assert pid is not None
        assert process_alive(pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert str(data_dir) in output  # the start-up log says where the data lives
    assert not process_alive(pid)


async def test_readyz_healthz_and_metrics(bot: BotRuntime, driver: SlackDriver) -> None:
    """`/healthz` and `/readyz` answer 200; `/metrics` counts the listener that ran."""
    await driver.command("help")
    async with aiohttp.ClientSession(base_url=bot.http_url) as session:
        async with session.get("/healthz") as health:
            assert health.status == 200
        async with session.get("/readyz") as ready:
            assert ready.status == 200
            assert (await ready.json())["database"].startswith("ok")
        async with session.get("/metrics") as metrics:
            text = await metrics.text()
    assert 'streamhouse_bot_slack_requests_total{listener="/streamhouse",outcome="ok"} 1.0' in text
    assert 'streamhouse_bot_listener_ack_seconds_count{listener="/streamhouse"} 1.0' in text
    assert 'streamhouse_bot_slack_api_calls_total{method="auth.test"}' in text


async def test_readyz_is_503_while_slack_rejects_the_token(
    slack_emulator: SlackEmulator, database_url: str
) -> None:
    """With a token Slack does not accept, the bot starts but is not ready, and says why."""
    settings = make_settings(slack_emulator, database_url, slack_bot_token="xoxb-revoked")
    async with BotRuntime(settings) as runtime, aiohttp.ClientSession() as session:
        async with session.get(f"{runtime.http_url}/readyz") as ready:
            assert ready.status == 503
            assert "invalid_auth" in (await ready.json())["slack"]
        metrics = runtime.deps.metrics.exposition().decode()
    assert (
        'streamhouse_bot_slack_api_errors_total{error="invalid_auth",method="auth.test"}' in metrics
    )


async def test_readyz_is_503_when_the_database_is_gone(bot: BotRuntime) -> None:
    """Closing the database makes the bot report not ready instead of crashing."""
    await bot.deps.db.close()
    async with aiohttp.ClientSession() as session, session.get(f"{bot.http_url}/readyz") as ready:
        assert ready.status == 503
        assert "unreachable" in (await ready.json())["database"]


async def test_a_bad_database_url_fails_start_with_a_clear_error(
    slack_emulator: SlackEmulator,
) -> None:
    """An unreachable BOT_DATABASE_URL stops start-up with an error that hides the password."""
    from bot.store.errors import StoreError

    url = f"postgresql://bot:hunter2@127.0.0.1:{free_port()}/bot?connect_timeout=1"
    settings = make_settings(slack_emulator, url)
    runtime = BotRuntime(settings)
    with pytest.raises(StoreError) as raised:
        await runtime.start()
    assert "hunter2" not in str(raised.value)
