"""Wrap-around arithmetic for RTP sequence numbers and timestamps.

RTP sequence numbers are 16-bit and timestamps 32-bit unsigned integers that
wrap around (RFC 3550 §5.1). Comparison is "serial number arithmetic": ``a``
is after ``b`` when the forward distance from ``b`` to ``a`` is less than half
the number space (the same rule as RFC 1982 and aiortc's ``uint16_gt``).

``SequenceValidator`` is RFC 3550 Appendix A.1: it extends 16-bit sequence
numbers to 32 bits (cycles << 16 | seq), declares a source valid after
``MIN_SEQUENTIAL`` packets in sequence (probation) and resynchronises after
a large jump confirmed by the next packet.
"""

from __future__ import annotations

UINT16_MODULO = 1 << 16
UINT16_HALF = 1 << 15
UINT32_MODULO = 1 << 32
UINT32_HALF = 1 << 31

# RFC 3550 A.1 constants.
MIN_SEQUENTIAL = 2
MAX_DROPOUT = 3000
MAX_MISORDER = 100


def uint16_add(a: int, b: int) -> int:
    return (a + b) & 0xFFFF


def uint16_sub(a: int, b: int) -> int:
    """Forward distance from ``b`` to ``a`` (0..65535)."""
    return (a - b) & 0xFFFF


def uint16_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in -32768..32767, across the wrap."""
    return ((a - b + UINT16_HALF) & 0xFFFF) - UINT16_HALF


def uint16_gt(a: int, b: int) -> bool:
    """``a`` comes after ``b`` (for a forward distance under half the space)."""
    distance = (a - b) & 0xFFFF
    return 0 < distance < UINT16_HALF


def uint16_gte(a: int, b: int) -> bool:
    return a == b or uint16_gt(a, b)


def uint16_lt(a: int, b: int) -> bool:
    return uint16_gt(b, a)


def uint32_add(a: int, b: int) -> int:
    return (a + b) & 0xFFFFFFFF


def uint32_sub(a: int, b: int) -> int:
    return (a - b) & 0xFFFFFFFF


def uint32_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in -2**31..2**31-1, across the wrap."""
    return ((a - b + UINT32_HALF) & 0xFFFFFFFF) - UINT32_HALF


def uint32_gt(a: int, b: int) -> bool:
    distance = (a - b) & 0xFFFFFFFF
    return 0 < distance < UINT32_HALF


def uint32_gte(a: int, b: int) -> bool:
    return a == b or uint32_gt(a, b)


def uint32_lt(a: int, b: int) -> bool:
    return uint32_gt(b, a)


class SequenceValidator:
    """RFC 3550 A.1 source validation and sequence extension for one SSRC.

    ``update(seq)`` returns True when the packet counts (the source is
    valid and the number is not a bad jump); after it ``extended_max`` is
    the highest extended sequence number seen. ``extend(seq)`` maps any
    16-bit number (also a late, reordered one) to the extended number
    closest to ``extended_max``.
    """

    __slots__ = (
        "bad_seq", "base_seq", "cycles", "max_seq", "min_sequential", "probation", "received",
    )

    def __init__(self, seq: int, *, min_sequential: int = MIN_SEQUENTIAL) -> None:
        """Start with the first packet's ``seq``, which must then be passed
        to ``update`` too. ``min_sequential=1`` trusts the first packet."""
        if min_sequential < 1:
            raise ValueError("min_sequential must be at least 1")
        self.min_sequential = min_sequential
        self._init_seq(seq)
        self.max_seq = (seq - 1) & 0xFFFF
        self.probation = min_sequential

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = UINT16_MODULO + 1  # so seq == bad_seq is false
        self.cycles = 0
        self.received = 0

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def valid(self) -> bool:
        return self.probation == 0

    def extend(self, seq: int) -> int:
        """Extended number of ``seq`` nearest the highest seen so far."""
        extended = self.extended_max + uint16_diff(seq, self.max_seq)
        return extended if extended >= 0 else seq

    def update(self, seq: int) -> bool:
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            # The source is not valid until MIN_SEQUENTIAL packets in sequence.
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = max(self.min_sequential - 1, 1)
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            # In order, with a permissible gap.
            if seq < self.max_seq:
                self.cycles += UINT16_MODULO  # wrapped
            self.max_seq = seq
        elif udelta <= UINT16_MODULO - MAX_MISORDER:
            # A very large jump.
            if seq == self.bad_seq:
                # Two sequential packets: the other side restarted without
                # telling us, so resync (as if it were the first packet).
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: a duplicate or reordered packet; it counts.
        self.received += 1
        return True
