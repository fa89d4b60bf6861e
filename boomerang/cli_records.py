"""``boomerang cdr`` and ``boomerang calls``: the records and the live state,
read from the database the config names (SPEC §5, §6).

Both commands only read. They open the database without migrating it
(``open_store(run_migrations=False)``): a schema older than this Boomerang is
reported (``boomerang run`` migrates on start), a SQLite file that does not
exist is reported rather than created. They can run beside a running server
(SQLite WAL lets readers run beside the writer).

Output formats: ``table`` (aligned columns for people, UTC times to the
second), ``csv`` (a header, then one line per row; empty cells for NULL) and
``json`` (a list of objects with the store's snake_case keys). CSV and JSON
carry every field, times as UTC ISO 8601 (``2030-01-15T12:00:04+00:00``).

``--since``/``--until`` take ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]``, in
UTC unless an offset is written (``2030-01-15T12:00+01:00``); ``since`` is
inclusive, ``until`` exclusive (``--since 2030-01-01 --until 2030-02-01`` is
January).

Exit status: 0 (also when nothing matches), 1 the database cannot be read,
2 a bad command line or a config that does not load.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import io
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from .store import CallbackJob, CallRecord, Store
    from .store.records import RecordTotals

DEFAULT_CONFIG = "boomerang.yaml"
FORMATS = ("table", "csv", "json")
NONE_CELL = "-"
# The values of store.CallResult, store.LegKind and store.records.PERIODS,
# written out so that building the parser does not import SQLAlchemy (half a
# second on every `boomerang` command); a test checks they agree.
RESULTS = ("answered", "busy", "no_answer", "rejected", "failed", "cancelled", "refused")
LEG_KINDS = ("trigger", "callback", "destination", "internal")
PERIODS = ("day", "month")


class _DatabaseError(Exception):
    """The database cannot be read; the message says why and what to do."""


# -- arguments -----------------------------------------------------------------------


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time; write YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC), "
            "e.g. 2030-01-15 or 2030-01-15T08:30") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count; write 1 or more")
    return int(text)


def add_cdr_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.add_argument("--extension", metavar="N", help="only legs billed to extension N")
    parser.add_argument("--since", type=_timestamp, metavar="YYYY-MM-DD[THH:MM]",
                        help="legs started at or after this time (UTC)")
    parser.add_argument("--until", type=_timestamp, metavar="YYYY-MM-DD[THH:MM]",
                        help="legs started before this time (UTC)")
    parser.add_argument("--result", choices=RESULTS,
                        help="only legs with this result")
    parser.add_argument("--kind", choices=LEG_KINDS,
                        help="only legs of this kind")
    parser.add_argument("--correlation", metavar="ID", help="only the legs of one story")
    parser.add_argument("--limit", type=_positive, metavar="N", help="at most N legs")
    parser.add_argument("--totals", action="store_true",
                        help="totals per extension instead of the legs")
    parser.add_argument("--period", choices=PERIODS,
                        help="totals per extension and per UTC day or month (implies --totals)")


def add_calls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="output format")


# -- commands ------------------------------------------------------------------------


def run_cdr(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if config is None:
        return 2
    if args.limit is not None and (args.totals or args.period):
        print("boomerang cdr: --limit lists fewer legs; it does not apply to --totals",
              file=sys.stderr)
        return 2
    return _run(config, lambda store: _cdr(store, args))


def run_calls(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if config is None:
        return 2
    return _run(config, lambda store: _calls(store, args.format))


def _config(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return None


def _run(config: Config, command: Callable[[Store], Awaitable[str]]) -> int:
    async def main() -> str:
        store = await _open(config)
        try:
            return await command(store)
        finally:
            await store.close()

    try:
        output = asyncio.run(main())
    except _DatabaseError as error:
        print(f"boomerang: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(output)
    return 0


async def _open(config: Config) -> Store:
    from sqlalchemy.exc import SQLAlchemyError

    from .store import (
        SchemaOutOfDateError,
        SchemaTooNewError,
        StoreError,
        open_store,
        resolve_url,
    )

    url = config.database.url
    try:
        target = resolve_url(url)
    except StoreError as error:
        raise _DatabaseError(str(error)) from None
    if target.dialect_name == "sqlite" and not target.in_memory:
        path = Path(str(target.url.database))
        if not path.is_file():
            raise _DatabaseError(f"database {target.display}: no file {str(path)!r} (relative "
                                 "paths are read from the working directory); `boomerang "
                                 "run` creates it, or run this where the server runs")
    try:
        return await open_store(url, run_migrations=False)
    except SchemaOutOfDateError as error:
        raise _DatabaseError(f"database {target.display}: {error}; start `boomerang run` "
                             "with this Boomerang once to migrate it") from None
    except (SchemaTooNewError, StoreError) as error:
        raise _DatabaseError(f"database {target.display}: {error}") from None
    except (OSError, SQLAlchemyError) as error:
        reason = getattr(error, "orig", None) or error
        raise _DatabaseError(f"database {target.display} cannot be read: {reason}") from None


async def _cdr(store: Store, args: argparse.Namespace) -> str:
    from .store import CallRecordFilter, CallResult, LegKind

    record_filter = CallRecordFilter(
        owner_extension=args.extension, since=args.since, until=args.until,
        result=None if args.result is None else CallResult(args.result),
        correlation_id=args.correlation,
        leg_kind=None if args.kind is None else LegKind(args.kind), limit=args.limit)
    if args.totals or args.period:
        totals = await store.records.summarise(record_filter, period=args.period)
        return _format_totals(totals, args.format, by_period=args.period is not None)
    records = await store.records.query(record_filter)
    return _format_records(records, args.format)


async def _calls(store: Store, output_format: str) -> str:
    jobs = await store.jobs.load_unfinished()
    legs = await store.records.live()
    if output_format == "json":
        return _json({"callbacks": [_job_dict(job) for job in jobs],
                      "live_legs": [_plain(leg) for leg in legs]})
    job_rows = [[str(job.id), job.correlation_id, job.owner_extension, job.target_number,
                 job.method.value, _table_time(job.due_at),
                 f"{job.attempts}/{job.max_attempts}", job.state.value,
                 job.claimed_by or NONE_CELL, job.last_result or NONE_CELL] for job in jobs]
    leg_rows = [[str(leg.id), leg.correlation_id, leg.leg_kind.value,
                 leg.owner_extension or NONE_CELL, _far_end(leg), leg.trunk or NONE_CELL,
                 leg.call_id or NONE_CELL, _table_time(leg.started_at),
                 _table_time(leg.answered_at)] for leg in legs]
    parts = ["pending and active callbacks:\n"]
    parts.append(_table(["id", "correlation", "owner", "target", "method", "due_utc",
                         "attempts", "state", "claimed_by", "last_result"], job_rows,
                        numeric={0}) if jobs else "  none\n")
    parts.append("\nlive legs:\n")
    parts.append(_table(["id", "correlation", "kind", "owner", "number", "trunk", "call_id",
                         "started_utc", "answered_utc"], leg_rows, numeric={0})
                 if legs else "  none\n")
    return "".join(parts)


# -- formatting ----------------------------------------------------------------------

_RECORD_HEADINGS = ["id", "correlation", "kind", "ext", "caller", "did", "target",
                    "destination", "trunk", "started_utc", "answered_utc", "dur_s", "bill_s",
                    "result", "sip", "q850", "att", "cost", "saving", "cur"]
_RECORD_NUMERIC = {0, 11, 12, 14, 15, 16, 17, 18}
_TOTALS_HEADINGS = ["ext", "legs", "answered", "estimated", "dur_s", "bill_s", "cost",
                    "saving", "cur"]


def _format_records(records: Sequence[CallRecord], output_format: str) -> str:
    if output_format == "json":
        return _json([_plain(record) for record in records])
    if output_format == "csv":
        from .store import CallRecord

        names = [field.name for field in dataclasses.fields(CallRecord)]
        return _csv(names, [_plain(record) for record in records])
    if not records:
        return "no call records match\n"
    rows = [[str(r.id), r.correlation_id, r.leg_kind.value, _cell(r.owner_extension),
             _cell(r.trigger_caller), _cell(r.trigger_did), _cell(r.callback_target),
             _cell(r.dialed_destination), _cell(r.trunk), _table_time(r.started_at),
             _table_time(r.answered_at), _number(r.duration_s, 1), _number(r.billable_s, 1),
             _cell(None if r.result is None else r.result.value), _cell(r.sip_status),
             _cell(r.q850_cause), str(r.attempts), _number(r.cost_estimate, 4),
             _number(r.saving_estimate, 4), _cell(r.currency)] for r in records]
    return _table(_RECORD_HEADINGS, rows, numeric=_RECORD_NUMERIC)


def _format_totals(totals: Sequence[RecordTotals], output_format: str, *, by_period: bool) -> str:
    from .store.records import RecordTotals

    names = [field.name for field in dataclasses.fields(RecordTotals)]
    if not by_period:
        names.remove("period")
    plain = [{name: _plain(item)[name] for name in names} for item in totals]
    if output_format == "json":
        return _json(plain)
    if output_format == "csv":
        return _csv(names, plain)
    if not totals:
        return "no call records match\n"
    headings = (["period"] if by_period else []) + _TOTALS_HEADINGS
    rows = []
    for item in totals:
        currency = "mixed" if item.mixed_currency else _cell(item.currency)
        row = [_cell(item.owner_extension), str(item.legs), str(item.answered_legs),
               str(item.estimated_legs), _number(item.duration_s, 1),
               _number(item.billable_s, 1), _number(item.cost_estimate, 4),
               _number(item.saving_estimate, 4), currency]
        rows.append(([item.period or NONE_CELL] if by_period else []) + row)
    offset = 1 if by_period else 0
    return _table(headings, rows, numeric={offset + index for index in range(1, 8)})


def _far_end(leg: CallRecord) -> str:
    """The number at the other end of a leg, by its kind."""
    from .store import LegKind

    by_kind = {LegKind.TRIGGER: leg.trigger_caller, LegKind.CALLBACK: leg.callback_target}
    return _cell(by_kind.get(leg.leg_kind, leg.dialed_destination))


def _job_dict(job: CallbackJob) -> dict[str, Any]:
    keys = ("id", "correlation_id", "owner_extension", "target_number", "method", "trunk",
            "due_at", "attempts", "max_attempts", "state", "claimed_by", "claimed_at",
            "lease_expires_at", "last_result", "created_at")
    plain = _plain(job)
    return {key: plain[key] for key in keys}


def _plain(item: Any) -> dict[str, Any]:
    """A dataclass as JSON-ready values: enums by value, times as UTC ISO text."""
    return {field.name: _value(getattr(item, field.name)) for field in dataclasses.fields(item)}


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def _csv(names: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([_csv_cell(row[name]) for name in names])
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _cell(value: Any) -> str:
    return NONE_CELL if value is None else str(value)


def _number(value: float | None, decimals: int) -> str:
    return NONE_CELL if value is None else f"{value:.{decimals}f}"


def _table_time(value: datetime | None) -> str:
    return NONE_CELL if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(headings: Sequence[str], rows: Sequence[Sequence[str]], *,
           numeric: set[int]) -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(headings, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (cell.rjust(width) if index in numeric else cell.ljust(width)
                  for index, (cell, width) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(padded).rstrip() + "\n"

    return line(headings) + "".join(line(row) for row in rows)


__all__ = ["add_calls_arguments", "add_cdr_arguments", "run_calls", "run_cdr"]
