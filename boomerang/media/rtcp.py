"""RTCP packets (RFC 3550 §6): SR, RR, SDES, BYE and compound packets.

Parse and serialize byte for byte: a parsed compound packet serializes back
to the same octets (profile-specific extensions of SR/RR, padding and
packet types we do not interpret, such as APP or RTPFB, are kept as
``extension``, ``padding`` or ``RtcpUnknown``). Malformed input raises
``RtcpError`` (a subclass of ``RtpError``, so of ``ValueError``).

``rtcp_interval_s`` is the RFC 3550 §6.3.1 / A.7 transmission interval;
the random factor is passed in (the core draws no random numbers).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .rtp import RtpError

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

SDES_END = 0
SDES_CNAME = 1
SDES_NAME = 2
SDES_EMAIL = 3
SDES_PHONE = 4
SDES_LOC = 5
SDES_TOOL = 6
SDES_NOTE = 7
SDES_PRIV = 8

REPORT_BLOCK_SIZE = 24
MAX_REPORT_COUNT = 31
NTP_UNIX_OFFSET_S = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01

_HEADER = struct.Struct("!BBH")
_SSRC = struct.Struct("!I")
_SENDER_INFO = struct.Struct("!IQIII")
_REPORT_BLOCK = struct.Struct("!IB3sIIII")


class RtcpError(RtpError):
    """Bytes that are not a well-formed RTCP packet."""


@dataclass(slots=True, kw_only=True)
class ReportBlock:
    """One reception report (RFC 3550 §6.4.1).

    ``packets_lost`` is the signed 24-bit cumulative count;
    ``last_sender_report`` (LSR) the middle 32 bits of the last SR's NTP
    timestamp; ``delay_since_last_sender_report`` (DLSR) in 1/65536 s.
    """

    ssrc: int
    fraction_lost: int = 0
    packets_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    last_sender_report: int = 0
    delay_since_last_sender_report: int = 0

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        packets_lost = int.from_bytes(lost, "big", signed=True)
        return cls(ssrc=ssrc, fraction_lost=fraction, packets_lost=packets_lost,
                   highest_sequence=highest, jitter=jitter, last_sender_report=lsr,
                   delay_since_last_sender_report=dlsr)

    def serialize(self) -> bytes:
        if not -0x800000 <= self.packets_lost <= 0x7FFFFF:
            raise RtcpError(f"packets_lost {self.packets_lost} does not fit 24 signed bits")
        try:
            return _REPORT_BLOCK.pack(
                self.ssrc, self.fraction_lost, self.packets_lost.to_bytes(3, "big", signed=True),
                self.highest_sequence, self.jitter, self.last_sender_report,
                self.delay_since_last_sender_report)
        except struct.error as error:
            raise RtcpError(f"report block field out of range: {error}") from None


@dataclass(slots=True, kw_only=True)
class SenderReport:
    """SR (PT 200). ``ntp_timestamp`` is the full 64-bit NTP time."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    padding: bytes = b""


@dataclass(slots=True, kw_only=True)
class ReceiverReport:
    """RR (PT 201)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    padding: bytes = b""


@dataclass(slots=True, kw_only=True)
class SdesChunk:
    """The items describing one source: ``(item type, value)`` pairs."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> str | None:
        for item_type, value in self.items:
            if item_type == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(slots=True, kw_only=True)
class SourceDescription:
    """SDES (PT 202)."""

    chunks: tuple[SdesChunk, ...] = ()
    padding: bytes = b""


@dataclass(slots=True, kw_only=True)
class Bye:
    """BYE (PT 203), with the optional reason (bytes, normally UTF-8)."""

    sources: tuple[int, ...] = ()
    reason: bytes | None = None
    padding: bytes = b""


@dataclass(slots=True, kw_only=True)
class RtcpUnknown:
    """Any other packet type (APP, XR, feedback...), kept as it came."""

    packet_type: int
    count: int = 0
    body: bytes = b""
    padding: bytes = b""


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | RtcpUnknown


def _parse_reports(body: bytes, offset: int, count: int) -> tuple[tuple[ReportBlock, ...], int]:
    end = offset + count * REPORT_BLOCK_SIZE
    if end > len(body):
        raise RtcpError(f"{count} report blocks need {end} octets, the packet has {len(body)}")
    reports = tuple(ReportBlock.parse(body, offset + i * REPORT_BLOCK_SIZE) for i in range(count))
    return reports, end


