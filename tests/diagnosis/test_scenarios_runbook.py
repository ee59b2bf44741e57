"""The scenario table (tests/diagnosis/scenario_cases.py) against a lab of the runbook profile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.store import EmbeddedPostgres
from lab.stack import Lab
from tests.diagnosis.scenario_cases import (  # noqa: F401 - collected by pytest here
    running_lab,
    test_healthy_is_all_ok,
    test_no_metrics_is_never_ok,
    test_rls_hiding_leases_is_unknown_with_a_hint,
    test_scenario_verdicts,
)


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """A running lab of the runbook profile."""
    yield from running_lab("runbook", pg_server)
