"""The media relay of bridged calls behind ONE interface, and its Python backend.

``MediaRelay`` is what the call layer uses; two backends implement it:

- ``PythonMediaRelay`` (here): RTP sockets on this loop, the sans-I/O
  ``boomerang.media.relay.RelayCall`` per call. One timer per call, armed
  at the call's next deadline (no-media timeout, RTCP report, DTMF
  release) and re-armed lazily: a packet moves a deadline later, which the
  timer notices when it fires, so the hot path never touches a timer.
- ``RtpengineMediaRelay`` (``rtpengine.py``): the same calls driven over
  rtpengine's ng control protocol.

The call layer's order is: ``allocate`` a local port for each leg (to put in
the SDP sent to that leg), ``update`` each leg with what its SDP said
(again after a re-INVITE), ``bridge`` the two legs, ``stats`` at will,
``release`` at the end. Events (``MediaTimedOut``, ``DigitReported``,
``SourceLatched``, ``SourceChanged``) go to the ``on_event`` callback.

Digits of one bridged leg (``**`` in disa): ``PythonMediaRelay.
watch_digits(call_id, leg, on_digit)`` hands every DTMF digit that leg sends
(RFC 4733 telephone-events, decoded although they are relayed) to
``on_digit``, never its peer's; ``None`` stops it. Nothing is decoded for a
leg nobody watches. The rtpengine backend has no such hook, and a leg
cannot leave rtpengine for a dial tone anyway: ``**`` is not available
with it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Protocol

from ..media.digits import DigitReceived
from ..media.relay import (
    DEFAULT_NO_MEDIA_TIMEOUT_S,
    Address,
    CallStats,
    DigitReported,
    LegMedia,
    RelayCall,
    RelayError,
    RelayEvent,
    RelayLeg,
)
from .rtp_socket import DatagramHandler, PortAllocator, SocketPair, open_socket_pair

log = logging.getLogger(__name__)

EventCallback = Callable[[RelayEvent], None]
DigitCallback = Callable[[DigitReceived], None]


class MediaRelay(Protocol):
    """Relaying the RTP of bridged calls (see the module doc)."""

    async def allocate(self, call_id: str, leg: str) -> Address:
        """Reserve media ports for ``leg``; the (address, port) to advertise to it."""

    async def update(self, call_id: str, leg: str, media: LegMedia) -> None:
        """What ``leg``'s SDP says (first answer, re-INVITE)."""

    async def bridge(self, call_id: str, leg_a: str, leg_b: str) -> None:
        """Relay between the two legs, both ways."""

    async def hand_over(self, call_id: str, leg: str, *, ssrc: int, last_sequence_number: int,
                        last_timestamp: int, last_sent_at: float) -> None:
        """``leg`` heard our own stream so far (dial tone): continue it.
        Best effort: a backend that cannot do it ignores it."""

    async def stats(self, call_id: str) -> CallStats:
        """Counters of each leg."""

    async def release(self, call_id: str) -> None:
        """End the call's relay: sockets closed, ports free."""

    async def close(self) -> None:
        """Release every call."""


class _LegBinding:
    """One leg's sockets, feeding the call's relay core."""

    __slots__ = ("call", "clock", "leg", "name", "on_digit", "owner", "peer_leg", "peer_sendto",
                 "sockets", "tap")

    def __init__(self, owner: _PythonCall, name: str, leg: RelayLeg,
                 clock: Callable[[], float]) -> None:
        self.owner = owner
        self.call = owner.relay
        self.name = name
        self.leg = leg
        self.clock = clock
        self.sockets: SocketPair | None = None
        self.peer_leg: RelayLeg | None = None
        self.peer_sendto: Callable[[bytes | bytearray, Address], None] | None = None
        self.tap: DatagramHandler | None = None
        self.on_digit: DigitCallback | None = None

    def rtp_received(self, data: bytes, source: Address) -> None:
        tap = self.tap
        if tap is not None:
            tap.rtp_received(data, source)
        call = self.call
        packet = call.receive_rtp(self.name, data, source, self.clock())
        if packet is not None:
            peer = self.peer_leg
            if peer is not None and self.peer_sendto is not None:
                media = peer.media
                if media is not None and media.sends:
                    self.peer_sendto(packet, peer.rtp_latch.target)
        if call.has_events or call.timer_changed:
            self.owner.after_input()

    def rtcp_received(self, data: bytes, source: Address) -> None:
        if self.tap is not None:
            self.tap.rtcp_received(data, source)
        self.call.receive_rtcp(self.name, data, source, self.clock())
        self.owner.after_input()


