"""Configuration errors: one message, every problem named, exit code 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings

CONTRACT_VARIABLES = [
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "BOT_DATABASE_URL",
    "BOT_DATA_DIR",
    "BOT_HTTP_HOST",
    "BOT_HTTP_PORT",
    "BOT_ALERT_CHANNEL",
    "BOT_ALERT_CHANNELS",
    "BOT_ALERTMANAGER_TOKEN",
    "BOT_APPROVERS",
    "BOT_APPROVER_GROUP",
    "BOT_DRY_RUN",
    "BOT_RUNBOOK_BASE_URL",
    "STREAMHOUSE_PROFILE",
    "PROMETHEUS_URL",
    "KUBERNETES_API_URL",
    "STREAMHOUSE_NAMESPACE",
    "STREAMHOUSE_DATABASE_URL",
    "S3_BUCKET",
    "SCHEMA_REGISTRY_URL",
]


def clean_env(**values: str) -> dict[str, str]:
    """The process environment without any of the bot's variables, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if k not in CONTRACT_VARIABLES}
    env.update(values)
    return env


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``streamhouse-bot`` as a user would."""
    return subprocess.run(  # noqa: S603 - our own console script with fixed arguments
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_invalid_settings_exit_2_listing_every_problem(tmp_path: Path) -> None:
    """Several bad variables: exit 2, each named in one message, no traceback."""
    env = clean_env(
        SLACK_BOT_TOKEN="not-a-bot-token",
        BOT_HTTP_PORT="99999",
        STREAMHOUSE_PROFILE="staging",
        PROMETHEUS_URL="not a url",
        BOT_DRY_RUN="perhaps",
    )
    result = run_cli(["run"], env, tmp_path)
    assert result.returncode == 2
    for name in [
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "BOT_HTTP_PORT",
        "STREAMHOUSE_PROFILE",
        "PROMETHEUS_URL",
        "BOT_DRY_RUN",
    ]:
        assert name in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_token_is_named(tmp_path: Path) -> None:
    """Nothing set at all: the required variables are named as missing."""
    result = run_cli(["check-config"], clean_env(), tmp_path)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN: is required but not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_prints_settings_with_secrets_hidden(tmp_path: Path) -> None:
    """`check-config` lists every contract variable and never prints a secret."""
    env = clean_env(
        SLACK_BOT_TOKEN="xoxb-very-secret",
        SLACK_SIGNING_SECRET="signing-very-secret",
        BOT_APPROVERS="U1, U2",
    )
    result = run_cli(["check-config"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    for name in CONTRACT_VARIABLES:
        assert name in result.stdout
    assert "very-secret" not in result.stdout
    assert "U1,U2" in result.stdout


def test_dotenv_file_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Values in `.env` in the working directory are read."""
    for name in CONTRACT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(
        "SLACK_BOT_TOKEN=xoxb-from-file\nSLACK_APP_TOKEN=xapp-from-file\nSTREAMHOUSE_PROFILE=upstream\n"
    )
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.streamhouse_profile == "upstream"
    assert settings.socket_mode


def test_socket_mode_does_not_need_a_signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an app token the signing secret is optional; without either it is required."""
    for name in CONTRACT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    with pytest.raises(SettingsError, match="SLACK_SIGNING_SECRET"):
        load_settings(env_file=None)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    assert load_settings(env_file=None).socket_mode
