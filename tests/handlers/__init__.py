"""Runbook handler tests: pure logic on small hand-made inputs, then whole runbooks run
through the real sources against the lab (real Prometheus and PostgreSQL, the fakes).

``running_lab`` starts one lab for a module; ``diagnose`` runs one runbook against it the
way the bot does (settings from the lab's environment, ``build_sources``, ``cached``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pytest

from bot.engine import run_runbook
from bot.models import Diagnosis
from bot.profiles import profile_named
from bot.settings import StreamhouseSettings
from bot.sources.cache import cached
from bot.sources.factory import build_sources
from bot.store import EmbeddedPostgres
from handlers.base import CheckContext, Runbook, Target
from lab.stack import Lab
from lab.world import Profile
from tests.lab.test_prometheus import require


def running_lab(profile: Profile, pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """A lab of ``profile`` on the healthy scenario; skips when Prometheus is missing."""
    require("prometheus")
    lab = Lab(profile, admin_url=pg_server.url())
    lab.start("healthy")
    try:
        yield lab
    finally:
        lab.stop()


def diagnose(
    lab: Lab,
    monkeypatch: pytest.MonkeyPatch,
    runbook: Runbook,
    *,
    target: Target | None = None,
    database_role: str = "owner",
    without_prometheus: bool = False,
) -> Diagnosis:
    """``runbook`` diagnosed against ``lab`` through the real, cached sources."""
    for key, value in lab.env(database_role=database_role).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("STREAMHOUSE_ORGANIZATION_ID", raising=False)
    settings = StreamhouseSettings(_env_file=None)  # type: ignore[call-arg]

    async def run() -> Diagnosis:
        source_set = build_sources(settings)
        try:
            sources = source_set.sources
            if without_prometheus:
                sources = dataclasses.replace(sources, prometheus=None)
            ctx = CheckContext(cached(sources), profile_named(lab.profile), target or Target())
            return await run_runbook(runbook, ctx, runbook_base_url=settings.runbook_base_url)
        finally:
            await source_set.close()

    return asyncio.run(run())
