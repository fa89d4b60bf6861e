"""RTP sockets on 127.0.0.1: port pairs, symmetric latching, RTCP, the shared pacer."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Iterator

import pytest

from boomerang.media.relay import LegMedia
from boomerang.media.rtcp import Bye, SenderReport, parse_compound
from boomerang.media.rtp import RtpPacket, pack_rtp
from boomerang.media.stream import RtpSender
from boomerang.transport.rtp_socket import (
    LatenessHistogram,
    Pacer,
    PortAllocator,
    PortsExhausted,
    RtpEndpoint,
    open_socket_pair,
)

LOOPBACK = "127.0.0.1"
RECEIVE_TIMEOUT_S = 2.0


def port_window(size: int = 200) -> tuple[int, int]:
    """A random window in 40000-59999 so parallel test runs rarely meet;
    the allocator skips ports that are taken anyway."""
    first = random.randrange(40000, 60000 - size, 2)
    return first, first + size - 1


@pytest.fixture
def allocator() -> PortAllocator:
    return PortAllocator(*port_window())


@pytest.fixture
def phone() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.setblocking(False)
    yield sock
    sock.close()


async def receive(sock: socket.socket,
                  timeout_s: float = RECEIVE_TIMEOUT_S) -> tuple[bytes, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), timeout_s)


def leg_media(sock: socket.socket, *, rtcp_port: int | None = None) -> LegMedia:
    address, port = sock.getsockname()
    return LegMedia(remote_address=address, remote_port=port, codecs=((0, "PCMU", 8000),),
                    telephone_event_payload_type=101, remote_rtcp_port=rtcp_port)


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


# -- port allocation -------------------------------------------------------------


def test_allocator_gives_even_ports_and_reuses_released_ones_last() -> None:
    ports = PortAllocator(20001, 20010)  # pairs 20002, 20004, 20006, 20008
    assert ports.size == 4
    got = [ports.allocate() for _ in range(4)]
    assert got == [20002, 20004, 20006, 20008]
    with pytest.raises(PortsExhausted, match="all 4 RTP port pairs of 20001-20010"):
        ports.allocate()
    ports.release(20004)
    ports.release(20004)  # twice is harmless
    assert ports.allocate() == 20004
    ports.release(20002)
    ports.release(20006)
    assert [ports.allocate(), ports.allocate()] == [20002, 20006]
    assert (ports.in_use, ports.available) == (4, 0)


def test_allocator_refuses_a_range_without_a_pair() -> None:
    with pytest.raises(ValueError):
        PortAllocator(20001, 20002)


async def test_socket_pair_binds_rtp_and_rtcp_and_skips_ports_held_elsewhere() -> None:
    first, last = port_window(20)
    allocator = PortAllocator(first, last)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        squatter.bind((LOOPBACK, first + 1))  # the RTCP port of the first pair
    except OSError:
        squatter.close()
        pytest.skip("the port under test is taken by someone else")

    class Sink:
        def rtp_received(self, data: bytes, source: tuple[str, int]) -> None: ...

        def rtcp_received(self, data: bytes, source: tuple[str, int]) -> None: ...

    try:
        pair = await open_socket_pair(allocator, LOOPBACK, Sink())
        assert pair.port > first and pair.port % 2 == 0 and pair.rtcp_port == pair.port + 1
        assert pair.rtp_transport.get_extra_info("sockname")[1] == pair.port
        assert pair.rtcp_transport.get_extra_info("sockname")[1] == pair.port + 1
        pair.close()
        await asyncio.sleep(0)
        assert bindable(pair.port) and bindable(pair.port + 1)
        assert allocator.in_use == 0
    finally:
        squatter.close()


async def test_socket_pairs_run_out_with_a_clear_error() -> None:
    first, _ = port_window(4)
    allocator = PortAllocator(first, first + 3)

    class Sink:
        def rtp_received(self, data: bytes, source: tuple[str, int]) -> None: ...

        def rtcp_received(self, data: bytes, source: tuple[str, int]) -> None: ...

    pairs = []
    try:
        with pytest.raises(PortsExhausted):
            for _ in range(3):
                pairs.append(await open_socket_pair(allocator, LOOPBACK, Sink()))
        assert len(pairs) <= 2
    finally:
        for pair in pairs:
            pair.close()


# -- endpoint ----------------------------------------------------------------------


async def test_endpoint_latches_to_where_packets_come_from(allocator: PortAllocator,
                                                           phone: socket.socket) -> None:
    endpoint = await RtpEndpoint.open(allocator, LOOPBACK)
    heard: list[bytes] = []
    endpoint.on_rtp = lambda data, now: heard.append(data)
    # The SDP names a port nobody listens on; the phone really sends from `phone`.
    sdp_only = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sdp_only.bind((LOOPBACK, 0))
    try:
        endpoint.set_remote(leg_media(sdp_only))
        assert endpoint.latch.target == sdp_only.getsockname()
        # A packet of a payload type never negotiated does not latch.
        phone.sendto(pack_rtp(payload_type=18, sequence_number=1, timestamp=0, ssrc=5,
                              payload=b"x" * 20), endpoint.local)
        phone.sendto(pack_rtp(payload_type=0, sequence_number=2, timestamp=160, ssrc=5,
                              payload=b"\xff" * 160), endpoint.local)
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.01)
        assert len(heard) == 1 and RtpPacket.parse(heard[0]).sequence_number == 2
        assert endpoint.packets_dropped == 1
        assert endpoint.latch.target == phone.getsockname()
        endpoint.send_rtp(pack_rtp(payload_type=0, sequence_number=9, timestamp=0, ssrc=77,
                                   payload=b"\xff" * 160))
        data, source = await receive(phone)
        assert RtpPacket.parse(data).ssrc == 77 and source == endpoint.local
    finally:
        endpoint.close()
        sdp_only.close()


async def test_endpoint_sends_a_sender_report_on_the_rtcp_port(allocator: PortAllocator,
                                                               phone: socket.socket) -> None:
    endpoint = await RtpEndpoint.open(allocator, LOOPBACK)
    try:
        endpoint.set_remote(leg_media(phone, rtcp_port=phone.getsockname()[1]))
        sender = RtpSender(ssrc=0x1234, payload_type=0, timestamp_step=160,
                           initial_sequence_number=1, initial_timestamp=0)
        endpoint.sender = sender
        for _ in range(3):
            endpoint.send_rtp(sender.packet(b"\xff" * 160))
        for _ in range(3):
            await receive(phone)
        endpoint._rtcp_due()  # the ~5 s timer, fired now
        data, source = await receive(phone)
        assert source == (LOOPBACK, endpoint.sockets.rtcp_port)
        report = parse_compound(data)[0]
        assert isinstance(report, SenderReport)
        assert (report.ssrc, report.packet_count, report.octet_count) == (0x1234, 3, 480)
    finally:
        endpoint.close()


async def test_endpoint_says_bye_on_rtcp_when_it_closes(allocator: PortAllocator,
                                                         phone: socket.socket) -> None:
    """RFC 3550 §6.6: leaving the session, a compound packet with our last
    report and a BYE for our SSRC goes to the peer's RTCP address."""
    endpoint = await RtpEndpoint.open(allocator, LOOPBACK)
    endpoint.set_remote(leg_media(phone, rtcp_port=phone.getsockname()[1]))
    sender = RtpSender(ssrc=0x4321, payload_type=0, timestamp_step=160,
                       initial_sequence_number=1, initial_timestamp=0)
    endpoint.sender = sender
    endpoint.send_rtp(sender.packet(b"\xff" * 160))
    await receive(phone)
    endpoint.close()
    data, source = await receive(phone)
    assert source == (LOOPBACK, endpoint.sockets.rtcp_port)
    packets = parse_compound(data)
    assert isinstance(packets[0], SenderReport) and packets[0].packet_count == 1
    assert isinstance(packets[-1], Bye) and packets[-1].sources == (0x4321,)


