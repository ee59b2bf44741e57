"""Versioned SQL migrations, applied in order when the bot starts.

Migrations are the files ``NNNN_lower_snake_name.sql`` in the package ``bot.store.sql``
(read with importlib.resources, so they ship inside the wheel). Each runs in its own
transaction together with its row in ``schema_migrations``: it is applied entirely or
not at all. A PostgreSQL advisory lock serialises bots starting at once against one
database: the second waits, then finds nothing left to do. A migration edited after it was
applied (its checksum changed) stops start-up with a ``MigrationError`` naming it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import psycopg

from bot.store.db import Connection, Database
from bot.store.errors import MigrationError

_log = logging.getLogger("bot.store")

MIGRATIONS_PACKAGE = "bot.store.sql"
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
# One key for every bot replica: ASCII "SHCMIG" read as an integer.
_LOCK_KEY = 0x5348_434D_4947
_LOCK_POLL_SECONDS = 0.05

_CREATE_LEDGER = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version    text PRIMARY KEY,
        name       text,
        applied_at timestamptz NOT NULL DEFAULT now(),
        checksum   text
    )
"""
_RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"


@dataclass(frozen=True)
class Migration:
    """One schema change: ``version`` orders it, ``sql`` is run as one transaction."""

    version: str
    name: str
    sql: str

    @property
    def label(self) -> str:
        """The migration as its file is named, without ``.sql``: ``0001_foundation``."""
        return f"{self.version}_{self.name}"

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL with line endings normalised, so a CRLF checkout still matches."""
        normalised = self.sql.replace("\r\n", "\n").encode()
        return hashlib.sha256(normalised).hexdigest()


def load_migrations(source: Traversable | str = MIGRATIONS_PACKAGE) -> list[Migration]:
    """The ``*.sql`` migrations in a package (or directory), sorted by version.

    A ``.sql`` file that is not named ``NNNN_lower_snake.sql``, or a repeated version,
    raises ``MigrationError``: a migration that is silently skipped is worse than none.
    """
    root = files(source) if isinstance(source, str) else source
    migrations = []
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(
                f"migration file {entry.name!r} is not named NNNN_lower_snake_name.sql"
            )
        sql = entry.read_text(encoding="utf-8")
        migrations.append(Migration(match["version"], match["name"], sql))
    return _in_order(migrations)


async def apply_migrations(
    target: Database | str,
    *,
    migrations: Sequence[Migration] | None = None,
    lock_timeout: float = 60.0,
) -> list[str]:
    """Apply the migrations ``target`` lacks, in order; return the versions applied.

    ``target`` is a connected ``Database`` or a conninfo URL. ``migrations`` defaults to
    the bundled ones. Waits up to ``lock_timeout`` s for another bot that is migrating.
    """
    pending = _in_order(load_migrations() if migrations is None else migrations)
    async with _session(target) as conn, _advisory_lock(conn, lock_timeout):
        recorded = await _recorded_checksums(conn)
        _verify_unchanged(pending, recorded)
        _warn_about_unknown(pending, recorded)
        applied = []
        for migration in pending:
            if migration.version not in recorded:
                await _apply_one(conn, migration)
                applied.append(migration.version)
    return applied


def _in_order(migrations: Sequence[Migration]) -> list[Migration]:
    ordered = sorted(migrations, key=lambda migration: migration.version)
    for before, after in itertools.pairwise(ordered):
        if before.version == after.version:
            raise MigrationError(
                f"migrations {before.label} and {after.label} share version {before.version}"
            )
    return ordered


@asynccontextmanager
async def _session(target: Database | str) -> AsyncIterator[Connection]:
    """An autocommit connection, so each migration can be its own transaction."""
    if isinstance(target, str):
        async with (
            await Database.connect(target, max_size=1) as database,
            _session(database) as conn,
        ):
            yield conn
        return
    async with target.pool.connection() as conn:
        await conn.set_autocommit(True)
        try:
            yield conn
        finally:
            await _restore_for_pool(conn)


async def _restore_for_pool(conn: Connection) -> None:
    """Give the pool back a connection in its usual (transactional) mode, or a closed one."""
    try:
        await conn.set_autocommit(False)
    except psycopg.Error:  # mid-query after a cancellation: the pool discards closed ones
        await conn.close()


@asynccontextmanager
async def _advisory_lock(conn: Connection, wait_seconds: float) -> AsyncIterator[None]:
    """Hold the migration lock; poll so that waiting is bounded and says why it failed."""
    deadline = time.monotonic() + wait_seconds
    while not await _try_lock(conn):
        if time.monotonic() > deadline:
            raise MigrationError(
                f"another bot has held the migration lock for over {wait_seconds:g} s; "
                "is a migration stuck? (see pg_stat_activity)"
            )
        await asyncio.sleep(_LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        try:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        except psycopg.Error:  # ending the session is the other way to release it
            await conn.close()


async def _try_lock(conn: Connection) -> bool:
    cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,))
    row = await cursor.fetchone()
    return bool(row and row[0])


async def _recorded_checksums(conn: Connection) -> dict[str, str | None]:
    """Version -> checksum of every applied migration, creating the ledger on first use."""
    try:
        await conn.execute(_CREATE_LEDGER)
        cursor = await conn.execute("SELECT version, checksum FROM schema_migrations")
    except psycopg.Error as error:  # e.g. no CREATE privilege on the schema
        raise MigrationError(f"cannot read or create schema_migrations: {error}") from error
    return dict(await cursor.fetchall())


def _verify_unchanged(migrations: Sequence[Migration], recorded: dict[str, str | None]) -> None:
    """Refuse to go on if an applied migration's file differs from what was applied."""
    for migration in migrations:
        checksum = recorded.get(migration.version)
        if checksum is not None and checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.label} was edited after it was applied "
                f"(checksum {checksum[:12]} in the database, {migration.checksum[:12]} in "
                "the code): restore it and put the change in a new migration"
            )


def _warn_about_unknown(migrations: Sequence[Migration], recorded: dict[str, str | None]) -> None:
    """A newer bot applied migrations this one lacks: fine during a rolling deploy."""
    unknown = sorted(set(recorded) - {migration.version for migration in migrations})
    if unknown:
        _log.warning("database has migrations this bot does not know: %s", ", ".join(unknown))


async def _apply_one(conn: Connection, migration: Migration) -> None:
    started = time.monotonic()
    try:
        async with conn.transaction():
            # Bytes, not str: the file holds several statements and psycopg types only
            # literal strings as queries.
            await conn.execute(migration.sql.encode())
            await conn.execute(_RECORD, (migration.version, migration.name, migration.checksum))
    except psycopg.Error as error:
        raise MigrationError(
            f"migration {migration.label} failed and was rolled back: {error}"
        ) from error
    elapsed_ms = (time.monotonic() - started) * 1000
    _log.info("applied migration %s in %.0f ms", migration.label, elapsed_ms)
