"""MediaSession on real 127.0.0.1 sockets: a raw UDP socket plays the phone."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from boomerang.call.media_session import MediaSession
from boomerang.media.codecs import PCMA, PCMU
from boomerang.media.digits import (
    DigitCollectionEnded,
    DigitCollector,
    DigitEndReason,
    DigitEvent,
    DigitReceived,
    DigitSource,
)
from boomerang.media.dtmf_inband import dtmf_signal, power_to_dbm0, to_int16
from boomerang.media.dtmf_info import parse_dtmf_info
from boomerang.media.dtmf_rfc4733 import telephone_event_packets
from boomerang.media.g711 import alaw_decode, ulaw_decode, ulaw_encode
from boomerang.media.g722 import G722_AVAILABLE, G722Encoder
from boomerang.media.rtp import RtpPacket, pack_rtp
from boomerang.media.tones import ToneBank
from boomerang.sip.offer_answer import G722 as SDP_G722
from boomerang.sip.offer_answer import PCMU as SDP_PCMU
from boomerang.sip.offer_answer import MediaCapabilities, NegotiatedMedia, build_answer
from boomerang.sip.sdp import SessionDescription
from boomerang.transport.rtp_socket import Pacer, PortAllocator

LOOPBACK = "127.0.0.1"
TONE_BANK = ToneBank()


class Phone(asyncio.DatagramProtocol):
    """The far end: a raw UDP socket that records what arrives, with times."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.packets: list[tuple[float, RtpPacket]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.arrived = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append((self.loop.time(), RtpPacket.parse(data)))
        self.arrived.set()

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (LOOPBACK, port))

    async def wait_for(self, count: int, timeout_s: float = 3.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.packets) < count:
                self.arrived.clear()
                await self.arrived.wait()


def offer(port: int, formats: str = "0 8 101", ptime_ms: int = 20) -> SessionDescription:
    return SessionDescription.parse(
        "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {formats}\r\n"
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
        f"a=ptime:{ptime_ms}\r\na=sendrecv\r\n")


def negotiate(session: MediaSession, phone_port: int, formats: str = "0 8 101",
              capabilities: MediaCapabilities | None = None) -> NegotiatedMedia:
    _, negotiated = build_answer(offer(phone_port, formats),
                                 capabilities or MediaCapabilities(),
                                 LOOPBACK, session.local_port, 1, 1)
    return negotiated


Counter = Callable[[int], int]


def fixed_bits() -> Counter:
    values = itertools.count(1000)
    return lambda bits: next(values) & ((1 << bits) - 1)


@pytest.fixture
async def phone() -> AsyncIterator[Phone]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Phone, local_addr=(LOOPBACK, 0))
    yield protocol
    transport.close()


@pytest.fixture
def allocator(free_port_factory: Callable[[], int]) -> PortAllocator:
    # A private range near a kernel-chosen free port; busy ports are skipped.
    first = free_port_factory() & ~1
    return PortAllocator(first, min(first + 40, 65535))


async def open_session(allocator: PortAllocator, phone: Phone, *, formats: str = "0 8 101",
                       collector: DigitCollector | None = None,
                       pacer: Pacer | None = None) -> MediaSession:
    session = await MediaSession.open(allocator, LOOPBACK, call_id="test-call",
                                      tone_bank=TONE_BANK, plan="pl", collector=collector,
                                      pacer=pacer, random_bits=fixed_bits())
    session.configure(negotiate(session, phone.port, formats))
    return session


async def events_until_end(session: MediaSession, timeout_s: float = 5.0
                           ) -> list[DigitEvent]:
    out: list[DigitEvent] = []
    async with asyncio.timeout(timeout_s):
        async for event in session.digits():
            out.append(event)
    return out


