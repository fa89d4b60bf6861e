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

    day = {"since": now, "until": now + timedelta(days=1)}
    totals = await store.records.totals(**day)
    assert [(t.owner_extension, t.legs, t.answered_legs, t.duration_s, t.billable_s)
            for t in totals] == [("101", 3, 2, 142.0, 90.0), ("102", 1, 1, 21.0, 20.0)]
    assert totals[0].cost_estimate == pytest.approx(0.75)
    assert totals[0].saving_estimate == pytest.approx(2.25)
    assert totals[1].cost_estimate is None
    only_101 = await store.records.totals(owner_extension="101")
    assert [(t.legs, t.billable_s) for t in only_101] == [(4, 100.0)]
