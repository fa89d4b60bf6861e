"""Schema migrations, run from Python: no alembic.ini, works when installed.

``migrate(url)`` brings a database to the newest revision this code knows.
``open_store`` calls the same thing on open (unless told not to). A database
whose revision this code does not know was migrated by a newer Boomerang:
it is refused, never touched.

Several nodes starting at once against one PostgreSQL migrate one after the
other: each takes a transaction-level advisory lock first. On SQLite the
migration transaction starts with BEGIN IMMEDIATE, which does the same.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, text

from .engine import POSTGRESQL, Database, resolve_url
from .errors import SchemaOutOfDateError, SchemaTooNewError

log = logging.getLogger(__name__)

MIGRATIONS_DIRECTORY = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key: "boomerang" squeezed into a bigint.
MIGRATION_LOCK_KEY = 0x626F6F6D6572616E


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIRECTORY))
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIRECTORY}")
    return head


async def migrate(url: str) -> str:
    """Migrate the database at ``url`` to head; returns the revision."""
    database = Database(resolve_url(url))
    try:
        return await upgrade_to_head(database)
    finally:
        await database.dispose()


async def current_revision(database: Database) -> str | None:
    async with database.read() as connection:
        return await connection.run_sync(_current_revision)


async def upgrade_to_head(database: Database) -> str:
    async with database.write() as connection:
        if database.dialect_name == POSTGRESQL:
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                     {"key": MIGRATION_LOCK_KEY})
        before = await connection.run_sync(_current_revision)
        _refuse_unknown(before, database)
        if before != head_revision():
            await connection.run_sync(_upgrade)
            log.info("database %s migrated from %s to %s", database.target.display,
                     before or "empty", head_revision())
    return head_revision()


async def check_revision(database: Database) -> str:
    """Without migrating: the schema must be exactly head."""
    revision = await current_revision(database)
    _refuse_unknown(revision, database)
    head = head_revision()
    if revision != head:
        raise SchemaOutOfDateError(
            f"database {database.target.display} has schema revision {revision or 'none'} "
            f"but this Boomerang needs {head}; open it with migrations on, or run "
            "boomerang.store.migrate(url), after a backup"
        )
    return revision


def _current_revision(connection: Connection) -> str | None:
    heads = MigrationContext.configure(connection).get_current_heads()
    return heads[0] if len(heads) == 1 else (",".join(heads) or None)


def _refuse_unknown(revision: str | None, database: Database) -> None:
    if revision is None:
        return
    script = ScriptDirectory.from_config(alembic_config())
    try:
        known = all(script.get_revision(part) is not None for part in revision.split(","))
    except CommandError:
        known = False
    if not known:
        raise SchemaTooNewError(
            f"database {database.target.display} has schema revision {revision!r}, which "
            f"this Boomerang does not know (its newest is {head_revision()!r}): a newer "
            "Boomerang migrated it. Run that newer version, or restore the backup taken "
            "before the upgrade; this version will not touch the database."
        )


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
