"""``open_store(url)``: the one entry point of the store layer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

from .engine import DEFAULT_BUSY_TIMEOUT_MS, Database, resolve_url
from .jobs import CallbackJobRepository
from .migrate import check_revision, upgrade_to_head
from .records import CallRecordRepository
from .registrations import RegistrationRepository

log = logging.getLogger(__name__)


def system_utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """An open database and its repositories; close it when done."""

    __slots__ = ("database", "jobs", "records", "registrations", "schema_revision")

    def __init__(
        self, database: Database, schema_revision: str, utc_now: Callable[[], datetime]
    ) -> None:
        self.database = database
        self.schema_revision = schema_revision
        self.registrations = RegistrationRepository(database, utc_now)
        self.records = CallRecordRepository(database, utc_now)
        self.jobs = CallbackJobRepository(database, utc_now)

    @property
    def dialect_name(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.database.dialect_name

    @property
    def display_url(self) -> str:
        """The database URL with its password hidden."""
        return self.database.target.display

    async def close(self) -> None:
        await self.database.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def open_store(
    url: str,
    *,
    run_migrations: bool = True,
    sqlite_synchronous: str = "FULL",
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    utc_now: Callable[[], datetime] = system_utc_now,
) -> Store:
    """Open the database at ``url``, migrating it to head unless told not to.

    Raises SchemaTooNewError for a database a newer Boomerang migrated,
    SchemaOutOfDateError when ``run_migrations`` is False and the schema is
    behind, DatabaseUrlError for a URL that is not SQLite or PostgreSQL.
    ``utc_now`` stamps created_at/updated_at (an injected clock in tests).
    """
    database = Database(resolve_url(url), sqlite_synchronous=sqlite_synchronous,
                        busy_timeout_ms=busy_timeout_ms)
    try:
        if run_migrations:
            revision = await upgrade_to_head(database)
        else:
            revision = await check_revision(database)
    except BaseException:
        await database.dispose()
        raise
    log.info("store open: %s (schema %s)", database.target.display, revision)
    return Store(database, revision, utc_now)
