"""``deploy/alertmanager/alertmanager.yml`` is valid and sends alerts the way the bot needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"


def config() -> dict[str, Any]:
    """The parsed configuration."""
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return data


def bot_webhooks() -> list[dict[str, Any]]:
    """Every webhook config of every receiver."""
    return [hook for receiver in config()["receivers"] for hook in receiver["webhook_configs"]]


def test_amtool_accepts_the_config() -> None:
    """``amtool check-config`` (from prometheus-alertmanager) finds no error."""
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed")
    result = subprocess.run(  # noqa: S603 -- a fixed binary on a file of this repository
        [amtool, "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_go_to_the_bot_webhook_with_resolutions() -> None:
    """The root route's receiver posts to ``/alertmanager`` with ``send_resolved``."""
    data = config()
    receiver = next(r for r in data["receivers"] if r["name"] == data["route"]["receiver"])
    (hook,) = receiver["webhook_configs"]
    assert urlsplit(hook["url"]).path == "/alertmanager"
    assert hook["send_resolved"] is True


def test_every_bot_webhook_sends_a_bearer_token_from_a_file() -> None:
    """The token comes from a file, never written into the config."""
    for hook in bot_webhooks():
        authorization = hook["http_config"]["authorization"]
        assert authorization.get("type", "Bearer") == "Bearer"
        assert authorization["credentials_file"].startswith("/")
        assert "credentials" not in authorization


def test_alerts_are_grouped_like_incidents() -> None:
    """Groups split by alert name, namespace and cluster, with all three intervals set."""
    route = config()["route"]
    assert route["group_by"] == ["alertname", "namespace", "cluster"]
    assert {"group_wait", "group_interval", "repeat_interval"} <= route.keys()
