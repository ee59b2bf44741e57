"""Tests of the real sources against the lab; helpers shared by the modules of this package.

Each module starts its own lab per profile (module scope), points the bot's settings at it
through the environment, and builds the sources exactly as the bot does.
"""

from __future__ import annotations

import socket
from collections.abc import Generator, Iterator
from contextlib import contextmanager

import pytest

from bot.settings import StreamhouseSettings
from bot.sources import SourceSet, build_sources
from bot.store import EmbeddedPostgres
from lab.stack import Lab
from lab.world import Profile, World

PROFILES: tuple[Profile, ...] = ("runbook", "upstream")
# Every variable the sources read, cleared first so the host's environment cannot leak in.
SOURCE_VARIABLES = (
    "STREAMHOUSE_PROFILE",
    "PROMETHEUS_URL",
    "KUBERNETES_API_URL",
    "STREAMHOUSE_NAMESPACE",
    "STREAMHOUSE_DATABASE_URL",
    "STREAMHOUSE_ORGANIZATION_ID",
    "S3_BUCKET",
    "SCHEMA_REGISTRY_URL",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)


def running_lab(
    profile: Profile, pg_server: EmbeddedPostgres, *, prometheus: bool = False
) -> Generator[Lab, None, None]:
    """A lab of ``profile`` on the healthy scenario, stopped when the generator closes."""
    lab = Lab(profile, admin_url=pg_server.url(), prometheus=prometheus)
    lab.start("healthy")
    try:
        yield lab
    finally:
        lab.stop()


@contextmanager
def scenario(lab: Lab, name: str, variant: str | None = None) -> Iterator[World]:
    """The lab moved to scenario ``name`` for a block, then back to healthy."""
    lab.switch(name, variant, metrics=False)
    try:
        yield lab.world
    finally:
        lab.switch("healthy", metrics=False)


@contextmanager
def restored(lab: Lab) -> Iterator[World]:
    """A block that may change the lab's world; healthy again afterwards."""
    try:
        yield lab.world
    finally:
        lab.switch("healthy", metrics=False)


def settings_for(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], **overrides: str
) -> StreamhouseSettings:
    """Settings read from exactly ``env`` (plus ``overrides``), as the bot reads them."""
    for name in SOURCE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")  # never the host's cluster
    for name, value in {**env, **overrides}.items():
        monkeypatch.setenv(name, value)
    return StreamhouseSettings(_env_file=None)  # type: ignore[call-arg]


def sources_for(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], **overrides: str
) -> SourceSet:
    """The real sources for ``env``; close them with ``await source_set.close()``."""
    return build_sources(settings_for(monkeypatch, env, **overrides))


def closed_port_url(scheme: str = "http") -> str:
    """A loopback URL on which nothing listens (the port was bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"
