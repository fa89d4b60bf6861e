"""The pieces of ``**`` without sockets: the relay core reporting the digits
of one bridged leg while it relays them, and the ``StarStar`` detector."""

from __future__ import annotations

from boomerang.flow.dialling import StarStar
from boomerang.media.digits import DigitReceived, DigitSource
from boomerang.media.dtmf_rfc4733 import telephone_event_packets
from boomerang.media.relay import DigitReported, LegMedia, RelayCall
from boomerang.media.rtp import RtpPacket, pack_rtp

PHONE_A = ("192.0.2.10", 4000)
PHONE_B = ("192.0.2.20", 5000)


def _media(address: tuple[str, int]) -> LegMedia:
    return LegMedia(remote_address=address[0], remote_port=address[1],
                    codecs=((0, "PCMU", 8000),), telephone_event_payload_type=101)


def _bridged() -> RelayCall:
    call = RelayCall("call-1", rtcp_enabled=False)
    for name, address in (("a", PHONE_A), ("b", PHONE_B)):
        call.add_leg(name, 0.0)
        call.update(name, _media(address), 0.0)
    call.bridge("a", "b", 0.0)
    return call


def _key(call: RelayCall, leg: str, digit: str, *, at: float, timestamp: int,
         first_sequence: int, ssrc: int) -> list[bytearray | None]:
    """One key press from ``leg``; what the relay passed on for each packet."""
    source = PHONE_A if leg == "a" else PHONE_B
    out = []
    for index, packet in enumerate(telephone_event_packets(digit, duration_ms=60)):
        data = pack_rtp(payload_type=101, sequence_number=first_sequence + index,
                        timestamp=timestamp, ssrc=ssrc, payload=packet.payload,
                        marker=packet.marker)
        out.append(call.receive_rtp(leg, data, source, at + index * 0.02))
    return out


def _reported(call: RelayCall, until: float) -> list[tuple[str, str]]:
    deadline = call.next_deadline()
    while deadline is not None and deadline <= until:
        call.handle_timer(deadline)
        deadline = call.next_deadline()
    return [(event.leg, event.digit.digit) for event in call.pop_events()
            if isinstance(event, DigitReported)]


def test_a_watched_leg_s_events_are_relayed_and_reported_its_peer_s_are_not() -> None:
    call = _bridged()
    call.report_digits("a")
    relayed_a = _key(call, "a", "*", at=0.0, timestamp=800, first_sequence=1, ssrc=0xA)
    relayed_b = _key(call, "b", "5", at=0.0, timestamp=800, first_sequence=1, ssrc=0xB)
    reported = _reported(call, until=1.0)
    assert all(packet is not None for packet in relayed_a)  # passed on unchanged in kind
    assert all(packet is not None for packet in relayed_b)
    assert RtpPacket.parse(bytes(relayed_a[0])).payload_type == 101  # type: ignore[arg-type]
    assert reported == [("a", "*")]


def test_nothing_is_decoded_for_a_leg_nobody_watches() -> None:
    call = _bridged()
    _key(call, "a", "*", at=0.0, timestamp=800, first_sequence=1, ssrc=0xA)
    call.report_digits("a")
    call.report_digits("a", False)
    _key(call, "a", "1", at=0.5, timestamp=8800, first_sequence=20, ssrc=0xA)
    assert _reported(call, until=2.0) == []
    assert call.leg("a").telephone_events is None


def test_a_new_ssrc_starts_a_new_event_numbering() -> None:
    call = _bridged()
    call.report_digits("a")
    _key(call, "a", "1", at=0.0, timestamp=90_000, first_sequence=1, ssrc=0xA)
    # the phone restarts its stream (a re-INVITE): lower timestamps are new events
    _key(call, "a", "2", at=0.5, timestamp=800, first_sequence=7, ssrc=0xC)
    assert [digit for _, digit in _reported(call, until=2.0)] == ["1", "2"]


def _press(digit: str, at: float, source: DigitSource = DigitSource.RFC4733) -> DigitReceived:
    return DigitReceived(digit=digit, source=source, time=at, duration_ms=60)


def test_two_stars_within_the_window_make_star_star() -> None:
    matches: list[float] = []
    seen: list[str] = []
    detector = StarStar(lambda: matches.append(1), window_s=2.0,
                        on_digit=lambda d: seen.append(d.digit))
    detector.digit(_press("*", 10.0))
    detector.digit(_press("*", 11.0))
    assert len(matches) == 1
    detector.digit(_press("*", 20.0))  # the pair was used: a third * starts anew
    assert len(matches) == 1
    assert seen == ["*", "*", "*"]


def test_stars_too_far_apart_or_split_by_a_key_do_not_count() -> None:
    matches: list[int] = []
    detector = StarStar(lambda: matches.append(1), window_s=2.0)
    detector.digit(_press("*", 0.0))
    detector.digit(_press("*", 3.0))  # too late: this one is a first *
    detector.digit(_press("5", 3.5))
    detector.digit(_press("*", 4.0))  # the 5 broke the pair
    assert matches == []
    detector.digit(_press("*", 4.5))
    assert matches == [1]


def test_one_star_sent_as_telephone_event_and_info_counts_once() -> None:
    matches: list[int] = []
    detector = StarStar(lambda: matches.append(1))
    detector.digit(_press("*", 1.00, DigitSource.RFC4733))
    detector.digit(_press("*", 1.05, DigitSource.INFO))  # the same key press
    assert matches == []
    detector.digit(_press("*", 1.50, DigitSource.RFC4733))
    assert matches == [1]
