"""Per-stream sender state and RFC 3550 receiver statistics."""

from __future__ import annotations

import pytest

from boomerang.media.rtcp import SenderReport, ntp_middle_32, ntp_timestamp
from boomerang.media.rtp import RtpPacket
from boomerang.media.stream import ReceiverStatistics, RtpSender


def _sender(**overrides: int) -> RtpSender:
    values = {"ssrc": 0x12345678, "payload_type": 0, "timestamp_step": 160,
              "initial_sequence_number": 65534, "initial_timestamp": 0xFFFFFF00}
    values.update(overrides)
    return RtpSender(**values)


def test_sender_numbers_and_stamps_packets_across_the_wrap() -> None:
    sender = _sender()
    packets = [RtpPacket.parse(sender.packet(b"\xff" * 160)) for _ in range(4)]
    assert [p.sequence_number for p in packets] == [65534, 65535, 0, 1]
    assert [p.timestamp for p in packets] == [0xFFFFFF00, 0xFFFFFFA0, 0x40, 0xE0]
    assert {p.ssrc for p in packets} == {0x12345678}
    assert [p.marker for p in packets] == [True, False, False, False]
    assert sender.packet_count == 4 and sender.octet_count == 640


def test_marker_after_talkspurt_start_and_after_skipped_frames() -> None:
    sender = _sender(initial_sequence_number=10, initial_timestamp=0)
    sender.packet(b"a")
    sender.start_talkspurt()
    second = RtpPacket.parse(sender.packet(b"b"))
    assert second.marker
    sender.skip(3)
    fourth = RtpPacket.parse(sender.packet(b"c"))
    assert fourth.marker and fourth.sequence_number == 12 and fourth.timestamp == 160 * 5


def test_sender_report_carries_the_counts() -> None:
    sender = _sender()
    for _ in range(3):
        sender.packet(b"x" * 160)
    report = sender.sender_report(ntp_timestamp=ntp_timestamp(1.0), rtp_timestamp=1234)
    assert (report.ssrc, report.packet_count, report.octet_count, report.rtp_timestamp) == (
        0x12345678, 3, 480, 1234)


def test_sender_refuses_an_ssrc_beyond_32_bits() -> None:
    with pytest.raises(ValueError):
        _sender(ssrc=1 << 32)


def _receive(stats: ReceiverStatistics, numbers: list[int], *, delays_s: list[float] | None = None,
             start_s: float = 100.0) -> None:
    for i, seq in enumerate(numbers):
        delay = delays_s[i] if delays_s else 0.0
        # Sent every 20 ms with timestamp steps of 160; arrives after its delay.
        stats.on_packet(sequence_number=seq & 0xFFFF, timestamp=(seq * 160) & 0xFFFFFFFF,
                        now=start_s + seq * 0.02 + delay, payload_size=160)


def test_perfectly_paced_arrivals_have_no_jitter_and_no_loss() -> None:
    stats = ReceiverStatistics(ssrc=1, clock_rate=8000)
    _receive(stats, list(range(50)))
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)
    block = stats.report_block(now=200.0)
    assert (block.packets_lost, block.fraction_lost, block.highest_sequence) == (0, 0, 49)


def test_jitter_follows_the_rfc_3550_a8_estimator() -> None:
    # Delays alternate 0 and 10 ms: every transit difference is 80 timestamp
    # units, so J(i) = J(i-1) + (80 - J(i-1)) / 16 from the second packet on.
    stats = ReceiverStatistics(ssrc=1, clock_rate=8000, min_sequential=1)
    count = 200
    _receive(stats, list(range(count)), delays_s=[0.01 * (i % 2) for i in range(count)])
    expected = 0.0
    for _ in range(count - 1):
        expected += (80 - expected) / 16
    assert stats.jitter == pytest.approx(expected, rel=1e-9)
    assert stats.report_block(now=0).jitter == int(expected)
    assert stats.jitter_s == pytest.approx(expected / 8000)


def test_loss_cumulative_and_fraction_per_interval() -> None:
    stats = ReceiverStatistics(ssrc=7, clock_rate=8000, min_sequential=1)
    numbers = [n for n in range(100) if n % 10 != 5]  # 10 of 100 lost
    _receive(stats, numbers)
    first = stats.report_block(now=300.0)
    assert first.packets_lost == 10
    assert first.fraction_lost == (10 << 8) // 100  # 25
    _receive(stats, list(range(100, 200)))  # none lost in the next interval
    second = stats.report_block(now=305.0)
    assert second.packets_lost == 10 and second.fraction_lost == 0
    assert second.highest_sequence == 199


def test_statistics_span_the_sequence_wrap() -> None:
    stats = ReceiverStatistics(ssrc=7, clock_rate=8000, min_sequential=1)
    numbers = [n for n in range(65500, 65600) if n != 65540]
    _receive(stats, numbers)
    block = stats.report_block(now=1.0)
    assert block.highest_sequence == 65599  # extended: one cycle plus 63
    assert block.packets_lost == 1


def test_duplicates_make_loss_negative_as_rfc_3550_counts_it() -> None:
    stats = ReceiverStatistics(ssrc=7, clock_rate=8000, min_sequential=1)
    _receive(stats, [0, 1, 2, 2, 3])
    assert stats.cumulative_lost == -1
    assert stats.report_block(now=1.0).fraction_lost == 0


def test_probation_holds_back_the_first_packet_by_default() -> None:
    stats = ReceiverStatistics(ssrc=7, clock_rate=8000)
    assert stats.on_packet(sequence_number=5, timestamp=0, now=0.0, payload_size=1) is False
    assert not stats.valid
    assert stats.on_packet(sequence_number=6, timestamp=160, now=0.02, payload_size=1) is True
    assert stats.valid and stats.received == 1 and stats.packets_received == 2


def test_lsr_and_dlsr_come_from_the_last_sender_report() -> None:
    stats = ReceiverStatistics(ssrc=7, clock_rate=8000)
    ntp = ntp_timestamp(1_700_000_000.25)
    report = SenderReport(ssrc=7, ntp_timestamp=ntp, rtp_timestamp=0, packet_count=0,
                          octet_count=0)
    stats.on_sender_report(report, now=50.0)
    block = stats.report_block(now=51.5)
    assert block.last_sender_report == ntp_middle_32(ntp)
    assert block.delay_since_last_sender_report == int(1.5 * 65536)
