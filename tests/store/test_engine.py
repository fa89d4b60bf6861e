"""URL mapping, SQLite pragmas and the UTC rule."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from boomerang.store import DatabaseUrlError, open_store, resolve_url
from boomerang.store.models import NewCallbackJob


def test_sqlite_relative_absolute_and_memory_urls_map_to_aiosqlite() -> None:
    relative = resolve_url("sqlite:///boomerang.db")
    absolute = resolve_url("sqlite:////var/lib/boomerang/boomerang.db")
    memory = resolve_url("sqlite:///:memory:")
    assert relative.url.drivername == "sqlite+aiosqlite"
    assert relative.url.database == "boomerang.db"
    assert absolute.url.database == "/var/lib/boomerang/boomerang.db"
    assert memory.in_memory and not relative.in_memory
    assert {relative.dialect_name, absolute.dialect_name, memory.dialect_name} == {"sqlite"}


def test_postgresql_url_maps_to_asyncpg_and_hides_password() -> None:
    target = resolve_url("postgresql://boomerang:s3cret@db.example.com:5433/callbacks")
    assert target.url.drivername == "postgresql+asyncpg"
    assert target.dialect_name == "postgresql"
    assert target.url.port == 5433 and target.url.database == "callbacks"
    assert "s3cret" not in target.display


@pytest.mark.parametrize("url", ["postgres://u@h/db", "mysql://u@h/db", "not a url"])
def test_unsupported_urls_are_refused_with_the_forms_to_use(url: str) -> None:
    with pytest.raises(DatabaseUrlError, match=re.escape("sqlite:///boomerang.db")):
        resolve_url(url)


async def test_sqlite_file_connections_use_wal_full_sync_and_busy_timeout(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'pragmas.db'}")
    try:
        async with store.database.read() as connection:
            journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
            synchronous = (await connection.execute(text("PRAGMA synchronous"))).scalar()
            busy_ms = (await connection.execute(text("PRAGMA busy_timeout"))).scalar()
    finally:
        await store.close()
    assert journal == "wal"
    assert synchronous == 2  # FULL
    assert busy_ms == 10_000


async def test_in_memory_store_works_for_tests(
    job_factory: Callable[..., NewCallbackJob],
) -> None:
    store = await open_store("sqlite:///:memory:")
    try:
        job = await store.jobs.create(job_factory())
        assert (await store.jobs.get(job.id)) == job
    finally:
        await store.close()


async def test_naive_datetimes_are_refused(
    tmp_path: Path, job_factory: Callable[..., NewCallbackJob]
) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'naive.db'}")
    try:
        with pytest.raises(Exception, match="naive datetime"):
            await store.jobs.create(job_factory(due_at=datetime(2030, 1, 1, 12, 0)))
    finally:
        await store.close()
