"""The sans-I/O relay core in simulated time: latching, continuity, mapping, timeouts."""

from __future__ import annotations

import pytest

from boomerang.media.dtmf_rfc4733 import telephone_event_packets
from boomerang.media.relay import (
    DigitReported,
    LegMedia,
    MediaTimedOut,
    RelayCall,
    RelayError,
    SourceChanged,
    SourceLatched,
)
from boomerang.media.rtcp import Bye, ReceiverReport, SenderReport, parse_compound, serialize
from boomerang.media.rtp import RtpPacket, pack_rtp

PHONE_A = ("192.0.2.10", 4000)
NAT_A = ("198.51.100.7", 61000)
PHONE_B = ("192.0.2.20", 5000)
PCMU = (0, "PCMU", 8000)
PCMA = (8, "PCMA", 8000)


def media(address: tuple[str, int], *, codecs: tuple[tuple[int, str, int], ...] = (PCMU,),
          event_type: int | None = 101, receives: bool = True) -> LegMedia:
    return LegMedia(remote_address=address[0], remote_port=address[1], codecs=codecs,
                    telephone_event_payload_type=event_type, receives=receives)


def bridged(*, a: LegMedia | None = None, b: LegMedia | None = None,
            timeout_s: float = 30.0) -> RelayCall:
    call = RelayCall("call-1", no_media_timeout_s=timeout_s, rtcp_enabled=False)
    call.add_leg("a", 0.0)
    call.add_leg("b", 0.0)
    call.update("a", a or media(PHONE_A), 0.0)
    call.update("b", b or media(PHONE_B), 0.0)
    call.bridge("a", "b", 0.0)
    return call


def rtp(seq: int, *, ts: int | None = None, ssrc: int = 0xA1A1A1A1, pt: int = 0,
        payload: bytes = b"\xff" * 160, marker: bool = False) -> bytes:
    return pack_rtp(payload_type=pt, sequence_number=seq,
                    timestamp=seq * 160 if ts is None else ts, ssrc=ssrc, payload=payload,
                    marker=marker)


def test_relays_both_ways_unchanged_and_counts() -> None:
    call = bridged()
    for n in range(5):
        out_ab = call.receive_rtp("a", rtp(n), PHONE_A, n * 0.02)
        out_ba = call.receive_rtp("b", rtp(100 + n, ssrc=0xB2), PHONE_B, n * 0.02)
        assert bytes(out_ab or b"") == rtp(n)
        assert bytes(out_ba or b"") == rtp(100 + n, ssrc=0xB2)
    assert call.peer_target("a") == PHONE_B
    assert call.peer_target("b") == PHONE_A
    stats = call.stats()
    a, b = stats.leg("a"), stats.leg("b")
    assert (a.packets_received, a.octets_received) == (5, 5 * 172)
    assert (b.packets_sent, b.octets_sent) == (5, 5 * 172)
    assert (a.packets_sent, b.packets_received) == (5, 5)
    assert a.packets_lost == 0 and a.input_ssrc == 0xA1A1A1A1


def test_loss_is_counted_from_sequence_gaps() -> None:
    call = bridged()
    for n in (0, 1, 2, 5, 6, 9):
        call.receive_rtp("a", rtp(n), PHONE_A, n * 0.02)
    assert call.stats().leg("a").packets_lost == 4


def test_jitter_follows_arrival_variation() -> None:
    steady, jittery = bridged(), bridged()
    for n in range(50):
        steady.receive_rtp("a", rtp(n), PHONE_A, n * 0.02)
        jittery.receive_rtp("a", rtp(n), PHONE_A, n * 0.02 + (0.01 if n % 2 else 0.0))
    assert steady.stats().leg("a").jitter_ms == pytest.approx(0.0, abs=1e-6)
    assert jittery.stats().leg("a").jitter_ms > 5.0


def test_nothing_relayed_before_bridge_but_counted() -> None:
    call = RelayCall("c", rtcp_enabled=False)
    call.add_leg("a", 0.0)
    call.update("a", media(PHONE_A), 0.0)
    assert call.receive_rtp("a", rtp(1), PHONE_A, 0.0) is None
    assert call.stats().leg("a").packets_received == 1


def test_payload_types_are_mapped_between_legs() -> None:
    call = bridged(a=media(PHONE_A, codecs=((8, "PCMA", 8000),), event_type=101),
                   b=media(PHONE_B, codecs=((0, "PCMU", 8000), (97, "PCMA", 8000)),
                           event_type=96))
    out = call.receive_rtp("a", rtp(1, pt=8), PHONE_A, 0.0)
    assert out is not None and RtpPacket.parse(bytes(out)).payload_type == 97
    event = call.receive_rtp("a", rtp(2, pt=101, payload=b"\x05\x0a\x00\xa0"), PHONE_A, 0.02)
    assert event is not None and RtpPacket.parse(bytes(event)).payload_type == 96
    back = call.receive_rtp("b", rtp(1, pt=97, ssrc=0xB2), PHONE_B, 0.0)
    assert back is not None and RtpPacket.parse(bytes(back)).payload_type == 8


