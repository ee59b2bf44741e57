"""The PostgreSQL fixtures: a missing server skips locally but fails in CI."""

from __future__ import annotations

import pytest

from tests.fixtures.postgres import postgres_unavailable


def test_unavailable_postgres_skips_with_the_reason_outside_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without CI=true, tests needing PostgreSQL are skipped, naming what is missing."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="unavailable: initdb not found"):
        postgres_unavailable("initdb not found")


def test_unavailable_postgres_fails_when_ci_is_true(monkeypatch: pytest.MonkeyPatch) -> None:
    """With CI=true, a PostgreSQL that cannot start fails the test instead of skipping it."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required when CI=true: initdb not found"):
        postgres_unavailable("initdb not found")
