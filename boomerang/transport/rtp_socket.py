"""asyncio RTP/RTCP sockets: port pairs, symmetric RTP endpoints, pacing.

- ``PortAllocator`` hands out even RTP ports of the configured range (RTCP
  is RTP + 1). A released port goes to the back of the line, so it is
  reused last (late packets of the old call do not reach a new one);
  ``PortsExhausted`` says so when every pair is taken.
- ``open_socket_pair`` binds an RTP/RTCP pair on a local address, skipping
  ports someone else holds (EADDRINUSE), and delivers datagrams to a
  ``DatagramHandler`` (``rtp_received`` / ``rtcp_received``).
- ``RtpEndpoint`` is a leg where Boomerang terminates media (dial tone,
  prompts, digit detection): symmetric RTP with the latching rules of
  ``boomerang.media.relay.Latch``, RTCP SR/RR on the +1 port every ~5 s
  (RFC 3550 §6.2, one ``call_at`` per endpoint), clean ``close``.
- ``Pacer`` sends generated media for MANY streams from ONE timer: the
  timeline is cut into slots of ``slot_ms``; each stream sends frame ``n``
  at ``start + n * ptime`` (an absolute schedule, never a sleep in a loop),
  and a new stream starts in the least loaded slot of its first ptime so
  the work spreads evenly. Each packet's lateness (send time minus
  schedule) goes into a histogram (``LatenessHistogram``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import random
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ..media.relay import Address, Latch, LegMedia
from ..media.rtcp import (
    Bye,
    ReceiverReport,
    RtcpError,
    SenderReport,
    ntp_timestamp,
    parse_compound,
    rtcp_interval_s,
    serialize,
)
from ..media.stream import ReceiverStatistics, RtpSender

log = logging.getLogger(__name__)

UDP_RECEIVE_BUFFER_BYTES = 1024 * 1024


class PortsExhausted(RuntimeError):
    """Every RTP port pair of the range is in use (or held by others)."""


class PortAllocator:
    """Even RTP ports in ``first..last`` (RTCP on the odd port above)."""

    __slots__ = ("_free", "_in_use", "first", "last")

    def __init__(self, first: int, last: int) -> None:
        start = first + (first & 1)
        if start + 1 > last or not 0 < first <= last <= 65535:
            raise ValueError(f"RTP port range {first}-{last} holds no even/odd pair")
        self.first = first
        self.last = last
        self._free: deque[int] = deque(range(start, last, 2))
        self._in_use: set[int] = set()

    @property
    def size(self) -> int:
        return len(self._free) + len(self._in_use)

    @property
    def available(self) -> int:
        return len(self._free)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def allocate(self) -> int:
        """An even RTP port not in use; its RTCP port is ``port + 1``."""
        if not self._free:
            raise PortsExhausted(
                f"all {self.size} RTP port pairs of {self.first}-{self.last} are in use; "
                f"widen media.rtp_ports or take fewer calls")
        port = self._free.popleft()
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        """Give ``port`` back; it is handed out again after all the others."""
        if port in self._in_use:
            self._in_use.remove(port)
            self._free.append(port)

    def busy_elsewhere(self, port: int) -> None:
        """``port`` could not be bound (another process has it): try it last."""
        self.release(port)


class DatagramHandler(Protocol):
    def rtp_received(self, data: bytes, source: Address) -> None: ...

    def rtcp_received(self, data: bytes, source: Address) -> None: ...


class _RtpProtocol(asyncio.DatagramProtocol):
    __slots__ = ("handler",)

    def __init__(self, handler: DatagramHandler) -> None:
        self.handler: DatagramHandler | None = handler

    def datagram_received(self, data: bytes, addr: Address) -> None:
        handler = self.handler
        if handler is not None:
            handler.rtp_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a leg that went away: not fatal for UDP.
        log.debug("RTP socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.handler = None


class _RtcpProtocol(_RtpProtocol):
    __slots__ = ()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        handler = self.handler
        if handler is not None:
            handler.rtcp_received(data, addr)


class SocketPair:
    """A bound RTP/RTCP socket pair; ``close`` gives the port back."""

    __slots__ = ("_allocator", "_rtcp_protocol", "_rtp_protocol", "closed", "local_address",
                 "port", "rtcp_transport", "rtp_transport")

    def __init__(self, *, local_address: str, port: int, allocator: PortAllocator | None,
                 rtp_transport: asyncio.DatagramTransport, rtp_protocol: _RtpProtocol,
                 rtcp_transport: asyncio.DatagramTransport,
                 rtcp_protocol: _RtcpProtocol) -> None:
        self.local_address = local_address
        self.port = port
        self._allocator = allocator
        self.rtp_transport = rtp_transport
        self.rtcp_transport = rtcp_transport
        self._rtp_protocol = rtp_protocol
        self._rtcp_protocol = rtcp_protocol
        self.closed = False

    @property
    def rtcp_port(self) -> int:
        return self.port + 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._rtp_protocol.handler = None
        self._rtcp_protocol.handler = None
        self.rtp_transport.abort()
        self.rtcp_transport.abort()
        if self._allocator is not None:
            self._allocator.release(self.port)


def _bound_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER_BYTES)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _factory(protocol: _RtpProtocol) -> Callable[[], _RtpProtocol]:
    return lambda: protocol


async def open_socket_pair(allocator: PortAllocator, local_address: str,
                           handler: DatagramHandler) -> SocketPair:
    """Bind the next free RTP/RTCP pair on ``local_address``; ports held by
    other processes are skipped. Raises ``PortsExhausted``."""
    loop = asyncio.get_running_loop()
    for _ in range(allocator.size):
        port = allocator.allocate()
        sockets: list[socket.socket] = []
        try:
            sockets.append(_bound_socket(local_address, port))
            sockets.append(_bound_socket(local_address, port + 1))
        except OSError as error:
            for sock in sockets:
                sock.close()
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                allocator.busy_elsewhere(port)
                continue
            allocator.release(port)
            raise
        rtp_protocol = _RtpProtocol(handler)
        rtcp_protocol = _RtcpProtocol(handler)
        rtp_transport, _ = await loop.create_datagram_endpoint(
            _factory(rtp_protocol), sock=sockets[0])
        rtcp_transport, _ = await loop.create_datagram_endpoint(
            _factory(rtcp_protocol), sock=sockets[1])
        return SocketPair(local_address=local_address, port=port, allocator=allocator,
                          rtp_transport=rtp_transport, rtp_protocol=rtp_protocol,
                          rtcp_transport=rtcp_transport, rtcp_protocol=rtcp_protocol)
    raise PortsExhausted(f"no RTP port pair of {allocator.first}-{allocator.last} could be "
                         f"bound on {local_address}: all in use here or by other processes")


# ---------------------------------------------------------------------------
# Endpoint for media we terminate


RtpCallback = Callable[[bytes, float], None]


class RtpEndpoint:
    """One leg's RTP/RTCP where Boomerang is the media end (dial tone).

    ``on_rtp(data, now)`` gets every valid RTP packet (version 2, a
    negotiated payload type, from the latched source); ``send_rtp`` sends
    to the latched address (the SDP's until something valid arrived).
    ``sender`` is the stream we send (set by whoever paces it) for our SR.
    """

    __slots__ = (
        "__weakref__",
        "_rtcp_timer",
        "clock",
        "latch",
        "on_rtp",
        "packets_dropped",
        "packets_received",
        "payload_types",
        "random_factor",
        "receiver",
        "remote",
        "rtcp_latch",
        "rtcp_packets_received",
        "sender",
        "sockets",
        "wall_clock_offset_s",
    )

    def __init__(self, sockets: SocketPair, *, latching: bool = True,
                 clock: Callable[[], float] = time.monotonic,
                 random_factor: Callable[[], float] = random.random) -> None:
        self.sockets = sockets
        self.clock = clock
        self.random_factor = random_factor
        self.wall_clock_offset_s = time.time() - clock()
        self.latch = Latch(("0.0.0.0", 0), enabled=latching)
        self.rtcp_latch = Latch(("0.0.0.0", 0), enabled=latching)
        self.remote: LegMedia | None = None
        self.payload_types: frozenset[int] = frozenset()
        self.on_rtp: RtpCallback | None = None
        self.sender: RtpSender | None = None
        self.receiver: ReceiverStatistics | None = None
        self.packets_received = 0
        self.packets_dropped = 0
        self.rtcp_packets_received = 0
        self._rtcp_timer: asyncio.TimerHandle | None = None

    @classmethod
    async def open(cls, allocator: PortAllocator, local_address: str, *,
                   latching: bool = True) -> RtpEndpoint:
        forwarder = _Forwarder()
        sockets = await open_socket_pair(allocator, local_address, forwarder)
        endpoint = cls(sockets, latching=latching)
        forwarder.set(endpoint)
        return endpoint

    @property
    def local(self) -> Address:
        return (self.sockets.local_address, self.sockets.port)

    def set_remote(self, media: LegMedia) -> None:
        """The leg's SDP (again): where to send, what to accept."""
        self.remote = media
        types = {pt for pt, _, _ in media.codecs}
        if media.telephone_event_payload_type is not None:
            types.add(media.telephone_event_payload_type)
        self.payload_types = frozenset(types)
        self.latch.reset(media.rtp_address)
        self.rtcp_latch.reset(media.rtcp_address)
        if self._rtcp_timer is None and not self.sockets.closed:
            self._arm_rtcp(initial=True)

    def send_rtp(self, data: bytes | bytearray) -> None:
        if self.remote is not None and self.remote.sends and not self.sockets.closed:
            self.sockets.rtp_transport.sendto(data, self.latch.target)

    def send_rtcp(self, data: bytes) -> None:
        if self.remote is not None and not self.sockets.closed:
            self.sockets.rtcp_transport.sendto(data, self.rtcp_latch.target)

    def rtp_received(self, data: bytes, source: Address) -> None:
        if len(data) < 12 or data[0] >> 6 != 2 or (data[1] & 0x7F) not in self.payload_types \
                or self.latch.accept(source, self.clock()) is False:
            self.packets_dropped += 1
            return
        self.packets_received += 1
        now = self.clock()
        ssrc = int.from_bytes(data[8:12], "big")
        receiver = self.receiver
        if receiver is None or receiver.ssrc != ssrc:
            clock_rate = self.remote.clock_rate if self.remote else 8000
            receiver = self.receiver = ReceiverStatistics(ssrc=ssrc, clock_rate=clock_rate)
        receiver.on_packet(sequence_number=int.from_bytes(data[2:4], "big"),
                           timestamp=int.from_bytes(data[4:8], "big"), now=now,
                           payload_size=len(data) - 12)
        if self.on_rtp is not None:
            self.on_rtp(data, now)

    def rtcp_received(self, data: bytes, source: Address) -> None:
        now = self.clock()
        try:
            packets = parse_compound(data)
        except RtcpError:
            self.packets_dropped += 1
            return
        self.rtcp_latch.accept(source, now)
        self.rtcp_packets_received += 1
        receiver = self.receiver
        for packet in packets:
            if isinstance(packet, SenderReport) and receiver is not None \
                    and packet.ssrc == receiver.ssrc:
                receiver.on_sender_report(packet, now=now)

    def rtcp_report(self, now: float) -> bytes | None:
        """Our SR (we send) or RR (we only listen), or None (nothing to say)."""
        receiver = self.receiver
        blocks = (receiver.report_block(now=now),) if receiver is not None and receiver.valid \
            else ()
        sender = self.sender
        if sender is not None and sender.packet_count:
            return serialize(sender.sender_report(
                ntp_timestamp=ntp_timestamp(now + self.wall_clock_offset_s),
                rtp_timestamp=sender.timestamp, reports=blocks))
        if blocks:
            return serialize(ReceiverReport(ssrc=sender.ssrc if sender else 0, reports=blocks))
        return None

    def rtcp_bye(self, now: float) -> bytes | None:
        """Our last compound RTCP packet (RFC 3550 §6.6): a report, then BYE
        for our SSRC; None when we never had a stream of our own."""
        sender = self.sender
        if sender is None:
            return None
        report = self.rtcp_report(now) or serialize(ReceiverReport(ssrc=sender.ssrc, reports=()))
        return report + serialize(Bye(sources=(sender.ssrc,)))

    def _arm_rtcp(self, *, initial: bool) -> None:
        delay_s = rtcp_interval_s(random_factor=self.random_factor(), initial=initial)
        loop = asyncio.get_running_loop()
        self._rtcp_timer = loop.call_later(delay_s, self._rtcp_due)

    def _rtcp_due(self) -> None:
        self._rtcp_timer = None
        if self.sockets.closed:
            return
        report = self.rtcp_report(self.clock())
        if report is not None:
            self.send_rtcp(report)
        self._arm_rtcp(initial=False)

    def close(self) -> None:
        """Send RTCP BYE, close both sockets, cancel the RTCP timer, give the
        port back."""
        if self._rtcp_timer is not None:
            self._rtcp_timer.cancel()
            self._rtcp_timer = None
        bye = self.rtcp_bye(self.clock()) if self.remote is not None else None
        if bye is not None:
            self.send_rtcp(bye)
        self.on_rtp = None
        self.sockets.close()


class _Forwarder:
    """Hands datagrams to an endpoint created after its sockets
    (``SocketPair.close`` drops the protocols' reference to it)."""

    __slots__ = ("_target",)

    def __init__(self) -> None:
        self._target: DatagramHandler | None = None

    def set(self, target: DatagramHandler) -> None:
        self._target = target

    def rtp_received(self, data: bytes, source: Address) -> None:
        if self._target is not None:
            self._target.rtp_received(data, source)

    def rtcp_received(self, data: bytes, source: Address) -> None:
        if self._target is not None:
            self._target.rtcp_received(data, source)


# ---------------------------------------------------------------------------
# Pacing


class LatenessHistogram:
    """Send lateness (actual minus scheduled) in bins of ``bin_ms``."""

    __slots__ = ("bin_ms", "bins", "count", "early", "max_s", "min_s")

    def __init__(self, *, bin_ms: float = 0.05, max_ms: float = 200.0) -> None:
        self.bin_ms = bin_ms
        self.bins = [0] * (int(max_ms / bin_ms) + 1)
        self.count = 0
        self.early = 0  # sent before the schedule (the timer fired early)
        self.max_s = 0.0
        self.min_s = 0.0

    def add(self, lateness_s: float) -> None:
        self.count += 1
        if lateness_s < 0:
            self.early += 1
            self.min_s = min(self.min_s, lateness_s)
            lateness_s = 0.0
        elif lateness_s > self.max_s:
            self.max_s = lateness_s
        index = int(lateness_s * 1000 / self.bin_ms)
        bins = self.bins
        bins[index if index < len(bins) else -1] += 1

    def quantile_ms(self, q: float) -> float:
        """Upper edge of the bin holding quantile ``q`` (0..1)."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index, count in enumerate(self.bins):
            seen += count
            if seen >= rank:
                return (index + 1) * self.bin_ms
        return self.max_s * 1000

    def share_within_ms(self, limit_ms: float) -> float:
        if not self.count:
            return 1.0
        full_bins = int(limit_ms / self.bin_ms)
        return sum(self.bins[:full_bins]) / self.count

    def reset(self) -> None:
        self.bins = [0] * len(self.bins)
        self.count = self.early = 0
        self.max_s = self.min_s = 0.0


FrameSource = Callable[[], bytes]
Send = Callable[[bytes], None]


class PacedStream:
    """One paced stream: frame ``n`` leaves at ``start + n * ptime_s``."""

    __slots__ = ("active", "frame_index", "frames", "frames_sent", "frames_skipped",
                 "last_scheduled_at", "ptime_s", "send", "sender", "slot_step", "start")

    def __init__(self, *, send: Send, sender: RtpSender, frames: FrameSource, ptime_s: float,
                 start: float, slot_step: int) -> None:
        self.send = send
        self.sender = sender
        self.frames = frames
        self.ptime_s = ptime_s
        self.start = start
        self.slot_step = slot_step
        self.frame_index = 0
        self.frames_sent = 0
        self.frames_skipped = 0
        self.last_scheduled_at = start
        self.active = True

    def stop(self) -> None:
        """Send nothing more (the pacer forgets the stream at its next slot)."""
        self.active = False

    def hand_over(self) -> tuple[int, int, int, float]:
        """``(ssrc, last sequence number, last timestamp, last scheduled
        time)`` for ``RelayCall.continue_output``."""
        sender = self.sender
        return (sender.ssrc, (sender.sequence_number - 1) & 0xFFFF,
                (sender.timestamp - sender.timestamp_step) & 0xFFFFFFFF,
                self.last_scheduled_at)


class Pacer:
    """One timer serving every paced stream of a loop (see the module doc).

    ``clock`` is the monotonic clock used for schedules and lateness (the
    loop's own clock may have only millisecond resolution); timers are set
    with ``call_later`` from its readings. A stream more than
    ``max_behind_s`` behind (the loop was blocked) skips the frames it
    missed instead of sending a burst.
    """

    __slots__ = ("_buckets", "_clock", "_loop", "_processed_slot", "_timer", "_timer_slot",
                 "early_s", "lateness", "max_behind_s", "origin", "slot_s", "streams_started")

    def __init__(self, *, slot_ms: float = 2.5, max_behind_s: float = 0.2,
                 early_s: float = 0.001, clock: Callable[[], float] = time.monotonic,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._clock = clock
        self.slot_s = slot_ms / 1000
        self.max_behind_s = max_behind_s
        self.early_s = early_s
        self.origin = clock()
        self._buckets: dict[int, list[PacedStream]] = {}
        self._processed_slot = -1
        self._timer: asyncio.TimerHandle | None = None
        self._timer_slot: int | None = None
        self.lateness = LatenessHistogram()
        self.streams_started = 0

    @property
    def stream_count(self) -> int:
        return sum(1 for bucket in self._buckets.values() for s in bucket if s.active)

    def start(self, *, send: Send, sender: RtpSender, frames: FrameSource,
              ptime_ms: int = 20) -> PacedStream:
        """Start sending ``frames()`` through ``sender`` to ``send`` every
        ``ptime_ms`` (a multiple of the slot), first within one ptime."""
        step = round(ptime_ms / 1000 / self.slot_s)
        if step < 1 or abs(step * self.slot_s - ptime_ms / 1000) > 1e-9:
            raise ValueError(f"ptime {ptime_ms} ms is not a multiple of the "
                             f"{self.slot_s * 1000:g} ms pacing slot")
        first = max(self._processed_slot + 1,
                    math.ceil((self._clock() - self.origin) / self.slot_s))
        buckets = self._buckets
        slot = min(range(first, first + step), key=lambda k: len(buckets.get(k, ())))
        stream = PacedStream(send=send, sender=sender, frames=frames, ptime_s=ptime_ms / 1000,
                             start=self.origin + slot * self.slot_s, slot_step=step)
        buckets.setdefault(slot, []).append(stream)
        self.streams_started += 1
        self._arm(slot)
        return stream

    def _arm(self, slot: int) -> None:
        if self._timer_slot is not None and self._timer_slot <= slot:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_slot = slot
        # Fire early_s ahead: the loop's timers are coarse (libuv: 1 ms) and
        # fire at or after their time, so a timer set on the schedule is
        # always late; a packet up to early_s early is harmless to a jitter
        # buffer, one late by more than a few ms is not.
        delay_s = self.origin + slot * self.slot_s - self.early_s - self._clock()
        self._timer = self._loop.call_later(max(0.0, delay_s), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._timer_slot = None
        clock = self._clock
        buckets = self._buckets
        lateness = self.lateness
        slot_s = self.slot_s
        origin = self.origin
        now = clock()
        due = math.floor((now + self.early_s - origin) / slot_s)
        for slot in sorted(k for k in buckets if k <= due):
            bucket = buckets.pop(slot)
            for stream in bucket:
                if not stream.active:
                    continue
                scheduled = stream.start + stream.frame_index * stream.ptime_s
                sent_at = clock()
                behind_s = sent_at - scheduled
                if behind_s > self.max_behind_s:
                    missed = int(behind_s / stream.ptime_s)
                    stream.frame_index += missed
                    stream.frames_skipped += missed
                    stream.sender.skip(missed)
                    next_slot = slot + missed * stream.slot_step
                    while next_slot <= due:
                        next_slot += stream.slot_step
                        stream.frame_index += 1
                        stream.frames_skipped += 1
                        stream.sender.skip(1)
                    buckets.setdefault(next_slot, []).append(stream)
                    continue
                stream.send(stream.sender.packet(stream.frames()))
                lateness.add(behind_s)
                stream.frames_sent += 1
                stream.last_scheduled_at = scheduled
                stream.frame_index += 1
                next_slot = slot + stream.slot_step
                bucket_next = buckets.get(next_slot)
                if bucket_next is None:
                    buckets[next_slot] = [stream]
                else:
                    bucket_next.append(stream)
            self._processed_slot = slot
        if due > self._processed_slot:
            self._processed_slot = due
        if buckets:
            self._arm(min(buckets))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_slot = None
        self._buckets.clear()
