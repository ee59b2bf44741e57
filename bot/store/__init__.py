"""The bot's PostgreSQL store: connection pool, SQL migrations, and an embedded default.

Start-up: ``EmbeddedPostgres(data_dir).start()`` when no database URL is configured, then
``await Database.connect(url)`` and ``await apply_migrations(db)``.
"""

from bot.store.db import Database
from bot.store.embedded import EmbeddedPostgres
from bot.store.errors import (
    EmbeddedServerError,
    MigrationError,
    StoreConnectionError,
    StoreError,
)
from bot.store.migrations import Migration, apply_migrations, load_migrations

__all__ = [
    "Database",
    "EmbeddedPostgres",
    "EmbeddedServerError",
    "Migration",
    "MigrationError",
    "StoreConnectionError",
    "StoreError",
    "apply_migrations",
    "load_migrations",
]
