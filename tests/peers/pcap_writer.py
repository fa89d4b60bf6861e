"""RTP streams as libpcap files, for SIPp's ``play_pcap_audio``.

SIPp sends each captured UDP payload unchanged, at the capture's relative
times, from its ``-mi:-mp`` to the address of the peer's SDP; only the
addresses are rewritten. So a file needs one clean RTP stream (one SSRC,
continuous sequence numbers and timestamps) framed as
Ethernet / IPv4 / UDP in a classic libpcap file (magic 0xa1b2c3d4,
LINKTYPE_ETHERNET).

The streams are built with the project's own ``rtp.py``, ``g711.py``,
``dtmf_inband.py`` and ``dtmf_rfc4733.py``:

- ``rfc4733_stream``: PCMU silence, and for each digit the RFC 4733 packet
  sequence of ``telephone_event_packets`` (the audio pauses meanwhile, as
  most phones do; the RTP clock runs on), then silence again.
- ``inband_stream``: PCMU audio carrying the DTMF tones themselves.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from boomerang.media.dtmf_inband import dtmf_signal, to_int16
from boomerang.media.dtmf_rfc4733 import telephone_event_packets
from boomerang.media.g711 import PCMU_SILENCE, ulaw_encode
from boomerang.media.rtp import pack_rtp

PTIME_S = 0.020
SAMPLES_PER_FRAME = 160
PCMU_PAYLOAD_TYPE = 0

_PCAP_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")
_LINKTYPE_ETHERNET = 1


@dataclass(frozen=True, slots=True)
class TimedPacket:
    """One RTP packet and when it is sent, in seconds from the first."""

    time_s: float
    data: bytes


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(payload: bytes, *, source_port: int, destination_port: int,
           identification: int) -> bytes:
    udp = struct.pack("!HHHH", source_port, destination_port, 8 + len(payload), 0) + payload
    loopback = bytes((127, 0, 0, 1))
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), identification & 0xFFFF,
                         0x4000, 64, 17, 0, loopback, loopback)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    ethernet = bytes(6) + bytes(6) + b"\x08\x00"
    return ethernet + header + udp


def write_pcap(path: Path, packets: list[TimedPacket], *, source_port: int = 16000,
               destination_port: int = 16002, start_s: float = 1_700_000_000.0) -> Path:
    """Write ``packets`` as UDP datagrams in a libpcap file; returns ``path``."""
    out = [_PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET)]
    for index, packet in enumerate(packets):
        frame = _frame(packet.data, source_port=source_port,
                       destination_port=destination_port, identification=index)
        microseconds = round((start_s + packet.time_s) * 1_000_000)
        seconds, fraction = divmod(microseconds, 1_000_000)
        out.append(_RECORD_HEADER.pack(seconds, fraction, len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))
    return path


class _Stream:
    """Sequence number, timestamp and send time of one SSRC being built."""

    def __init__(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.sequence_number = 1000
        self.timestamp = 160_000
        self.frame = 0  # 20 ms slots elapsed
        self.packets: list[TimedPacket] = []
        self.marker = True

    def add(self, payload_type: int, payload: bytes, *, timestamp: int | None = None,
            marker: bool = False) -> None:
        self.packets.append(TimedPacket(self.frame * PTIME_S, pack_rtp(
            payload_type=payload_type, sequence_number=self.sequence_number,
            timestamp=self.timestamp if timestamp is None else timestamp, ssrc=self.ssrc,
            payload=payload, marker=marker or self.marker)))
        self.marker = False
        self.sequence_number = (self.sequence_number + 1) & 0xFFFF

    def audio(self, frames: list[bytes]) -> None:
        for payload in frames:
            self.add(PCMU_PAYLOAD_TYPE, payload)
            self.frame += 1
            self.timestamp += SAMPLES_PER_FRAME


def _silence(duration_s: float) -> list[bytes]:
    return [bytes((PCMU_SILENCE,)) * SAMPLES_PER_FRAME] * round(duration_s / PTIME_S)


def rfc4733_stream(digits: str, *, payload_type: int = 101, lead_s: float = 0.6,
                   digit_ms: int = 100, gap_s: float = 0.3, tail_s: float = 0.5,
                   ssrc: int = 0x5EED4733) -> list[TimedPacket]:
    """PCMU silence with the digits as RFC 4733 events between."""
    stream = _Stream(ssrc)
    stream.audio(_silence(lead_s))
    for digit in digits:
        start = stream.timestamp
        for item in telephone_event_packets(digit, duration_ms=digit_ms):
            stream.add(payload_type, item.payload, timestamp=start + item.timestamp_offset,
                       marker=item.marker)
            stream.frame += 1
            stream.timestamp += SAMPLES_PER_FRAME
        stream.marker = True  # the audio after an event starts a talkspurt
        stream.audio(_silence(gap_s))
    stream.audio(_silence(tail_s))
    return stream.packets


def inband_stream(digits: str, *, lead_s: float = 0.6, tone_ms: float = 100,
                  pause_ms: float = 200, tail_s: float = 0.5,
                  ssrc: int = 0x5EED0B0D) -> list[TimedPacket]:
    """PCMU audio carrying the digits as DTMF tones (-8/-6 dBm0)."""
    pcm = to_int16(dtmf_signal(digits, tone_ms=tone_ms, pause_ms=pause_ms,
                               lead_ms=lead_s * 1000))
    pcm = np.concatenate([pcm, np.zeros(-len(pcm) % SAMPLES_PER_FRAME, np.int16)])
    stream = _Stream(ssrc)
    stream.audio([ulaw_encode(pcm[i:i + SAMPLES_PER_FRAME])
                  for i in range(0, len(pcm), SAMPLES_PER_FRAME)])
    stream.audio(_silence(tail_s))
    return stream.packets


def duration_s(packets: list[TimedPacket]) -> float:
    return packets[-1].time_s + PTIME_S if packets else 0.0
