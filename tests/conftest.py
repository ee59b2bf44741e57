"""Shared pytest set-up: fixtures live in tests/fixtures/ and are loaded as plugins."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.slack",
    "tests.fixtures.bot",
]