def dominant_hz(samples: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("use_pacer", [False, True], ids=["own_schedule", "shared_pacer"])
async def test_dial_tone_frames_arrive_every_20_ms_and_decode_to_425_hz(
        allocator: PortAllocator, phone: Phone, use_pacer: bool) -> None:
    pacer = Pacer() if use_pacer else None
    session = await open_session(allocator, phone, pacer=pacer)
    try:
        session.play_tone("dial")
        await phone.wait_for(50)
    finally:
        session.close()
        if pacer is not None:
            pacer.close()
    packets = [packet for _, packet in phone.packets[:50]]
    times = np.array([arrived for arrived, _ in phone.packets[:50]])
    assert {p.payload_type for p in packets} == {0}
    assert all(len(p.payload) == 160 for p in packets)
    assert [(b.sequence_number - a.sequence_number) & 0xFFFF
            for a, b in itertools.pairwise(packets)] == [1] * 49
    assert [(b.timestamp - a.timestamp) & 0xFFFFFFFF
            for a, b in itertools.pairwise(packets)] == [160] * 49
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    # Absolute schedule: packet n leaves at start + n * 20 ms, so its arrival
    # deviates from that line by scheduling jitter only, with no drift.
    deviation_ms = (times - times[0] - np.arange(50) * 0.020) * 1000
    assert np.max(np.abs(deviation_ms)) < 15, deviation_ms
    assert abs((times[-1] - times[0]) - 49 * 0.020) < 0.010
    pcm = np.concatenate([ulaw_decode(p.payload) for p in packets]).astype(float)
    assert abs(dominant_hz(pcm) - 425) <= 5
    assert -13 < power_to_dbm0(float(np.mean(pcm**2))) < -7  # the plan's -10 dBm0


async def test_tone_follows_the_negotiated_codec(allocator: PortAllocator, phone: Phone
                                                 ) -> None:
    session = await open_session(allocator, phone, formats="8 101")
    try:
        assert session.codec is PCMA
        session.play_tone("dial")
        await phone.wait_for(10)
    finally:
        session.close()
    packets = [packet for _, packet in phone.packets[:10]]
    assert {p.payload_type for p in packets} == {8}
    pcm = np.concatenate([alaw_decode(p.payload) for p in packets]).astype(float)
    assert abs(dominant_hz(pcm) - 425) <= 5


async def send_telephone_events(phone: Phone, port: int, digits: str, *, ssrc: int = 0x1234,
                                gap_ms: float = 120) -> None:
    sequence_number = 500
    timestamp = 8000
    for digit in digits:
        for item in telephone_event_packets(digit, duration_ms=100):
            phone.send(pack_rtp(payload_type=101, sequence_number=sequence_number,
                                timestamp=timestamp + item.timestamp_offset, ssrc=ssrc,
                                payload=item.payload, marker=item.marker), port)
            sequence_number += 1
            await asyncio.sleep(0.020)
        timestamp += 8 * (100 + 60 + round(gap_ms))
        await asyncio.sleep(gap_ms / 1000)


async def test_rfc4733_packets_become_digits_and_the_first_key_stops_the_dial_tone(
        allocator: PortAllocator, phone: Phone) -> None:
    session = await open_session(allocator, phone)
    try:
        session.play_tone("dial")
        session.start_collecting()
        await phone.wait_for(3)
        assert session.tone_playing
        sender = asyncio.create_task(send_telephone_events(phone, session.local_port, "12#"))
        events = await events_until_end(session)
        await sender
    finally:
        session.close()
    digits = [e for e in events if isinstance(e, DigitReceived)]
    assert [(d.digit, d.source) for d in digits] == [
        ("1", DigitSource.RFC4733), ("2", DigitSource.RFC4733), ("#", DigitSource.RFC4733)]
    assert all(d.duration_ms == 100 for d in digits)
    end = events[-1]
    assert isinstance(end, DigitCollectionEnded)
    assert (end.digits, end.reason) == ("12", DigitEndReason.TERMINATOR)
    # The tone stopped when the key went down, before the digit was final.
    assert session.tone_stop_reason == "key 1 down"
    assert not session.tone_playing


async def test_inband_pcmu_dtmf_becomes_digits(allocator: PortAllocator, phone: Phone) -> None:
    session = await open_session(allocator, phone)
    pcm = to_int16(dtmf_signal("47#", tone_ms=100, pause_ms=100, lead_ms=60))
    frames = [ulaw_encode(pcm[i:i + 160]) for i in range(0, len(pcm) - 159, 160)]
    try:
        session.play_tone("dial")
        session.start_collecting()
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, frame in enumerate(frames):  # on the 20 ms schedule, like a phone
            phone.send(pack_rtp(payload_type=0, sequence_number=index, timestamp=index * 160,
                                ssrc=0xABC, payload=frame), session.local_port)
            await asyncio.sleep(max(0.0, start + (index + 1) * 0.020 - loop.time()))
        events = await events_until_end(session, timeout_s=2)
    finally:
        session.close()
    digits = [e for e in events if isinstance(e, DigitReceived)]
    assert [(d.digit, d.source) for d in digits] == [
        ("4", DigitSource.INBAND), ("7", DigitSource.INBAND), ("#", DigitSource.INBAND)]
    assert isinstance(events[-1], DigitCollectionEnded) and events[-1].digits == "47"
    assert session.tone_stop_reason == "key 4 down"


async def test_inband_dtmf_in_g722_becomes_digits(allocator: PortAllocator,
                                                   phone: Phone) -> None:
    """G.722 decodes to 16 kHz; the session halves it for the 8 kHz detector
    with a stateful decimator (no clicks at frame edges)."""
    if not G722_AVAILABLE:
        pytest.skip("the G722 package (extra [g722]) is not installed")
    session = await MediaSession.open(allocator, LOOPBACK, call_id="test-call",
                                      tone_bank=TONE_BANK, plan="pl",
                                      random_bits=fixed_bits())
    session.configure(negotiate(session, phone.port, "9 101",
                                MediaCapabilities(codecs=(SDP_G722, SDP_PCMU))))
    pcm = to_int16(dtmf_signal("358#", tone_ms=100, pause_ms=100, lead_ms=60,
                               sample_rate=16000))
    encoder = G722Encoder()
    frames = [encoder.encode(pcm[i:i + 320]) for i in range(0, len(pcm) - 319, 320)]
    try:
        session.start_collecting()
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, frame in enumerate(frames):
            phone.send(pack_rtp(payload_type=9, sequence_number=index, timestamp=index * 160,
                                ssrc=0xABD, payload=frame), session.local_port)
            await asyncio.sleep(max(0.0, start + (index + 1) * 0.020 - loop.time()))
        events = await events_until_end(session, timeout_s=2)
    finally:
        session.close()
    digits = [(e.digit, e.source) for e in events if isinstance(e, DigitReceived)]
    assert digits == [("3", DigitSource.INBAND), ("5", DigitSource.INBAND),
                      ("8", DigitSource.INBAND), ("#", DigitSource.INBAND)]


async def test_info_digit_and_its_rfc4733_copy_count_once(allocator: PortAllocator,
                                                           phone: Phone) -> None:
    session = await open_session(allocator, phone)
    try:
        session.start_collecting()
        session.info_digit(parse_dtmf_info("application/dtmf-relay",
                                           b"Signal=5\r\nDuration=100\r\n"))
        await send_telephone_events(phone, session.local_port, "5", gap_ms=0)
        await asyncio.sleep(0.4)  # end timeout and reorder window of the receiver
    finally:
        session.close()
    assert [(d.digit, d.source) for d in session.history] == [("5", DigitSource.INFO)]


async def test_inter_digit_timeout_ends_the_collection(allocator: PortAllocator, phone: Phone
                                                       ) -> None:
    collector = DigitCollector(first_digit_timeout_s=2, inter_digit_timeout_s=0.2)
    session = await open_session(allocator, phone, collector=collector)
    loop = asyncio.get_running_loop()
    try:
        session.start_collecting()
        session.info_digit(parse_dtmf_info("application/dtmf", b"9"))
        started = loop.time()
        events = await events_until_end(session, timeout_s=2)
        waited_s = loop.time() - started
    finally:
        session.close()
    end = events[-1]
    assert isinstance(end, DigitCollectionEnded)
    assert (end.digits, end.reason) == ("9", DigitEndReason.INTER_DIGIT_TIMEOUT)
    assert 0.18 <= waited_s < 0.5


async def test_close_releases_the_ports_and_stops_sending(allocator: PortAllocator,
                                                          phone: Phone) -> None:
    available = allocator.available
    session = await open_session(allocator, phone)
    assert allocator.available == available - 1
    session.play_tone("dial")
    session.start_collecting()
    await phone.wait_for(2)
    session.close()
    session.close()
    assert allocator.available == available
    count = len(phone.packets)
    await asyncio.sleep(0.1)
    assert len(phone.packets) == count
    assert session.tone_stop_reason == "closed"


async def test_tone_restart_keeps_the_ssrc_and_moves_the_timestamp_on(
        allocator: PortAllocator, phone: Phone) -> None:
    session = await open_session(allocator, phone)
    try:
        session.play_tone("dial")
        await phone.wait_for(5)
        session.stop_tone()
        await asyncio.sleep(0.2)
        first_count = len(phone.packets)
        session.play_tone("busy")
        await phone.wait_for(first_count + 2)
    finally:
        session.close()
    before = phone.packets[first_count - 1][1]
    after = phone.packets[first_count][1]
    assert after.ssrc == before.ssrc
    assert after.sequence_number == (before.sequence_number + 1) & 0xFFFF
    assert after.marker
    assert (after.timestamp - before.timestamp) & 0xFFFFFFFF >= 160 * 10  # ~200 ms silent
    assert session.codec is PCMU
