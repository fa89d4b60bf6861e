"""DigitCollector: ordering, de-duplication across sources, deadlines."""

from __future__ import annotations

import pytest

from boomerang.media.digits import (
    DigitCollectionEnded,
    DigitCollector,
    DigitEndReason,
    DigitReceived,
    DigitSource,
    digit_for_event_code,
    event_code_for_digit,
)

RFC4733, INFO, INBAND = DigitSource.RFC4733, DigitSource.INFO, DigitSource.INBAND


def press(digit: str, source: DigitSource, time: float) -> DigitReceived:
    return DigitReceived(digit=digit, source=source, time=time, duration_ms=100)


def feed(collector: DigitCollector, *presses: tuple[str, DigitSource, float]) -> list:
    events = []
    for digit, source, time in presses:
        events += collector.add(press(digit, source, time), now=time + 0.1)
    return events


def test_event_codes_map_to_digits_both_ways() -> None:
    assert [digit_for_event_code(c) for c in (0, 9, 10, 11, 12, 15, 16)] == [
        "0", "9", "*", "#", "A", "D", None]
    assert event_code_for_digit("#") == 11 and event_code_for_digit("b") == 13
    with pytest.raises(ValueError):
        event_code_for_digit("E")


def test_digits_are_collected_in_arrival_order() -> None:
    collector = DigitCollector()
    collector.start(0.0)
    feed(collector, ("1", RFC4733, 1.0), ("0", RFC4733, 1.5), ("1", RFC4733, 2.0))
    assert collector.collected == "101"


def test_same_press_in_rfc4733_and_inband_counts_once_whichever_comes_first() -> None:
    for first, second in ((INBAND, RFC4733), (RFC4733, INBAND)):
        collector = DigitCollector()
        collector.start(0.0)
        events = feed(collector, ("5", first, 1.00), ("5", second, 1.02))
        assert [e.source for e in events] == [first]
        assert collector.collected == "5"


def test_repeated_digit_sent_in_two_forms_stays_repeated() -> None:
    collector = DigitCollector()
    collector.start(0.0)
    feed(collector, ("5", INBAND, 1.00), ("5", RFC4733, 1.01),
         ("5", INBAND, 1.20), ("5", RFC4733, 1.21))
    assert collector.collected == "55"


def test_inband_digits_are_dropped_after_rfc4733_was_seen() -> None:
    collector = DigitCollector(inband_holdoff_s=30.0)
    collector.start(0.0)
    feed(collector, ("1", RFC4733, 1.0), ("7", INBAND, 3.0), ("2", RFC4733, 3.5))
    assert collector.collected == "12"
    # After the hold-off, in-band digits count again (e.g. the far end changed).
    feed(collector, ("3", INBAND, 40.0))
    assert collector.collected == "123"


def test_info_and_rfc4733_copies_of_one_press_count_once() -> None:
    collector = DigitCollector()
    collector.start(0.0)
    feed(collector, ("9", RFC4733, 1.0), ("9", INFO, 1.25), ("8", INFO, 2.0))
    assert collector.collected == "98"


def test_mixed_sources_with_different_digits_are_all_kept() -> None:
    collector = DigitCollector()
    collector.start(0.0)
    feed(collector, ("1", INBAND, 1.0), ("2", INFO, 1.1), ("3", RFC4733, 1.2))
    assert collector.collected == "123"


def test_hash_terminates_and_is_not_collected() -> None:
    collector = DigitCollector()
    collector.start(0.0)
    events = feed(collector, ("4", RFC4733, 1.0), ("2", RFC4733, 2.0), ("#", RFC4733, 3.0))
    assert collector.collected == "42"
    assert events[-1] == DigitCollectionEnded(digits="42", reason=DigitEndReason.TERMINATOR,
                                              time=3.1)
    assert collector.next_deadline() is None


def test_first_digit_deadline_then_inter_digit_deadline() -> None:
    collector = DigitCollector(first_digit_timeout_s=10.0, inter_digit_timeout_s=5.0)
    collector.start(100.0)
    assert collector.next_deadline() == 110.0
    assert collector.handle_timer(109.9) == []
    feed(collector, ("6", INBAND, 104.0))
    assert collector.next_deadline() == pytest.approx(109.1)
    assert collector.handle_timer(109.0) == []
    (ended,) = collector.handle_timer(109.1)
    assert ended == DigitCollectionEnded(digits="6", reason=DigitEndReason.INTER_DIGIT_TIMEOUT,
                                         time=109.1)


def test_no_digit_at_all_ends_on_the_first_digit_timeout() -> None:
    collector = DigitCollector(first_digit_timeout_s=10.0)
    collector.start(0.0)
    (ended,) = collector.handle_timer(10.0)
    assert ended.reason == DigitEndReason.FIRST_DIGIT_TIMEOUT and ended.digits == ""


def test_max_digits_ends_the_collection() -> None:
    collector = DigitCollector(max_digits=3)
    collector.start(0.0)
    events = feed(collector, ("1", INFO, 1), ("2", INFO, 2), ("3", INFO, 3))
    assert isinstance(events[-1], DigitCollectionEnded)
    assert events[-1].reason == DigitEndReason.MAX_DIGITS and collector.collected == "123"


def test_digits_after_the_end_are_reported_but_not_collected() -> None:
    collector = DigitCollector()
    collector.start(0.0)
    feed(collector, ("1", RFC4733, 1.0), ("#", RFC4733, 2.0))
    events = feed(collector, ("*", RFC4733, 5.0))
    assert [e.digit for e in events if isinstance(e, DigitReceived)] == ["*"]
    assert collector.collected == "1"


def test_restart_clears_the_digits_and_rearms_the_deadline() -> None:
    collector = DigitCollector(first_digit_timeout_s=10.0)
    collector.start(0.0)
    feed(collector, ("1", RFC4733, 1.0), ("#", RFC4733, 2.0))
    collector.start(50.0)
    assert collector.collected == "" and collector.ended is None
    assert collector.next_deadline() == 60.0
