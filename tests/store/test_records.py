"""Call records: insert, answer, finish (durations), update, filters, totals."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from boomerang.store import (
    CallRecordFilter,
    CallResult,
    LegKind,
    NewCallRecord,
    Store,
)
from boomerang.store.records import LegEstimate


def _leg(now: datetime, **changes: object) -> NewCallRecord:
    fields: dict[str, object] = {
        "correlation_id": "story-1", "leg_kind": LegKind.CALLBACK, "started_at": now,
        "owner_extension": "101", "trunk": "carrier", "trigger_did": "+48221234567",
        "trigger_caller": "+48600100200", "callback_target": "+48600100200",
    }
    fields.update(changes)
    return NewCallRecord(**fields)  # type: ignore[arg-type]


async def test_a_leg_is_inserted_answered_and_finished_with_durations(
    store: Store, now: datetime
) -> None:
    leg = await store.records.insert(_leg(now, call_id="abc@boomerang"))
    assert leg.result is None and leg.ended_at is None and leg.attempts == 1
    await store.records.answer(leg.id, now + timedelta(seconds=4))
    finished = await store.records.finish(
        leg.id, ended_at=now + timedelta(seconds=94.5), result=CallResult.ANSWERED,
        sip_status=200, q850_cause=16)
    assert finished.answered_at == now + timedelta(seconds=4)
    assert (finished.duration_s, finished.billable_s) == (94.5, 90.5)
    assert (finished.result, finished.sip_status, finished.q850_cause) == (
        CallResult.ANSWERED, 200, 16)
    assert await store.records.get(leg.id) == finished


async def test_an_unanswered_leg_bills_nothing(store: Store, now: datetime) -> None:
    leg = await store.records.insert(_leg(now))
    finished = await store.records.finish(leg.id, ended_at=now + timedelta(seconds=45),
                                          result=CallResult.NO_ANSWER, sip_status=480)
    assert (finished.duration_s, finished.billable_s) == (45.0, 0.0)


async def test_update_changes_descriptive_fields_only(store: Store, now: datetime) -> None:
    leg = await store.records.insert(_leg(now, leg_kind=LegKind.DESTINATION))
    updated = await store.records.update(leg.id, dialed_destination="+4930123456",
                                         cost_estimate=0.12, saving_estimate=1.5,
                                         currency="EUR", attempts=2)
    assert (updated.dialed_destination, updated.cost_estimate, updated.currency,
            updated.attempts) == ("+4930123456", 0.12, "EUR", 2)
    with pytest.raises(ValueError, match="started_at"):
        await store.records.update(leg.id, started_at=now)
    with pytest.raises(KeyError):
        await store.records.update(leg.id + 1000, trunk="x")


async def test_query_filters_by_extension_time_result_and_correlation(
    store: Store, now: datetime
) -> None:
    trigger = await store.records.insert(_leg(now, leg_kind=LegKind.TRIGGER))
    callback = await store.records.insert(_leg(now + timedelta(seconds=10)))
    other = await store.records.insert(_leg(now + timedelta(hours=2), owner_extension="102",
                                            correlation_id="story-2"))
    await store.records.finish(trigger.id, ended_at=now + timedelta(seconds=6),
                               result=CallResult.REJECTED, sip_status=486)
    await store.records.finish(callback.id, ended_at=now + timedelta(seconds=60),
                               result=CallResult.ANSWERED)

    def ids(records: list) -> list[int]:  # type: ignore[type-arg]
        return [record.id for record in records]

    query = store.records.query
    assert ids(await query()) == [trigger.id, callback.id, other.id]
    assert ids(await query(CallRecordFilter(owner_extension="101"))) == [trigger.id, callback.id]
    assert ids(await query(CallRecordFilter(correlation_id="story-1"))) == [
        trigger.id, callback.id]
    assert ids(await query(CallRecordFilter(result=CallResult.REJECTED))) == [trigger.id]
    assert ids(await query(CallRecordFilter(leg_kind=LegKind.TRIGGER))) == [trigger.id]
    window = CallRecordFilter(since=now + timedelta(seconds=10), until=now + timedelta(hours=2))
    assert ids(await query(window)) == [callback.id]
    assert ids(await query(CallRecordFilter(limit=1, offset=1))) == [callback.id]


async def test_totals_per_extension_and_period(store: Store, now: datetime) -> None:
    async def leg(extension: str, start_s: float, answer_s: float | None, end_s: float,
                  result: CallResult, cost: float | None = None) -> None:
        record = await store.records.insert(
            _leg(now + timedelta(seconds=start_s), owner_extension=extension))
        if answer_s is not None:
            await store.records.answer(record.id, now + timedelta(seconds=answer_s))
        if cost is not None:
            await store.records.update(record.id, cost_estimate=cost, saving_estimate=cost * 3)
        await store.records.finish(record.id, ended_at=now + timedelta(seconds=end_s),
                                   result=result)

    await leg("101", 0, 5, 65, CallResult.ANSWERED, cost=0.25)
    await leg("101", 100, None, 145, CallResult.NO_ANSWER)
    await leg("101", 200, 202, 232, CallResult.ANSWERED, cost=0.5)
    await leg("102", 50, 51, 71, CallResult.ANSWERED)
    await leg("101", 86_400, 86_401, 86_411, CallResult.ANSWERED)  # the next day

    totals = await store.records.totals(since=now, until=now + timedelta(days=1))
    assert [(t.owner_extension, t.legs, t.answered_legs, t.duration_s, t.billable_s)
            for t in totals] == [("101", 3, 2, 142.0, 90.0), ("102", 1, 1, 21.0, 20.0)]
    assert totals[0].cost_estimate == pytest.approx(0.75)
    assert totals[0].saving_estimate == pytest.approx(2.25)
    assert totals[1].cost_estimate is None
    only_101 = await store.records.totals(owner_extension="101")
    assert [(t.legs, t.billable_s) for t in only_101] == [(4, 100.0)]


async def test_set_estimates_writes_every_row_or_none(store: Store, now: datetime) -> None:
    first = await store.records.insert(_leg(now))
    second = await store.records.insert(_leg(now, leg_kind=LegKind.DESTINATION))
    await store.records.set_estimates([
        LegEstimate(record_id=first.id, cost_estimate=0.125, saving_estimate=1.625,
                    currency="EUR"),
        LegEstimate(record_id=second.id, cost_estimate=0.05, saving_estimate=None,
                    currency="EUR")])
    stored = {r.id: (r.cost_estimate, r.saving_estimate, r.currency)
              for r in await store.records.query()}
    assert stored == {first.id: (0.125, 1.625, "EUR"), second.id: (0.05, None, "EUR")}

    with pytest.raises(KeyError):
        await store.records.set_estimates([
            LegEstimate(record_id=first.id, cost_estimate=9.0, saving_estimate=9.0,
                        currency="PLN"),
            LegEstimate(record_id=second.id + 1000, cost_estimate=1.0, saving_estimate=None,
                        currency="PLN")])
    unchanged = await store.records.get(first.id)
    assert unchanged is not None and unchanged.cost_estimate == 0.125  # rolled back


async def test_live_lists_the_legs_not_ended(store: Store, now: datetime) -> None:
    ended = await store.records.insert(_leg(now))
    running = await store.records.insert(_leg(now + timedelta(seconds=5),
                                              leg_kind=LegKind.DESTINATION))
    earlier = await store.records.insert(_leg(now - timedelta(seconds=5),
                                              leg_kind=LegKind.TRIGGER))
    await store.records.finish(ended.id, ended_at=now + timedelta(seconds=9),
                               result=CallResult.ANSWERED)
    assert [leg.id for leg in await store.records.live()] == [earlier.id, running.id]


async def test_summarise_per_extension_day_and_month_with_filters(
    store: Store, now: datetime
) -> None:
    async def leg(extension: str | None, start: datetime, billable_s: float,
                  cost: float | None, currency: str | None = "EUR",
                  kind: LegKind = LegKind.CALLBACK) -> None:
        record = await store.records.insert(_leg(start, owner_extension=extension,
                                                 leg_kind=kind))
        await store.records.answer(record.id, start)
        if cost is not None:
            await store.records.update(record.id, cost_estimate=cost,
                                       saving_estimate=cost * 2, currency=currency)
        await store.records.finish(record.id, ended_at=start + timedelta(seconds=billable_s),
                                   result=CallResult.ANSWERED)

    late = now.replace(hour=23, minute=59, second=59)  # still the 15th in UTC
    await leg("101", now, 60, 0.25)
    await leg("101", late, 30, 0.5)
    await leg("101", now + timedelta(days=1), 10, 1.0)
    await leg("101", now + timedelta(days=20), 20, None, currency=None)  # February
    await leg("102", now, 40, 0.125)
    await leg(None, now, 0, None, currency=None, kind=LegKind.TRIGGER)

    by_day = await store.records.summarise(period="day")
    assert [(t.period, t.owner_extension, t.legs, t.estimated_legs, t.billable_s,
             t.cost_estimate, t.saving_estimate, t.currency) for t in by_day] == [
        ("2030-01-15", "101", 2, 2, 90.0, 0.75, 1.5, "EUR"),
        ("2030-01-15", "102", 1, 1, 40.0, 0.125, 0.25, "EUR"),
        ("2030-01-15", None, 1, 0, 0.0, None, None, None),
        ("2030-01-16", "101", 1, 1, 10.0, 1.0, 2.0, "EUR"),
        ("2030-02-04", "101", 1, 0, 20.0, None, None, None),
    ]
    by_month = await store.records.summarise(CallRecordFilter(owner_extension="101"),
                                             period="month")
    assert [(t.period, t.legs, t.billable_s, t.cost_estimate) for t in by_month] == [
        ("2030-01", 3, 100.0, 1.75), ("2030-02", 1, 20.0, None)]
    whole = await store.records.summarise(CallRecordFilter(leg_kind=LegKind.CALLBACK))
    assert [(t.period, t.owner_extension, t.legs, t.answered_legs) for t in whole] == [
        (None, "101", 4, 4), (None, "102", 1, 1)]


async def test_summarise_never_adds_up_two_currencies(store: Store, now: datetime) -> None:
    for cost, currency in ((0.25, "EUR"), (1.0, "PLN")):
        record = await store.records.insert(_leg(now))
        await store.records.update(record.id, cost_estimate=cost, currency=currency)
    [totals] = await store.records.summarise()
    assert (totals.legs, totals.estimated_legs, totals.mixed_currency, totals.cost_estimate,
            totals.currency) == (2, 2, True, None, None)
