"""RFC 4733 telephone-events: payload round trips, receiver, sender."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boomerang.media.digits import DTMF_DIGITS, DigitSource
from boomerang.media.dtmf_rfc4733 import (
    TelephoneEvent,
    TelephoneEventError,
    TelephoneEventReceiver,
    parse_telephone_events,
    serialize_telephone_events,
    telephone_event_packets,
)


def test_payload_parses_event_end_volume_and_duration() -> None:
    (event,) = parse_telephone_events(bytes([0x0B, 0x8A, 0x03, 0x20]))
    assert event == TelephoneEvent(event=11, end=True, volume=10, duration=800)


def test_payload_round_trips_byte_exact_with_several_events() -> None:
    payload = bytes([5, 0x8A, 0x03, 0x20, 6, 0x0A, 0x00, 0xA0])
    events = parse_telephone_events(payload)
    assert [e.event for e in events] == [5, 6]
    assert serialize_telephone_events(events) == payload


def test_reserved_bit_is_ignored_on_parse() -> None:
    (event,) = parse_telephone_events(bytes([1, 0x40 | 7, 0, 160]))
    assert event.volume == 7 and not event.end


@pytest.mark.parametrize("payload", [b"", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"])
def test_truncated_payloads_are_rejected(payload: bytes) -> None:
    with pytest.raises(TelephoneEventError):
        parse_telephone_events(payload)


def test_malformed_packet_is_counted_not_raised() -> None:
    receiver = TelephoneEventReceiver()
    assert receiver.receive(timestamp=0, sequence_number=0, marker=True, payload=b"\x01",
                            now=0.0) == []
    assert receiver.malformed_packets == 1


def test_sender_marks_first_packet_and_repeats_end_three_times() -> None:
    packets = telephone_event_packets("7", duration_ms=100, volume=12)
    events = [parse_telephone_events(p.payload)[0] for p in packets]
    assert [p.marker for p in packets] == [True] + [False] * (len(packets) - 1)
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {7} and {e.volume for e in events} == {12}
    assert [p.send_offset_ms for p in packets] == [0, 20, 40, 60, 80, 100, 120]
    assert {p.timestamp_offset for p in packets} == {0}


def test_sender_splits_long_events_into_segments() -> None:
    packets = telephone_event_packets("#", duration_ms=9000)
    offsets = sorted({p.timestamp_offset for p in packets})
    assert offsets == [0, 0xFFFF]
    last_of_first = [p for p in packets if p.timestamp_offset == 0][-1]
    assert parse_telephone_events(last_of_first.payload)[0] == TelephoneEvent(
        event=11, end=False, volume=10, duration=0xFFFF)
    final = parse_telephone_events(packets[-1].payload)[0]
    assert final.end and final.duration == 72000 - 0xFFFF


def feed(receiver: TelephoneEventReceiver, arrivals: list[tuple[float, int, bool, bytes]],
         until: float) -> list[str]:
    """Feed (now, timestamp, marker, payload) in order, running timers between."""
    digits = []
    for sequence, (now, timestamp, marker, payload) in enumerate(arrivals):
        deadline = receiver.next_deadline()
        while deadline is not None and deadline <= now:
            digits += receiver.handle_timer(deadline)
            deadline = receiver.next_deadline()
        digits += receiver.receive(timestamp=timestamp, sequence_number=sequence,
                                   marker=marker, payload=payload, now=now)
    deadline = receiver.next_deadline()
    while deadline is not None and deadline <= until:
        digits += receiver.handle_timer(deadline)
        deadline = receiver.next_deadline()
    assert all(d.source == DigitSource.RFC4733 for d in digits)
    return [d.digit for d in digits]


def schedule(digits: str, *, duration_ms: float = 100, gap_ms: float = 100,
             first_timestamp: int = 1000) -> list[list[tuple[float, int, bool, bytes]]]:
    """Per event, its packets as (send time, timestamp, marker, payload)."""
    events = []
    now, timestamp = 0.0, first_timestamp
    for digit in digits:
        packets = telephone_event_packets(digit, duration_ms=duration_ms)
        events.append([(now + p.send_offset_ms / 1000, (timestamp + p.timestamp_offset)
                        & 0xFFFFFFFF, p.marker, p.payload) for p in packets])
        step_s = (duration_ms + gap_ms) / 1000
        now += step_s
        timestamp += round(step_s * 8000)
    return events


def test_one_digit_per_event_despite_three_end_packets() -> None:
    receiver = TelephoneEventReceiver()
    (packets,) = schedule("5")
    assert feed(receiver, packets, until=5.0) == ["5"]


def test_digit_reports_duration_and_start_time() -> None:
    receiver = TelephoneEventReceiver()
    (packets,) = schedule("9", duration_ms=200)
    out = []
    for now, timestamp, marker, payload in packets:
        out += receiver.receive(timestamp=timestamp, sequence_number=0, marker=marker,
                                payload=payload, now=now + 0.5)
    out += receiver.handle_timer(10.0)
    assert len(out) == 1
    assert out[0].duration_ms == 200
    assert out[0].time == pytest.approx(0.5 - 0.02)


def test_event_seen_only_by_its_end_packets_counts_once() -> None:
    receiver = TelephoneEventReceiver()
    (packets,) = schedule("3")
    assert feed(receiver, packets[-3:], until=5.0) == ["3"]


def test_lost_end_packets_end_the_event_on_timeout() -> None:
    receiver = TelephoneEventReceiver(end_timeout_s=0.25)
    (packets,) = schedule("4")
    body = packets[:-3]
    assert feed(receiver, body, until=body[-1][0] + 0.2) == []
    assert receiver.active_digit == "4"
    assert feed(receiver, [], until=body[-1][0] + 0.26) == ["4"]


def test_lost_end_packets_end_the_event_on_a_new_timestamp() -> None:
    receiver = TelephoneEventReceiver(end_timeout_s=10.0)
    first, second = schedule("11", gap_ms=40)
    assert feed(receiver, first[:-3] + second, until=3.0) == ["1", "1"]


def test_retransmitted_and_late_packets_do_not_repeat_a_digit() -> None:
    receiver = TelephoneEventReceiver()
    (packets,) = schedule("8")
    arrivals = [*packets, (2.0, *packets[0][1:]), (2.1, *packets[-1][1:])]
    assert feed(receiver, arrivals, until=5.0) == ["8"]


def test_long_event_segments_are_one_digit_with_the_total_duration() -> None:
    receiver = TelephoneEventReceiver()
    (packets,) = schedule("0", duration_ms=12_000, first_timestamp=0xFFFFFF00)
    out = []
    for now, timestamp, marker, payload in packets:
        out += receiver.receive(timestamp=timestamp, sequence_number=0, marker=marker,
                                payload=payload, now=now)
    out += receiver.handle_timer(100.0)
    assert [(d.digit, d.duration_ms) for d in out] == [("0", 12_000)]


def test_redundant_events_packed_in_one_packet_are_reported_once_each() -> None:
    receiver = TelephoneEventReceiver()
    # Event 1 at ts 0 (800 units), then event 2 right after at ts 800 (§2.5.1.5).
    packed = serialize_telephone_events([
        TelephoneEvent(event=1, end=True, volume=10, duration=800),
        TelephoneEvent(event=2, end=False, volume=10, duration=160),
    ])
    alone_first = serialize_telephone_events(
        [TelephoneEvent(event=1, end=False, volume=10, duration=160)])
    alone_second = serialize_telephone_events(
        [TelephoneEvent(event=2, end=True, volume=10, duration=640)])
    arrivals = [(0.0, 0, True, alone_first), (0.12, 0, True, packed),
                (0.2, 800, False, alone_second), (0.22, 800, False, alone_second)]
    assert feed(receiver, arrivals, until=5.0) == ["1", "2"]


def test_reordered_events_come_out_in_timestamp_order() -> None:
    receiver = TelephoneEventReceiver(reorder_window_s=0.06)
    first, second = schedule("12", gap_ms=50)
    # "2" arrives first; an end packet of "1" arrives 40 ms after "2" ended.
    late = (second[-3][0] + 0.04, *first[-1][1:])
    assert feed(receiver, [*second[:-1], late, second[-1]], until=5.0) == ["1", "2"]


def test_packet_later_than_the_reorder_window_is_dropped() -> None:
    receiver = TelephoneEventReceiver(reorder_window_s=0.06)
    first, second = schedule("12", gap_ms=50)
    too_late = (second[-3][0] + 0.5, *first[-1][1:])
    assert feed(receiver, [*second, too_late], until=5.0) == ["2"]
    assert receiver.ignored_packets == 1


def test_non_dtmf_events_are_ignored() -> None:
    receiver = TelephoneEventReceiver()
    flash = serialize_telephone_events([TelephoneEvent(event=16, end=True, volume=0,
                                                       duration=800)])
    assert feed(receiver, [(0.0, 0, True, flash)], until=5.0) == []


# The claim: for any digit string, events >= 40 ms long and >= 40 ms apart,
# any loss that leaves at least one packet of each event, any duplication,
# and any delay of up to reorder_window_s (which reorders packets), the
# receiver reports exactly the digit string, in order.
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_loss_duplication_and_reordering_still_yield_the_digit_string(
    data: st.DataObject,
) -> None:
    digits = data.draw(st.text(alphabet=DTMF_DIGITS, min_size=1, max_size=8))
    duration_ms = data.draw(st.integers(40, 400))
    gap_ms = data.draw(st.integers(40, 400))
    window_s = 0.06
    arrivals = []
    for packets in schedule(digits, duration_ms=duration_ms, gap_ms=gap_ms,
                            first_timestamp=data.draw(st.integers(0, 0xFFFFFFFF))):
        kept = data.draw(st.lists(st.booleans(), min_size=len(packets),
                                  max_size=len(packets)))
        survivor = data.draw(st.integers(0, len(packets) - 1))
        for index, packet in enumerate(packets):
            if not kept[index] and index != survivor:
                continue
            for _ in range(data.draw(st.integers(1, 2))):
                delay = data.draw(st.floats(0, window_s))
                arrivals.append((packet[0] + delay, *packet[1:]))
    arrivals.sort(key=lambda arrival: arrival[0])
    receiver = TelephoneEventReceiver(reorder_window_s=window_s)
    assert "".join(feed(receiver, arrivals, until=1e6)) == digits
