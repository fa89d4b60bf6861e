"""RFC 4733 telephone-events: payload format, receiver and sender (sans I/O).

Payload (RFC 4733 §2.3), one or more 4-byte blocks::

     0                   1                   2                   3
    |     event     |E|R| volume    |          duration             |

Several blocks in one packet are consecutive events (§2.5.1.5): the packet
timestamp is the start of the first; each further event starts where the one
before it ended (start of previous + its duration). Redundancy carried with
RFC 2198 (audio/red) is unpacked by the RTP layer, which feeds each block
with its own timestamp.

Receiver rules (what "one digit per event" means here):

- An event is identified by its RTP timestamp (the start of its first
  segment) and its code. Any packet of it counts: the start packet, an
  update, or one of the three end packets; duplicates and the repeated end
  packets only lengthen the known duration.
- An event ends on its E bit, when a newer event (later timestamp) arrives,
  or when no packet of it arrived for ``end_timeout_s`` (lost end packets).
- A finished event is reported ``reorder_window_s`` after it finished, in
  timestamp order, so a packet of an older event delayed by less than the
  window is still reported, and reported first. Packets with a timestamp at
  or before the last reported event are ignored (duplicates, or too late).
- Long events (§2.5.1.3 / §2.5.2.3): a packet with the same code and a
  timestamp 0xF000..0xFFFF units after the current segment of an unfinished
  event starts a new segment of the same event; durations add up.
- Event codes above 15 (flash, line tones) are ignored.

One receiver per RTP stream (SSRC); the RTP layer makes a new one when the
SSRC changes. ``sequence_number`` is accepted for the record but not needed:
durations grow monotonically within an event, which orders its packets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .digits import DigitReceived, DigitSource, digit_for_event_code, event_code_for_digit

MAX_DURATION_UNITS = 0xFFFF
# A new segment of a long event starts this far (or further) after the last.
_MIN_SEGMENT_UNITS = 0xF000
_UINT32_MASK = 0xFFFFFFFF
_UINT32_HALF = 1 << 31
_BLOCK = struct.Struct("!BBH")


class TelephoneEventError(ValueError):
    """A telephone-event payload that cannot be parsed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TelephoneEvent:
    """One 4-byte block of a telephone-event payload. ``volume`` is the
    power level in -dBm0 (0..63); ``duration`` is in timestamp units."""

    event: int
    end: bool
    volume: int
    duration: int


def parse_telephone_events(payload: bytes) -> tuple[TelephoneEvent, ...]:
    """All blocks of a payload, in order. The R bit is ignored (§2.3)."""
    if not payload or len(payload) % 4:
        raise TelephoneEventError(
            f"telephone-event payload of {len(payload)} bytes is not a multiple of 4"
        )
    return tuple(
        TelephoneEvent(
            event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration
        )
        for event, flags, duration in _BLOCK.iter_unpack(payload)
    )


def serialize_telephone_events(events: tuple[TelephoneEvent, ...] | list[TelephoneEvent]) -> bytes:
    if not events:
        raise TelephoneEventError("a telephone-event payload needs at least one event")
    parts = []
    for item in events:
        if not 0 <= item.event <= 255 or not 0 <= item.volume <= 63:
            raise TelephoneEventError(f"event {item.event} / volume {item.volume} out of range")
        if not 0 <= item.duration <= MAX_DURATION_UNITS:
            raise TelephoneEventError(f"duration {item.duration} out of range")
        flags = (0x80 if item.end else 0) | item.volume
        parts.append(_BLOCK.pack(item.event, flags, item.duration))
    return b"".join(parts)


