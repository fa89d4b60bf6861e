"""Migrations to head, the code's tables agree with them, newer schemas refused."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from boomerang.store import (
    SchemaOutOfDateError,
    SchemaTooNewError,
    Store,
    head_revision,
    migrate,
    open_store,
)
from boomerang.store.engine import Database, resolve_url
from boomerang.store.migrate import current_revision
from boomerang.store.tables import metadata


async def test_open_migrates_an_empty_database_to_head(store: Store) -> None:
    async with store.database.read() as connection:
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        version = (await connection.execute(text("SELECT version_num FROM alembic_version")))
        revision = version.scalar_one()
    assert {"registrations", "call_records", "callback_jobs", "alembic_version"} <= tables
    assert revision == head_revision() == store.schema_revision


async def test_the_code_tables_match_the_migrated_schema(store: Store) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with store.database.read() as connection:
        found = await connection.run_sync(differences)
    assert found == []


async def test_migrating_again_is_a_no_op(database_url: str) -> None:
    assert await migrate(database_url) == head_revision()
    assert await migrate(database_url) == head_revision()
    store = await open_store(database_url, run_migrations=False)
    await store.close()


async def test_a_schema_newer_than_the_code_is_refused_and_left_alone(database_url: str) -> None:
    await migrate(database_url)
    store = await open_store(database_url)
    async with store.database.write() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    await store.close()

    for run_migrations in (True, False):
        with pytest.raises(SchemaTooNewError, match="newer Boomerang") as caught:
            await open_store(database_url, run_migrations=run_migrations)
        assert "9999_future" in str(caught.value)

    # Untouched: the revision stays the future one.
    database = Database(resolve_url(database_url))
    try:
        assert await current_revision(database) == "9999_future"
    finally:
        await database.dispose()


async def test_an_unmigrated_database_is_refused_when_migrations_are_off(
    database_url: str,
) -> None:
    with pytest.raises(SchemaOutOfDateError, match=head_revision()):
        await open_store(database_url, run_migrations=False)