def test_a_codec_the_peer_lacks_is_dropped_without_a_sequence_gap() -> None:
    call = bridged(a=media(PHONE_A, codecs=(PCMU, PCMA)), b=media(PHONE_B, codecs=(PCMU,)))
    first = call.receive_rtp("a", rtp(1), PHONE_A, 0.0)
    assert call.receive_rtp("a", rtp(2, pt=8), PHONE_A, 0.02) is None
    third = call.receive_rtp("a", rtp(3), PHONE_A, 0.04)
    assert first is not None and third is not None
    seqs = [RtpPacket.parse(bytes(p)).sequence_number for p in (first, third)]
    assert seqs[1] == (seqs[0] + 1) & 0xFFFF
    assert call.stats().leg("a").packets_dropped == 1


def test_digits_are_reported_when_the_peer_has_no_telephone_event() -> None:
    call = bridged(b=media(PHONE_B, event_type=None))
    call.receive_rtp("a", rtp(1), PHONE_A, 0.0)
    now = 0.02
    packets = telephone_event_packets("7", duration_ms=100)
    for index, packet in enumerate(packets):
        data = pack_rtp(payload_type=101, sequence_number=2 + index, timestamp=160,
                        ssrc=0xA1A1A1A1, payload=packet.payload, marker=packet.marker)
        assert call.receive_rtp("a", data, PHONE_A, now + index * 0.02) is None
    after = call.receive_rtp("a", rtp(2 + len(packets), ts=160 * 10), PHONE_A, 0.2)
    assert call.timer_changed
    deadline = call.next_deadline()
    assert deadline is not None and deadline < 1.0
    call.handle_timer(deadline)
    digits = [e for e in call.pop_events() if isinstance(e, DigitReported)]
    assert [(d.leg, d.digit.digit) for d in digits] == [("a", "7")]
    # The events took no sequence numbers: the audio after them follows on.
    assert after is not None and RtpPacket.parse(bytes(after)).sequence_number == 2


def test_source_change_keeps_ssrc_sequence_and_timestamp_continuous() -> None:
    call = bridged()
    for n in range(3):
        call.receive_rtp("a", rtp(1000 + n, ts=50_000 + n * 160), PHONE_A, n * 0.02)
    call.pop_events()
    # Re-INVITE: the phone restarts with a new SSRC and random numbering, 100 ms later.
    out = call.receive_rtp("a", rtp(7, ts=9_999_999, ssrc=0xC3), PHONE_A, 0.14)
    assert out is not None
    packet = RtpPacket.parse(bytes(out))
    assert packet.ssrc == 0xA1A1A1A1
    assert packet.sequence_number == 1003
    assert packet.timestamp == 50_000 + 2 * 160 + 800  # 100 ms at 8 kHz after the last
    assert packet.marker
    following = RtpPacket.parse(bytes(call.receive_rtp("a", rtp(8, ts=9_999_999 + 160,
                                                                ssrc=0xC3), PHONE_A, 0.16)
                                      or b""))
    assert (following.sequence_number, following.timestamp) == (1004, 50_000 + 1280)
    assert not following.marker
    changes = [e for e in call.pop_events() if isinstance(e, SourceChanged)]
    assert [(c.old_ssrc, c.new_ssrc) for c in changes] == [(0xA1A1A1A1, 0xC3)]


def test_bridge_continues_the_dial_tone_stream() -> None:
    call = bridged()
    # Leg b heard our dial tone: SSRC 0x70, last packet seq 65535 ts 2**32-160 at t=5.0.
    call.continue_output("b", ssrc=0x70, last_sequence_number=0xFFFF,
                         last_timestamp=2**32 - 160, last_sent_at=5.0)
    out = call.receive_rtp("a", rtp(40, ts=123_456), PHONE_A, 5.02)
    packet = RtpPacket.parse(bytes(out or b""))
    assert (packet.ssrc, packet.sequence_number, packet.timestamp) == (0x70, 0, 0)
    assert packet.marker
    assert call.output_position("b", 5.04) == (0x70, 1, 160)


def test_latches_to_the_real_source_and_ignores_others() -> None:
    call = bridged()
    assert call.rtp_target("a") == PHONE_A  # the SDP, before anything arrived
    call.receive_rtp("a", rtp(1), NAT_A, 0.0)
    latched = [e for e in call.pop_events() if isinstance(e, SourceLatched)]
    assert [e.address for e in latched] == [NAT_A]
    assert call.peer_target("b") == NAT_A
    # Another source while the latched one is alive: dropped.
    assert call.receive_rtp("a", rtp(2), ("203.0.113.9", 7), 0.1) is None
    assert call.peer_target("b") == NAT_A
    assert call.stats().leg("a").packets_dropped == 1
    # The latched source silent for longer than relatch_after_s: re-latch.
    assert call.receive_rtp("a", rtp(3), ("203.0.113.9", 7), 0.7) is not None
    assert call.peer_target("b") == ("203.0.113.9", 7)
    # A new SDP forgets the latch.
    call.update("a", media(PHONE_A), 1.0)
    assert call.peer_target("b") == PHONE_A