def _uint32_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two RTP timestamps, across the wrap."""
    return ((a - b + _UINT32_HALF) & _UINT32_MASK) - _UINT32_HALF


# -- receiver -----------------------------------------------------------------


class _Event:
    """One telephone-event being received (an internal record, no back-links)."""

    __slots__ = (
        "code",
        "done_units",
        "end_seen",
        "finished",
        "last_seen_s",
        "release_at",
        "segment_timestamp",
        "segment_units",
        "start_s",
        "start_timestamp",
    )

    def __init__(self, code: int, timestamp: int, now: float) -> None:
        self.code = code
        self.start_timestamp = timestamp
        self.segment_timestamp = timestamp
        self.done_units = 0  # units of the segments before the current one
        self.segment_units = 0  # longest duration seen in the current segment
        self.end_seen = False
        self.finished = False
        self.start_s = now
        self.last_seen_s = now
        self.release_at = 0.0

    def covers(self, timestamp: int) -> bool:
        return (
            _uint32_diff(timestamp, self.start_timestamp) >= 0
            and _uint32_diff(timestamp, self.segment_timestamp) <= 0
        )


class TelephoneEventReceiver:
    """Turns received telephone-event packets into ``DigitReceived`` events."""

    __slots__ = (
        "_current",
        "_pending",
        "_released_through",
        "clock_rate",
        "end_timeout_s",
        "ignored_packets",
        "malformed_packets",
        "reorder_window_s",
    )

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        end_timeout_s: float = 0.25,
        reorder_window_s: float = 0.06,
    ) -> None:
        self.clock_rate = clock_rate
        self.end_timeout_s = end_timeout_s
        self.reorder_window_s = reorder_window_s
        self._current: _Event | None = None
        self._pending: list[_Event] = []  # finished, not yet reported; in timestamp order
        self._released_through: int | None = None
        self.malformed_packets = 0
        self.ignored_packets = 0

    @property
    def active_digit(self) -> str | None:
        """The digit whose key is down right now (to stop a dial tone early)."""
        current = self._current
        return None if current is None else digit_for_event_code(current.code)

    def next_deadline(self) -> float | None:
        deadline: float | None = None
        if self._current is not None:
            deadline = self._current.last_seen_s + self.end_timeout_s
        if self._pending:
            release = self._pending[0].release_at
            deadline = release if deadline is None else min(deadline, release)
        return deadline

    def handle_timer(self, now: float) -> list[DigitReceived]:
        self._expire(now)
        return self._release(now)

    def receive(
        self,
        *,
        timestamp: int,
        sequence_number: int,
        marker: bool,
        payload: bytes,
        now: float,
    ) -> list[DigitReceived]:
        """Feed one telephone-event RTP packet; returns the digits now final."""
        del sequence_number, marker  # see the module docstring
        self._expire(now)
        try:
            blocks = parse_telephone_events(payload)
        except TelephoneEventError:
            self.malformed_packets += 1
            return self._release(now)
        start = timestamp & _UINT32_MASK
        for block in blocks:
            if block.event < 16:
                self._on_block(start, block, now)
            start = (start + block.duration) & _UINT32_MASK
        return self._release(now)

    # -- internals ------------------------------------------------------------

    def _on_block(self, timestamp: int, block: TelephoneEvent, now: float) -> None:
        released = self._released_through
        if released is not None and _uint32_diff(timestamp, released) <= 0:
            self.ignored_packets += 1
            return
        current = self._current
        if current is not None and current.code == block.event:
            delta = _uint32_diff(timestamp, current.segment_timestamp)
            if current.covers(timestamp):
                self._update(current, timestamp, block, now)
                return
            if _MIN_SEGMENT_UNITS <= delta <= MAX_DURATION_UNITS:
                # RFC 4733 §2.5.2.3: the next segment of a long-duration event.
                current.done_units += delta
                current.segment_timestamp = timestamp
                current.segment_units = 0
                self._update(current, timestamp, block, now)
                return
        for event in self._pending:
            if event.code == block.event and event.covers(timestamp):
                self._update(event, timestamp, block, now)
                return
        event = _Event(block.event, timestamp, now)
        self._update(event, timestamp, block, now)
        if current is None or _uint32_diff(timestamp, current.segment_timestamp) > 0:
            newest_pending = self._pending[-1] if self._pending else None
            if newest_pending is None or _uint32_diff(
                timestamp, newest_pending.segment_timestamp
            ) > 0:
                if current is not None:
                    self._finish(current, now + self.reorder_window_s)
                if event.end_seen:
                    self._finish(event, now + self.reorder_window_s)
                else:
                    self._current = event
                return
        # An event older than one already seen: it is over, report it in order.
        self._finish(event, now + self.reorder_window_s)

    def _update(self, event: _Event, timestamp: int, block: TelephoneEvent, now: float) -> None:
        event.last_seen_s = now
        if timestamp == event.segment_timestamp:
            if block.duration > event.segment_units:
                event.segment_units = block.duration
            started = now - (event.done_units + block.duration) / self.clock_rate
            if started < event.start_s:
                event.start_s = started
            if block.end and not event.end_seen:
                event.end_seen = True
                if event is self._current:
                    self._finish(event, now + self.reorder_window_s)

    def _finish(self, event: _Event, release_at: float) -> None:
        if event is self._current:
            self._current = None
        if event.finished:
            return
        event.finished = True
        event.release_at = release_at
        pending = self._pending
        index = len(pending)
        while index and _uint32_diff(pending[index - 1].start_timestamp, event.start_timestamp) > 0:
            index -= 1
        pending.insert(index, event)

    def _expire(self, now: float) -> None:
        current = self._current
        if current is not None and now >= current.last_seen_s + self.end_timeout_s:
            self._finish(current, now)

    def _release(self, now: float) -> list[DigitReceived]:
        pending = self._pending
        if not pending or pending[0].release_at > now:
            return []
        out: list[DigitReceived] = []
        while pending and pending[0].release_at <= now:
            event = pending.pop(0)
            self._released_through = event.segment_timestamp
            digit = digit_for_event_code(event.code)
            if digit is None:
                continue
            units = event.done_units + event.segment_units
            out.append(
                DigitReceived(
                    digit=digit,
                    source=DigitSource.RFC4733,
                    time=event.start_s,
                    duration_ms=round(units * 1000 / self.clock_rate),
                )
            )
        return out


# -- sender -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TelephoneEventPacket:
    """One packet to send: ``timestamp_offset`` is added to the event's start
    timestamp (non-zero only for later segments of a long event) and
    ``send_offset_ms`` is when to send it, after the first packet."""

    payload: bytes
    marker: bool
    timestamp_offset: int
    send_offset_ms: float


def telephone_event_packets(
    digit: str,
    *,
    duration_ms: float = 100,
    volume: int = 10,
    ptime_ms: float = 20,
    clock_rate: int = 8000,
    end_repeats: int = 3,
) -> list[TelephoneEventPacket]:
    """The packet sequence for one key press (RFC 4733 §2.5.1).

    Packet *i* is sent ``i * ptime_ms`` after the first and reports the
    duration up to the end of its interval; the first carries the marker.
    The end packet (E bit, final duration, same timestamp) is sent
    ``end_repeats`` times, one ptime apart (§2.5.1.4). Events longer than
    0xFFFF units are split into segments (§2.5.1.3).
    """
    code = event_code_for_digit(digit)
    if end_repeats < 1 or ptime_ms <= 0 or duration_ms <= 0:
        raise ValueError("end_repeats, ptime_ms and duration_ms must be positive")
    if not 0 <= volume <= 63:
        raise ValueError(f"volume {volume} out of range 0..63")
    total_units = max(1, round(duration_ms * clock_rate / 1000))
    step_units = max(1, round(ptime_ms * clock_rate / 1000))
    packets: list[TelephoneEventPacket] = []
    elapsed = 0
    segment_start = 0
    slot = 0
    while True:
        elapsed = min(elapsed + step_units, total_units)
        if elapsed - segment_start > MAX_DURATION_UNITS:
            # Close this segment at the maximum and start the next (§2.5.1.3);
            # both packets go out in the same interval.
            packets.append(_packet(code, False, volume, MAX_DURATION_UNITS, False,
                                   segment_start, slot * ptime_ms))
            segment_start += MAX_DURATION_UNITS
        is_last = elapsed >= total_units
        for _ in range(end_repeats if is_last else 1):
            packets.append(_packet(code, is_last, volume, elapsed - segment_start,
                                   not packets, segment_start, slot * ptime_ms))
            slot += 1
        if is_last:
            return packets


def _packet(
    code: int, end: bool, volume: int, duration: int, marker: bool, offset: int, send_ms: float
) -> TelephoneEventPacket:
    payload = _BLOCK.pack(code, (0x80 if end else 0) | volume, duration)
    return TelephoneEventPacket(
        payload=payload, marker=marker, timestamp_offset=offset, send_offset_ms=send_ms
    )
