"""RTP packets (RFC 3550 §5.1): parse and serialize, byte for byte.

A parsed packet serializes back to exactly the bytes it came from: the
padding octets and the header extension are kept as they were. Malformed
input raises ``RtpError`` (a ``ValueError``) that says what is wrong.

``is_rtcp`` tells RTCP from RTP on a multiplexed port (RFC 5761 §4: the
second octet of RTCP is 192..223, which RTP payload types 64..95 with the
marker bit would also give, so those payload types are never used for RTP).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
MAX_CSRC_COUNT = 15

_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from


class RtpError(ValueError):
    """Bytes that are not a well-formed RTP (or RTCP) packet."""


def is_rtcp(data: bytes) -> bool:
    """True when ``data`` is RTCP rather than RTP (RFC 5761 §4 demultiplexing)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(slots=True, kw_only=True)
class RtpPacket:
    """One RTP packet.

    ``padding`` holds the padding octets as received, the last one being
    their count (RFC 3550 §5.1); empty means the P bit is clear.
    ``extension_profile`` is None when there is no header extension (X bit
    clear); ``extension`` is then empty, otherwise it is the extension data
    (a multiple of 4 octets) after the 4-octet extension header.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    padding: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        size = len(data)
        if size < RTP_HEADER_SIZE:
            raise RtpError(f"RTP packet truncated: {size} octets, the fixed header needs 12")
        first, second, sequence_number, timestamp, ssrc = _unpack_header(data, 0)
        version = first >> 6
        if version != RTP_VERSION:
            raise RtpError(f"RTP version {version}, expected 2")
        csrc_count = first & 0x0F
        offset = RTP_HEADER_SIZE + 4 * csrc_count
        if offset > size:
            raise RtpError(f"RTP packet truncated: {csrc_count} CSRCs need {offset} octets, "
                           f"got {size}")
        csrc = struct.unpack_from(f"!{csrc_count}I", data, RTP_HEADER_SIZE) if csrc_count else ()
        extension_profile: int | None = None
        extension = b""
        if first & 0x10:
            if offset + 4 > size:
                raise RtpError("RTP packet truncated in the header extension header")
            extension_profile, length_words = _EXTENSION_HEADER.unpack_from(data, offset)
            offset += 4
            end = offset + 4 * length_words
            if end > size:
                raise RtpError(f"RTP header extension of {4 * length_words} octets overruns "
                               f"the packet by {end - size}")
            extension = data[offset:end]
            offset = end
        end = size
        padding = b""
        if first & 0x20:
            padding_size = data[-1]
            if padding_size == 0:
                raise RtpError("RTP padding count is zero")
            if offset + padding_size > size:
                raise RtpError(f"RTP padding of {padding_size} octets overruns the payload")
            end = size - padding_size
            padding = data[end:]
        return cls(
            payload_type=second & 0x7F,
            sequence_number=sequence_number,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=data[offset:end],
            marker=bool(second & 0x80),
            csrc=csrc,
            extension_profile=extension_profile,
            extension=extension,
            padding=padding,
        )

    def serialize(self) -> bytes:
        csrc = self.csrc
        if len(csrc) > MAX_CSRC_COUNT:
            raise RtpError(f"{len(csrc)} CSRCs, at most 15 fit")
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload type {self.payload_type} outside 0..127")
        first = 0x80 | len(csrc)
        padding = self.padding
        if padding:
            if padding[-1] != len(padding):
                raise RtpError(f"padding of {len(padding)} octets ends with count {padding[-1]}")
            first |= 0x20
        if self.extension_profile is not None:
            first |= 0x10
        try:
            header = _pack_header(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        except struct.error as error:
            raise RtpError(f"RTP header field out of range: {error}") from None
        if not csrc and self.extension_profile is None and not padding:
            return header + self.payload
        parts = [header]
        if csrc:
            parts.append(struct.pack(f"!{len(csrc)}I", *csrc))
        if self.extension_profile is not None:
            if len(self.extension) % 4:
                raise RtpError("RTP header extension length is not a multiple of 4 octets")
            parts.append(_EXTENSION_HEADER.pack(self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        parts.append(padding)
        return b"".join(parts)


def pack_rtp(
    *, payload_type: int, sequence_number: int, timestamp: int, ssrc: int, payload: bytes,
    marker: bool = False,
) -> bytes:
    """The common case, fast: a 12-octet header and the payload, no CSRC,
    extension or padding. Values are masked to their field widths."""
    return _pack_header(
        0x80,
        (0x80 if marker else 0) | (payload_type & 0x7F),
        sequence_number & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    ) + payload


def padding_octets(count: int) -> bytes:
    """Padding of ``count`` octets (1..255): zeros ended by the count."""
    if not 1 <= count <= 255:
        raise RtpError(f"padding count {count} outside 1..255")
    return bytes(count - 1) + bytes((count,))
