"""Database URLs, engines and transactions.

URL forms (as in ``boomerang.yaml``'s ``database:``):

- ``sqlite:///boomerang.db`` (relative to the working directory),
  ``sqlite:////var/lib/boomerang/boomerang.db`` (absolute),
  ``sqlite:///:memory:`` (tests); driven by aiosqlite.
- ``postgresql://user:password@host:5432/name``; driven by asyncpg.

SQLite connections get these pragmas:

- ``journal_mode=WAL``: readers never block the one writer.
- ``synchronous=FULL`` (default): every commit fsyncs the WAL, so a job that
  ``create()`` returned survives a power cut, not only a ``kill -9``. NORMAL
  skips that fsync (a crash of the process still loses nothing, a power cut
  may lose the last commits); it may be chosen with ``sqlite_synchronous``.
- ``busy_timeout``: a writer from another process waits instead of failing.
- ``foreign_keys=ON``.

Transactions: ``Database.read()`` and ``Database.write()``. On SQLite a write
transaction starts with ``BEGIN IMMEDIATE`` (it takes the write lock before
reading, so a read-then-write transaction can never fail half-way on a stale
snapshot), and the writers of one process queue on an asyncio lock rather
than spinning in SQLite's busy handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from .errors import DatabaseUrlError

log = logging.getLogger(__name__)

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
SQLITE_SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
DEFAULT_BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "boomerang_sqlite_begin"

_DRIVERS = {
    "sqlite": (SQLITE, "sqlite+aiosqlite"),
    "sqlite+aiosqlite": (SQLITE, "sqlite+aiosqlite"),
    "postgresql": (POSTGRESQL, "postgresql+asyncpg"),
    "postgresql+asyncpg": (POSTGRESQL, "postgresql+asyncpg"),
}


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """A parsed database URL: the SQLAlchemy URL and what kind it is."""

    url: URL
    dialect_name: str  # SQLITE or POSTGRESQL
    in_memory: bool

    @property
    def display(self) -> str:
        """The URL for messages and logs: the password is never shown."""
        return self.url.render_as_string(hide_password=True)


def resolve_url(url: str) -> DatabaseTarget:
    """Map a Boomerang database URL onto its async driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise DatabaseUrlError(
            f"{url!r} is not a database URL; use sqlite:///boomerang.db or "
            "postgresql://user:password@host:5432/name"
        ) from error
    driver = parsed.drivername.lower()
    if driver not in _DRIVERS:
        hint = " (write postgresql://, not postgres://)" if driver.startswith("postgres") else ""
        raise DatabaseUrlError(
            f"unsupported database URL scheme {parsed.drivername!r}{hint}; use "
            "sqlite:///boomerang.db or postgresql://user:password@host:5432/name"
        )
    dialect_name, async_driver = _DRIVERS[driver]
    parsed = parsed.set(drivername=async_driver)
    in_memory = dialect_name == SQLITE and parsed.database in (None, "", ":memory:")
    if dialect_name == POSTGRESQL and not parsed.database:
        raise DatabaseUrlError(f"{parsed.render_as_string()!r} names no database; "
                               "e.g. postgresql://boomerang:secret@db.example.com/boomerang")
    return DatabaseTarget(url=parsed, dialect_name=dialect_name, in_memory=in_memory)


class Database:
    """One engine plus the two kinds of transaction the repositories use."""

    __slots__ = ("_memory_lock", "_write_lock", "engine", "target")

    def __init__(
        self,
        target: DatabaseTarget,
        *,
        sqlite_synchronous: str = "FULL",
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> None:
        self.target = target
        self.engine = _create_engine(target, sqlite_synchronous, busy_timeout_ms)
        # An in-memory database lives in one connection: every transaction
        # takes turns. A file database lets readers run beside the writer.
        self._memory_lock = asyncio.Lock() if target.in_memory else None
        self._write_lock = asyncio.Lock() if target.dialect_name == SQLITE else None

    @property
    def dialect_name(self) -> str:
        return self.target.dialect_name

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with contextlib.AsyncExitStack() as stack:
            if self._memory_lock is not None:
                await stack.enter_async_context(self._memory_lock)
            connection = await stack.enter_async_context(self.engine.connect())
            await stack.enter_async_context(connection.begin())
            yield connection

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits when the block ends without error."""
        async with contextlib.AsyncExitStack() as stack:
            if self._memory_lock is not None:
                await stack.enter_async_context(self._memory_lock)
            elif self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            connection = await stack.enter_async_context(self.engine.connect())
            if self.dialect_name == SQLITE:
                await connection.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            await stack.enter_async_context(connection.begin())
            yield connection

    async def dispose(self) -> None:
        await self.engine.dispose()


def _create_engine(target: DatabaseTarget, synchronous: str, busy_timeout_ms: int) -> AsyncEngine:
    if target.dialect_name == POSTGRESQL:
        return create_async_engine(target.url, pool_pre_ping=True)
    synchronous = synchronous.upper()
    if synchronous not in SQLITE_SYNCHRONOUS_MODES:
        raise ValueError(f"sqlite_synchronous must be one of {SQLITE_SYNCHRONOUS_MODES}")
    options: dict[str, Any] = {}
    if target.in_memory:
        options["poolclass"] = StaticPool
    engine = create_async_engine(target.url, **options)
    pragmas = [f"PRAGMA busy_timeout = {int(busy_timeout_ms)}",
               f"PRAGMA synchronous = {synchronous}",
               "PRAGMA foreign_keys = ON"]
    if not target.in_memory:
        pragmas.insert(0, "PRAGMA journal_mode = WAL")

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Take BEGIN away from the driver (it would start transactions late
        # and never IMMEDIATE); _on_begin below emits our own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
