"""Rate table parsing, longest-prefix lookup, and the cost/saving estimates of
a story written on real SQLite call records (figures worked out by hand)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from boomerang.callback.rates import (
    RateTable,
    RateTableError,
    estimate_story,
    load_rates,
)
from boomerang.config import RecordsSettings
from boomerang.store import (
    CallRecord,
    CallRecordFilter,
    CallResult,
    LegKind,
    NewCallRecord,
    Store,
    open_store,
)

NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)
GOOD_TABLE = """\ufeff# carrier prices, January 2030
prefix,price_per_minute,currency

+48,0.02,EUR
+4860,0.05,EUR       # Polish mobiles: longer prefix, higher price
49,0.03,eur
+4930,0.025,EUR
"1",0.01,EUR
"""
SETTINGS = RecordsSettings(currency="EUR", roaming_rates={"default": 1.50, "DE": 0.90,
                                                          "PL": 0.80})


def _write(tmp_path: Path, text: str, name: str = "rates.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the file ------------------------------------------------------------------------


def test_a_good_table_loads_with_comments_blank_lines_and_optional_plus(
        tmp_path: Path) -> None:
    table = RateTable.load(_write(tmp_path, GOOD_TABLE))
    assert [(rate.prefix, rate.price_per_minute, rate.currency, rate.line)
            for rate in table.rates] == [
        ("+48", 0.02, "EUR", 4), ("+4860", 0.05, "EUR", 5), ("+49", 0.03, "EUR", 6),
        ("+4930", 0.025, "EUR", 7), ("+1", 0.01, "EUR", 8)]
    assert len(table) == 5
    assert table.currencies == frozenset({"EUR"})


def test_the_longest_prefix_wins(tmp_path: Path) -> None:
    table = RateTable.load(_write(tmp_path, GOOD_TABLE))

    def prefix(number: str) -> str | None:
        rate = table.rate_for(number)
        return None if rate is None else rate.prefix

    assert prefix("+48600100200") == "+4860"
    assert prefix("+48221234567") == "+48"
    assert prefix("+4930123456") == "+4930"
    assert prefix("+4989123456") == "+49"
    assert prefix("+12025550123") == "+1"
    assert prefix("48600100200") == "+4860"  # without the plus too
    assert prefix("+33123456789") is None
    assert prefix("+4") is None


def test_every_bad_line_is_named_with_file_line_and_the_right_form(tmp_path: Path) -> None:
    path = _write(tmp_path, "prefix,price_per_minute,currency\n"
                            "+48,0.02,EUR\n"
                            "# fine\n"
                            "+48x,0.02,EUR\n"
                            "+49,cheap,EUR\n"
                            "+33,-0.1,EUR\n"
                            "+44,0.02,EURO\n"
                            "+1,0.02\n"
                            "48,0.03,EUR\n")
    with pytest.raises(RateTableError) as caught:
        RateTable.load(path)
    problems = caught.value.problems
    assert [problem.split(": ", 1)[0] for problem in problems] == [
        f"{path}:4", f"{path}:5", f"{path}:6", f"{path}:7", f"{path}:8", f"{path}:9"]
    assert "prefix '+48x' is not a number prefix" in problems[0] and "+4860" in problems[0]
    assert "price 'cheap' is not a price per minute" in problems[1] and "0.05" in problems[1]
    assert "price '-0.1'" in problems[2]
    assert "currency 'EURO' is not a currency code" in problems[3] and "ISO 4217" in problems[3]
    assert "2 fields; write three, prefix,price_per_minute,currency" in problems[4]
    assert "prefix +48 is already priced on line 2" in problems[5]


def test_a_missing_header_an_empty_table_and_a_missing_file_are_refused(
        tmp_path: Path) -> None:
    no_header = _write(tmp_path, "# rates\n+48,0.02,EUR\n", "no_header.csv")
    with pytest.raises(RateTableError) as caught:
        RateTable.load(no_header)
    assert caught.value.problems == [
        f"{no_header}:2: the first line is '+48,0.02,EUR'; it must be the header "
        "prefix,price_per_minute,currency"]

    empty = _write(tmp_path, "prefix,price_per_minute,currency\n# nothing yet\n", "empty.csv")
    with pytest.raises(RateTableError, match=r"empty\.csv: the file holds no rates"):
        RateTable.load(empty)
    blank = _write(tmp_path, "\n# only comments\n", "blank.csv")
    with pytest.raises(RateTableError, match=r"blank\.csv:1: the file holds no header"):
        RateTable.load(blank)
    with pytest.raises(RateTableError, match=r"absent\.csv: no such file"):
        RateTable.load(tmp_path / "absent.csv")


def test_load_rates_follows_the_settings(tmp_path: Path) -> None:
    assert load_rates(RecordsSettings()) is None
    path = _write(tmp_path, GOOD_TABLE)
    loaded = load_rates(RecordsSettings.model_validate({"rate_table": str(path)}))
    assert loaded is not None and len(loaded) == 5


def test_currency_problem_names_the_first_row_in_another_currency() -> None:
    table = RateTable.parse("prefix,price_per_minute,currency\n+48,0.02,EUR\n"
                            "+49,0.10,PLN\n", "mixed.csv")
    assert table.currency_problem("EUR") == (
        "rate table mixed.csv prices in EUR, PLN (line 3: +49 in PLN) but records.currency "
        "is EUR; price every line in EUR or set records.currency to match")
    single = RateTable.parse("prefix,price_per_minute,currency\n+48,0.02,EUR\n", "eur.csv")
    assert single.currency_problem("eur") is None


# -- estimates on a real store -------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path / 'records.db'}")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def rates(tmp_path: Path) -> RateTable:
    return RateTable.load(_write(tmp_path, GOOD_TABLE))


async def _leg(store: Store, kind: LegKind, start_s: float, answer_s: float | None,
               end_s: float | None, *, correlation_id: str = "story-1",
               **fields: object) -> int:
    record = await store.records.insert(NewCallRecord(
        correlation_id=correlation_id, leg_kind=kind,
        started_at=NOW + timedelta(seconds=start_s), owner_extension="101",
        call_id=f"{kind.value}-{start_s}@test", **fields))  # type: ignore[arg-type]
    if answer_s is not None:
        await store.records.answer(record.id, NOW + timedelta(seconds=answer_s))
    if end_s is not None:
        result = CallResult.ANSWERED if answer_s is not None else CallResult.REJECTED
        await store.records.finish(record.id, ended_at=NOW + timedelta(seconds=end_s),
                                   result=result)
    return record.id


async def _trigger_and_callback(store: Store, *, callback_answer_s: float | None = 15,
                                callback_end_s: float = 165) -> tuple[int, int]:
    trigger = await _leg(store, LegKind.TRIGGER, 0, None, 6, trunk="carrier",
                         trigger_did="+48221234567", trigger_caller="+48600100200",
                         callback_target="+48600100200")
    callback = await _leg(store, LegKind.CALLBACK, 11, callback_answer_s, callback_end_s,
                          trunk="carrier", trigger_did="+48221234567",
                          callback_target="+48600100200")
    return trigger, callback


async def _story(store: Store, correlation_id: str = "story-1") -> dict[int, CallRecord]:
    legs = await store.records.query(CallRecordFilter(correlation_id=correlation_id))
    return {leg.id: leg for leg in legs}


def _figures(record: CallRecord) -> tuple[float | None, float | None, str | None]:
    return (record.cost_estimate, record.saving_estimate, record.currency)


async def test_a_story_with_a_trunk_destination(store: Store, rates: RateTable) -> None:
    trigger, callback = await _trigger_and_callback(store)
    destination = await _leg(store, LegKind.DESTINATION, 20, 25, 145, trunk="carrier",
                             dialed_destination="+4930123456")
    await estimate_story(store.records, "story-1", rates, SETTINGS, "PL")
    story = await _story(store)
    # Callback: 150 s = 2.5 min at +4860's 0.05 = 0.125. Destination: 120 s =
    # 2 min at +4930's 0.025 = 0.05. The user would have paid 2 min to DE at
    # 0.90 = 1.80 from abroad; saving 1.80 - (0.125 + 0.05) = 1.625.
    assert _figures(story[trigger]) == (0.0, None, "EUR")
    assert _figures(story[callback]) == (0.125, 1.625, "EUR")
    assert _figures(story[destination]) == (0.05, None, "EUR")


async def test_an_internal_destination_counts_as_the_company_country(
        store: Store, rates: RateTable) -> None:
    _, callback = await _trigger_and_callback(store, callback_end_s=105)
    internal = await _leg(store, LegKind.INTERNAL, 20, 22, 82, dialed_destination="102")
    await estimate_story(store.records, "story-1", rates, SETTINGS, "PL")
    story = await _story(store)
    # Callback 90 s = 1.5 min x 0.05 = 0.075; internal leg: no trunk, 0.
    # Direct: 1 min to PL at 0.80; saving 0.80 - 0.075 = 0.725.
    assert _figures(story[callback]) == (0.075, 0.725, "EUR")
    assert _figures(story[internal]) == (0.0, None, "EUR")


async def test_a_country_not_listed_uses_the_default_roaming_rate(
        store: Store, rates: RateTable) -> None:
    _, callback = await _trigger_and_callback(store, callback_end_s=75)
    destination = await _leg(store, LegKind.DESTINATION, 20, 30, 60, trunk="carrier",
                             dialed_destination="+12025550123")
    await estimate_story(store.records, "story-1", rates, SETTINGS, "PL")
    story = await _story(store)
    # Callback 60 s x 0.05 = 0.05; destination 30 s = 0.5 min x +1's 0.01 = 0.005.
    # US is not listed: default 1.50 x 0.5 min = 0.75; saving 0.75 - 0.055 = 0.695.
    assert _figures(story[callback]) == (0.05, 0.695, "EUR")
    assert _figures(story[destination]) == (0.005, None, "EUR")


async def test_a_callback_that_bridged_nothing_has_a_negative_saving(
        store: Store, rates: RateTable) -> None:
    _, callback = await _trigger_and_callback(store, callback_end_s=45)
    await estimate_story(store.records, "story-1", rates, SETTINGS, "PL")
    story = await _story(store)
    # 30 s x 0.05 = 0.025 spent, nothing dialled: saved -0.025.
    assert _figures(story[callback]) == (0.025, -0.025, "EUR")


async def test_an_unanswered_callback_costs_and_saves_nothing(
        store: Store, rates: RateTable) -> None:
    _, callback = await _trigger_and_callback(store, callback_answer_s=None, callback_end_s=56)
    await estimate_story(store.records, "story-1", rates, SETTINGS, "PL")
    assert _figures((await _story(store))[callback]) == (0.0, 0.0, "EUR")


async def test_a_number_with_no_rate_leaves_its_cost_and_the_saving_unknown(
        store: Store, rates: RateTable, caplog: pytest.LogCaptureFixture) -> None:
    _, callback = await _trigger_and_callback(store)
    destination = await _leg(store, LegKind.DESTINATION, 20, 25, 145, trunk="carrier",
                             dialed_destination="+33123456789")
    with caplog.at_level(logging.WARNING, logger="boomerang.callback.rates"):
        await estimate_story(store.records, "story-1", rates, SETTINGS, "PL")
    story = await _story(store)
    assert _figures(story[callback]) == (0.125, None, "EUR")
    assert _figures(story[destination]) == (None, None, None)
    assert any("no prefix of +33123456789" in message and "call_id=" in message
               for message in caplog.messages)


async def test_no_roaming_rate_and_no_default_leaves_the_saving_unknown(
        store: Store, rates: RateTable) -> None:
    _, callback = await _trigger_and_callback(store)
    await _leg(store, LegKind.DESTINATION, 20, 25, 145, trunk="carrier",
               dialed_destination="+12025550123")
    settings = RecordsSettings(currency="EUR", roaming_rates={"PL": 0.80})
    await estimate_story(store.records, "story-1", rates, settings, "PL")
    assert _figures((await _story(store))[callback]) == (0.125, None, "EUR")


async def test_no_rate_table_leaves_every_estimate_null(store: Store) -> None:
    await _trigger_and_callback(store)
    await estimate_story(store.records, "story-1", None, SETTINGS, "PL")
    assert all(_figures(leg) == (None, None, None) for leg in (await _story(store)).values())


async def test_a_table_in_another_currency_is_refused_with_a_log_line(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await _trigger_and_callback(store)
    pln = RateTable.parse("prefix,price_per_minute,currency\n+48,0.10,PLN\n", "pln.csv")
    with caplog.at_level(logging.ERROR, logger="boomerang.callback.rates"):
        await estimate_story(store.records, "story-1", pln, SETTINGS, "PL")
    assert all(_figures(leg) == (None, None, None) for leg in (await _story(store)).values())
    assert any("no estimates" in message and "PLN" in message
               and "records.currency is EUR" in message for message in caplog.messages)


async def test_a_story_still_in_progress_is_left_alone(store: Store, rates: RateTable) -> None:
    await _trigger_and_callback(store)
    await _leg(store, LegKind.DESTINATION, 20, 25, None, trunk="carrier",
               dialed_destination="+4930123456")
    await estimate_story(store.records, "story-1", rates, SETTINGS, "PL")
    assert all(_figures(leg) == (None, None, None) for leg in (await _story(store)).values())


async def test_only_the_named_story_is_estimated_and_totals_add_up(
        store: Store, rates: RateTable) -> None:
    await _trigger_and_callback(store)
    await _leg(store, LegKind.DESTINATION, 20, 25, 145, trunk="carrier",
               dialed_destination="+4930123456")
    other = await _leg(store, LegKind.CALLBACK, 300, 301, 361, correlation_id="story-2",
                       trunk="carrier", callback_target="+48600100200")
    await estimate_story(store.records, "story-1", rates, SETTINGS, "PL")
    assert _figures((await _story(store, "story-2"))[other]) == (None, None, None)
    totals = await store.records.summarise(CallRecordFilter(correlation_id="story-1"))
    assert [(t.owner_extension, t.estimated_legs, t.cost_estimate, t.saving_estimate,
             t.currency) for t in totals] == [("101", 3, 0.175, 1.625, "EUR")]
