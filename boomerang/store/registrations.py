"""Registrar bindings (location service data): which contacts an extension has.

The registrar (call layer) decides; this stores. ``upsert`` replaces the
binding with the same key (RFC 3261 §10.3 step 7; RFC 5626 §6 keys bindings
by instance id and reg-id), so a phone re-registering updates its row.
Reads take ``now`` and never return an expired binding, whether or not
``expire`` has run yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.dialects import postgresql, sqlite

from .engine import POSTGRESQL, Database
from .models import Registration
from .tables import registrations

log = logging.getLogger(__name__)


def registration_from_row(row: RowMapping) -> Registration:
    return Registration(
        extension=row["extension"],
        contact_uri=row["contact_uri"],
        transport=row["transport"],
        source_host=row["source_host"],
        source_port=row["source_port"],
        path=tuple(row["path"] or ()),
        expires_at=row["expires_at"],
        user_agent=row["user_agent"],
        q=None if row["q"] is None else float(row["q"]),
        instance_id=row["instance_id"],
        reg_id=row["reg_id"],
        call_id=row["call_id"],
        cseq=row["cseq"],
        updated_at=row["updated_at"],
    )


class RegistrationRepository:
    __slots__ = ("_database", "_utc_now")

    def __init__(self, database: Database, utc_now: Callable[[], datetime]) -> None:
        self._database = database
        self._utc_now = utc_now

    async def upsert(self, registration: Registration) -> Registration:
        """Add the binding or replace the one with the same binding key."""
        values: dict[str, Any] = {
            "extension": registration.extension,
            "binding_key": registration.binding_key,
            "contact_uri": registration.contact_uri,
            "transport": registration.transport,
            "source_host": registration.source_host,
            "source_port": registration.source_port,
            "path": list(registration.path),
            "expires_at": registration.expires_at,
            "user_agent": registration.user_agent,
            "q": registration.q,
            "instance_id": registration.instance_id,
            "reg_id": registration.reg_id,
            "call_id": registration.call_id,
            "cseq": registration.cseq,
            "updated_at": registration.updated_at or self._utc_now(),
        }
        insert = (postgresql.insert if self._database.dialect_name == POSTGRESQL
                  else sqlite.insert)(registrations).values(**values)
        changes = {name: insert.excluded[name] for name in values
                   if name not in ("extension", "binding_key")}
        statement = insert.on_conflict_do_update(
            index_elements=[registrations.c.extension, registrations.c.binding_key],
            set_=changes,
        ).returning(*registrations.c)
        async with self._database.write() as connection:
            row = (await connection.execute(statement)).mappings().one()
        return registration_from_row(row)

    async def remove(self, extension: str, binding_key: str) -> bool:
        """Remove one binding (a REGISTER with Expires: 0 for it)."""
        statement = sa.delete(registrations).where(
            registrations.c.extension == extension, registrations.c.binding_key == binding_key
        )
        async with self._database.write() as connection:
            return (await connection.execute(statement)).rowcount > 0

    async def remove_all(self, extension: str) -> int:
        """Remove every binding of an extension (``Contact: *``, Expires: 0)."""
        statement = sa.delete(registrations).where(registrations.c.extension == extension)
        async with self._database.write() as connection:
            return (await connection.execute(statement)).rowcount

    async def list_for(self, extension: str, now: datetime) -> list[Registration]:
        """The extension's live bindings, highest q first (absent q counts as 1.0)."""
        statement = (
            sa.select(registrations)
            .where(registrations.c.extension == extension, registrations.c.expires_at > now)
            .order_by(sa.func.coalesce(registrations.c.q, 1.0).desc(),
                      registrations.c.updated_at.desc(), registrations.c.id)
        )
        async with self._database.read() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [registration_from_row(row) for row in rows]

    async def list_all(self, now: datetime) -> list[Registration]:
        """Every live binding, by extension."""
        statement = (
            sa.select(registrations)
            .where(registrations.c.expires_at > now)
            .order_by(registrations.c.extension, registrations.c.id)
        )
        async with self._database.read() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [registration_from_row(row) for row in rows]

    async def expire(self, now: datetime) -> int:
        """Delete bindings whose expiry has passed; returns how many."""
        statement = sa.delete(registrations).where(registrations.c.expires_at <= now)
        async with self._database.write() as connection:
            removed = (await connection.execute(statement)).rowcount
        if removed:
            log.info("%d expired registrations removed", removed)
        return removed
