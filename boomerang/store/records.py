"""Call records (SPEC §6): one row per leg, legs of one story share a
``correlation_id`` (trigger, callback leg, destination leg).

A leg is inserted when it starts, ``answer``ed when a 200 OK arrives, and
``finish``ed when it ends: that computes ``duration_s`` (start to end) and
``billable_s`` (answer to end, 0 when never answered).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping

from .engine import Database
from .models import (
    CallRecord,
    CallRecordFilter,
    CallResult,
    ExtensionTotals,
    LegKind,
    NewCallRecord,
)
from .tables import call_records

log = logging.getLogger(__name__)

# Columns ``update`` may change; the rest have their own method or never change.
UPDATABLE_FIELDS = frozenset({
    "owner_extension", "trunk", "trigger_did", "trigger_caller", "callback_target",
    "dialed_destination", "call_id", "attempts", "sip_status", "q850_cause",
    "cost_estimate", "saving_estimate", "currency",
})


def _float_or_none(value: Any) -> float | None:
    # SQLite hands back a REAL holding a whole number as an int.
    return None if value is None else float(value)


def record_from_row(row: RowMapping) -> CallRecord:
    return CallRecord(
        id=row["id"],
        correlation_id=row["correlation_id"],
        leg_kind=LegKind(row["leg_kind"]),
        owner_extension=row["owner_extension"],
        trunk=row["trunk"],
        trigger_did=row["trigger_did"],
        trigger_caller=row["trigger_caller"],
        callback_target=row["callback_target"],
        dialed_destination=row["dialed_destination"],
        call_id=row["call_id"],
        started_at=row["started_at"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        duration_s=_float_or_none(row["duration_s"]),
        billable_s=_float_or_none(row["billable_s"]),
        result=None if row["result"] is None else CallResult(row["result"]),
        sip_status=row["sip_status"],
        q850_cause=row["q850_cause"],
        attempts=row["attempts"],
        cost_estimate=_float_or_none(row["cost_estimate"]),
        saving_estimate=_float_or_none(row["saving_estimate"]),
        currency=row["currency"],
    )


class CallRecordRepository:
    __slots__ = ("_database", "_utc_now")

    def __init__(self, database: Database, utc_now: Callable[[], datetime]) -> None:
        self._database = database
        self._utc_now = utc_now

    async def insert(self, record: NewCallRecord) -> CallRecord:
        statement = (
            sa.insert(call_records)
            .values(
                correlation_id=record.correlation_id,
                leg_kind=LegKind(record.leg_kind).value,
                owner_extension=record.owner_extension,
                trunk=record.trunk,
                trigger_did=record.trigger_did,
                trigger_caller=record.trigger_caller,
                callback_target=record.callback_target,
                dialed_destination=record.dialed_destination,
                call_id=record.call_id,
                started_at=record.started_at,
                attempts=record.attempts,
            )
            .returning(*call_records.c)
        )
        async with self._database.write() as connection:
            row = (await connection.execute(statement)).mappings().one()
        return record_from_row(row)

    async def get(self, record_id: int) -> CallRecord | None:
        statement = sa.select(call_records).where(call_records.c.id == record_id)
        async with self._database.read() as connection:
            row = (await connection.execute(statement)).mappings().one_or_none()
        return None if row is None else record_from_row(row)

    async def update(self, record_id: int, **fields: Any) -> CallRecord:
        """Change descriptive fields (see UPDATABLE_FIELDS) of a leg."""
        unknown = set(fields) - UPDATABLE_FIELDS
        if unknown:
            raise ValueError(f"call record fields not updatable here: {sorted(unknown)}")
        return await self._update(record_id, fields)

    async def answer(self, record_id: int, answered_at: datetime) -> CallRecord:
        return await self._update(record_id, {"answered_at": answered_at})

    async def finish(
        self,
        record_id: int,
        *,
        ended_at: datetime,
        result: CallResult,
        sip_status: int | None = None,
        q850_cause: int | None = None,
    ) -> CallRecord:
        """End the leg; computes duration_s and billable_s."""
        async with self._database.write() as connection:
            row = (await connection.execute(
                sa.select(call_records.c.started_at, call_records.c.answered_at)
                .where(call_records.c.id == record_id)
            )).one_or_none()
            if row is None:
                raise KeyError(f"no call record {record_id}")
            started_at, answered_at = row
            duration_s = max(0.0, (ended_at - started_at).total_seconds())
            billable_s = (0.0 if answered_at is None
                          else max(0.0, (ended_at - answered_at).total_seconds()))
            values: dict[str, Any] = {
                "ended_at": ended_at, "result": CallResult(result).value,
                "duration_s": duration_s, "billable_s": billable_s,
            }
            if sip_status is not None:
                values["sip_status"] = sip_status
            if q850_cause is not None:
                values["q850_cause"] = q850_cause
            updated = (await connection.execute(
                sa.update(call_records).where(call_records.c.id == record_id)
                .values(**values).returning(*call_records.c)
            )).mappings().one()
        return record_from_row(updated)

    async def query(self, record_filter: CallRecordFilter | None = None) -> list[CallRecord]:
        """Legs matching the filter, oldest first."""
        record_filter = record_filter or CallRecordFilter()
        statement = (
            sa.select(call_records)
            .where(*self._conditions(record_filter))
            .order_by(call_records.c.started_at, call_records.c.id)
            .offset(record_filter.offset)
        )
        if record_filter.limit is not None:
            statement = statement.limit(record_filter.limit)
        async with self._database.read() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [record_from_row(row) for row in rows]

    async def totals(
        self,
        *,
        owner_extension: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[ExtensionTotals]:
        """Per owner extension over legs started in [since, until)."""
        record_filter = CallRecordFilter(owner_extension=owner_extension, since=since,
                                         until=until)
        answered = sa.case((call_records.c.result == CallResult.ANSWERED.value, 1), else_=0)
        statement = (
            sa.select(
                call_records.c.owner_extension,
                sa.func.count().label("legs"),
                sa.func.coalesce(sa.func.sum(answered), 0).label("answered_legs"),
                sa.func.coalesce(sa.func.sum(call_records.c.duration_s), 0.0).label("duration_s"),
                sa.func.coalesce(sa.func.sum(call_records.c.billable_s), 0.0).label("billable_s"),
                sa.func.sum(call_records.c.cost_estimate).label("cost_estimate"),
                sa.func.sum(call_records.c.saving_estimate).label("saving_estimate"),
            )
            .where(call_records.c.owner_extension.is_not(None),
                   *self._conditions(record_filter))
            .group_by(call_records.c.owner_extension)
            .order_by(call_records.c.owner_extension)
        )
        async with self._database.read() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [
            ExtensionTotals(
                owner_extension=row["owner_extension"],
                legs=int(row["legs"]),
                answered_legs=int(row["answered_legs"]),
                duration_s=float(row["duration_s"]),
                billable_s=float(row["billable_s"]),
                cost_estimate=None if row["cost_estimate"] is None
                else float(row["cost_estimate"]),
                saving_estimate=None if row["saving_estimate"] is None
                else float(row["saving_estimate"]),
            )
            for row in rows
        ]

    @staticmethod
    def _conditions(record_filter: CallRecordFilter) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = []
        if record_filter.owner_extension is not None:
            conditions.append(call_records.c.owner_extension == record_filter.owner_extension)
        if record_filter.since is not None:
            conditions.append(call_records.c.started_at >= record_filter.since)
        if record_filter.until is not None:
            conditions.append(call_records.c.started_at < record_filter.until)
        if record_filter.result is not None:
            conditions.append(call_records.c.result == CallResult(record_filter.result).value)
        if record_filter.correlation_id is not None:
            conditions.append(call_records.c.correlation_id == record_filter.correlation_id)
        if record_filter.leg_kind is not None:
            conditions.append(call_records.c.leg_kind == LegKind(record_filter.leg_kind).value)
        return conditions

    async def _update(self, record_id: int, values: Mapping[str, Any]) -> CallRecord:
        statement = (
            sa.update(call_records).where(call_records.c.id == record_id)
            .values(**values).returning(*call_records.c)
        )
        async with self._database.write() as connection:
            row = (await connection.execute(statement)).mappings().one_or_none()
        if row is None:
            raise KeyError(f"no call record {record_id}")
        return record_from_row(row)
