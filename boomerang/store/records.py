"""Call records (SPEC §6): one row per leg, legs of one story share a
``correlation_id`` (trigger, callback leg, destination leg).

A leg is inserted when it starts, ``answer``ed when a 200 OK arrives, and
``finish``ed when it ends: that computes ``duration_s`` (start to end) and
``billable_s`` (answer to end, 0 when never answered).

Reading them back: ``query`` (the legs a filter selects), ``live`` (legs
not ended yet), ``totals`` (per extension) and ``summarise`` (per extension
and optionally per UTC day or month, over any filter, with the currency of
the estimates: sums over rows priced in different currencies are refused,
not added). ``set_estimates`` writes the cost and saving estimates of a
story's rows in one transaction (callback/rates.py computes them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import RowMapping

from .engine import POSTGRESQL, Database
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

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")

# Columns ``update`` may change; the rest have their own method or never change.
UPDATABLE_FIELDS = frozenset({
    "owner_extension", "trunk", "trigger_did", "trigger_caller", "callback_target",
    "dialed_destination", "call_id", "attempts", "sip_status", "q850_cause",
    "cost_estimate", "saving_estimate", "currency",
})


@dataclass(frozen=True, slots=True, kw_only=True)
class LegEstimate:
    """The estimates of one row, as ``set_estimates`` writes them."""

    record_id: int
    cost_estimate: float | None
    saving_estimate: float | None
    currency: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordTotals:
    """Sums over the legs of one owner extension (None: legs with no owner,
    e.g. refused triggers) in one period (``2030-01-15`` or ``2030-01``,
    UTC; None when not split by period).

    ``estimated_legs`` counts the rows holding a cost estimate. ``currency``
    is the one currency of the estimates summed; when the rows hold several,
    ``mixed_currency`` is True and the two sums are None (never added up).
    """

    owner_extension: str | None
    period: str | None
    legs: int
    answered_legs: int
    estimated_legs: int
    duration_s: float
    billable_s: float
    cost_estimate: float | None
    saving_estimate: float | None
    currency: str | None
    mixed_currency: bool


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

    async def set_estimates(self, estimates: Sequence[LegEstimate]) -> None:
        """Write the cost/saving estimates and currency of rows, all or none."""
        if not estimates:
            return
        async with self._database.write() as connection:
            for item in estimates:
                changed = (await connection.execute(
                    sa.update(call_records).where(call_records.c.id == item.record_id)
                    .values(cost_estimate=item.cost_estimate,
                            saving_estimate=item.saving_estimate, currency=item.currency)
                )).rowcount
                if changed != 1:
                    raise KeyError(f"no call record {item.record_id}")

    async def live(self) -> list[CallRecord]:
        """Legs not ended yet (in progress, or left by a node that died), oldest first."""
        statement = (
            sa.select(call_records).where(call_records.c.ended_at.is_(None))
            .order_by(call_records.c.started_at, call_records.c.id)
        )
        async with self._database.read() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [record_from_row(row) for row in rows]

    async def summarise(
        self, record_filter: CallRecordFilter | None = None, *, period: Period | None = None
    ) -> list[RecordTotals]:
        """Totals per owner extension (and per UTC day or month) over the legs
        the filter selects (its ``limit``/``offset`` are ignored); ordered by
        period, then extension, legs without an owner last."""
        record_filter = record_filter or CallRecordFilter()
        column = call_records.c
        period_column = (self._period(period) if period is not None
                         else sa.null()).label("period")
        answered = sa.case((column.result == CallResult.ANSWERED.value, 1), else_=0)
        statement = (
            sa.select(
                column.owner_extension,
                period_column,
                sa.func.count().label("legs"),
                sa.func.coalesce(sa.func.sum(answered), 0).label("answered_legs"),
                sa.func.count(column.cost_estimate).label("estimated_legs"),
                sa.func.coalesce(sa.func.sum(column.duration_s), 0.0).label("duration_s"),
                sa.func.coalesce(sa.func.sum(column.billable_s), 0.0).label("billable_s"),
                sa.func.sum(column.cost_estimate).label("cost_estimate"),
                sa.func.sum(column.saving_estimate).label("saving_estimate"),
                sa.func.min(column.currency).label("currency_low"),
                sa.func.max(column.currency).label("currency_high"),
            )
            .where(*self._conditions(record_filter))
            .group_by(column.owner_extension,
                      *([period_column] if period is not None else []))
        )
        async with self._database.read() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        totals = []
        for row in rows:
            mixed = row["currency_low"] != row["currency_high"]
            totals.append(RecordTotals(
                owner_extension=row["owner_extension"],
                period=row["period"],
                legs=int(row["legs"]),
                answered_legs=int(row["answered_legs"]),
                estimated_legs=int(row["estimated_legs"]),
                duration_s=float(row["duration_s"]),
                billable_s=float(row["billable_s"]),
                cost_estimate=None if mixed else _float_or_none(row["cost_estimate"]),
                saving_estimate=None if mixed else _float_or_none(row["saving_estimate"]),
                currency=None if mixed else row["currency_low"],
                mixed_currency=mixed,
            ))
        totals.sort(key=lambda t: (t.period or "", t.owner_extension is None,
                                   t.owner_extension or ""))
        return totals

    def _period(self, period: Period) -> sa.ColumnElement[str]:
        """The UTC day (``2030-01-15``) or month (``2030-01``) a leg started in."""
        if period not in PERIODS:
            raise ValueError(f"period must be one of {PERIODS}, not {period!r}")
        started_at = call_records.c.started_at
        if self._database.dialect_name == POSTGRESQL:
            # Literal SQL, not bound parameters: GROUP BY must repeat the
            # select's expression exactly, and $1 is not $3 to PostgreSQL.
            pattern = "'YYYY-MM-DD'" if period == "day" else "'YYYY-MM'"
            return sa.func.to_char(sa.func.timezone(sa.literal_column("'UTC'"), started_at),
                                   sa.literal_column(pattern), type_=sa.String)
        # SQLite keeps naive UTC text, "2030-01-15 12:00:00.000000" (tables.UtcDateTime).
        return sa.func.substr(started_at, 1, 10 if period == "day" else 7, type_=sa.String)

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
