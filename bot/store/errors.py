"""The store's exception tree.

Every failure the store expects raises a ``StoreError`` whose message says what went wrong
and where (data directory, host and database, migration version), never a password.

- ``StoreError``: base; catch this to handle any store failure.
  - ``EmbeddedServerError``: the embedded PostgreSQL could not be set up, started or stopped.
  - ``StoreConnectionError``: no working connection to the database within the timeout.
  - ``MigrationError``: a migration is malformed, failed, or was edited after being applied.

Errors from queries on a working connection (``psycopg.Error``) are not wrapped: they are
bugs or outages the caller reports as unexpected.
"""

from __future__ import annotations


class StoreError(Exception):
    """The store could not do what was asked; the message explains why."""


class EmbeddedServerError(StoreError):
    """The embedded PostgreSQL server could not be prepared, started or stopped."""


class StoreConnectionError(StoreError):
    """The database could not be reached (or refused us) within the timeout."""


class MigrationError(StoreError):
    """A schema migration is invalid, failed to apply, or no longer matches its checksum."""
