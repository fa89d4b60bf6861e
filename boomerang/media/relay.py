"""RTP relay between the two legs of a bridged call, sans-I/O.

A ``RelayCall`` holds the legs of one call (named by the caller, e.g.
``"a"`` and ``"b"``). The transport feeds it every datagram with its source
address and ``now``; it answers with the bytes to send to the peer leg (or
``None``) and keeps events (``MediaTimedOut``, ``DigitReported``...) for
``pop_events``. It draws no random numbers and reads no clock.

What it does to each packet from leg X to its peer Y:

- **Latching** (symmetric RTP, RFC 4961): packets are sent to the address
  packets really come from, so a phone behind NAT is reached. Rules, in
  ``Latch``:

  1. Before anything arrives, send to the address of the SDP.
  2. Latch to the source of the first valid RTP packet (version 2, one of
     the payload types negotiated for the leg).
  3. While latched, valid packets from another source are dropped (counted
     in ``packets_dropped``), unless the latched source has been silent for
     ``relatch_after_s`` (NAT rebinding, a phone that moved): then latch to
     the new source.
  4. A new SDP (``update``, e.g. a re-INVITE) forgets the latch: rule 1
     again, and the next valid packet latches.

- **One continuous output stream**: what Y hears keeps one SSRC, and
  sequence numbers and timestamps carry on without a jump when the input
  changes (X's SSRC changes after a re-INVITE, or Y heard our own dial tone
  before the bridge, see ``continue_output``). The first packet after a
  change has the marker bit. A packet not passed on (a DTMF event reported
  instead) takes no sequence number, so Y sees no loss.
- **Payload-type mapping**: a codec negotiated under different payload
  types on the two legs is renumbered; so is telephone-event. When Y has
  no telephone-event, X's events are decoded (``dtmf_rfc4733``) and
  reported as ``DigitReported`` instead of relayed. ``report_digits(X)``
  asks for X's events to be decoded and reported even while they are
  relayed (``**`` during a bridged call); a leg nobody asked about costs
  one flag test per packet.
- **Counters** per leg: packets and octets in and out, dropped packets, and
  the RFC 3550 loss and jitter of the current input SSRC (``stream.py``).
- **No-media timeout**: a leg that should send (its direction receives)
  but has sent nothing for ``no_media_timeout_s`` raises ``MediaTimedOut``
  once per silence.
- **RTCP**: reports from the legs are parsed for the statistics; the relay
  sends each leg its own SR (or RR) every ~5 s (RFC 3550 §6.2).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from ..sip.offer_answer import NegotiatedMedia
from .digits import DigitReceived
from .dtmf_rfc4733 import TelephoneEventReceiver
from .rtcp import (
    Bye,
    ReceiverReport,
    RtcpError,
    SenderReport,
    ntp_timestamp,
    parse_compound,
    rtcp_interval_s,
    serialize,
)
from .rtp import RTP_VERSION
from .stream import ReceiverStatistics

Address = tuple[str, int]

DEFAULT_NO_MEDIA_TIMEOUT_S = 30.0
DEFAULT_RELATCH_AFTER_S = 0.5

_HEADER = struct.Struct("!BBHII")
_unpack_header = _HEADER.unpack_from
_pack_header_into = _HEADER.pack_into


class RelayError(Exception):
    """A relay used wrongly (unknown leg, leg bridged twice...)."""


# ---------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaTimedOut:
    """Leg ``leg`` sent no RTP for ``silent_s``: the call layer may end the call."""

    time: float
    call_id: str
    leg: str
    silent_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceLatched:
    """Leg ``leg``'s RTP (or RTCP) is now sent to ``address``."""

    time: float
    call_id: str
    leg: str
    address: Address
    rtcp: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceChanged:
    """Leg ``leg`` started sending another SSRC; its peer hears no jump."""

    time: float
    call_id: str
    leg: str
    old_ssrc: int | None
    new_ssrc: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitReported:
    """A DTMF digit from ``leg`` that its peer cannot receive as an event."""

    time: float
    call_id: str
    leg: str
    digit: DigitReceived