class _PythonCall:
    __slots__ = ("bindings", "clock", "loop", "on_event", "relay", "timer", "timer_at")

    def __init__(self, relay: RelayCall, loop: asyncio.AbstractEventLoop,
                 clock: Callable[[], float], on_event: EventCallback | None) -> None:
        self.relay = relay
        self.loop = loop
        self.clock = clock
        self.on_event = on_event
        self.bindings: dict[str, _LegBinding] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None

    def after_input(self) -> None:
        relay = self.relay
        if relay.has_events:
            self.dispatch()
        if relay.timer_changed:
            relay.timer_changed = False
            self.arm(force=True)

    def dispatch(self) -> None:
        for event in self.relay.pop_events():
            if isinstance(event, DigitReported):
                self._digit(event)
            if self.on_event is not None:
                try:
                    self.on_event(event)
                except Exception:
                    log.exception("call %s: media event handler failed on %r",
                                  self.relay.call_id, event)
        for name, packet, target in self.relay.pop_rtcp():
            binding = self.bindings.get(name)
            if binding is not None and binding.sockets is not None \
                    and not binding.sockets.closed:
                binding.sockets.rtcp_transport.sendto(packet, target)

    def _digit(self, event: DigitReported) -> None:
        binding = self.bindings.get(event.leg)
        on_digit = binding.on_digit if binding is not None else None
        if on_digit is None:
            return
        try:
            on_digit(event.digit)
        except Exception:
            log.exception("call %s: digit handler of leg %s failed", self.relay.call_id,
                          event.leg)

    def arm(self, *, force: bool = False) -> None:
        deadline = self.relay.next_deadline()
        if deadline is None:
            self.cancel()
            return
        if not force and self.timer is not None and self.timer_at is not None \
                and self.timer_at <= deadline:
            return
        self.cancel()
        self.timer_at = deadline
        self.timer = self.loop.call_later(max(0.0, deadline - self.clock()), self.fire)

    def fire(self) -> None:
        self.timer = None
        self.timer_at = None
        self.relay.handle_timer(self.clock())
        self.dispatch()
        self.arm()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = None
        self.timer_at = None

    def close(self) -> None:
        self.cancel()
        now = self.clock()
        for name, binding in self.bindings.items():
            if binding.sockets is not None:
                leg = binding.leg
                bye = self.relay.rtcp_bye(name, now) if leg.media is not None else None
                if bye is not None and not binding.sockets.closed:
                    binding.sockets.rtcp_transport.sendto(bye, leg.rtcp_latch.target)
                binding.sockets.close()
            binding.peer_leg = None
            binding.peer_sendto = None
            binding.on_digit = None
        self.bindings.clear()
        self.on_event = None


