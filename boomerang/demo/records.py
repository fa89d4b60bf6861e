"""The demo's last step: the story's call records, read back from the database.

``wait_for_story`` opens the demo's SQLite database (the one ``serve``
writes) and polls until the story is complete there: the trigger leg found
by the Call-ID the mobile sent, and in its story (same ``correlation_id``)
the callback leg and the destination leg found by the Call-IDs the mobile
and the phone received, every leg ended, billed to the owner extension,
and the callback leg carrying the saving estimate (callback/rates.py
writes the estimates once the story ended). What is still missing when the
time is up is the failure's reason. ``print_records`` shows the rows and
the estimates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..config import Config
from ..store import CallRecord, CallRecordFilter, LegKind, open_store
from .setup import DemoPlan

POLL_INTERVAL_S = 0.2


class RecordsIncomplete(Exception):
    """The story's records did not show what they must within the time."""


def _missing(rows: list[CallRecord], *, trigger_call_id: str, callback_call_id: str,
             destination_call_id: str, owner: str) -> tuple[list[CallRecord], str | None]:
    """The story's rows and what is still missing (None: complete)."""
    trigger = next((row for row in rows if row.call_id == trigger_call_id), None)
    if trigger is None:
        return [], f"no record of the trigger call (call_id={trigger_call_id})"
    story = sorted((row for row in rows if row.correlation_id == trigger.correlation_id),
                   key=lambda row: (row.started_at, row.id))
    wanted = {"callback": callback_call_id, "destination": destination_call_id}
    for what, call_id in wanted.items():
        if not any(row.call_id == call_id for row in story):
            return story, (f"no {what} leg (call_id={call_id}) in the story of the trigger "
                           f"(correlation_id={trigger.correlation_id})")
    for row in story:
        if row.ended_at is None:
            return story, f"the {row.leg_kind.value} leg (call_id={row.call_id}) has not ended"
        if row.owner_extension != owner:
            return story, (f"the {row.leg_kind.value} leg is billed to "
                           f"{row.owner_extension or 'nobody'}, not extension {owner}")
    callback = next(row for row in story if row.call_id == callback_call_id)
    if callback.leg_kind is not LegKind.CALLBACK:
        return story, f"the callback leg is recorded as {callback.leg_kind.value}"
    if callback.saving_estimate is None:
        return story, "the callback leg has no saving estimate"
    return story, None


async def wait_for_story(config: Config, *, trigger_call_id: str, callback_call_id: str,
                         destination_call_id: str, owner: str, timeout_s: float
                         ) -> list[CallRecord]:
    """The story's rows once complete; raises RecordsIncomplete (see the module doc)."""
    store = await open_store(config.database.url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while True:
            rows = await store.records.query(CallRecordFilter())
            story, missing = _missing(rows, trigger_call_id=trigger_call_id,
                                      callback_call_id=callback_call_id,
                                      destination_call_id=destination_call_id, owner=owner)
            if missing is None:
                return story
            if loop.time() >= deadline:
                raise RecordsIncomplete(f"after {timeout_s:.0f} s: {missing}")
            await asyncio.sleep(POLL_INTERVAL_S)
    finally:
        await store.close()


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _numbers(row: CallRecord) -> str:
    if row.leg_kind is LegKind.TRIGGER:
        return f"{row.trigger_caller or '?'} -> {row.trigger_did or '?'}"
    if row.leg_kind is LegKind.CALLBACK:
        return f"-> {row.callback_target or '?'}"
    return f"-> {row.dialed_destination or '?'}"


def _money(value: float | None, currency: str | None) -> str:
    return "-" if value is None else f"{value:.4f} {currency or ''}".rstrip()


def print_records(rows: list[CallRecord], config: Config, plan: DemoPlan,
                  write: Callable[[str], None]) -> None:
    """The rows as a table, then the story's cost and saving."""
    if not rows:
        write("No call records.")
        return
    write(f"Call records (from the database; story correlation_id={rows[0].correlation_id}):")
    header = ("leg", "numbers", "owner", "answered", "duration", "billable", "result",
              "SIP", "trunk", "cost")
    table = [header]
    for row in rows:
        table.append((
            row.leg_kind.value, _numbers(row), row.owner_extension or "-",
            "yes" if row.answered_at is not None else "no", _seconds(row.duration_s),
            _seconds(row.billable_s), row.result.value if row.result else "-",
            str(row.sip_status) if row.sip_status is not None else "-", row.trunk or "-",
            _money(row.cost_estimate, row.currency)))
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        write("  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths,
                                                                            strict=True)).rstrip())
    costs = [row.cost_estimate for row in rows]
    currency = config.records.currency
    callback = next((row for row in rows if row.leg_kind is LegKind.CALLBACK), None)
    if all(cost is not None for cost in costs):
        total = sum(cost for cost in costs if cost is not None)
        write(f"Estimated cost of the story: {total:.4f} {currency} (rate table: "
              f"{plan.mobile_prefix} at {plan.mobile_per_minute:.2f} {currency}/min for the "
              f"callback leg; the trigger, never answered, costs nothing)")
    if callback is not None and callback.saving_estimate is not None:
        write(f"Estimated saving for extension {callback.owner_extension}: "
              f"{callback.saving_estimate:.4f} {currency} against calling from abroad at "
              f"{plan.roaming_per_minute:.2f} {currency}/min roaming")


__all__ = ["RecordsIncomplete", "print_records", "wait_for_story"]