RelayEvent = MediaTimedOut | SourceLatched | SourceChanged | DigitReported


# ---------------------------------------------------------------------------
# What a leg negotiated


@dataclass(frozen=True, slots=True, kw_only=True)
class LegMedia:
    """The remote side of one leg as its SDP says.

    ``codecs`` are ``(payload type, encoding name, clock rate)`` of the
    audio formats agreed; ``receives`` is False when the leg must not send
    to us (we are on hold: no timeout then); ``sends`` False when we must
    not send to it.
    """

    remote_address: str
    remote_port: int
    codecs: tuple[tuple[int, str, int], ...]
    telephone_event_payload_type: int | None = None
    remote_rtcp_address: str | None = None
    remote_rtcp_port: int | None = None
    ptime_ms: int = 20
    sends: bool = True
    receives: bool = True

    @classmethod
    def from_negotiated(cls, media: NegotiatedMedia) -> LegMedia:
        return cls(
            remote_address=media.remote_address,
            remote_port=media.remote_port,
            codecs=tuple((c.payload_type, c.name, c.clock_rate) for c in media.codecs),
            telephone_event_payload_type=media.telephone_event_payload_type,
            remote_rtcp_address=media.remote_rtcp_address,
            remote_rtcp_port=media.remote_rtcp_port,
            ptime_ms=media.ptime_ms,
            sends=media.sends,
            receives=media.receives,
        )

    @property
    def rtp_address(self) -> Address:
        return (self.remote_address, self.remote_port)

    @property
    def rtcp_address(self) -> Address:
        return (self.remote_rtcp_address or self.remote_address,
                self.remote_rtcp_port or self.remote_port + 1)

    @property
    def clock_rate(self) -> int:
        return self.codecs[0][2] if self.codecs else 8000


# ---------------------------------------------------------------------------
# Latching


class Latch:
    """Where to send a leg's packets: the SDP address until a valid packet
    arrives, then the source of the packets (the rules in the module doc)."""

    __slots__ = ("enabled", "last_seen_at", "latched", "relatch_after_s", "target")

    def __init__(self, target: Address, *, enabled: bool = True,
                 relatch_after_s: float = DEFAULT_RELATCH_AFTER_S) -> None:
        self.target = target
        self.enabled = enabled
        self.relatch_after_s = relatch_after_s
        self.latched = False
        self.last_seen_at = 0.0

    def reset(self, target: Address) -> None:
        """A new SDP: send there until the next valid packet."""
        self.target = target
        self.latched = False

    def accept(self, source: Address, now: float) -> bool | None:
        """Feed the source of a valid packet. True: it latched (a new
        target); None: same source, nothing new; False: drop the packet."""
        if source == self.target and (self.latched or not self.enabled):
            self.last_seen_at = now
            return None
        if not self.enabled:
            return None  # trust the SDP; accept from anywhere
        if self.latched and now - self.last_seen_at < self.relatch_after_s:
            return False
        self.target = source
        self.latched = True
        self.last_seen_at = now
        return True


# ---------------------------------------------------------------------------
# The output stream towards one leg


