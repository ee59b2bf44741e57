"""Tests of the PostgreSQL store: embedded server, pool, migrations."""