def _parse_sdes(body: bytes, count: int) -> tuple[SdesChunk, ...]:
    chunks = []
    offset = 0
    size = len(body)
    for _ in range(count):
        if offset + 4 > size:
            raise RtcpError("SDES chunk truncated before its SSRC")
        (ssrc,) = _SSRC.unpack_from(body, offset)
        offset += 4
        items = []
        while True:
            if offset >= size:
                raise RtcpError("SDES chunk has no end item")
            item_type = body[offset]
            if item_type == SDES_END:
                offset = (offset + 4) & ~3  # the null octet(s) pad to the next word
                break
            if offset + 2 > size:
                raise RtcpError("SDES item truncated")
            length = body[offset + 1]
            end = offset + 2 + length
            if end > size:
                raise RtcpError(f"SDES item of {length} octets overruns the chunk")
            items.append((item_type, body[offset + 2:end]))
            offset = end
        chunks.append(SdesChunk(ssrc=ssrc, items=tuple(items)))
    if offset != size:
        raise RtcpError(f"SDES chunks end at octet {offset}, the packet body has {size}")
    return tuple(chunks)


def _parse_bye(body: bytes, count: int) -> Bye:
    end = 4 * count
    if end > len(body):
        raise RtcpError(f"BYE with {count} sources truncated")
    sources = struct.unpack_from(f"!{count}I", body, 0)
    reason = None
    if end < len(body):
        length = body[end]
        reason_end = end + 1 + length
        if reason_end > len(body):
            raise RtcpError("BYE reason overruns the packet")
        reason = body[end + 1:reason_end]
    return Bye(sources=sources, reason=reason)


