"""Table-driven: each lab scenario gives the verdicts an engineer expects.

The cases live here; ``test_scenarios_runbook.py`` and ``test_scenarios_upstream.py`` run
them against a lab of their profile (two modules, so parallel workers can take one each).
Each row switches the scenario once and runs all six runbooks (``diagnose all``) through
the real sources, exactly as the bot does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from bot.diagnose import DiagnoseRequest, run_request
from bot.models import Diagnosis, Status, Triage
from bot.profiles import profile_named
from bot.render.diagnosis import render_diagnosis, render_triage
from bot.settings import StreamhouseSettings
from bot.sources.cache import cached
from bot.sources.factory import build_sources
from bot.store import EmbeddedPostgres
from handlers.base import Target
from handlers.registry import ORDER
from lab.slack import check_message
from lab.stack import Lab
from tests.lab.test_prometheus import require

NOT_OK = (Status.WARNING, Status.CRITICAL)


@dataclass(frozen=True)
class Expect:
    """What one scenario must show: runbook statuses, check statuses, causes, guard rails."""

    runbooks: dict[str, tuple[Status, ...]] = field(default_factory=dict)
    checks: dict[str, tuple[Status, ...]] = field(default_factory=dict)
    causes: dict[str, str] = field(default_factory=dict)  # runbook → substring of the cause
    allowed: tuple[str, ...] = ()
    blocked: dict[str, str] = field(default_factory=dict)  # action → substring of the reason
    root: str | None = None


TABLE: dict[tuple[str, str | None], Expect] = {
    ("circuit-breaker-open", "throttling-10m"): Expect(
        runbooks={"circuit-breaker": (Status.CRITICAL,)},
        checks={"CB-1": (Status.CRITICAL,), "CB-3": NOT_OK},
        causes={"circuit-breaker": "throttling"},
        allowed=("CB-A1", "CB-A3"),
        blocked={"CB-A2": ""},
    ),
    ("circuit-breaker-open", "throttling-1m"): Expect(
        runbooks={"circuit-breaker": (Status.CRITICAL,)},
        blocked={"CB-A2": "min"},
    ),
    ("circuit-breaker-open", "credentials-10m"): Expect(
        runbooks={"circuit-breaker": (Status.CRITICAL,)},
        causes={"circuit-breaker": "credentials"},
        blocked={"CB-A3": ""},
    ),
    ("circuit-breaker-open", "recovered-10m"): Expect(
        runbooks={"circuit-breaker": NOT_OK},
        checks={"CB-3": (Status.OK,)},
        allowed=("CB-A2",),
    ),
    ("s3-throttling", "burst"): Expect(
        runbooks={"s3-throttling": NOT_OK},
        causes={"s3-throttling": "burst"},
        allowed=("TH-A1",),
        blocked={"TH-A3": ""},
    ),
    ("s3-throttling", "sustained"): Expect(
        runbooks={"s3-throttling": NOT_OK},
        causes={"s3-throttling": "sustained"},
        allowed=("TH-A3",),
    ),
    ("wal-corruption", None): Expect(
        runbooks={"wal-recovery": (Status.CRITICAL,)},
        checks={"WAL-1": (Status.CRITICAL,), "WAL-4": NOT_OK},
        causes={"wal-recovery": "corruption"},
        allowed=("WAL-A2",),
    ),
    ("lease-conflict", "dead-holder"): Expect(
        runbooks={"lease-conflicts": (Status.CRITICAL,)},
        checks={"LC-1": (Status.CRITICAL,)},
        allowed=("LC-A1",),
    ),
    ("lease-conflict", "fighting"): Expect(
        runbooks={"lease-conflicts": NOT_OK},
        blocked={"LC-A1": ""},
    ),
    ("lease-conflict", "clock-skew"): Expect(
        runbooks={"lease-conflicts": (Status.CRITICAL,)},
        checks={"LC-3": (Status.CRITICAL,)},
    ),
    ("schema-incompatible", None): Expect(
        runbooks={"schema-registry": NOT_OK},
        checks={"SR-1": NOT_OK},
    ),
    ("oom", None): Expect(
        runbooks={"resource-pressure": (Status.CRITICAL,)},
        checks={"RP-1": (Status.CRITICAL,), "RP-5": NOT_OK},
        allowed=("RP-A1",),
    ),
    ("disk-full", None): Expect(
        runbooks={"resource-pressure": (Status.CRITICAL,)},
        checks={"RP-2": (Status.CRITICAL,), "WAL-3": (Status.CRITICAL,)},
    ),
    ("cascade", None): Expect(
        runbooks={
            "s3-throttling": NOT_OK,
            "circuit-breaker": NOT_OK,
        },
        root="s3-throttling",
    ),
}


def running_lab(profile: str, pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """A running lab of ``profile`` for a test module."""
    require("prometheus")
    running = Lab(profile, admin_url=pg_server.url())  # type: ignore[arg-type]
    running.start("healthy")
    yield running
    running.stop()


def triage(lab: Lab, monkeypatch: pytest.MonkeyPatch, *, database_role: str = "owner") -> Triage:
    """``diagnose all`` against the lab through the real sources."""
    for key, value in lab.env(database_role=database_role).items():
        monkeypatch.setenv(key, value)
    settings = StreamhouseSettings(_env_file=None)  # type: ignore[call-arg]

    async def run() -> Triage:
        source_set = build_sources(settings)
        try:
            outcome = await run_request(
                DiagnoseRequest(ORDER, Target(), everything=True),
                cached(source_set.sources),
                profile_named(lab.profile),
                runbook_base_url=settings.runbook_base_url,
            )
        finally:
            await source_set.close()
        assert isinstance(outcome, Triage)
        return outcome

    return asyncio.run(run())


def by_runbook(outcome: Triage) -> dict[str, Diagnosis]:
    """The diagnoses keyed by runbook id."""
    return {diagnosis.runbook: diagnosis for diagnosis in outcome.diagnoses}


def test_healthy_is_all_ok(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """`healthy`: every check of every runbook is ok."""
    lab.switch("healthy")
    outcome = triage(lab, monkeypatch)
    bad = [
        (c.id, c.status.value, c.summary)
        for d in outcome.diagnoses
        for c in d.checks
        if c.status is not Status.OK
    ]
    assert bad == []
    assert outcome.status is Status.OK


def test_no_metrics_is_never_ok(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """`no-metrics`: Prometheus-based checks are unknown and no runbook claims ok."""
    lab.switch("no-metrics")
    outcome = triage(lab, monkeypatch)
    assert all(d.status is not Status.OK for d in outcome.diagnoses)
    prometheus_checks = [
        c for d in outcome.diagnoses for c in d.checks if c.sources == ("prometheus",)
    ]
    assert prometheus_checks
    assert all(c.status is Status.UNKNOWN for c in prometheus_checks)


@pytest.mark.parametrize(("scenario", "variant"), list(TABLE))
def test_scenario_verdicts(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, scenario: str, variant: str | None
) -> None:
    """Each scenario: the expected runbook and check statuses, causes and guard rails."""
    expect = TABLE[(scenario, variant)]
    lab.switch(scenario, variant)
    outcome = triage(lab, monkeypatch)
    diagnoses = by_runbook(outcome)
    checks = {c.id: c for d in outcome.diagnoses for c in d.checks}
    actions = {a.id: a for d in outcome.diagnoses for a in d.actions}
    for runbook, statuses in expect.runbooks.items():
        assert diagnoses[runbook].status in statuses, (runbook, diagnoses[runbook].summary)
    for check_id, statuses in expect.checks.items():
        assert checks[check_id].status in statuses, (check_id, checks[check_id].summary)
    for runbook, cause in expect.causes.items():
        assert cause in (diagnoses[runbook].probable_cause or ""), diagnoses[runbook].probable_cause
    for action_id in expect.allowed:
        assert actions[action_id].allowed, (action_id, actions[action_id].blocked_reason)
    for action_id, reason in expect.blocked.items():
        assert not actions[action_id].allowed, action_id
        assert reason in (actions[action_id].blocked_reason or ""), actions[
            action_id
        ].blocked_reason
    if expect.root is not None:
        assert outcome.root == expect.root, outcome.summary
    assert_slack_accepts(outcome)


def assert_slack_accepts(outcome: Triage) -> None:
    """Every message the bot would post for ``outcome`` passes Slack's validation."""
    replies = [render_triage(outcome), *(render_diagnosis(d) for d in outcome.diagnoses)]
    for reply in replies:
        payload = reply.to_slack()
        assert check_message(text=payload["text"], blocks=payload.get("blocks")) is None


def test_rls_hiding_leases_is_unknown_with_a_hint(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connected as a role that row-level security blinds, LC-1 is unknown and says why."""
    if lab.profile != "upstream":
        pytest.skip("row-level security exists in the upstream schema only")
    lab.switch("lease-conflict", "dead-holder", metrics=False)
    monkeypatch.delenv("STREAMHOUSE_ORGANIZATION_ID", raising=False)
    outcome = triage(lab, monkeypatch, database_role="reader")
    lc1 = next(c for d in outcome.diagnoses for c in d.checks if c.id == "LC-1")
    assert lc1.status is Status.UNKNOWN
    assert (
        "app.current_organization_id" in lc1.summary or "STREAMHOUSE_ORGANIZATION_ID" in lc1.summary
    )
