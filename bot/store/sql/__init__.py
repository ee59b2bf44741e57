"""The store's SQL migrations, ``NNNN_lower_snake_name.sql``, applied in version order.

Each file runs in one transaction with its ``schema_migrations`` row, so it must not
contain BEGIN/COMMIT or statements that refuse transactions (CREATE INDEX CONCURRENTLY).
Never edit a file once released: the checksum check refuses to start; add a new one.
"""
