"""Migrations: applied once, in order, under a lock, and never silently edited."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import psycopg
import pytest

from bot.store import Database, Migration, MigrationError, apply_migrations, load_migrations

REPO_ROOT = Path(__file__).resolve().parents[2]
# The first migration sleeps while holding the lock, so concurrent runs really overlap.
SLOW_MIGRATIONS = [
    Migration("0001", "first", "CREATE TABLE first_t (id int); SELECT pg_sleep(0.3);"),
    Migration("0002", "second", "CREATE TABLE second_t (id int);"),
]


def ledger(url: str) -> list[tuple[object, ...]]:
    """Every schema_migrations row, oldest version first."""
    with psycopg.connect(url) as conn:
        query = "SELECT version, name, applied_at, checksum FROM schema_migrations ORDER BY 1"
        return conn.execute(query).fetchall()


def table_names(url: str) -> set[str]:
    """The tables in the public schema."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in rows}


def test_bundled_migrations_are_ordered_and_start_with_the_foundation() -> None:
    """The wheel's migrations load in version order, 0001_foundation first."""
    migrations = load_migrations()
    versions = [migration.version for migration in migrations]
    assert versions == sorted(versions)
    assert migrations[0].label == "0001_foundation"
    assert "slack_deliveries" in migrations[0].sql


async def test_migrations_on_an_empty_database_create_tables_and_record_versions(
    database_url: str,
) -> None:
    """A first run (given a URL) applies every migration and records each with its checksum."""
    bundled = load_migrations()
    applied = await apply_migrations(database_url)
    assert applied == [migration.version for migration in bundled]
    assert {"schema_migrations", "slack_deliveries"} <= table_names(database_url)
    rows = ledger(database_url)
    assert [(row[0], row[1], row[3]) for row in rows] == [
        (migration.version, migration.name, migration.checksum) for migration in bundled
    ]


async def test_second_run_applies_nothing_and_changes_nothing(database_url: str) -> None:
    """Re-running on a migrated database is a no-op: same ledger, same tables."""
    async with await Database.connect(database_url) as db:
        assert await apply_migrations(db)
        before = (ledger(database_url), table_names(database_url))
        assert await apply_migrations(db) == []
    assert (ledger(database_url), table_names(database_url)) == before


async def test_concurrent_runs_from_two_pools_apply_each_migration_once(
    database_url: str,
) -> None:
    """Two bots starting together: one applies everything, the other waits and finds nothing."""
    async with (
        await Database.connect(database_url) as first,
        await Database.connect(database_url) as second,
    ):
        results = await asyncio.gather(
            apply_migrations(first, migrations=SLOW_MIGRATIONS),
            apply_migrations(second, migrations=SLOW_MIGRATIONS),
        )
    assert sorted(results) == [[], ["0001", "0002"]]
    assert [row[0] for row in ledger(database_url)] == ["0001", "0002"]


# Applies the migrations given as JSON [[version, name, sql], ...] and prints what it applied.
SUBPROCESS_SCRIPT = """
import asyncio, json, sys
from bot.store import Migration, apply_migrations
migrations = [Migration(*fields) for fields in json.loads(sys.argv[2])]
print(json.dumps(asyncio.run(apply_migrations(sys.argv[1], migrations=migrations))))
"""


async def test_concurrent_runs_from_two_processes_apply_each_migration_once(
    database_url: str,
) -> None:
    """Two OS processes migrating one database both succeed; each migration runs once."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SUBPROCESS_SCRIPT,
            database_url,
            json.dumps([[m.version, m.name, m.sql] for m in SLOW_MIGRATIONS]),
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = await asyncio.gather(*(process.communicate() for process in processes))
    assert [process.returncode for process in processes] == [0, 0], outputs
    results = sorted(json.loads(stdout) for stdout, _ in outputs)
    assert results == [[], ["0001", "0002"]]
    assert [row[0] for row in ledger(database_url)] == ["0001", "0002"]


async def test_an_edited_migration_is_refused_by_name(database_url: str) -> None:
    """Changing an applied migration's SQL stops start-up with an error naming it."""
    original = Migration("0001", "accounts", "CREATE TABLE accounts (id int);")
    await apply_migrations(database_url, migrations=[original])
    edited = Migration("0001", "accounts", "CREATE TABLE accounts (id bigint);")
    with pytest.raises(MigrationError, match="0001_accounts was edited"):
        await apply_migrations(database_url, migrations=[edited])


async def test_a_failing_migration_is_rolled_back_and_not_recorded(database_url: str) -> None:
    """A migration that fails leaves no partial tables and no ledger row; a fix then applies."""
    good = Migration("0001", "good", "CREATE TABLE good_t (id int);")
    bad = Migration("0002", "bad", "CREATE TABLE half_t (id int); SELECT * FROM missing_t;")
    with pytest.raises(MigrationError, match="0002_bad failed"):
        await apply_migrations(database_url, migrations=[good, bad])
    assert "half_t" not in table_names(database_url)
    assert [row[0] for row in ledger(database_url)] == ["0001"]
    fixed = Migration("0002", "bad", "CREATE TABLE half_t (id int);")
    assert await apply_migrations(database_url, migrations=[good, fixed]) == ["0002"]


def test_migrations_load_from_a_directory_in_version_order(tmp_path: Path) -> None:
    """Files named NNNN_name.sql load sorted by version; other files are ignored."""
    (tmp_path / "0002_later.sql").write_text("SELECT 2;")
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "README.md").write_text("not a migration")
    assert [m.label for m in load_migrations(tmp_path)] == ["0001_first", "0002_later"]


def test_a_misnamed_migration_file_is_refused(tmp_path: Path) -> None:
    """A .sql file that does not follow NNNN_name.sql is an error, not silently skipped."""
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "2_oops.sql").write_text("SELECT 2;")
    with pytest.raises(MigrationError, match=r"2_oops\.sql"):
        load_migrations(tmp_path)


def test_two_migrations_with_one_version_are_refused(tmp_path: Path) -> None:
    """Two files claiming the same version would race; loading refuses both."""
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "0001_other.sql").write_text("SELECT 2;")
    with pytest.raises(MigrationError, match="share version 0001"):
        load_migrations(tmp_path)
