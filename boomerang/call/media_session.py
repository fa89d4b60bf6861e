"""One call leg where Boomerang terminates media: dial tone out, digits in.

A ``MediaSession`` owns one ``RtpEndpoint`` (symmetric RTP, RTCP) and is
configured from the ``NegotiatedMedia`` of the leg's offer/answer:

- ``play_tone(name)`` sends a tone of the session's plan (``"dial"``,
  ``"busy"``...) in the negotiated codec, frame ``n`` at
  ``start + n * ptime`` (through the shared ``Pacer`` when one is given,
  else on the session's own ``call_later`` schedule); ``stop_tone()`` ends
  it. A tone that starts again keeps the SSRC and moves the RTP timestamp
  on by the time spent silent, with the marker bit set.
- ``await play_prompt(path_or_frames, repeat=n)`` plays a WAV prompt on the
  same stream, encoded once per (file, codec, ptime) by a ``PromptCache``
  (share one per process: ``session.prompts``), and returns True when it
  played to its end, False when something stopped it (a key, another
  tone, the session closing). ``await play_tone_for(name, duration_s)``
  plays a tone for a while, the same way. One playback at a time: each
  new one replaces the last.
- A key press stops an *interruptible* playback (the default; the dial
  tone stops at the first key, a menu prompt is barged into);
  ``interruptible=False`` lets an announcement or an error tone finish.
- Received RTP is demultiplexed by payload type: telephone-event packets
  go to a ``TelephoneEventReceiver`` (RFC 4733), G.711 audio is decoded and
  fed to a ``GoertzelDetector`` (in-band DTMF); both are replaced when the
  remote SSRC changes. Digits from SIP INFO are fed by the dialog owner
  with ``info_digit``. Every digit goes through one ``DigitCollector``,
  which drops the copies of one key press that arrive by several routes.
- ``events`` (an ``asyncio.Queue``) receives the accepted ``DigitReceived``
  and the ``DigitCollectionEnded`` of ``start_collecting``; ``digits()``
  iterates them until the collection ends; ``await next_digit(timeout_s)``
  takes one key press (a menu choice, a confirmation), ``clear_digits()``
  forgets the keys pressed before a question was asked.
- An interruptible tone stops at the first key press: as soon as a
  telephone-event packet or the in-band detector reports a key down
  (before the digit is final), or when any digit is accepted.
- ``close()`` cancels the timers and the tone and gives the ports back.

The protocol work stays in ``boomerang.media``; this module only wires it
to the socket and keeps one timer armed at the earliest deadline of the
receiver and the collector.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..media.codecs import PCMU, Codec, codec_by_name, frame_decoder
from ..media.decimate import HalfRateDecimator
from ..media.digits import DigitCollectionEnded, DigitCollector, DigitEvent, DigitReceived
from ..media.dtmf_inband import SAMPLE_RATE as INBAND_SAMPLE_RATE
from ..media.dtmf_inband import GoertzelDetector
from ..media.dtmf_info import DtmfInfo
from ..media.dtmf_rfc4733 import TelephoneEventReceiver
from ..media.prompts import PromptFrames, load_prompt
from ..media.relay import LegMedia
from ..media.rtp import RtpError, RtpPacket
from ..media.stream import RtpSender
from ..media.tones import ToneBank, TonePlan, TonePlayer, tone_plan
from ..sip.offer_answer import NegotiatedMedia
from ..transport.rtp_socket import PacedStream, Pacer, PortAllocator, RtpEndpoint

log = logging.getLogger(__name__)

# A stream more than this late (the loop was blocked) skips the frames it
# missed instead of sending a burst (the Pacer's rule too).
MAX_BEHIND_S = 0.2

RandomBits = Callable[[int], int]


class MediaSessionError(RuntimeError):
    """The session cannot do what was asked (not configured, no such codec)."""


# The reason a playback that reached its end stops with.
FINISHED = "finished"


class PromptCache:
    """WAV prompts encoded once per (file, codec, ptime) for a process.

    A miss reads and encodes the file in a worker thread (resampling costs
    a few milliseconds per second of audio; the loop keeps pacing other
    streams meanwhile); concurrent misses of one key share that work.
    Errors (a missing file, not a PCM WAV) are raised to every waiter and
    not cached, so a fixed file is picked up on the next call.
    """

    __slots__ = ("_encoded", "_loading")

    def __init__(self) -> None:
        self._encoded: dict[tuple[Path, str, int], PromptFrames] = {}
        self._loading: dict[tuple[Path, str, int], asyncio.Future[PromptFrames]] = {}

    def __len__(self) -> int:
        return len(self._encoded)

    async def frames(self, path: Path | str, codec: Codec, ptime_ms: int = 20
                     ) -> PromptFrames:
        key = (Path(path), codec.name, ptime_ms)
        found = self._encoded.get(key)
        if found is not None:
            return found
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(asyncio.to_thread(_encode_file, key[0], codec,
                                                              ptime_ms))
            self._loading[key] = loading
            loading.add_done_callback(lambda done: self._loaded(key, done))
        return await asyncio.shield(loading)

    def _loaded(self, key: tuple[Path, str, int], done: asyncio.Future[PromptFrames]) -> None:
        self._loading.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self._encoded[key] = done.result()


def _encode_file(path: Path, codec: Codec, ptime_ms: int) -> PromptFrames:
    return load_prompt(path.read_bytes(), codec, ptime_ms)


class _PromptPlayer:
    """Frames of a prompt, ``repeat`` times, then silence; ``at_end`` is
    called once, when the frame after the last one is asked for (the last
    frame has been sent: its 20 ms are on their way)."""

    __slots__ = ("_at_end", "_count", "_frames", "_index", "_rounds_left", "_silence")

    def __init__(self, prompt: PromptFrames, repeat: int, at_end: Callable[[], None]) -> None:
        self._frames = prompt.frames
        self._count = len(prompt.frames)
        self._silence = prompt.silence
        self._rounds_left = max(1, repeat)
        self._index = 0
        self._at_end: Callable[[], None] | None = at_end

    def next_frame(self) -> bytes:
        if self._index >= self._count and self._rounds_left > 1:
            self._rounds_left -= 1
            self._index = 0
        if self._index < self._count:
            frame = self._frames[self._index]
            self._index += 1
            return frame
        at_end, self._at_end = self._at_end, None
        if at_end is not None:
            at_end()
        return self._silence


class _OwnSchedule:
    """Frame ``n`` at ``start + n * ptime_s`` on ``call_later``, for a session
    without a shared pacer (same contract as ``PacedStream``)."""

    __slots__ = ("_clock", "_loop", "_timer", "active", "frame_index", "frames",
                 "frames_sent", "frames_skipped", "ptime_s", "send", "sender", "start")

    def __init__(self, *, send: Callable[[bytes], None], sender: RtpSender,
                 frames: Callable[[], bytes], ptime_s: float, clock: Callable[[], float],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.send = send
        self.sender = sender
        self.frames = frames
        self.ptime_s = ptime_s
        self._clock = clock
        self._loop = loop
        self.start = clock()
        self.frame_index = 0
        self.frames_sent = 0
        self.frames_skipped = 0
        self.active = True
        self._timer: asyncio.TimerHandle | None = None
        self._due()

    def _due(self) -> None:
        self._timer = None
        if not self.active:
            return
        now = self._clock()
        while True:
            scheduled = self.start + self.frame_index * self.ptime_s
            if scheduled > now:
                break
            if now - scheduled > MAX_BEHIND_S:
                self.sender.skip(1)
                self.frames_skipped += 1
            else:
                self.send(self.sender.packet(self.frames()))
                self.frames_sent += 1
            self.frame_index += 1
        self._timer = self._loop.call_later(scheduled - now, self._due)

    def stop(self) -> None:
        self.active = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class MediaSession:
    """Dial tone and digit detection for one call leg (see the module doc)."""

    __slots__ = (
        "_audio_codecs",
        "_collecting",
        "_decimator",
        "_decode",
        "_detector",
        "_detector_codec",
        "_digit_timer",
        "_interruptible",
        "_loop",
        "_playback",
        "_prompt_player",
        "_random_bits",
        "_remote_ssrc",
        "_stream",
        "_telephone_event_receiver",
        "call_id",
        "clock",
        "closed",
        "codec",
        "collector",
        "endpoint",
        "events",
        "history",
        "negotiated",
        "pacer",
        "prompts",
        "ptime_ms",
        "sender",
        "telephone_event_payload_type",
        "tone_bank",
        "tone_name",
        "tone_plan",
        "tone_started_at",
        "tone_stop_reason",
        "tone_stopped_at",
    )

    def __init__(
        self,
        endpoint: RtpEndpoint,
        *,
        call_id: str,
        tone_bank: ToneBank,
        plan: TonePlan | str = "pl",
        collector: DigitCollector | None = None,
        pacer: Pacer | None = None,
        random_bits: RandomBits = secrets.randbits,
        clock: Callable[[], float] = time.monotonic,
        prompts: PromptCache | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.prompts = prompts if prompts is not None else PromptCache()
        self.call_id = call_id
        self.tone_bank = tone_bank
        self.tone_plan = tone_plan(plan) if isinstance(plan, str) else plan
        self.collector = collector or DigitCollector()
        self.pacer = pacer
        self.clock = clock
        self._loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[DigitEvent] = asyncio.Queue()
        self.history: list[DigitReceived] = []
        self.negotiated: NegotiatedMedia | None = None
        self.codec: Codec | None = None
        self.ptime_ms = 20
        self.telephone_event_payload_type: int | None = None
        self._audio_codecs: dict[int, Codec] = {}
        self.sender: RtpSender | None = None
        self._stream: PacedStream | _OwnSchedule | None = None
        self._playback: asyncio.Future[str] | None = None
        self._interruptible = True
        self._prompt_player: _PromptPlayer | None = None
        self.tone_name: str | None = None
        self.tone_started_at: float | None = None
        self.tone_stop_reason: str | None = None
        self.tone_stopped_at: float | None = None
        self._remote_ssrc: int | None = None
        self._telephone_event_receiver = TelephoneEventReceiver()
        self._detector = GoertzelDetector()
        self._detector_codec: Codec | None = None
        self._decode: Callable[[bytes], npt.NDArray[np.int16]] = frame_decoder(PCMU)
        self._decimator: HalfRateDecimator | None = None
        self._digit_timer: asyncio.TimerHandle | None = None
        self._collecting = False
        self.closed = False
        self._random_bits = random_bits
        endpoint.on_rtp = self._rtp_received

    @classmethod
    async def open(cls, allocator: PortAllocator, local_address: str, *, call_id: str,
                   tone_bank: ToneBank, plan: TonePlan | str = "pl",
                   collector: DigitCollector | None = None, pacer: Pacer | None = None,
                   random_bits: RandomBits = secrets.randbits) -> MediaSession:
        """Bind an RTP/RTCP pair from ``allocator`` and wrap it in a session."""
        endpoint = await RtpEndpoint.open(allocator, local_address)
        return cls(endpoint, call_id=call_id, tone_bank=tone_bank, plan=plan,
                   collector=collector, pacer=pacer, random_bits=random_bits,
                   clock=endpoint.clock)

    @property
    def local_address(self) -> str:
        return self.endpoint.local[0]

    @property
    def local_port(self) -> int:
        return self.endpoint.local[1]

    @property
    def tone_playing(self) -> bool:
        return self._stream is not None

    @property
    def frames_sent(self) -> int:
        return self.sender.packet_count if self.sender is not None else 0

    # -- configuration ----------------------------------------------------------

    def configure(self, media: NegotiatedMedia) -> None:
        """Apply the leg's offer/answer (again, after a re-INVITE)."""
        codec = codec_by_name(media.codec.name)
        if codec is None or not codec.is_audio:
            raise MediaSessionError(f"call_id={self.call_id}: no audio codec {media.codec.name}")
        self.negotiated = media
        self.endpoint.set_remote(LegMedia.from_negotiated(media))
        self.telephone_event_payload_type = media.telephone_event_payload_type
        self._audio_codecs = {}
        for offered in media.codecs:
            ours = codec_by_name(offered.name)
            if ours is not None and ours.is_audio:
                self._audio_codecs[offered.payload_type] = ours
        payload_type = media.codec.payload_type
        if self.sender is None or self.codec is not codec or self.ptime_ms != media.ptime_ms \
                or self.sender.payload_type != payload_type:
            # a tone goes on in the new codec; a prompt (encoded for the old one) stops
            restart = self.tone_name if self._stream is not None \
                and self._prompt_player is None else None
            playback = self._playback if restart is not None else None
            if playback is not None:
                self._playback = None  # not over: the tone goes on
            self.stop_tone(reason="renegotiated")
            self.codec = codec
            self.ptime_ms = media.ptime_ms
            self.sender = RtpSender(
                ssrc=self._random_bits(32), payload_type=payload_type,
                timestamp_step=codec.timestamp_step(media.ptime_ms),
                initial_sequence_number=self._random_bits(16),
                initial_timestamp=self._random_bits(32))
            self.endpoint.sender = self.sender
            if restart is not None:
                self._start(self._tone_frames(restart), restart)
                self._playback = playback
        log.debug("call_id=%s media %s:%d %s/%d ms, telephone-event %s", self.call_id,
                  media.remote_address, media.remote_port, codec.name, media.ptime_ms,
                  media.telephone_event_payload_type)

    # -- tones and prompts -------------------------------------------------------

    def play_tone(self, name: str = "dial", *, interruptible: bool = True
                  ) -> asyncio.Future[str]:
        """Send the plan's tone ``name`` until ``stop_tone`` (or, when
        ``interruptible``, the first key). The future resolves with the
        reason it stopped."""
        self._check_ready("play_tone")
        self.stop_tone(reason="replaced")
        self._start(self._tone_frames(name), name)
        return self._new_playback(interruptible)

    async def play_tone_for(self, name: str, duration_s: float, *,
                            interruptible: bool = False) -> bool:
        """Play tone ``name`` for ``duration_s``; True when it played that long,
        False when something stopped it first. Cancelling stops it."""
        playback = self.play_tone(name, interruptible=interruptible)
        try:
            await asyncio.wait_for(asyncio.shield(playback), duration_s)
        except TimeoutError:
            if self._playback is playback:
                self.stop_tone(reason=FINISHED)
            return True
        except asyncio.CancelledError:
            if self._playback is playback:
                self.stop_tone(reason="cancelled")
            raise
        return False

    async def play_prompt(self, prompt: PromptFrames | Path | str, *, repeat: int = 1,
                          interruptible: bool = True) -> bool:
        """Play a WAV prompt (a path, encoded through ``prompts``, or frames
        already encoded for this session's codec) ``repeat`` times; True when
        it played to its end, False when something stopped it first.
        Cancelling stops it."""
        self._check_ready("play_prompt")
        assert self.codec is not None
        if not isinstance(prompt, PromptFrames):
            path = Path(prompt)
            prompt = await self.prompts.frames(path, self.codec, self.ptime_ms)
            self._check_ready("play_prompt")  # the call may have ended meanwhile
            if prompt.codec is not self.codec or prompt.ptime_ms != self.ptime_ms:
                # renegotiated while it loaded: encode again for the new codec
                prompt = await self.prompts.frames(path, self.codec, self.ptime_ms)
        if prompt.codec is not self.codec or prompt.ptime_ms != self.ptime_ms:
            raise MediaSessionError(
                f"call_id={self.call_id}: prompt encoded for {prompt.codec.name}/"
                f"{prompt.ptime_ms} ms, the session sends {self.codec.name}/{self.ptime_ms} ms")
        self.stop_tone(reason="replaced")

        def at_end() -> None:
            self._loop.call_soon(self._prompt_ended, player)

        player = _PromptPlayer(prompt, repeat, at_end)
        self._start(player.next_frame, "prompt")
        self._prompt_player = player
        playback = self._new_playback(interruptible)
        log.info("call_id=%s prompt of %d ms x%d", self.call_id, prompt.duration_ms,
                 max(1, repeat))
        try:
            return await asyncio.shield(playback) == FINISHED
        except asyncio.CancelledError:
            if self._playback is playback:
                self.stop_tone(reason="cancelled")
            raise

    def _prompt_ended(self, player: _PromptPlayer) -> None:
        if self._prompt_player is player:
            self.stop_tone(reason=FINISHED)

    def _check_ready(self, what: str) -> None:
        if self.closed:
            raise MediaSessionError(f"call_id={self.call_id}: session closed")
        if self.sender is None or self.codec is None:
            raise MediaSessionError(f"call_id={self.call_id}: {what} before configure")

    def _tone_frames(self, name: str) -> Callable[[], bytes]:
        assert self.codec is not None
        player: TonePlayer = self.tone_bank.player(self.tone_plan.tone(name), self.codec,
                                                   self.ptime_ms)
        return player.next_frame

    def _new_playback(self, interruptible: bool) -> asyncio.Future[str]:
        playback: asyncio.Future[str] = self._loop.create_future()
        self._playback = playback
        self._interruptible = interruptible
        return playback

    def _start(self, frames: Callable[[], bytes], name: str) -> None:
        """Start a stream of ``frames`` (nothing may be playing)."""
        sender = self.sender
        assert sender is not None and self.codec is not None
        now = self.clock()
        if self.tone_stopped_at is not None:
            # Keep the RTP clock running across the silence (RFC 3550 §5.1).
            silent_frames = int((now - self.tone_stopped_at) * 1000 // self.ptime_ms)
            sender.skip(max(1, silent_frames))
        sender.start_talkspurt()
        if self.pacer is not None:
            self._stream = self.pacer.start(send=self.endpoint.send_rtp, sender=sender,
                                            frames=frames, ptime_ms=self.ptime_ms)
        else:
            self._stream = _OwnSchedule(send=self.endpoint.send_rtp, sender=sender,
                                        frames=frames, ptime_s=self.ptime_ms / 1000,
                                        clock=self.clock, loop=self._loop)
        self.tone_name = name
        self.tone_started_at = now
        self.tone_stop_reason = None
        log.info("call_id=%s playing %s (%s, %s, %d ms)", self.call_id,
                 f"{name} tone" if name != "prompt" else "prompt", self.tone_plan.country,
                 self.codec.name, self.ptime_ms)

    def stop_tone(self, *, reason: str = "stopped") -> None:
        """Stop whatever plays (a tone or a prompt); its playback resolves with ``reason``."""
        stream = self._stream
        if stream is None:
            return
        stream.stop()
        self._stream = None
        self._prompt_player = None
        self.tone_stopped_at = self.clock()
        self.tone_stop_reason = reason
        log.info("call_id=%s %s stopped (%s) after %d frames", self.call_id,
                 f"{self.tone_name} tone" if self.tone_name != "prompt" else "prompt",
                 reason, stream.frames_sent)
        playback, self._playback = self._playback, None
        if playback is not None and not playback.done():
            playback.set_result(reason)

    def _key_down(self, reason: str) -> None:
        """A key went down: an interruptible playback stops."""
        if self._stream is not None and self._interruptible:
            self.stop_tone(reason=reason)

    # -- digits ------------------------------------------------------------------

    def start_collecting(self) -> None:
        """Start a digit collection (arms the first-digit timeout)."""
        self.collector.start(self.clock())
        self._collecting = True
        self._arm()

    def info_digit(self, info: DtmfInfo | DigitReceived) -> None:
        """A digit from a SIP INFO (``parse_dtmf_info``) of this leg's dialog."""
        now = self.clock()
        digit = info.received(now) if isinstance(info, DtmfInfo) else info
        self._digits([digit], now)

    async def digits(self) -> AsyncIterator[DigitEvent]:
        """The session's events until (and including) ``DigitCollectionEnded``."""
        while True:
            event = await self.events.get()
            yield event
            if isinstance(event, DigitCollectionEnded):
                return

    async def next_digit(self, timeout_s: float | None = None) -> DigitReceived | None:
        """The next key press (one pressed earlier and not yet taken counts),
        or None when none came within ``timeout_s`` (None: wait for ever)."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    event = await self.events.get()
                    if isinstance(event, DigitReceived):
                        return event
        except TimeoutError:
            return None

    def clear_digits(self) -> int:
        """Forget the events not taken yet (keys pressed before a question
        was asked); returns how many there were."""
        dropped = 0
        while not self.events.empty():
            self.events.get_nowait()
            dropped += 1
        return dropped

    def _digits(self, digits: list[DigitReceived], now: float) -> None:
        if self.closed:
            return
        for digit in digits:
            for event in self.collector.add(digit, now):
                if isinstance(event, DigitReceived):
                    self.history.append(event)
                    log.info("call_id=%s digit %s (%s)", self.call_id, event.digit,
                             event.source)
                    self._key_down(f"key {event.digit}")
                else:
                    self._ended(event)
                self.events.put_nowait(event)
        self._arm()

    def _ended(self, event: DigitCollectionEnded) -> None:
        self._collecting = False
        log.info("call_id=%s digits %r ended: %s", self.call_id, event.digits, event.reason)

    # -- RTP in --------------------------------------------------------------------

    def _rtp_received(self, data: bytes, now: float) -> None:
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            return
        if packet.ssrc != self._remote_ssrc:
            if self._remote_ssrc is not None:
                log.debug("call_id=%s remote SSRC %08x -> %08x", self.call_id,
                          self._remote_ssrc, packet.ssrc)
            self._remote_ssrc = packet.ssrc
            self._telephone_event_receiver = TelephoneEventReceiver()
            self._detector = GoertzelDetector()
        payload_type = packet.payload_type
        if payload_type == self.telephone_event_payload_type:
            receiver = self._telephone_event_receiver
            digits = receiver.receive(timestamp=packet.timestamp,
                                      sequence_number=packet.sequence_number,
                                      marker=packet.marker, payload=packet.payload, now=now)
            if receiver.active_digit is not None:
                self._key_down(f"key {receiver.active_digit} down")
            self._digits(digits, now)
            return
        codec = self._audio_codecs.get(payload_type)
        if codec is None or not packet.payload:
            return
        if codec is not self._detector_codec:
            # one decoder per stream (G.722 keeps state); 16 kHz audio is
            # halved for the 8 kHz detector by a decimator that keeps state too
            self._detector_codec = codec
            self._detector = GoertzelDetector()
            self._decode = frame_decoder(codec)
            self._decimator = (HalfRateDecimator() if codec.sample_rate == 2 * INBAND_SAMPLE_RATE
                               else None)
        samples = self._decode(packet.payload)
        if self._decimator is not None:
            samples = self._decimator.feed(samples)
        elif codec.sample_rate != INBAND_SAMPLE_RATE:
            return
        detector = self._detector
        digits = detector.feed(samples, now)
        if detector.active_digit is not None:
            self._key_down(f"key {detector.active_digit} down")
        if digits:
            self._digits(digits, now)

    # -- timers --------------------------------------------------------------------

    def _arm(self) -> None:
        if self._digit_timer is not None:
            self._digit_timer.cancel()
            self._digit_timer = None
        if self.closed:
            return
        deadlines = [d for d in (self._telephone_event_receiver.next_deadline(),
                                 self.collector.next_deadline() if self._collecting else None)
                     if d is not None]
        if deadlines:
            delay_s = max(0.0, min(deadlines) - self.clock())
            self._digit_timer = self._loop.call_later(delay_s, self._timer_fired)

    def _timer_fired(self) -> None:
        self._digit_timer = None
        now = self.clock()
        digits = self._telephone_event_receiver.handle_timer(now)
        if digits:
            self._digits(digits, now)
        if self._collecting:
            for event in self.collector.handle_timer(now):
                if isinstance(event, DigitCollectionEnded):
                    self._ended(event)
                self.events.put_nowait(event)
        self._arm()

    # -- end -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the tone, cancel the timers, release the ports. Idempotent."""
        if self.closed:
            return
        self.stop_tone(reason="closed")
        self.closed = True
        if self._digit_timer is not None:
            self._digit_timer.cancel()
            self._digit_timer = None
        self.endpoint.close()
        log.debug("call_id=%s media closed (%d frames sent, %d packets received)",
                  self.call_id, self.frames_sent, self.endpoint.packets_received)


__all__ = ["FINISHED", "MediaSession", "MediaSessionError", "PromptCache"]
