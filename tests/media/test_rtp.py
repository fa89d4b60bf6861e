"""RTP wire format: byte-exact round trips, named broken fixtures, demux."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boomerang.media.rtp import RtpError, RtpPacket, is_rtcp, pack_rtp, padding_octets

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "media"


def test_parses_a_pcmu_frame_fixture_field_by_field() -> None:
    data = (FIXTURES / "rtp_pcmu_frame.bin").read_bytes()
    packet = RtpPacket.parse(data)
    assert (packet.payload_type, packet.sequence_number, packet.timestamp, packet.ssrc) == (
        0, 1000, 160_000, 0x11223344)
    assert packet.marker is True
    assert packet.payload == b"\xff" * 160
    assert packet.csrc == () and packet.extension_profile is None and packet.padding == b""
    assert packet.serialize() == data


def test_parses_csrc_extension_and_padding_and_serializes_the_same_octets() -> None:
    data = (FIXTURES / "rtp_csrc_extension_padding.bin").read_bytes()
    packet = RtpPacket.parse(data)
    assert packet.csrc == (1, 2)
    assert packet.extension_profile == 0xBEDE
    assert packet.extension == b"\x10\xaa\x00\x00"
    assert packet.payload == b"\x0a\x00\x01\x40"
    assert packet.padding == b"\x00\x00\x03"
    assert (packet.sequence_number, packet.timestamp, packet.payload_type) == (
        65535, 0xFFFFFFFF, 101)
    assert packet.serialize() == data


@pytest.mark.parametrize("name", [
    "rtp_truncated_header.bin", "rtp_bad_version.bin", "rtp_csrc_overrun.bin",
    "rtp_extension_overrun.bin", "rtp_padding_overrun.bin", "rtp_padding_zero.bin",
])
def test_broken_fixture_raises_rtp_error(name: str) -> None:
    with pytest.raises(RtpError):
        RtpPacket.parse((FIXTURES / name).read_bytes())


def test_rtp_error_is_a_value_error() -> None:
    assert issubclass(RtpError, ValueError)


def test_every_truncation_of_a_packet_with_all_fields_is_refused_or_reparsed_shorter() -> None:
    data = (FIXTURES / "rtp_csrc_extension_padding.bin").read_bytes()
    for size in range(len(data)):
        try:
            packet = RtpPacket.parse(data[:size])
        except RtpError:
            continue
        assert packet.serialize() == data[:size]


def test_serialize_refuses_out_of_range_fields() -> None:
    with pytest.raises(RtpError):
        RtpPacket(payload_type=128, sequence_number=0, timestamp=0, ssrc=0).serialize()
    with pytest.raises(RtpError):
        RtpPacket(payload_type=0, sequence_number=65536, timestamp=0, ssrc=0).serialize()
    with pytest.raises(RtpError):
        RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=0,
                  csrc=tuple(range(16))).serialize()
    with pytest.raises(RtpError):
        RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=0,
                  padding=b"\x00\x05").serialize()
    with pytest.raises(RtpError):
        RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=0,
                  extension_profile=1, extension=b"abc").serialize()


def test_pack_rtp_matches_the_hand_built_header() -> None:
    data = pack_rtp(payload_type=8, sequence_number=0x1234, timestamp=0x89ABCDEF,
                    ssrc=0xCAFEBABE, payload=b"xy", marker=True)
    assert data == struct.pack("!BBHII", 0x80, 0x88, 0x1234, 0x89ABCDEF, 0xCAFEBABE) + b"xy"


def test_padding_octets_end_with_their_count() -> None:
    assert padding_octets(1) == b"\x01"
    assert padding_octets(4) == b"\x00\x00\x00\x04"
    with pytest.raises(RtpError):
        padding_octets(0)


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension_profile=st.none() | st.integers(0, 0xFFFF),
    extension=st.just(b""),
    padding=st.one_of(st.just(b""), st.integers(1, 255).map(padding_octets)),
)


@given(packets, st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4]))
def test_round_trip_property(packet: RtpPacket, extension: bytes) -> None:
    if packet.extension_profile is not None:
        packet.extension = extension
    data = packet.serialize()
    parsed = RtpPacket.parse(data)
    assert parsed == packet
    assert parsed.serialize() == data


@given(st.binary(max_size=64))
def test_parse_of_arbitrary_bytes_raises_only_rtp_error_and_round_trips(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    assert packet.serialize() == data


def test_is_rtcp_demultiplexes_by_the_rfc_5761_range() -> None:
    rtcp_rr = (FIXTURES / "rtcp_rr_sdes_compound.bin").read_bytes()
    rtp = (FIXTURES / "rtp_pcmu_frame.bin").read_bytes()
    assert is_rtcp(rtcp_rr)
    assert not is_rtcp(rtp)
    assert is_rtcp(b"\x80\xc0") and is_rtcp(b"\x80\xdf")
    assert not is_rtcp(b"\x80\xbf") and not is_rtcp(b"\x80\xe0")
    assert not is_rtcp(b"\x80")
    # Telephone-event (PT 101) with the marker bit is 0xE5: still RTP.
    assert not is_rtcp(pack_rtp(payload_type=101, sequence_number=1, timestamp=1, ssrc=1,
                                payload=b"", marker=True))
