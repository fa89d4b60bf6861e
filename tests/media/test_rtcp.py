"""RTCP wire format: SR, RR, SDES, BYE, compound packets, interval."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boomerang.media.rtcp import (
    RTCP_APP,
    SDES_CNAME,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    RtcpUnknown,
    SdesChunk,
    SenderReport,
    SourceDescription,
    ntp_middle_32,
    ntp_timestamp,
    parse_compound,
    rtcp_interval_s,
    serialize,
    serialize_compound,
)
from boomerang.media.rtp import RtpError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "media"


def test_parses_the_sr_sdes_bye_compound_fixture() -> None:
    data = (FIXTURES / "rtcp_sr_sdes_bye_compound.bin").read_bytes()
    sr, sdes, bye = parse_compound(data)
    assert isinstance(sr, SenderReport)
    assert sr.ssrc == 0xAABBCCDD
    assert sr.ntp_timestamp == (0xE0000000 << 32) | 0x80000000
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (48000, 300, 48000)
    (block,) = sr.reports
    assert block == ReportBlock(ssrc=0x11223344, fraction_lost=25, packets_lost=-3,
                                highest_sequence=0x0001FFFF, jitter=42,
                                last_sender_report=0xDEADBEEF,
                                delay_since_last_sender_report=65536)
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].ssrc == 0xAABBCCDD
    assert sdes.chunks[0].cname == "boomerang@127.0.0.1"
    assert isinstance(bye, Bye)
    assert bye.sources == (0xAABBCCDD,) and bye.reason == b"hangup"
    assert serialize_compound(parse_compound(data)) == data


def test_parses_the_rr_sdes_compound_fixture_and_round_trips() -> None:
    data = (FIXTURES / "rtcp_rr_sdes_compound.bin").read_bytes()
    rr, sdes = parse_compound(data)
    assert isinstance(rr, ReceiverReport) and isinstance(sdes, SourceDescription)
    assert rr.ssrc == 0x01020304
    assert rr.reports[0].packets_lost == 7 and rr.reports[0].highest_sequence == 70000
    assert serialize_compound([rr, sdes]) == data


@pytest.mark.parametrize("name", [
    "rtcp_rr_truncated.bin", "rtcp_rr_report_overrun.bin", "rtcp_sr_truncated.bin",
    "rtcp_bad_version.bin", "rtcp_sdes_unterminated.bin", "rtcp_bye_reason_overrun.bin",
    "rtcp_header_truncated.bin",
])
def test_broken_fixture_raises_rtcp_error(name: str) -> None:
    with pytest.raises(RtcpError):
        parse_compound((FIXTURES / name).read_bytes())


def test_rtcp_error_is_an_rtp_error_and_a_value_error() -> None:
    assert issubclass(RtcpError, RtpError) and issubclass(RtcpError, ValueError)


def test_empty_datagram_is_refused() -> None:
    with pytest.raises(RtcpError):
        parse_compound(b"")


def test_serialized_rr_has_the_rfc_layout() -> None:
    rr = ReceiverReport(ssrc=1, reports=(ReportBlock(ssrc=2, fraction_lost=128,
                                                     packets_lost=-1, highest_sequence=3,
                                                     jitter=4, last_sender_report=5,
                                                     delay_since_last_sender_report=6),))
    data = serialize(rr)
    assert data[:4] == b"\x81\xc9\x00\x07"  # V=2 RC=1, PT 201, 8 words
    assert data[4:8] == struct.pack("!I", 1)
    assert data[12:16] == b"\x80\xff\xff\xff"  # fraction 128, lost -1 in 24-bit two's complement


def test_sdes_chunk_is_null_terminated_and_word_aligned() -> None:
    for cname in (b"", b"a", b"ab", b"abc", b"abcd"):
        chunk = SdesChunk(ssrc=9, items=((SDES_CNAME, cname),))
        data = serialize(SourceDescription(chunks=(chunk,)))
        assert len(data) % 4 == 0
        body = data[8:]
        assert body[: 2 + len(cname)] == bytes((1, len(cname))) + cname
        assert body[2 + len(cname):] == bytes(len(body) - 2 - len(cname))  # the end item and pad
        assert 1 <= len(body) - 2 - len(cname) <= 4
        (parsed,) = parse_compound(data)
        assert parsed == SourceDescription(chunks=(SdesChunk(ssrc=9, items=((1, cname),)),))


def test_padding_on_the_last_packet_is_kept() -> None:
    bye = Bye(sources=(7,), padding=b"\x00\x00\x00\x04")
    data = serialize(bye)
    assert data[0] & 0x20
    assert parse_compound(data) == [bye]


def test_unknown_packet_types_are_kept_verbatim() -> None:
    app = struct.pack("!BBHI4s", 0x81, RTCP_APP, 2, 5, b"name")
    rr = serialize(ReceiverReport(ssrc=1))
    packets = parse_compound(rr + app)
    assert packets[1] == RtcpUnknown(packet_type=RTCP_APP, count=1, body=app[4:])
    assert serialize_compound(packets) == rr + app


def test_report_block_refuses_a_loss_count_beyond_24_bits() -> None:
    with pytest.raises(RtcpError):
        ReportBlock(ssrc=1, packets_lost=0x800000).serialize()


report_blocks = st.builds(
    ReportBlock, ssrc=st.integers(0, 2**32 - 1), fraction_lost=st.integers(0, 255),
    packets_lost=st.integers(-0x800000, 0x7FFFFF), highest_sequence=st.integers(0, 2**32 - 1),
    jitter=st.integers(0, 2**32 - 1), last_sender_report=st.integers(0, 2**32 - 1),
    delay_since_last_sender_report=st.integers(0, 2**32 - 1))
words = st.binary(max_size=16).map(lambda b: b[: len(b) // 4 * 4])
rtcp_packets = st.one_of(
    st.builds(SenderReport, ssrc=st.integers(0, 2**32 - 1), ntp_timestamp=st.integers(0, 2**64 - 1),
              rtp_timestamp=st.integers(0, 2**32 - 1), packet_count=st.integers(0, 2**32 - 1),
              octet_count=st.integers(0, 2**32 - 1),
              reports=st.lists(report_blocks, max_size=3).map(tuple), extension=words),
    st.builds(ReceiverReport, ssrc=st.integers(0, 2**32 - 1),
              reports=st.lists(report_blocks, max_size=3).map(tuple), extension=words),
    st.builds(SourceDescription, chunks=st.lists(st.builds(
        SdesChunk, ssrc=st.integers(0, 2**32 - 1),
        items=st.lists(st.tuples(st.integers(1, 8), st.binary(max_size=20)), max_size=3)
        .map(tuple)), max_size=3).map(tuple)),
    st.builds(Bye, sources=st.lists(st.integers(0, 2**32 - 1), max_size=3).map(tuple),
              reason=st.none() | st.binary(max_size=30)),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_compound_round_trip_property(packets: list[object]) -> None:
    data = serialize_compound(packets)  # type: ignore[arg-type]
    parsed = parse_compound(data)
    assert parsed == packets
    assert serialize_compound(parsed) == data


@given(st.binary(max_size=80))
def test_parse_of_arbitrary_bytes_raises_only_rtcp_error(data: bytes) -> None:
    # Any other exception (struct.error, IndexError...) fails the test.
    with contextlib.suppress(RtcpError):
        parse_compound(data)


def test_ntp_timestamp_of_the_unix_epoch_and_a_half_second() -> None:
    assert ntp_timestamp(0.0) == 2_208_988_800 << 32
    assert ntp_timestamp(1.5) == ((2_208_988_801 << 32) | 0x80000000)
    assert ntp_middle_32(ntp_timestamp(1.5)) == ((2_208_988_801 & 0xFFFF) << 16) | 0x8000


def test_interval_is_the_5_s_minimum_randomised_and_compensated() -> None:
    compensation = 2.71828 - 1.5
    assert rtcp_interval_s(random_factor=0.5) == pytest.approx(5.0 / compensation)
    assert rtcp_interval_s(random_factor=0.0) == pytest.approx(2.5 / compensation)
    assert rtcp_interval_s(random_factor=0.5, initial=True) == pytest.approx(2.5 / compensation)
    with pytest.raises(ValueError):
        rtcp_interval_s(random_factor=1.0)


def test_interval_grows_with_members_beyond_the_bandwidth_share() -> None:
    # 1000 receivers sharing 1000 octets/s of RTCP, 100-octet reports: the
    # receivers' 75 % share gives 100 * 999 / 750 s.
    interval = rtcp_interval_s(random_factor=0.5, members=1000, senders=1,
                               rtcp_bandwidth_bytes_s=1000, we_sent=False,
                               average_rtcp_size_bytes=100)
    assert interval == pytest.approx(100 * 999 / 750 / (2.71828 - 1.5))
