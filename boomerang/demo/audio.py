"""The audio of the demo's simulated phones: real RTP on loopback sockets.

``PeerAudio`` is one call's media at a simulated peer (the mobile behind
the carrier, or the desk phone of extension 101). It is the call leg's
``MediaPort`` (SDP offer and answer through ``sip.offer_answer``, G.711
PCMU or PCMA with RFC 4733 telephone-event) and it owns an RTP/RTCP socket
pair on 127.0.0.1, like a phone:

- sending: one frame every 20 ms on an absolute schedule (``loop.call_at``
  at ``start + n * ptime``), silence until ``play(frequency_hz)`` asks for
  a tone (the "voice" of the demo: the mobile says 440 Hz, the phone
  660 Hz); ``send_digits("101")`` sends each key as RFC 4733 events
  (``media.dtmf_rfc4733.telephone_event_packets``) in place of the audio
  frames, on the same SSRC and sequence numbers, with a gap between keys.
- hearing: every received audio packet is decoded (``media.codecs``) into
  a rolling buffer; ``wait_for_tone(frequency_hz)`` resolves once the
  strongest component of the last 200 ms (``analyse``: a Hann-windowed FFT
  with parabolic interpolation of the peak) has been that frequency, pure
  and loud enough, for ``hold_s``. It returns what was measured, so the
  demo prints the frequency it heard, not the one it hoped for.

Nothing here decides whether the demo passed; the story does, from what
these objects measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..call.ports import LegView
from ..media.codecs import Codec, codec_by_name, frame_decoder, frame_encoder, silence_frame
from ..media.dtmf_inband import power_to_dbm0
from ..media.dtmf_rfc4733 import TelephoneEventPacket, telephone_event_packets
from ..media.rtp import RtpError, RtpPacket, pack_rtp
from ..sip.offer_answer import (
    MediaCapabilities,
    NegotiatedMedia,
    build_answer,
    build_offer,
    negotiate_answer,
)
from ..sip.sdp import SessionDescription
from ..transport.rtp_socket import PortAllocator, SocketPair, open_socket_pair

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
PTIME_MS = 20
FRAME_S = PTIME_MS / 1000
ANALYSIS_WINDOW_SAMPLES = 1600  # 200 ms: 5 Hz bins, refined by interpolation
ANALYSE_EVERY_FRAMES = 5  # one analysis per 100 ms of received audio
SILENCE_DBM0 = -50.0  # quieter than this counts as silence
MIN_PURITY = 0.8  # share of the power in the peak's main lobe for "a tone"
MAX_BEHIND_S = 0.2  # a pacer later than this starts a new schedule
TALK_LEVEL_DBM0 = -16.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Hearing:
    """What 200 ms of received audio held: its strongest frequency, the
    level of the whole window, and the share of the power at that peak."""

    frequency_hz: float
    level_dbm0: float
    purity: float

    @property
    def silent(self) -> bool:
        return self.level_dbm0 < SILENCE_DBM0

    def describe(self) -> str:
        if self.silent:
            return "silence"
        if self.purity < MIN_PURITY:
            return f"a mixture (strongest {self.frequency_hz:.0f} Hz, {self.level_dbm0:.0f} dBm0)"
        return f"{self.frequency_hz:.0f} Hz at {self.level_dbm0:.0f} dBm0"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToneHeard:
    """A tone heard for ``duration_s``: its mean frequency and level."""

    frequency_hz: float
    level_dbm0: float
    duration_s: float


class ToneNotHeard(Exception):
    """``wait_for_tone`` timed out; the message says what was heard instead."""


class NoTelephoneEvent(Exception):
    """``send_digits`` on a stream whose SDP agreed no RFC 4733 events."""


def analyse(samples: npt.NDArray[np.int16]) -> Hearing:
    """The strongest component of ``samples`` (8 kHz linear PCM)."""
    signal = samples.astype(np.float64)
    power = float(np.mean(signal * signal)) if len(signal) else 0.0
    level = power_to_dbm0(power)
    if len(signal) < 16 or power <= 0:
        return Hearing(frequency_hz=0.0, level_dbm0=level, purity=0.0)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal)))) ** 2
    spectrum[0] = 0.0  # no DC
    peak = int(np.argmax(spectrum))
    total = float(np.sum(spectrum))
    lobe = float(np.sum(spectrum[max(0, peak - 3):peak + 4]))
    offset = 0.0
    if 0 < peak < len(spectrum) - 1:
        below, here, above = (math.log(max(float(spectrum[i]), 1e-30))
                              for i in (peak - 1, peak, peak + 1))
        curve = below - 2 * here + above
        if curve < 0:
            offset = 0.5 * (below - above) / curve
    frequency = (peak + offset) * SAMPLE_RATE / len(signal)
    return Hearing(frequency_hz=frequency, level_dbm0=level,
                   purity=lobe / total if total > 0 else 0.0)


def sine_frames(frequency_hz: float, level_dbm0: float, codec: Codec) -> list[bytes]:
    """Encoded frames of a continuous sine that loop seamlessly (1 s of audio)."""
    count = SAMPLE_RATE  # whole periods of any whole-Hz frequency in one second
    n = np.arange(count)
    peak = codec.peak_for_dbm0(level_dbm0)
    pcm = np.round(peak * np.sin(2 * np.pi * frequency_hz * n / SAMPLE_RATE)).astype(np.int16)
    encode = frame_encoder(codec)
    step = codec.samples_per_frame(PTIME_MS)
    return [encode(pcm[i:i + step]) for i in range(0, count, step)]


class _Waiter:
    __slots__ = ("future", "hold_s", "matched", "target_hz", "tolerance_hz")

    def __init__(self, target_hz: float, tolerance_hz: float, hold_s: float,
                 future: asyncio.Future[ToneHeard]) -> None:
        self.target_hz = target_hz
        self.tolerance_hz = tolerance_hz
        self.hold_s = hold_s
        self.future = future
        self.matched: list[Hearing] = []


class PeerAudio:
    """One call's RTP at a simulated peer (see the module doc)."""

    def __init__(self, sockets: SocketPair | None, *, host: str, name: str,
                 random_bits: Callable[[int], int] = secrets.randbits) -> None:
        self.sockets = sockets
        self.host = host
        self.name = name
        self.capabilities = MediaCapabilities()
        self.negotiated: NegotiatedMedia | None = None
        self._offer: SessionDescription | None = None
        self._ssrc = random_bits(32)
        self._sequence = random_bits(16)
        self._timestamp = random_bits(32)
        self._codec: Codec | None = None
        self._frames: list[bytes] = []
        self._silence = b""
        self._frame_index = 0
        self._tone_hz: float | None = None
        self._events: deque[tuple[int, TelephoneEventPacket, int, str]] = deque()
        self._on_key: Callable[[str], None] | None = None
        self._events_done: asyncio.Future[None] | None = None
        self._event_timestamp: int | None = None
        self._tick = 0
        self._start_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._decoders: dict[int, Callable[[bytes], npt.NDArray[np.int16]]] = {}
        self._received: deque[npt.NDArray[np.int16]] = deque(
            maxlen=ANALYSIS_WINDOW_SAMPLES // (SAMPLE_RATE * PTIME_MS // 1000))
        self._since_analysis = 0
        self._waiters: list[_Waiter] = []
        self.packets_received = 0
        self.packets_sent = 0
        self.events_sent = 0
        self.last_hearing: Hearing | None = None
        self.closed = False

    @classmethod
    async def open(cls, allocator: PortAllocator, host: str, *, name: str) -> PeerAudio:
        audio = cls(None, host=host, name=name)
        audio.sockets = await open_socket_pair(allocator, host, audio)
        return audio

    @property
    def port(self) -> int:
        assert self.sockets is not None
        return self.sockets.port

    @property
    def codec_name(self) -> str:
        return self._codec.name if self._codec is not None else "-"

    # -- MediaPort: SDP ----------------------------------------------------------------

    def offer(self, leg: LegView, *, hold: bool = False) -> bytes:
        sdp = build_offer(self.capabilities, self.host, self.port, self._ssrc & 0xFFFFFF, 1,
                          "sendonly" if hold else "sendrecv", rtcp_port=self.port + 1,
                          username="demo")
        self._offer = sdp
        return bytes(sdp)

    def answer(self, leg: LegView, remote_offer: bytes) -> bytes:
        offer = SessionDescription.parse(remote_offer)
        sdp, negotiated = build_answer(offer, self.capabilities, self.host, self.port,
                                       self._ssrc & 0xFFFFFF, 1, rtcp_port=self.port + 1,
                                       username="demo")
        self._use(negotiated)
        return bytes(sdp)

    def remote_answer(self, leg: LegView, sdp: bytes) -> None:
        if self._offer is None:
            return
        self._use(negotiate_answer(self._offer, SessionDescription.parse(sdp)))

    def _use(self, negotiated: NegotiatedMedia) -> None:
        self.negotiated = negotiated
        codec = codec_by_name(negotiated.codec.name)
        if codec is None:  # only PCMU/PCMA are offered, so this is a peer's error
            raise ValueError(f"{self.name}: negotiated codec {negotiated.codec.name} unknown")
        self._codec = codec
        self._silence = silence_frame(codec, PTIME_MS)
        self._decoders = {}
        for agreed in negotiated.codecs:
            known = codec_by_name(agreed.name)
            if known is not None and known.is_audio:
                self._decoders[agreed.payload_type] = frame_decoder(known)
        self.play(self._tone_hz)
        self._start_sending()

    # -- sending -----------------------------------------------------------------------

    def play(self, frequency_hz: float | None, level_dbm0: float = TALK_LEVEL_DBM0) -> None:
        """Send a continuous sine from now on (None: silence)."""
        self._tone_hz = frequency_hz
        if self._codec is not None:
            self._frames = ([] if frequency_hz is None
                            else sine_frames(frequency_hz, level_dbm0, self._codec))
            self._frame_index = 0

    async def send_digits(self, digits: str, *, duration_ms: float = 100,
                          gap_ms: float = 120,
                          on_key: Callable[[str], None] | None = None) -> None:
        """Each digit as RFC 4733 telephone-events, ``gap_ms`` of audio between;
        ``on_key(digit)`` is told when a key's first packet leaves."""
        negotiated = self.negotiated
        if negotiated is None or negotiated.telephone_event_payload_type is None:
            raise NoTelephoneEvent(f"{self.name}: the SDP agreed no telephone-event")
        loop = asyncio.get_running_loop()
        gap_frames = max(1, round(gap_ms / PTIME_MS))
        for index, digit in enumerate(digits):
            if index:
                await asyncio.sleep(gap_frames * FRAME_S)
            packets = telephone_event_packets(digit, duration_ms=duration_ms,
                                              ptime_ms=PTIME_MS)
            first = self._tick  # the next slot the pacer sends
            self._on_key = on_key
            for packet in packets:
                self._events.append((first + round(packet.send_offset_ms / PTIME_MS), packet,
                                     negotiated.telephone_event_payload_type, digit))
            done: asyncio.Future[None] = loop.create_future()
            self._events_done = done
            await done

    def _start_sending(self) -> None:
        if self._timer is not None or self.closed:
            return
        loop = asyncio.get_running_loop()
        self._start_at = loop.time()
        self._tick = 0
        self._timer = loop.call_at(self._start_at, self._on_tick)

    def _on_tick(self) -> None:
        self._timer = None
        negotiated = self.negotiated
        if self.closed or self.sockets is None or negotiated is None:
            return
        loop = asyncio.get_running_loop()
        destination = (negotiated.remote_address, negotiated.remote_port)
        if self._events:
            # a key press owns its slots: events in place of audio (RFC 4733 §2.5)
            if self._event_timestamp is None:
                self._event_timestamp = self._timestamp
            while self._events and self._events[0][0] <= self._tick:
                _, packet, payload_type, digit = self._events.popleft()
                if packet.marker and self._on_key is not None:
                    self._on_key(digit)
                self._send(pack_rtp(payload_type=payload_type, sequence_number=self._sequence,
                                    timestamp=self._event_timestamp + packet.timestamp_offset,
                                    ssrc=self._ssrc, payload=packet.payload,
                                    marker=packet.marker), destination)
                self.events_sent += 1
            if not self._events:
                self._event_timestamp = None
                if self._events_done is not None and not self._events_done.done():
                    self._events_done.set_result(None)
                self._events_done = None
        else:
            payload = (self._frames[self._frame_index % len(self._frames)] if self._frames
                       else self._silence)
            self._frame_index += 1
            self._send(pack_rtp(payload_type=negotiated.codec.payload_type,
                                sequence_number=self._sequence, timestamp=self._timestamp,
                                ssrc=self._ssrc, payload=payload,
                                marker=self.packets_sent == 0), destination)
        self._timestamp = (self._timestamp + SAMPLE_RATE * PTIME_MS // 1000) & 0xFFFFFFFF
        self._tick += 1
        due = self._start_at + self._tick * FRAME_S
        if loop.time() - due > MAX_BEHIND_S:  # the loop stalled: no burst to catch up
            self._start_at = loop.time() - self._tick * FRAME_S
            due = loop.time()
        self._timer = loop.call_at(due, self._on_tick)

    def _send(self, data: bytes, destination: tuple[str, int]) -> None:
        assert self.sockets is not None
        self.sockets.rtp_transport.sendto(data, destination)
        self._sequence = (self._sequence + 1) & 0xFFFF
        self.packets_sent += 1

    # -- hearing -----------------------------------------------------------------------

    def rtp_received(self, data: bytes, source: tuple[str, int]) -> None:
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            return
        decode = self._decoders.get(packet.payload_type)
        if decode is None:
            return  # telephone-event or comfort noise: not audio to analyse
        self.packets_received += 1
        self._received.append(decode(packet.payload))
        self._since_analysis += 1
        if self._since_analysis >= ANALYSE_EVERY_FRAMES \
                and len(self._received) == self._received.maxlen:
            self._since_analysis = 0
            self._analyse()

    def rtcp_received(self, data: bytes, source: tuple[str, int]) -> None:
        pass  # reports from Boomerang: not needed to judge the demo

    def _analyse(self) -> None:
        hearing = analyse(np.concatenate(list(self._received)))
        self.last_hearing = hearing
        for waiter in list(self._waiters):
            if waiter.future.done():
                self._waiters.remove(waiter)
                continue
            if (not hearing.silent and hearing.purity >= MIN_PURITY
                    and abs(hearing.frequency_hz - waiter.target_hz) <= waiter.tolerance_hz):
                waiter.matched.append(hearing)
            else:
                waiter.matched.clear()
            duration_s = len(waiter.matched) * ANALYSE_EVERY_FRAMES * FRAME_S
            if duration_s >= waiter.hold_s:
                matched = waiter.matched
                waiter.future.set_result(ToneHeard(
                    frequency_hz=sum(h.frequency_hz for h in matched) / len(matched),
                    level_dbm0=sum(h.level_dbm0 for h in matched) / len(matched),
                    duration_s=duration_s))
                self._waiters.remove(waiter)

    async def wait_for_tone(self, frequency_hz: float, *, timeout_s: float,
                            tolerance_hz: float = 8.0, hold_s: float = 0.3) -> ToneHeard:
        """Wait until ``frequency_hz`` (within ``tolerance_hz``) has been the
        strongest, pure component for ``hold_s``; raises ToneNotHeard."""
        future: asyncio.Future[ToneHeard] = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(frequency_hz, tolerance_hz, hold_s, future))
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise ToneNotHeard(self.heard_summary()) from None

    def heard_summary(self) -> str:
        """What this peer heard last, for a failure message."""
        if self.packets_received == 0:
            return "no RTP audio arrived"
        hearing = self.last_hearing
        return ("audio arrived, too little to analyse" if hearing is None
                else f"heard {hearing.describe()}")

    # -- end -----------------------------------------------------------------------------

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.cancel()
        self._waiters.clear()
        if self._events_done is not None and not self._events_done.done():
            self._events_done.cancel()
        if self.sockets is not None:
            with contextlib.suppress(Exception):
                self.sockets.close()


__all__ = ["Hearing", "NoTelephoneEvent", "PeerAudio", "ToneHeard", "ToneNotHeard", "analyse",
           "sine_frames"]