def _parse_one(packet_type: int, count: int, body: bytes, padding: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        if len(body) < 24:
            raise RtcpError(f"SR truncated: {len(body)} octets after the header, at least 24")
        (ssrc,) = _SSRC.unpack_from(body, 0)
        _, ntp, rtp_timestamp, packet_count, octet_count = _SENDER_INFO.unpack_from(body, 0)
        reports, end = _parse_reports(body, 24, count)
        return SenderReport(ssrc=ssrc, ntp_timestamp=ntp, rtp_timestamp=rtp_timestamp,
                            packet_count=packet_count, octet_count=octet_count,
                            reports=reports, extension=body[end:], padding=padding)
    if packet_type == RTCP_RR:
        if len(body) < 4:
            raise RtcpError("RR truncated before its SSRC")
        (ssrc,) = _SSRC.unpack_from(body, 0)
        reports, end = _parse_reports(body, 4, count)
        return ReceiverReport(ssrc=ssrc, reports=reports, extension=body[end:], padding=padding)
    if packet_type == RTCP_SDES:
        return SourceDescription(chunks=_parse_sdes(body, count), padding=padding)
    if packet_type == RTCP_BYE:
        bye = _parse_bye(body, count)
        bye.padding = padding
        return bye
    return RtcpUnknown(packet_type=packet_type, count=count, body=body, padding=padding)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """All the RTCP packets of a (compound) datagram."""
    packets: list[RtcpPacket] = []
    offset = 0
    size = len(data)
    if size == 0:
        raise RtcpError("empty RTCP datagram")
    while offset < size:
        if offset + 4 > size:
            raise RtcpError(f"RTCP packet truncated: {size - offset} octets, the header needs 4")
        first, packet_type, length_words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtcpError(f"RTCP version {first >> 6}, expected 2")
        end = offset + 4 * (length_words + 1)
        if end > size:
            raise RtcpError(f"RTCP packet type {packet_type} truncated: length says {end - offset}"
                            f" octets, {size - offset} left")
        body = data[offset + 4:end]
        padding = b""
        if first & 0x20:
            padding_size = data[end - 1]
            if padding_size == 0 or padding_size > len(body):
                raise RtcpError(f"RTCP padding count {padding_size} is invalid")
            padding = body[-padding_size:]
            body = body[:-padding_size]
        packets.append(_parse_one(packet_type, first & 0x1F, body, padding))
        offset = end
    return packets


def _header(packet_type: int, count: int, body_size: int, padding: bytes) -> bytes:
    total = 4 + body_size + len(padding)
    if total % 4:
        raise RtcpError(f"RTCP packet type {packet_type} is {total} octets, not a multiple of 4")
    if count > MAX_REPORT_COUNT:
        raise RtcpError(f"count {count} does not fit 5 bits")
    if padding and padding[-1] != len(padding):
        raise RtcpError(f"padding of {len(padding)} octets ends with count {padding[-1]}")
    return _HEADER.pack(0x80 | (0x20 if padding else 0) | count, packet_type, total // 4 - 1)


def _sdes_body(chunks: tuple[SdesChunk, ...]) -> bytes:
    parts = []
    for chunk in chunks:
        chunk_parts = [_SSRC.pack(chunk.ssrc)]
        size = 4
        for item_type, value in chunk.items:
            if len(value) > 255:
                raise RtcpError(f"SDES item of {len(value)} octets, at most 255")
            chunk_parts.append(bytes((item_type, len(value))))
            chunk_parts.append(value)
            size += 2 + len(value)
        chunk_parts.append(bytes(4 - size % 4))  # the end item and padding to a word
        parts.extend(chunk_parts)
    return b"".join(parts)


def _bye_body(bye: Bye) -> bytes:
    body = struct.pack(f"!{len(bye.sources)}I", *bye.sources)
    if bye.reason is None:
        return body
    if len(bye.reason) > 255:
        raise RtcpError("BYE reason longer than 255 octets")
    reason = bytes((len(bye.reason),)) + bye.reason
    return body + reason + bytes(-len(reason) % 4)


def serialize(packet: RtcpPacket) -> bytes:
    """One RTCP packet's octets."""
    try:
        if isinstance(packet, SenderReport):
            body = (_SENDER_INFO.pack(packet.ssrc, packet.ntp_timestamp, packet.rtp_timestamp,
                                      packet.packet_count, packet.octet_count)
                    + b"".join(block.serialize() for block in packet.reports) + packet.extension)
            count = len(packet.reports)
            packet_type = RTCP_SR
        elif isinstance(packet, ReceiverReport):
            body = (_SSRC.pack(packet.ssrc)
                    + b"".join(block.serialize() for block in packet.reports) + packet.extension)
            count = len(packet.reports)
            packet_type = RTCP_RR
        elif isinstance(packet, SourceDescription):
            body = _sdes_body(packet.chunks)
            count = len(packet.chunks)
            packet_type = RTCP_SDES
        elif isinstance(packet, Bye):
            body = _bye_body(packet)
            count = len(packet.sources)
            packet_type = RTCP_BYE
        else:
            body = packet.body
            count = packet.count
            packet_type = packet.packet_type
    except struct.error as error:
        raise RtcpError(f"RTCP field out of range: {error}") from None
    return _header(packet_type, count, len(body), packet.padding) + body + packet.padding


def serialize_compound(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    return b"".join(serialize(packet) for packet in packets)


def ntp_timestamp(unix_time_s: float) -> int:
    """64-bit NTP timestamp (RFC 3550 §4) of a Unix wall-clock time."""
    seconds = int(unix_time_s // 1)
    fraction = int((unix_time_s - seconds) * (1 << 32)) & 0xFFFFFFFF
    return (((seconds + NTP_UNIX_OFFSET_S) & 0xFFFFFFFF) << 32) | fraction


def ntp_middle_32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field of a report block."""
    return (ntp >> 16) & 0xFFFFFFFF


# RFC 3550 §6.3.1 / A.7 constants.
RTCP_MIN_INTERVAL_S = 5.0
RTCP_SENDER_BANDWIDTH_FRACTION = 0.25
RTCP_RECEIVER_BANDWIDTH_FRACTION = 1 - RTCP_SENDER_BANDWIDTH_FRACTION
COMPENSATION = 2.71828 - 1.5  # e - 3/2: makes up for the timer reconsideration


def rtcp_interval_s(
    *,
    random_factor: float,
    members: int = 2,
    senders: int = 1,
    rtcp_bandwidth_bytes_s: float = 0.0,
    we_sent: bool = True,
    average_rtcp_size_bytes: float = 100.0,
    initial: bool = False,
) -> float:
    """Seconds to the next RTCP report (RFC 3550 A.7 ``rtcp_interval``).

    ``random_factor`` in [0, 1) is drawn by the caller; the interval is
    the deterministic one times (0.5 + random_factor), divided by the
    e - 3/2 = 1.218 compensation, as A.7 does. With the defaults (no
    bandwidth given) the deterministic interval is the 5-second minimum
    (2.5 s before the first report), so the result lies in [2.05, 6.16) s.
    """
    if not 0.0 <= random_factor < 1.0:
        raise ValueError(f"random_factor {random_factor} outside [0, 1)")
    minimum_s = RTCP_MIN_INTERVAL_S / 2 if initial else RTCP_MIN_INTERVAL_S
    deterministic_s = minimum_s
    if rtcp_bandwidth_bytes_s > 0:
        n = members
        bandwidth = rtcp_bandwidth_bytes_s
        if 0 < senders <= members * RTCP_SENDER_BANDWIDTH_FRACTION:
            if we_sent:
                bandwidth *= RTCP_SENDER_BANDWIDTH_FRACTION
                n = senders
            else:
                bandwidth *= RTCP_RECEIVER_BANDWIDTH_FRACTION
                n -= senders
        deterministic_s = max(average_rtcp_size_bytes * n / bandwidth, minimum_s)
    return deterministic_s * (0.5 + random_factor) / COMPENSATION