class PythonMediaRelay:
    """``MediaRelay`` in this process (see the module doc).

    ``local_address`` is bound; ``advertised_address`` (default: the same)
    goes into SDP. Ports come from ``allocator`` (``media.rtp_ports``).
    """

    def __init__(self, allocator: PortAllocator, *, local_address: str = "127.0.0.1",
                 advertised_address: str | None = None,
                 no_media_timeout_s: float = DEFAULT_NO_MEDIA_TIMEOUT_S,
                 latching: bool = True, on_event: EventCallback | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 random_factor: Callable[[], float] = random.random) -> None:
        self.allocator = allocator
        self.local_address = local_address
        self.advertised_address = advertised_address or local_address
        self.no_media_timeout_s = no_media_timeout_s
        self.latching = latching
        self.on_event = on_event
        self.clock = clock
        self.random_factor = random_factor
        self._calls: dict[str, _PythonCall] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def _call(self, call_id: str) -> _PythonCall:
        try:
            return self._calls[call_id]
        except KeyError:
            raise RelayError(f"no media relay for call {call_id}") from None

    def relay_call(self, call_id: str) -> RelayCall:
        """The sans-I/O core of a call (for tests and diagnostics)."""
        return self._call(call_id).relay

    async def allocate(self, call_id: str, leg: str) -> Address:
        call = self._calls.get(call_id)
        if call is None:
            relay = RelayCall(call_id, no_media_timeout_s=self.no_media_timeout_s,
                              latching=self.latching, random_factor=self.random_factor,
                              wall_clock_offset_s=time.time() - self.clock())
            call = self._calls[call_id] = _PythonCall(relay, asyncio.get_running_loop(),
                                                      self.clock, self.on_event)
        relay_leg = call.relay.add_leg(leg, self.clock())
        binding = _LegBinding(call, leg, relay_leg, self.clock)
        call.bindings[leg] = binding
        try:
            binding.sockets = await open_socket_pair(self.allocator, self.local_address,
                                                     binding)
        except BaseException:
            del call.bindings[leg]
            if not call.bindings:
                self._calls.pop(call_id, None)
            raise
        return (self.advertised_address, binding.sockets.port)

    async def update(self, call_id: str, leg: str, media: LegMedia) -> None:
        call = self._call(call_id)
        call.relay.update(leg, media, self.clock())
        call.arm(force=True)

    async def bridge(self, call_id: str, leg_a: str, leg_b: str) -> None:
        call = self._call(call_id)
        call.relay.bridge(leg_a, leg_b, self.clock())
        a, b = call.bindings[leg_a], call.bindings[leg_b]
        for this, other in ((a, b), (b, a)):
            this.peer_leg = other.leg
            assert other.sockets is not None
            this.peer_sendto = other.sockets.rtp_transport.sendto
        call.arm(force=True)

    def leg_sockets(self, call_id: str, leg: str) -> SocketPair:
        """The RTP/RTCP sockets of ``leg`` (a media session sends through them)."""
        sockets = self._call(call_id).bindings[leg].sockets
        if sockets is None:
            raise RelayError(f"call {call_id}: leg {leg!r} has no sockets")
        return sockets

    def set_tap(self, call_id: str, leg: str, tap: DatagramHandler | None) -> None:
        """Also hand every datagram of ``leg`` to ``tap`` (a media session
        terminating the leg before the bridge); None stops it. The relay
        still sees them: counters, latching and the no-media timeout go on."""
        self._call(call_id).bindings[leg].tap = tap

    def watch_digits(self, call_id: str, leg: str, on_digit: DigitCallback | None) -> None:
        """Hand the DTMF digits ``leg`` sends to ``on_digit`` while it is
        bridged (see the module doc); None stops it."""
        call = self._call(call_id)
        call.relay.report_digits(leg, on_digit is not None)
        call.bindings[leg].on_digit = on_digit

    async def unbridge(self, call_id: str, leg: str) -> None:
        """Stop relaying ``leg`` (e.g. ``**``: dial tone again)."""
        call = self._call(call_id)
        peer = call.relay.leg(leg).peer
        call.relay.unbridge(leg)
        for name in (leg, peer):
            if name is not None and name in call.bindings:
                call.bindings[name].peer_leg = None
                call.bindings[name].peer_sendto = None

    async def hand_over(self, call_id: str, leg: str, *, ssrc: int, last_sequence_number: int,
                        last_timestamp: int, last_sent_at: float) -> None:
        self._call(call_id).relay.continue_output(
            leg, ssrc=ssrc, last_sequence_number=last_sequence_number,
            last_timestamp=last_timestamp, last_sent_at=last_sent_at)

    async def stats(self, call_id: str) -> CallStats:
        return self._call(call_id).relay.stats()

    async def release(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is not None:
            call.close()

    async def close(self) -> None:
        for call_id in list(self._calls):
            await self.release(call_id)
