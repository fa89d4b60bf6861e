"""Alembic environment: runs only through ``boomerang.store.migrate``.

The caller hands over an open connection inside a transaction in
``config.attributes["connection"]``; every revision runs in that one
transaction (transactional DDL on PostgreSQL, BEGIN IMMEDIATE on SQLite).
"""

from __future__ import annotations

from alembic import context

from boomerang.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "Boomerang migrations run from boomerang.store.migrate(url) or open_store(url), "
        "not from the alembic command line"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