class OutputStream:
    """One SSRC with continuous sequence numbers and timestamps towards a
    leg, whatever the input behind it."""

    __slots__ = ("clock_rate", "input_ssrc", "last_sent_at", "last_sequence_number",
                 "last_timestamp", "marker_pending", "octets_sent", "packets_sent",
                 "sequence_offset", "ssrc", "started", "timestamp_offset")

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self.ssrc = 0
        self.input_ssrc: int | None = None
        self.started = False  # something was sent (by us or relayed) on this SSRC
        self.sequence_offset = 0
        self.timestamp_offset = 0
        self.last_sequence_number = 0
        self.last_timestamp = 0
        self.last_sent_at = 0.0
        self.marker_pending = False
        self.packets_sent = 0
        self.octets_sent = 0

    def continue_from(self, *, ssrc: int, last_sequence_number: int, last_timestamp: int,
                      last_sent_at: float) -> None:
        """Carry on the stream someone else sent so far (our dial tone):
        the next relayed packet follows its last one."""
        self.ssrc = ssrc & 0xFFFFFFFF
        self.last_sequence_number = last_sequence_number & 0xFFFF
        self.last_timestamp = last_timestamp & 0xFFFFFFFF
        self.last_sent_at = last_sent_at
        self.started = True
        self.input_ssrc = None  # the next input is a change of source

    def position(self, now: float) -> tuple[int, int, int]:
        """``(ssrc, next sequence number, timestamp for now)``: for whoever
        takes the stream over from the relay (dial tone again)."""
        elapsed = max(1, round((now - self.last_sent_at) * self.clock_rate))
        return (self.ssrc, (self.last_sequence_number + 1) & 0xFFFF,
                (self.last_timestamp + elapsed) & 0xFFFFFFFF)

    def switch_source(self, ssrc: int, sequence_number: int, timestamp: int,
                      now: float) -> int | None:
        """A new input SSRC: compute the offsets that keep the output
        continuous. Returns the previous input SSRC."""
        previous = self.input_ssrc
        self.input_ssrc = ssrc
        if not self.started:
            # The first input ever: pass it through unchanged.
            self.ssrc = ssrc
            self.sequence_offset = 0
            self.timestamp_offset = 0
            self.started = True
            return previous
        elapsed = max(1, round((now - self.last_sent_at) * self.clock_rate))
        self.sequence_offset = (self.last_sequence_number + 1 - sequence_number) & 0xFFFF
        self.timestamp_offset = (self.last_timestamp + elapsed - timestamp) & 0xFFFFFFFF
        self.marker_pending = True
        return previous


# ---------------------------------------------------------------------------
# Legs


@dataclass(frozen=True, slots=True, kw_only=True)
class LegStats:
    leg: str
    packets_received: int
    octets_received: int
    packets_sent: int
    octets_sent: int
    packets_dropped: int
    packets_lost: int
    jitter_ms: float
    input_ssrc: int | None
    output_ssrc: int | None
    rtp_target: Address | None
    rtcp_packets_received: int
    last_received_at: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStats:
    call_id: str
    legs: tuple[LegStats, ...]

    def leg(self, name: str) -> LegStats:
        for stats in self.legs:
            if stats.leg == name:
                return stats
        raise KeyError(name)


class RelayLeg:
    """The state of one leg: what it negotiated, where to send, counters."""

    __slots__ = ("clock_rate", "created_at", "input_ssrc", "last_received_at", "media", "name",
                 "next_rtcp_at", "octets_received", "output", "packets_dropped",
                 "packets_lost_before", "packets_received", "payload_types", "peer",
                 "peer_payload_types", "receiver", "reports_digits", "rtcp_latch",
                 "rtcp_packets_received", "rtp_latch", "telephone_events", "timed_out")

    def __init__(self, name: str, now: float, *, latching: bool, relatch_after_s: float) -> None:
        self.name = name
        self.media: LegMedia | None = None
        self.payload_types: frozenset[int] = frozenset()
        self.peer: str | None = None
        # input payload type -> output payload type on the peer; absent: drop
        self.peer_payload_types: dict[int, int] = {}
        self.rtp_latch = Latch(("0.0.0.0", 0), enabled=latching,
                               relatch_after_s=relatch_after_s)
        self.rtcp_latch = Latch(("0.0.0.0", 0), enabled=latching,
                                relatch_after_s=relatch_after_s)
        self.output = OutputStream()
        self.clock_rate = 8000
        self.input_ssrc: int | None = None
        self.receiver: ReceiverStatistics | None = None
        self.telephone_events: TelephoneEventReceiver | None = None
        self.reports_digits = False  # decode relayed telephone-events too
        self.packets_received = 0
        self.octets_received = 0
        self.packets_dropped = 0
        self.packets_lost_before = 0  # loss of earlier input SSRCs
        self.rtcp_packets_received = 0
        self.created_at = now
        self.last_received_at: float | None = None
        self.timed_out = False
        self.next_rtcp_at: float | None = None

    def stats(self) -> LegStats:
        receiver = self.receiver
        lost = self.packets_lost_before + (receiver.cumulative_lost if receiver else 0)
        output = self.output
        return LegStats(
            leg=self.name,
            packets_received=self.packets_received,
            octets_received=self.octets_received,
            packets_sent=output.packets_sent,
            octets_sent=output.octets_sent,
            packets_dropped=self.packets_dropped,
            packets_lost=lost,
            jitter_ms=receiver.jitter_s * 1000 if receiver else 0.0,
            input_ssrc=self.input_ssrc,
            output_ssrc=output.ssrc if output.started else None,
            rtp_target=self.rtp_latch.target if self.media else None,
            rtcp_packets_received=self.rtcp_packets_received,
            last_received_at=self.last_received_at,
        )


