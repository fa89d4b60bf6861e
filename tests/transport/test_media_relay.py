"""Both MediaRelay backends, same test body: two fake legs on 127.0.0.1.

The legs are plain UDP sockets sending RTP built with ``boomerang.media.rtp``.
The rtpengine backend runs a real userspace rtpengine (skipped only when the
binary is missing); Python-only behaviour (continuity, payload mapping,
timeout events) is tested on the Python backend.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from test_rtpengine import RTPENGINE, start_rtpengine

from boomerang.media.relay import LegMedia, MediaTimedOut, RelayEvent, SourceLatched
from boomerang.media.rtp import RtpPacket, pack_rtp
from boomerang.transport.media_relay import MediaRelay, PythonMediaRelay
from boomerang.transport.rtp_socket import PortAllocator
from boomerang.transport.rtpengine import RtpengineMediaRelay

LOOPBACK = "127.0.0.1"
PACKETS = 10


class Phone:
    """A fake leg: a plain UDP socket."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.setblocking(False)

    @property
    def address(self) -> tuple[str, int]:
        address, port = self.sock.getsockname()
        return (address, port)

    def media(self, *, codecs: tuple[tuple[int, str, int], ...] = ((0, "PCMU", 8000),),
              event_type: int | None = 101) -> LegMedia:
        return LegMedia(remote_address=LOOPBACK, remote_port=self.address[1], codecs=codecs,
                        telephone_event_payload_type=event_type)

    async def receive(self, count: int, timeout_s: float = 3.0) -> list[RtpPacket]:
        loop = asyncio.get_running_loop()
        got: list[RtpPacket] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 2048), remaining)
            except TimeoutError:
                break
            got.append(RtpPacket.parse(data))
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def phones() -> Iterator[tuple[Phone, Phone]]:
    a, b = Phone(), Phone()
    yield a, b
    a.close()
    b.close()


def python_relay(**options: object) -> PythonMediaRelay:
    first = random.randrange(40000, 59800, 2)
    return PythonMediaRelay(PortAllocator(first, first + 199), local_address=LOOPBACK,
                            **options)  # type: ignore[arg-type]


@pytest.fixture(params=["python", "rtpengine"])
async def relay(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MediaRelay]:
    if request.param == "python":
        backend: MediaRelay = python_relay()
        yield backend
        await backend.close()
        return
    if RTPENGINE is None:
        pytest.skip("rtpengine missing (apt-get install rtpengine-daemon)")
    engine = start_rtpengine(tmp_path)
    try:
        backend = await RtpengineMediaRelay.connect(engine.ng)
        yield backend
        await backend.close()
    finally:
        engine.stop()


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


async def set_up_call(relay: MediaRelay, a: Phone, b: Phone, call_id: str = "call-1",
                      ) -> tuple[tuple[str, int], tuple[str, int]]:
    local_a = await relay.allocate(call_id, "a")
    local_b = await relay.allocate(call_id, "b")
    await relay.update(call_id, "a", a.media())
    await relay.update(call_id, "b", b.media())
    await relay.bridge(call_id, "a", "b")
    return local_a, local_b


def frame(n: int, ssrc: int, *, pt: int = 0, ts_base: int = 0) -> bytes:
    return pack_rtp(payload_type=pt, sequence_number=n, timestamp=ts_base + n * 160, ssrc=ssrc,
                    payload=bytes([n & 0xFF]) * 160)