def test_invalid_packets_neither_latch_nor_pass() -> None:
    call = bridged()
    assert call.receive_rtp("a", rtp(1, pt=18), NAT_A, 0.0) is None  # not negotiated
    assert call.receive_rtp("a", b"\x00" * 20, NAT_A, 0.0) is None  # version 0
    assert call.receive_rtp("a", b"\x80\x00", NAT_A, 0.0) is None  # truncated
    assert call.rtp_target("a") == PHONE_A
    assert call.stats().leg("a").packets_dropped == 3


def test_no_media_timeout_fires_once_per_silence() -> None:
    call = bridged(timeout_s=30.0)
    call.receive_rtp("a", rtp(1), PHONE_A, 1.0)
    call.receive_rtp("b", rtp(1, ssrc=0xB2), PHONE_B, 10.0)
    call.pop_events()  # latching
    assert call.next_deadline() == 31.0
    call.handle_timer(30.9)
    assert call.pop_events() == []
    call.handle_timer(31.0)
    events = call.pop_events()
    assert [(e.leg, e.silent_s) for e in events if isinstance(e, MediaTimedOut)] == [("a", 30.0)]
    assert call.next_deadline() == 40.0  # only b's deadline remains
    call.handle_timer(35.0)
    assert call.pop_events() == []
    call.receive_rtp("a", rtp(2), PHONE_A, 36.0)  # media again: armed again
    assert call.pop_events() == []
    assert call.next_deadline() == 40.0
    call.handle_timer(40.0)
    assert [e.leg for e in call.pop_events() if isinstance(e, MediaTimedOut)] == ["b"]
    assert call.next_deadline() == 66.0


def test_no_timeout_for_a_leg_that_put_us_on_hold() -> None:
    call = bridged(a=media(PHONE_A, receives=False), timeout_s=5.0)
    call.handle_timer(100.0)
    assert [e.leg for e in call.pop_events() if isinstance(e, MediaTimedOut)] == ["b"]


def test_rtcp_sender_report_counts_what_was_relayed() -> None:
    call = RelayCall("c", random_factor=lambda: 0.0, wall_clock_offset_s=1_700_000_000.0)
    for name, address in (("a", PHONE_A), ("b", PHONE_B)):
        call.add_leg(name, 0.0)
        call.update(name, media(address), 0.0)
    call.bridge("a", "b", 0.0)
    for n in range(10):
        call.receive_rtp("a", rtp(n), PHONE_A, n * 0.02)
    deadline = call.next_deadline()
    assert deadline == pytest.approx(2.5 * 0.5 / 1.21828)  # initial RTCP interval, factor 0
    call.handle_timer(deadline)
    sent = {name: parse_compound(data)[0] for name, data, _ in call.pop_rtcp()}
    report_b = sent["b"]
    assert isinstance(report_b, SenderReport)
    assert (report_b.ssrc, report_b.packet_count, report_b.octet_count) == (
        0xA1A1A1A1, 10, 10 * 172)
    report_a = sent["a"]
    assert isinstance(report_a, ReceiverReport)
    assert report_a.reports[0].ssrc == 0xA1A1A1A1
    assert report_a.reports[0].highest_sequence == 9


def test_leaving_says_bye_to_the_leg_we_sent_to_and_not_to_the_silent_one() -> None:
    call = RelayCall("c", random_factor=lambda: 0.0, wall_clock_offset_s=1_700_000_000.0)
    for name, address in (("a", PHONE_A), ("b", PHONE_B)):
        call.add_leg(name, 0.0)
        call.update(name, media(address), 0.0)
    call.bridge("a", "b", 0.0)
    for n in range(5):
        call.receive_rtp("a", rtp(n), PHONE_A, n * 0.02)
    bye_b = call.rtcp_bye("b", 0.2)
    assert bye_b is not None
    packets = parse_compound(bye_b)
    assert isinstance(packets[0], SenderReport) and packets[0].packet_count == 5
    assert isinstance(packets[-1], Bye) and packets[-1].sources == (0xA1A1A1A1,)
    assert call.rtcp_bye("a", 0.2) is None  # leg a was never sent anything


def test_rtcp_from_a_leg_latches_and_counts() -> None:
    call = bridged()
    report = serialize(ReceiverReport(ssrc=0xA1A1A1A1))
    call.receive_rtcp("a", report, ("198.51.100.7", 61001), 0.0)
    call.receive_rtcp("a", b"\x00garbage", ("198.51.100.7", 61001), 0.0)
    stats = call.stats().leg("a")
    assert stats.rtcp_packets_received == 1 and stats.packets_dropped == 1


def test_misuse_raises() -> None:
    call = bridged()
    with pytest.raises(RelayError):
        call.add_leg("a", 0.0)
    with pytest.raises(RelayError):
        call.bridge("a", "a", 0.0)
    call.add_leg("c", 0.0)
    with pytest.raises(RelayError):
        call.bridge("a", "c", 0.0)
    with pytest.raises(RelayError):
        call.leg("zz")
