"""Call-progress tones: national plans (ITU-T E.180) and precomputed frames.

A ``Tone`` is a cadence: a tuple of ``ToneSegment`` (frequencies, level in
dBm0 per frequency component, duration), repeated or played once. A
``TonePlan`` holds a country's dial, ringback, busy, congestion, special
information (SIT), call-waiting and warning tones. Frequencies and cadences
follow ITU-T E.180 Supplement 2 (the national entries) and, for the UK,
BT SIN 350; levels are typical values (E.180 §2 recommends -10 dBm0
+/- 5 dB for single tones; the North American precise tone plan gives the
US levels), which the operator cannot change yet.

Rendering: ``render_tone`` computes a tone's full loop ONCE per codec and
ptime into encoded frames, so a stream playing it costs a list index per
packet (``TonePlayer.next_frame``). The loop is chosen to repeat
seamlessly: a continuous tone loops after a whole number of periods of
every component that is also a whole number of frames; a cadenced tone
loops after the fewest cadence cycles that fill whole frames, each burst
starting at phase zero with 2 ms raised-cosine edges (no clicks). For the
stateful G.722 encoder the loop is encoded after a warm-up pass, so the
encoder state at the loop's end matches its start. ``ToneBank`` keeps the
rendered frames for a process; share one.

Pacing is the I/O layer's job: it sends frame ``n`` of a stream at
``frame_due_time(start, n, ptime_ms)`` (an absolute schedule, no drift).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from .codecs import G722, Codec, frame_encoder, silence_frame

EDGE_RAMP_MS = 2.0
MAX_LOOP_S = 60.0
G722_WARM_UP_S = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ToneSegment:
    """``frequencies_hz`` empty means silence; ``duration_ms`` None means
    "for ever" (a continuous tone, the only segment of its tone)."""

    frequencies_hz: tuple[float, ...] = ()
    duration_ms: int | None = None
    level_dbm0: float = -10.0

    @property
    def silent(self) -> bool:
        return not self.frequencies_hz


@dataclass(frozen=True, slots=True, kw_only=True)
class Tone:
    name: str
    segments: tuple[ToneSegment, ...]
    repeat: bool = True

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError(f"tone {self.name!r} has no segments")
        open_ended = [s for s in self.segments if s.duration_ms is None]
        if open_ended and (len(self.segments) != 1 or not self.repeat):
            raise ValueError(f"tone {self.name!r}: only a lone repeated segment may be continuous")
        if any(s.duration_ms is not None and s.duration_ms <= 0 for s in self.segments):
            raise ValueError(f"tone {self.name!r}: segment durations must be positive")

    @property
    def continuous(self) -> bool:
        return self.segments[0].duration_ms is None

    @property
    def cycle_ms(self) -> int | None:
        """Length of one cadence cycle; None for a continuous tone."""
        if self.continuous:
            return None
        return sum(s.duration_ms or 0 for s in self.segments)


@dataclass(frozen=True, slots=True, kw_only=True)
class TonePlan:
    country: str
    description: str
    dial: Tone
    ringback: Tone
    busy: Tone
    congestion: Tone
    special_information: Tone
    call_waiting: Tone
    warning: Tone

    def tone(self, name: str) -> Tone:
        """A tone by its field name ("dial", "busy"...)."""
        if name not in TONE_NAMES:
            raise ValueError(f"no tone {name!r}; tones are {', '.join(TONE_NAMES)}")
        tone: Tone = getattr(self, name)
        return tone


TONE_NAMES = ("dial", "ringback", "busy", "congestion", "special_information",
              "call_waiting", "warning")


def continuous(name: str, frequencies_hz: tuple[float, ...], level_dbm0: float) -> Tone:
    return Tone(name=name, segments=(
        ToneSegment(frequencies_hz=frequencies_hz, level_dbm0=level_dbm0),))


def cadence(name: str, frequencies_hz: tuple[float, ...], level_dbm0: float,
            *on_off_ms: int, repeat: bool = True) -> Tone:
    """A tone switched on and off: ``on, off, on, off...`` durations in ms."""
    segments = tuple(
        ToneSegment(frequencies_hz=frequencies_hz if i % 2 == 0 else (),
                    duration_ms=duration_ms, level_dbm0=level_dbm0)
        for i, duration_ms in enumerate(on_off_ms))
    return Tone(name=name, segments=segments, repeat=repeat)


def special_information_tone(level_dbm0: float, *, silence_ms: int = 1000,
                             frequencies_hz: tuple[float, float, float] = (950, 1400, 1800),
                             ) -> Tone:
    """E.180 §2.6: 950, 1400 and 1800 Hz, 330 ms each, then silence."""
    segments = tuple(ToneSegment(frequencies_hz=(f,), duration_ms=330, level_dbm0=level_dbm0)
                     for f in frequencies_hz)
    return Tone(name="special_information",
                segments=(*segments, ToneSegment(duration_ms=silence_ms)))


def _european_plan(country: str, description: str, *, frequency_hz: float = 425,
                   level_dbm0: float = -10.0, dial: Tone | None = None,
                   ringback_ms: tuple[int, ...] = (1000, 4000),
                   busy_ms: tuple[int, ...] = (500, 500),
                   congestion_ms: tuple[int, ...] = (250, 250),
                   call_waiting_ms: tuple[int, ...] = (200, 200, 200, 9000)) -> TonePlan:
    frequencies = (frequency_hz,)
    return TonePlan(
        country=country,
        description=description,
        dial=dial or continuous("dial", frequencies, level_dbm0),
        ringback=cadence("ringback", frequencies, level_dbm0, *ringback_ms),
        busy=cadence("busy", frequencies, level_dbm0, *busy_ms),
        congestion=cadence("congestion", frequencies, level_dbm0, *congestion_ms),
        special_information=special_information_tone(level_dbm0),
        call_waiting=cadence("call_waiting", frequencies, level_dbm0, *call_waiting_ms),
        warning=cadence("warning", frequencies, level_dbm0, 200, 200, 200, 200, 200, 200,
                        repeat=False),
    )


def _uk_plan() -> TonePlan:
    return TonePlan(
        country="uk",
        description="United Kingdom (BT SIN 350)",
        dial=continuous("dial", (350, 440), -13.0),
        ringback=cadence("ringback", (400, 450), -13.0, 400, 200, 400, 2000),
        busy=cadence("busy", (400,), -10.0, 375, 375),
        # Equipment engaged tone: the 225 ms burst is 6 dB louder (BS 6305).
        congestion=Tone(name="congestion", segments=(
            ToneSegment(frequencies_hz=(400,), duration_ms=400, level_dbm0=-13.0),
            ToneSegment(duration_ms=350),
            ToneSegment(frequencies_hz=(400,), duration_ms=225, level_dbm0=-7.0),
            ToneSegment(duration_ms=525),
        )),
        special_information=special_information_tone(-13.0),
        call_waiting=cadence("call_waiting", (400,), -13.0, 100, 4000),
        warning=cadence("warning", (400,), -13.0, 200, 200, 200, 200, 200, 200, repeat=False),
    )


def _us_plan() -> TonePlan:
    # North American precise audible tone plan (E.300-series Supplement 3).
    return TonePlan(
        country="us",
        description="United States / North America (precise tone plan)",
        dial=continuous("dial", (350, 440), -13.0),
        ringback=cadence("ringback", (440, 480), -19.0, 2000, 4000),
        busy=cadence("busy", (480, 620), -24.0, 500, 500),
        congestion=cadence("congestion", (480, 620), -24.0, 250, 250),
        special_information=special_information_tone(-13.0),
        call_waiting=cadence("call_waiting", (440,), -13.0, 300, 9700),
        warning=cadence("warning", (440,), -13.0, 200, 200, 200, 200, 200, 200, repeat=False),
    )


def _build_plans() -> MappingProxyType[str, TonePlan]:
    plans = (
        _european_plan("eu", "Generic European (CEPT, 425 Hz)"),
        _european_plan("pl", "Poland", busy_ms=(500, 500), congestion_ms=(500, 500),
                       call_waiting_ms=(150, 150, 150, 4000)),
        _european_plan("de", "Germany", busy_ms=(480, 480), congestion_ms=(240, 240),
                       call_waiting_ms=(200, 200, 200, 5000)),
        _european_plan("fr", "France (440 Hz)", frequency_hz=440, ringback_ms=(1500, 3500),
                       congestion_ms=(250, 250), call_waiting_ms=(300, 9700)),
        _european_plan("it", "Italy", dial=cadence("dial", (425,), -10.0, 200, 200, 600, 1000),
                       congestion_ms=(200, 200),
                       call_waiting_ms=(400, 100, 250, 100, 150, 14000)),
        _european_plan("es", "Spain", ringback_ms=(1500, 3000), busy_ms=(200, 200),
                       congestion_ms=(200, 200, 200, 200, 200, 600),
                       call_waiting_ms=(175, 175, 175, 3500)),
        _european_plan("nl", "Netherlands", congestion_ms=(250, 250),
                       call_waiting_ms=(500, 9500)),
        _uk_plan(),
        _us_plan(),
    )
    table = {plan.country: plan for plan in plans}
    table["gb"] = table["uk"]
    return MappingProxyType(table)


TONE_PLANS = _build_plans()


def tone_plan(country: str) -> TonePlan:
    """The plan of a country code (``pl``, ``de``, ``uk``/``gb``, ``us``, ``eu``...)."""
    plan = TONE_PLANS.get(country.lower())
    if plan is None:
        raise ValueError(f"no tone plan {country!r}; known: {', '.join(sorted(TONE_PLANS))}")
    return plan


# ---------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True, slots=True, kw_only=True)
class ToneFrames:
    """A tone rendered for one codec and ptime: the encoded frames of its
    loop (identical frames share one bytes object)."""

    tone: Tone
    codec: Codec
    ptime_ms: int
    frames: tuple[bytes, ...]
    silence: bytes

    @property
    def loop(self) -> bool:
        return self.tone.repeat

    @property
    def duration_ms(self) -> int:
        return len(self.frames) * self.ptime_ms


def _edge_ramp(count: int, sample_rate: int) -> npt.NDArray[np.float64]:
    ramp_samples = min(int(sample_rate * EDGE_RAMP_MS / 1000), count // 2)
    envelope = np.ones(count)
    if ramp_samples:
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp_samples) + 0.5) / ramp_samples)
        envelope[:ramp_samples] = rise
        envelope[count - ramp_samples:] = rise[::-1]
    return envelope


def _burst(segment: ToneSegment, count: int, codec: Codec) -> npt.NDArray[np.float64]:
    if segment.silent:
        return np.zeros(count)
    n = np.arange(count)
    peak = codec.peak_for_dbm0(segment.level_dbm0)
    signal = np.zeros(count)
    for frequency_hz in segment.frequencies_hz:
        signal += peak * np.sin(2 * np.pi * frequency_hz * n / codec.sample_rate)
    return signal


def _continuous_loop_samples(frequencies_hz: tuple[float, ...], sample_rate: int,
                             frame_samples: int) -> int:
    """The fewest samples holding whole periods of every component and whole frames."""
    loop = frame_samples
    for frequency_hz in frequencies_hz:
        cycles_per_sample = Fraction(frequency_hz).limit_denominator(1000) / sample_rate
        loop = math.lcm(loop, cycles_per_sample.denominator)
    return loop


def tone_pcm(tone: Tone, codec: Codec, ptime_ms: int = 20) -> npt.NDArray[np.int16]:
    """The linear PCM of one seamless loop (or the one pass) of ``tone``."""
    sample_rate = codec.sample_rate
    frame_samples = codec.samples_per_frame(ptime_ms)
    if tone.continuous:
        segment = tone.segments[0]
        count = _continuous_loop_samples(segment.frequencies_hz, sample_rate, frame_samples)
        if count > MAX_LOOP_S * sample_rate:
            raise ValueError(f"tone {tone.name!r} does not loop within {MAX_LOOP_S} s")
        signal = _burst(segment, count, codec)
    else:
        parts = []
        for segment in tone.segments:
            count = (segment.duration_ms or 0) * sample_rate // 1000
            parts.append(_burst(segment, count, codec) * _edge_ramp(count, sample_rate))
        cycle = np.concatenate(parts)
        if tone.repeat:
            cycles = frame_samples // math.gcd(len(cycle), frame_samples)
            signal = np.tile(cycle, cycles)
        else:
            signal = np.concatenate([cycle, np.zeros(-len(cycle) % frame_samples)])
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)


def render_tone(tone: Tone, codec: Codec, ptime_ms: int = 20) -> ToneFrames:
    """Encode ``tone`` into ``codec`` frames of ``ptime_ms`` (see the module doc)."""
    pcm = tone_pcm(tone, codec, ptime_ms)
    encode = frame_encoder(codec)
    frame_samples = codec.samples_per_frame(ptime_ms)
    if codec is G722 and tone.repeat:
        # Run the loop through the encoder until its ADPCM state has settled
        # into the loop, then keep the last pass.
        passes = max(2, math.ceil(G722_WARM_UP_S * codec.sample_rate / len(pcm)) + 1)
        for _ in range(passes - 1):
            encode(pcm)
    encoded = encode(pcm)
    frame_size = codec.frame_size(ptime_ms)
    interned: dict[bytes, bytes] = {}
    frames = tuple(
        interned.setdefault(chunk, chunk)
        for chunk in (encoded[i:i + frame_size] for i in range(0, len(encoded), frame_size)))
    assert len(frames) * frame_samples == len(pcm)
    return ToneFrames(tone=tone, codec=codec, ptime_ms=ptime_ms, frames=frames,
                      silence=silence_frame(codec, ptime_ms))


class ToneBank:
    """Rendered tones of a process, each computed once per (tone, codec, ptime).

    The application makes one and passes it to whoever plays tones.
    """

    __slots__ = ("_rendered",)

    def __init__(self) -> None:
        self._rendered: dict[tuple[Tone, str, int], ToneFrames] = {}

    def frames(self, tone: Tone, codec: Codec, ptime_ms: int = 20) -> ToneFrames:
        key = (tone, codec.name, ptime_ms)
        rendered = self._rendered.get(key)
        if rendered is None:
            rendered = self._rendered[key] = render_tone(tone, codec, ptime_ms)
        return rendered

    def player(self, tone: Tone, codec: Codec, ptime_ms: int = 20) -> TonePlayer:
        return TonePlayer(self.frames(tone, codec, ptime_ms))

    def __len__(self) -> int:
        return len(self._rendered)


class TonePlayer:
    """Hands out a rendered tone frame by frame: a list index per packet.

    A repeating tone loops for ever; a one-shot tone gives its frames
    (``finished`` is set with the last one), then silence frames.
    """

    __slots__ = ("_count", "_frames", "_index", "_loop", "_silence", "finished")

    def __init__(self, frames: ToneFrames) -> None:
        self._frames = frames.frames
        self._count = len(frames.frames)
        self._loop = frames.loop
        self._silence = frames.silence
        self._index = 0
        self.finished = False

    def next_frame(self) -> bytes:
        index = self._index
        if index < self._count:
            frame = self._frames[index]
            index += 1
            if index == self._count:
                if self._loop:
                    index = 0
                else:
                    self.finished = True
            self._index = index
            return frame
        return self._silence

    @property
    def position(self) -> int:
        """Index of the next frame within the loop."""
        return self._index


def frame_due_time(start: float, n: int, ptime_ms: int) -> float:
    """When frame ``n`` (from 0) of a stream started at ``start`` is due."""
    return start + n * ptime_ms / 1000
