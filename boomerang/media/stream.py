"""Per-stream RTP state, sans-I/O: what we send and what we hear.

``RtpSender`` numbers and stamps outgoing packets of one SSRC. The SSRC,
first sequence number and first timestamp are random per RFC 3550 §5.1,
so the caller draws them (the core holds no randomness) and passes them in.
Each ``packet(payload)`` advances the sequence number by one and the
timestamp by the frame's step; ``start_talkspurt()`` sets the marker bit on
the next packet (RFC 3551 §4.1), as does the first packet of the stream.

``ReceiverStatistics`` keeps RFC 3550 reception statistics for one remote
SSRC: source validation and extended sequence numbers (A.1, in ``seq``),
cumulative and interval loss (A.3), interarrival jitter (A.8) from the
arrival time ``now`` (seconds, any monotonic origin) and the clock rate,
and builds the report block for our next SR/RR.
"""

from __future__ import annotations

from .rtcp import ReportBlock, SenderReport, ntp_middle_32
from .rtp import pack_rtp
from .seq import MIN_SEQUENTIAL, SequenceValidator


class RtpSender:
    """Sequence number, timestamp and counters of one outgoing SSRC."""

    __slots__ = ("_marker", "octet_count", "packet_count", "payload_type",
                 "sequence_number", "ssrc", "timestamp", "timestamp_step")

    def __init__(self, *, ssrc: int, payload_type: int, timestamp_step: int,
                 initial_sequence_number: int, initial_timestamp: int) -> None:
        if not 0 <= ssrc <= 0xFFFFFFFF:
            raise ValueError(f"SSRC {ssrc} outside 32 bits")
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.timestamp_step = timestamp_step
        self.sequence_number = initial_sequence_number & 0xFFFF
        self.timestamp = initial_timestamp & 0xFFFFFFFF
        self.packet_count = 0
        self.octet_count = 0
        self._marker = True

    def start_talkspurt(self) -> None:
        """Mark the next packet as the first of a talkspurt."""
        self._marker = True

    def packet(self, payload: bytes) -> bytes:
        """The next packet of ``payload`` (one frame); advances seq and timestamp."""
        data = pack_rtp(payload_type=self.payload_type, sequence_number=self.sequence_number,
                        timestamp=self.timestamp, ssrc=self.ssrc, payload=payload,
                        marker=self._marker)
        self._marker = False
        self.sequence_number = (self.sequence_number + 1) & 0xFFFF
        self.timestamp = (self.timestamp + self.timestamp_step) & 0xFFFFFFFF
        self.packet_count += 1
        self.octet_count += len(payload)
        return data

    def skip(self, frames: int = 1) -> None:
        """Advance the timestamp over frames not sent (silence suppression):
        the sequence number stays, and the next packet starts a talkspurt."""
        self.timestamp = (self.timestamp + frames * self.timestamp_step) & 0xFFFFFFFF
        self._marker = True

    def sender_report(self, *, ntp_timestamp: int, rtp_timestamp: int,
                      reports: tuple[ReportBlock, ...] = ()) -> SenderReport:
        """An SR for this source. ``rtp_timestamp`` is the RTP time matching
        ``ntp_timestamp`` (the caller maps wall-clock time to media time)."""
        return SenderReport(ssrc=self.ssrc, ntp_timestamp=ntp_timestamp,
                            rtp_timestamp=rtp_timestamp & 0xFFFFFFFF,
                            packet_count=self.packet_count & 0xFFFFFFFF,
                            octet_count=self.octet_count & 0xFFFFFFFF, reports=reports)


class ReceiverStatistics:
    """RFC 3550 reception statistics for one remote SSRC."""

    __slots__ = ("_expected_prior", "_last_sr_arrival", "_last_sr_middle", "_min_sequential",
                 "_received_prior", "_transit", "_validator", "clock_rate", "jitter",
                 "octets_received", "packets_received", "ssrc")

    def __init__(self, *, ssrc: int, clock_rate: int,
                 min_sequential: int = MIN_SEQUENTIAL) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self._validator: SequenceValidator | None = None
        self._min_sequential = min_sequential
        self._transit: float | None = None
        self.jitter = 0.0  # in timestamp units
        self.packets_received = 0  # every packet seen, valid or not
        self.octets_received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._last_sr_middle = 0
        self._last_sr_arrival: float | None = None

    def on_packet(self, *, sequence_number: int, timestamp: int, now: float,
                  payload_size: int) -> bool:
        """Account for a packet arrived at ``now``; False while the source is
        on probation or when the number is a bad jump (RFC 3550 A.1)."""
        self.packets_received += 1
        self.octets_received += payload_size
        validator = self._validator
        if validator is None:
            validator = self._validator = SequenceValidator(
                sequence_number, min_sequential=self._min_sequential)
        if not validator.update(sequence_number):
            return False
        # A.8: transit time in timestamp units; its variation smoothed by 1/16.
        transit = now * self.clock_rate - timestamp
        if self._transit is not None:
            difference = transit - self._transit
            # Timestamps wrap at 2**32: bring the difference back near zero.
            difference = (difference + 2**31) % 2**32 - 2**31
            self.jitter += (abs(difference) - self.jitter) / 16
        self._transit = transit
        return True

    @property
    def valid(self) -> bool:
        return self._validator is not None and self._validator.valid

    @property
    def extended_highest_sequence(self) -> int:
        return self._validator.extended_max if self._validator else 0

    @property
    def expected(self) -> int:
        """Packets expected since the source became valid (A.3)."""
        validator = self._validator
        if validator is None or not validator.valid:
            return 0
        return validator.extended_max - validator.base_seq + 1

    @property
    def received(self) -> int:
        """Valid packets received (duplicates included, as A.3 counts them)."""
        validator = self._validator
        return validator.received if validator is not None and validator.valid else 0

    @property
    def cumulative_lost(self) -> int:
        """Expected minus received, clamped to the 24-bit signed field."""
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    def on_sender_report(self, report: SenderReport, *, now: float) -> None:
        """Remember the remote SR for the LSR/DLSR fields of our next report."""
        self._last_sr_middle = ntp_middle_32(report.ntp_timestamp)
        self._last_sr_arrival = now

    def report_block(self, *, now: float) -> ReportBlock:
        """The reception report for this source; starts a new loss interval."""
        expected = self.expected
        received = self.received
        expected_interval = expected - self._expected_prior
        received_interval = received - self._received_prior
        self._expected_prior = expected
        self._received_prior = received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            fraction_lost = 0
        else:
            fraction_lost = min(255, (lost_interval << 8) // expected_interval)
        delay = 0
        if self._last_sr_arrival is not None:
            delay = int((now - self._last_sr_arrival) * 65536) & 0xFFFFFFFF
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=fraction_lost,
            packets_lost=self.cumulative_lost,
            highest_sequence=self.extended_highest_sequence & 0xFFFFFFFF,
            jitter=int(self.jitter) & 0xFFFFFFFF,
            last_sender_report=self._last_sr_middle,
            delay_since_last_sender_report=delay,
        )

    @property
    def jitter_s(self) -> float:
        return self.jitter / self.clock_rate