# ---------------------------------------------------------------------------
# The call


class RelayCall:
    """The relay of one call (see the module doc). ``random_factor`` gives
    the [0, 1) draws of the RTCP interval; ``wall_clock_offset_s`` maps
    ``now`` to Unix time for the NTP timestamps of SRs."""

    __slots__ = ("_events", "_legs", "_random_factor", "call_id", "latching",
                 "no_media_timeout_s", "relatch_after_s", "rtcp_enabled", "rtcp_out",
                 "timer_changed", "wall_clock_offset_s")

    def __init__(self, call_id: str, *, no_media_timeout_s: float = DEFAULT_NO_MEDIA_TIMEOUT_S,
                 latching: bool = True, relatch_after_s: float = DEFAULT_RELATCH_AFTER_S,
                 rtcp_enabled: bool = True, random_factor: Callable[[], float] | None = None,
                 wall_clock_offset_s: float = 0.0) -> None:
        self.call_id = call_id
        self.no_media_timeout_s = no_media_timeout_s
        self.latching = latching
        self.relatch_after_s = relatch_after_s
        self.rtcp_enabled = rtcp_enabled
        self._random_factor = random_factor
        self.wall_clock_offset_s = wall_clock_offset_s
        self._legs: dict[str, RelayLeg] = {}
        self._events: list[RelayEvent] = []
        # (leg, RTCP compound packet, destination) waiting to be sent
        self.rtcp_out: list[tuple[str, bytes, Address]] = []
        # Set when a deadline may have moved earlier; the driver re-arms and clears it.
        self.timer_changed = False

    # -- set-up ----------------------------------------------------------------

    def add_leg(self, name: str, now: float) -> RelayLeg:
        if name in self._legs:
            raise RelayError(f"call {self.call_id}: leg {name!r} exists already")
        leg = RelayLeg(name, now, latching=self.latching, relatch_after_s=self.relatch_after_s)
        self._legs[name] = leg
        return leg

    def leg(self, name: str) -> RelayLeg:
        try:
            return self._legs[name]
        except KeyError:
            raise RelayError(f"call {self.call_id}: no leg {name!r}") from None

    @property
    def leg_names(self) -> tuple[str, ...]:
        return tuple(self._legs)

    def update(self, name: str, media: LegMedia, now: float) -> None:
        """The leg's (new) SDP: addresses, payload types; the latch restarts."""
        leg = self.leg(name)
        leg.media = media
        leg.clock_rate = media.clock_rate
        leg.output.clock_rate = media.clock_rate
        types = {pt for pt, _, _ in media.codecs}
        if media.telephone_event_payload_type is not None:
            types.add(media.telephone_event_payload_type)
        leg.payload_types = frozenset(types)
        leg.rtp_latch.reset(media.rtp_address)
        leg.rtcp_latch.reset(media.rtcp_address)
        if leg.telephone_events is not None and media.telephone_event_payload_type is None:
            leg.telephone_events = None
        if leg.next_rtcp_at is None and self.rtcp_enabled:
            leg.next_rtcp_at = now + self._rtcp_interval_s(initial=True)
        self._map_payload_types(leg)
        if leg.peer is not None:
            self._map_payload_types(self._legs[leg.peer])
        self.timer_changed = True

    def bridge(self, name_a: str, name_b: str, now: float) -> None:
        """Relay between two legs, both ways."""
        del now
        a, b = self.leg(name_a), self.leg(name_b)
        if a is b:
            raise RelayError(f"call {self.call_id}: cannot bridge leg {name_a!r} to itself")
        for leg in (a, b):
            if leg.peer is not None and leg.peer not in (name_a, name_b):
                raise RelayError(f"call {self.call_id}: leg {leg.name!r} is bridged to "
                                 f"{leg.peer!r}; unbridge it first")
        a.peer, b.peer = name_b, name_a
        self._map_payload_types(a)
        self._map_payload_types(b)

    def report_digits(self, name: str, on: bool = True) -> None:
        """Also decode leg ``name``'s telephone-events that are relayed to
        its peer and report them as ``DigitReported`` (only this leg's, never
        its peer's). Events the peer cannot take are reported anyway."""
        self.leg(name).reports_digits = on

    def unbridge(self, name: str) -> None:
        leg = self.leg(name)
        if leg.peer is not None:
            peer = self._legs[leg.peer]
            peer.peer = None
            peer.peer_payload_types = {}
        leg.peer = None
        leg.peer_payload_types = {}

    def continue_output(self, name: str, *, ssrc: int, last_sequence_number: int,
                        last_timestamp: int, last_sent_at: float) -> None:
        """Leg ``name`` heard our own stream so far (dial tone, prompt);
        what the relay sends it next continues that stream."""
        self.leg(name).output.continue_from(ssrc=ssrc, last_sequence_number=last_sequence_number,
                                            last_timestamp=last_timestamp,
                                            last_sent_at=last_sent_at)

    def output_position(self, name: str, now: float) -> tuple[int, int, int]:
        """``(ssrc, next sequence number, timestamp)`` of the stream towards
        ``name``, for a tone sender that takes it over from the relay."""
        return self.leg(name).output.position(now)

    def _map_payload_types(self, leg: RelayLeg) -> None:
        mapping: dict[int, int] = {}
        peer = self._legs.get(leg.peer) if leg.peer is not None else None
        if leg.media is not None and peer is not None and peer.media is not None:
            theirs = {(name.lower(), rate): pt for pt, name, rate in reversed(peer.media.codecs)}
            for pt, name, rate in leg.media.codecs:
                out = theirs.get((name.lower(), rate))
                if out is not None:
                    mapping[pt] = out
            ours_te = leg.media.telephone_event_payload_type
            theirs_te = peer.media.telephone_event_payload_type
            if ours_te is not None and theirs_te is not None:
                mapping[ours_te] = theirs_te
        leg.peer_payload_types = mapping

    # -- packets ---------------------------------------------------------------

    def receive_rtp(self, name: str, data: bytes, source: Address,
                    now: float) -> bytearray | None:
        """An RTP datagram from leg ``name``: the packet to send to its peer
        (at ``peer_target(name)``), or None."""
        leg = self._legs[name]
        if len(data) < 12:
            leg.packets_dropped += 1
            return None
        first, second, sequence_number, timestamp, ssrc = _unpack_header(data, 0)
        payload_type = second & 0x7F
        if first >> 6 != RTP_VERSION or payload_type not in leg.payload_types:
            leg.packets_dropped += 1
            return None
        latched = leg.rtp_latch.accept(source, now)
        if latched is False:
            leg.packets_dropped += 1
            return None
        if latched:
            self._events.append(SourceLatched(time=now, call_id=self.call_id, leg=name,
                                              address=source))
        leg.packets_received += 1
        leg.octets_received += len(data)
        leg.last_received_at = now
        leg.timed_out = False
        receiver = leg.receiver
        if ssrc != leg.input_ssrc:
            if receiver is not None:
                leg.packets_lost_before += receiver.cumulative_lost
            if leg.telephone_events is not None:
                # a new stream numbers its events afresh (one receiver per SSRC)
                self._add_digits(leg, leg.telephone_events.handle_timer(float("inf")), now)
                leg.telephone_events = None
            receiver = leg.receiver = ReceiverStatistics(ssrc=ssrc, clock_rate=leg.clock_rate)
            leg.input_ssrc = ssrc
        assert receiver is not None
        receiver.on_packet(sequence_number=sequence_number, timestamp=timestamp, now=now,
                           payload_size=len(data) - 12)
        peer_name = leg.peer
        if peer_name is None:
            return None
        output = self._legs[peer_name].output
        if ssrc != output.input_ssrc:
            previous = output.switch_source(ssrc, sequence_number, timestamp, now)
            self._events.append(SourceChanged(time=now, call_id=self.call_id, leg=name,
                                              old_ssrc=previous, new_ssrc=ssrc))
        out_type = leg.peer_payload_types.get(payload_type)
        if out_type is None:
            # No common format (or a DTMF event the peer cannot take):
            # it takes no sequence number on the output.
            output.sequence_offset = (output.sequence_offset - 1) & 0xFFFF
            media = leg.media
            if media is not None and payload_type == media.telephone_event_payload_type:
                self._report_digits(leg, data, sequence_number, timestamp, second, now)
            else:
                leg.packets_dropped += 1
            return None
        if leg.reports_digits:
            media = leg.media
            if media is not None and payload_type == media.telephone_event_payload_type:
                self._report_digits(leg, data, sequence_number, timestamp, second, now)
        out_sequence = (sequence_number + output.sequence_offset) & 0xFFFF
        out_timestamp = (timestamp + output.timestamp_offset) & 0xFFFFFFFF
        marker = second & 0x80
        if output.marker_pending:
            marker = 0x80
            output.marker_pending = False
        packet = bytearray(data)
        _pack_header_into(packet, 0, first, marker | out_type, out_sequence, out_timestamp,
                          output.ssrc)
        if ((out_sequence - output.last_sequence_number) & 0xFFFF) < 0x8000:
            output.last_sequence_number = out_sequence
            output.last_timestamp = out_timestamp
            output.last_sent_at = now
        output.packets_sent += 1
        output.octets_sent += len(data)
        return packet

    def peer_target(self, name: str) -> Address | None:
        """Where the packets relayed from leg ``name`` go (None: nowhere)."""
        peer_name = self._legs[name].peer
        if peer_name is None:
            return None
        peer = self._legs[peer_name]
        if peer.media is None or not peer.media.sends:
            return None
        return peer.rtp_latch.target

    def rtp_target(self, name: str) -> Address | None:
        leg = self._legs[name]
        return leg.rtp_latch.target if leg.media is not None else None

    def _report_digits(self, leg: RelayLeg, data: bytes, sequence_number: int, timestamp: int,
                       second: int, now: float) -> None:
        receiver = leg.telephone_events
        if receiver is None:
            receiver = leg.telephone_events = TelephoneEventReceiver(clock_rate=leg.clock_rate)
        header_size = 12 + 4 * (data[0] & 0x0F)
        digits = receiver.receive(timestamp=timestamp, sequence_number=sequence_number,
                                  marker=bool(second & 0x80), payload=data[header_size:],
                                  now=now)
        self.timer_changed = True
        self._add_digits(leg, digits, now)

    def _add_digits(self, leg: RelayLeg, digits: list[DigitReceived], now: float) -> None:
        for digit in digits:
            self._events.append(DigitReported(time=now, call_id=self.call_id, leg=leg.name,
                                              digit=digit))

    def receive_rtcp(self, name: str, data: bytes, source: Address, now: float) -> None:
        """An RTCP datagram from leg ``name``: statistics only (RTCP is
        terminated by the relay; each leg gets our own reports)."""
        leg = self._legs[name]
        try:
            packets = parse_compound(data)
        except RtcpError:
            leg.packets_dropped += 1
            return
        if leg.rtcp_latch.accept(source, now):
            self._events.append(SourceLatched(time=now, call_id=self.call_id, leg=name,
                                              address=source, rtcp=True))
        leg.rtcp_packets_received += 1
        receiver = leg.receiver
        for packet in packets:
            if (isinstance(packet, SenderReport) and receiver is not None
                    and packet.ssrc == receiver.ssrc):
                receiver.on_sender_report(packet, now=now)

    # -- timers ----------------------------------------------------------------

    def next_deadline(self) -> float | None:
        deadline: float | None = None
        for leg in self._legs.values():
            candidates: list[float] = []
            if not leg.timed_out and leg.media is not None and leg.media.receives:
                since = leg.last_received_at if leg.last_received_at is not None \
                    else leg.created_at
                candidates.append(since + self.no_media_timeout_s)
            if leg.next_rtcp_at is not None:
                candidates.append(leg.next_rtcp_at)
            if leg.telephone_events is not None:
                te_deadline = leg.telephone_events.next_deadline()
                if te_deadline is not None:
                    candidates.append(te_deadline)
            for candidate in candidates:
                if deadline is None or candidate < deadline:
                    deadline = candidate
        return deadline

    def handle_timer(self, now: float) -> None:
        """Fire whatever is due: timeouts, DTMF releases, RTCP reports
        (then in ``rtcp_out``). Events go to ``pop_events``."""
        for leg in self._legs.values():
            media = leg.media
            if not leg.timed_out and media is not None and media.receives:
                since = leg.last_received_at if leg.last_received_at is not None \
                    else leg.created_at
                if now - since >= self.no_media_timeout_s:
                    leg.timed_out = True
                    self._events.append(MediaTimedOut(time=now, call_id=self.call_id,
                                                      leg=leg.name, silent_s=now - since))
            if leg.telephone_events is not None:
                self._add_digits(leg, leg.telephone_events.handle_timer(now), now)
            if leg.next_rtcp_at is not None and now >= leg.next_rtcp_at:
                leg.next_rtcp_at = now + self._rtcp_interval_s(initial=False)
                report = self.rtcp_report(leg.name, now)
                if report is not None and media is not None and media.sends:
                    self.rtcp_out.append((leg.name, report, leg.rtcp_latch.target))

    def _rtcp_interval_s(self, *, initial: bool) -> float:
        factor = self._random_factor() if self._random_factor is not None else 0.5
        return rtcp_interval_s(random_factor=factor, initial=initial)

    def rtcp_report(self, name: str, now: float) -> bytes | None:
        """Our SR (when we sent to the leg) or RR for leg ``name``."""
        leg = self.leg(name)
        output = leg.output
        blocks = (leg.receiver.report_block(now=now),) if leg.receiver is not None \
            and leg.receiver.valid else ()
        if output.started and output.packets_sent:
            elapsed = max(0, round((now - output.last_sent_at) * output.clock_rate))
            report: SenderReport | ReceiverReport = SenderReport(
                ssrc=output.ssrc,
                ntp_timestamp=ntp_timestamp(now + self.wall_clock_offset_s),
                rtp_timestamp=(output.last_timestamp + elapsed) & 0xFFFFFFFF,
                packet_count=output.packets_sent & 0xFFFFFFFF,
                octet_count=output.octets_sent & 0xFFFFFFFF,
                reports=blocks)
        elif blocks:
            report = ReceiverReport(ssrc=output.ssrc, reports=blocks)
        else:
            return None
        return serialize(report)

    def rtcp_bye(self, name: str, now: float) -> bytes | None:
        """Leg ``name``'s last compound RTCP packet (RFC 3550 §6.6): a report,
        then BYE for the SSRC we sent to it; None when we sent it nothing."""
        output = self.leg(name).output
        if not output.started:
            return None
        report = self.rtcp_report(name, now) or serialize(
            ReceiverReport(ssrc=output.ssrc, reports=()))
        return report + serialize(Bye(sources=(output.ssrc,)))

    def pop_events(self) -> list[RelayEvent]:
        events = self._events
        if events:
            self._events = []
        return events

    @property
    def has_events(self) -> bool:
        return bool(self._events)

    def pop_rtcp(self) -> list[tuple[str, bytes, Address]]:
        out = self.rtcp_out
        if out:
            self.rtcp_out = []
        return out

    def stats(self) -> CallStats:
        return CallStats(call_id=self.call_id,
                         legs=tuple(leg.stats() for leg in self._legs.values()))