async def test_relays_both_ways_and_counts(relay: MediaRelay,
                                           phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    local_a, local_b = await set_up_call(relay, a, b)
    assert local_a != local_b
    for n in range(PACKETS):
        a.sock.sendto(frame(n, 0xAAAA), local_a)
        b.sock.sendto(frame(n, 0xBBBB), local_b)
        await asyncio.sleep(0.005)
    at_b = await b.receive(PACKETS)
    at_a = await a.receive(PACKETS)
    assert [p.payload[0] for p in at_b] == list(range(PACKETS))
    assert [p.payload[0] for p in at_a] == list(range(PACKETS))
    assert {p.sequence_number for p in at_b} == set(range(PACKETS))
    stats = await relay.stats("call-1")
    assert stats.leg("a").packets_received == PACKETS
    assert stats.leg("b").packets_received == PACKETS
    assert stats.leg("a").octets_received == stats.leg("b").octets_received
    assert stats.leg("a").octets_received >= PACKETS * 160


async def test_release_frees_the_ports(relay: MediaRelay, phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    local_a, local_b = await set_up_call(relay, a, b, "call-2")
    ports = [local_a[1], local_a[1] + 1, local_b[1], local_b[1] + 1]
    assert not any(bindable(port) for port in ports)
    await relay.release("call-2")
    for _ in range(50):  # rtpengine closes its sockets on its own thread
        if all(bindable(port) for port in ports):
            break
        await asyncio.sleep(0.02)
    assert all(bindable(port) for port in ports)


async def test_latches_to_the_source_behind_nat(relay: MediaRelay,
                                                phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    behind_nat = Phone()  # a's packets really come from another port than its SDP says
    try:
        local_a, local_b = await set_up_call(relay, a, b, "call-3")
        for n in range(3):
            behind_nat.sock.sendto(frame(n, 0xAAAA), local_a)
            await asyncio.sleep(0.01)
        assert len(await b.receive(3)) == 3
        b.sock.sendto(frame(0, 0xBBBB), local_b)
        assert len(await behind_nat.receive(1)) == 1
    finally:
        behind_nat.close()


# -- Python backend only ------------------------------------------------------------


async def test_python_source_change_is_seamless(phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    relay = python_relay()
    try:
        local_a, _ = await set_up_call(relay, a, b)
        # b heard our dial tone first: SSRC 0x7070, last seq 500, ts 80000.
        loop_now = relay.clock()
        await relay.hand_over("call-1", "b", ssrc=0x7070, last_sequence_number=500,
                              last_timestamp=80_000, last_sent_at=loop_now - 0.02)
        for n in range(3):
            a.sock.sendto(frame(n, 0xAAAA, ts_base=1_000_000), local_a)
            await asyncio.sleep(0.02)
        for n in range(3):  # re-INVITE: new SSRC, new numbering
            a.sock.sendto(frame(900 + n, 0xCCCC), local_a)
            await asyncio.sleep(0.02)
        got = await b.receive(6)
        assert len(got) == 6
        assert {p.ssrc for p in got} == {0x7070}
        assert [p.sequence_number for p in got] == list(range(501, 507))
        steps = [(q.timestamp - p.timestamp) & 0xFFFFFFFF for p, q in itertools.pairwise(got)]
        assert all(100 <= step <= 800 for step in steps), steps  # ~160, never a jump
        assert [p.marker for p in got] == [True, False, False, True, False, False]
    finally:
        await relay.close()


async def test_python_maps_payload_types(phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    relay = python_relay()
    try:
        local_a = await relay.allocate("call-1", "a")
        await relay.allocate("call-1", "b")
        await relay.update("call-1", "a", a.media(codecs=((8, "PCMA", 8000),), event_type=101))
        await relay.update("call-1", "b", b.media(codecs=((98, "PCMA", 8000),), event_type=96))
        await relay.bridge("call-1", "a", "b")
        a.sock.sendto(frame(1, 0xAAAA, pt=8), local_a)
        a.sock.sendto(pack_rtp(payload_type=101, sequence_number=2, timestamp=160, ssrc=0xAAAA,
                               payload=b"\x01\x0a\x00\xa0", marker=True), local_a)
        got = await b.receive(2)
        assert [p.payload_type for p in got] == [98, 96]
    finally:
        await relay.close()


async def test_python_reports_media_timeout(phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    events: list[RelayEvent] = []
    relay = python_relay(no_media_timeout_s=0.3, on_event=events.append)
    try:
        local_a, _ = await set_up_call(relay, a, b)
        started = time.monotonic()
        a.sock.sendto(frame(0, 0xAAAA), local_a)
        deadline = started + 3.0
        while not any(isinstance(e, MediaTimedOut) and e.leg == "a" for e in events):
            assert time.monotonic() < deadline, f"no timeout event: {events}"
            await asyncio.sleep(0.02)
        timed_out = {e.leg for e in events if isinstance(e, MediaTimedOut)}
        assert timed_out == {"a", "b"}
        assert any(isinstance(e, SourceLatched) and e.leg == "a" for e in events)
        assert time.monotonic() - started >= 0.29
    finally:
        await relay.close()