async def test_endpoint_close_frees_ports_and_cancels_the_rtcp_timer(
        allocator: PortAllocator, phone: socket.socket) -> None:
    endpoint = await RtpEndpoint.open(allocator, LOOPBACK)
    endpoint.set_remote(leg_media(phone))
    timer = endpoint._rtcp_timer
    assert timer is not None
    endpoint.close()
    await asyncio.sleep(0)
    assert timer.cancelled()
    port = endpoint.sockets.port
    assert bindable(port) and bindable(port + 1)
    assert allocator.in_use == 0


# -- pacer -------------------------------------------------------------------------


def test_histogram_quantiles() -> None:
    histogram = LatenessHistogram(bin_ms=0.1)
    for lateness_ms in [0.05] * 90 + [1.55] * 9 + [7.0]:
        histogram.add(lateness_ms / 1000)
    histogram.add(-0.0001)
    assert histogram.count == 101 and histogram.early == 1
    assert histogram.quantile_ms(0.5) == pytest.approx(0.1)
    assert histogram.quantile_ms(0.99) == pytest.approx(1.6)
    assert histogram.max_s == pytest.approx(0.007)
    assert histogram.share_within_ms(2.0) == pytest.approx(100 / 101)


async def test_pacer_sends_every_stream_on_an_absolute_schedule(phone: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    pacer = Pacer(slot_ms=5)
    arrivals: dict[int, list[tuple[float, RtpPacket]]] = {}
    streams = []
    count, frames = 8, 15
    address = phone.getsockname()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                       local_addr=(LOOPBACK, 0))
    try:
        for index in range(count):
            sender = RtpSender(ssrc=index, payload_type=0, timestamp_step=160,
                               initial_sequence_number=65530, initial_timestamp=1000)
            streams.append(pacer.start(send=lambda data: transport.sendto(data, address),
                                       sender=sender, frames=lambda: b"\xff" * 160))
        # Streams start in the least loaded slot of their first ptime: 2 per slot.
        phases = sorted(round((s.start - pacer.origin) / 0.005) % 4 for s in streams)
        assert phases == [0, 0, 1, 1, 2, 2, 3, 3]
        deadline = time.monotonic() + 5.0
        while sum(len(v) for v in arrivals.values()) < count * frames:
            assert time.monotonic() < deadline, "paced packets did not all arrive"
            data, _ = await receive(phone)
            packet = RtpPacket.parse(data)
            arrivals.setdefault(packet.ssrc, []).append((time.monotonic(), packet))
        for stream in streams:
            stream.stop()
        for index, stream in enumerate(streams):
            got = arrivals[index][:frames]
            assert [p.sequence_number for _, p in got] == [
                (65530 + n) & 0xFFFF for n in range(frames)]
            assert [p.timestamp for _, p in got] == [1000 + 160 * n for n in range(frames)]
            assert got[0][1].marker and not any(p.marker for _, p in got[1:])
            # No drift: frame n leaves at start + n * 20 ms (loaded machines: 15 ms slack).
            for n, (arrived, _) in enumerate(got):
                assert arrived - (stream.start + n * 0.020) < 0.015
        assert pacer.lateness.count >= count * frames
        assert pacer.streams_started == count
    finally:
        pacer.close()
        transport.close()


async def test_pacer_skips_frames_rather_than_bursting_after_a_stall() -> None:
    sent: list[float] = []
    pacer = Pacer(slot_ms=5, max_behind_s=0.1)
    sender = RtpSender(ssrc=1, payload_type=0, timestamp_step=160, initial_sequence_number=0,
                       initial_timestamp=0)
    stream = pacer.start(send=lambda data: sent.append(time.monotonic()), sender=sender,
                         frames=lambda: b"\xff" * 160)
    try:
        await asyncio.sleep(0.1)
        time.sleep(0.3)  # the loop is blocked: ~15 frames missed
        await asyncio.sleep(0.1)
        assert stream.frames_skipped >= 10
        assert stream.frames_sent + stream.frames_skipped >= 20
        # The stamps moved on with the skipped frames: timestamp = frames * 160.
        assert sender.timestamp == (stream.frames_sent + stream.frames_skipped) * 160
    finally:
        stream.stop()
        pacer.close()


async def test_pacer_refuses_a_ptime_off_its_slots() -> None:
    pacer = Pacer(slot_ms=20)
    sender = RtpSender(ssrc=1, payload_type=0, timestamp_step=80, initial_sequence_number=0,
                       initial_timestamp=0)
    with pytest.raises(ValueError, match="not a multiple"):
        pacer.start(send=lambda data: None, sender=sender, frames=lambda: b"", ptime_ms=10)
    pacer.close()
