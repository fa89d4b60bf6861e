"""Codec descriptors and the payload-type map of a negotiated session.

A ``Codec`` says what the RTP and DSP layers need: its name (as in the SDP
rtpmap), its static payload type (RFC 3551), its RTP clock rate, the PCM
sample rate the DSP works at, and how big a frame is for a ptime.

``PayloadMap.from_pairs([(pt, name, clock_rate), ...])`` is built from what
the SDP negotiation agreed, and maps both ways between payload types and
codecs. ``frame_encoder``/``frame_decoder`` give a per-stream callable
(G.711 is stateless, G.722 keeps ADPCM state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from . import g711, g722


@dataclass(frozen=True, slots=True, kw_only=True)
class Codec:
    """``clock_rate`` is the RTP timestamp rate; ``sample_rate`` the PCM rate
    (they differ only for G.722). ``bits_per_sample`` is the coded size of
    one PCM sample; 0 for events that are not audio samples."""

    name: str
    static_payload_type: int | None
    clock_rate: int
    sample_rate: int
    bits_per_sample: int
    overload_dbm0: float = g711.ULAW_OVERLOAD_DBM0
    overload_linear: int = g711.ULAW_OVERLOAD_LINEAR

    @property
    def is_audio(self) -> bool:
        return self.bits_per_sample > 0

    def samples_per_frame(self, ptime_ms: int) -> int:
        """PCM samples in a frame of ``ptime_ms``."""
        return self.sample_rate * ptime_ms // 1000

    def timestamp_step(self, ptime_ms: int) -> int:
        """RTP timestamp advance per frame of ``ptime_ms``."""
        return self.clock_rate * ptime_ms // 1000

    def frame_size(self, ptime_ms: int) -> int:
        """Octets of payload in a frame of ``ptime_ms``."""
        return self.samples_per_frame(ptime_ms) * self.bits_per_sample // 8

    def peak_for_dbm0(self, level_dbm0: float) -> float:
        """Peak 16-bit amplitude of a sine at ``level_dbm0``."""
        return float(self.overload_linear * 10 ** ((level_dbm0 - self.overload_dbm0) / 20))


PCMU = Codec(name="PCMU", static_payload_type=0, clock_rate=8000, sample_rate=8000,
             bits_per_sample=8)
PCMA = Codec(name="PCMA", static_payload_type=8, clock_rate=8000, sample_rate=8000,
             bits_per_sample=8, overload_dbm0=g711.ALAW_OVERLOAD_DBM0,
             overload_linear=g711.ALAW_OVERLOAD_LINEAR)
# G.722 levels: referred to 16-bit full scale the way A-law does (an assumption:
# G.722 defines its overload point on its own 14-bit input, about 3 dB above 0 dBm0).
G722 = Codec(name="G722", static_payload_type=9, clock_rate=8000,
             sample_rate=g722.G722_SAMPLE_RATE, bits_per_sample=4,
             overload_dbm0=g711.ALAW_OVERLOAD_DBM0, overload_linear=g711.ALAW_OVERLOAD_LINEAR)
TELEPHONE_EVENT = Codec(name="telephone-event", static_payload_type=None, clock_rate=8000,
                        sample_rate=8000, bits_per_sample=0)

CODECS_BY_NAME = MappingProxyType({
    codec.name.lower(): codec for codec in (PCMU, PCMA, G722, TELEPHONE_EVENT)
})


def codec_by_name(name: str) -> Codec | None:
    """The codec of an SDP rtpmap encoding name (case-insensitive), if we have it."""
    return CODECS_BY_NAME.get(name.lower())


def audio_codecs_available() -> tuple[Codec, ...]:
    """Audio codecs this installation can encode, in our order of preference."""
    if g722.G722_AVAILABLE:
        return (PCMU, PCMA, G722)
    return (PCMU, PCMA)


class PayloadMap:
    """Payload type <-> codec for one negotiated session (immutable).

    Pairs whose name we do not know, or whose clock rate differs from the
    codec's, are left out (they cannot be ours to encode or decode);
    ``ignored`` lists them.
    """

    __slots__ = ("_by_name", "_by_payload_type", "ignored")

    def __init__(self, by_payload_type: dict[int, Codec],
                 ignored: tuple[tuple[int, str, int], ...] = ()) -> None:
        self._by_payload_type = MappingProxyType(dict(by_payload_type))
        by_name: dict[str, int] = {}
        for payload_type, codec in sorted(by_payload_type.items()):
            by_name.setdefault(codec.name.lower(), payload_type)
        self._by_name = MappingProxyType(by_name)
        self.ignored = ignored

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, str, int]]) -> PayloadMap:
        by_payload_type: dict[int, Codec] = {}
        ignored = []
        for payload_type, name, clock_rate in pairs:
            if not 0 <= payload_type <= 127:
                raise ValueError(f"payload type {payload_type} outside 0..127")
            codec = codec_by_name(name)
            if codec is None or codec.clock_rate != clock_rate:
                ignored.append((payload_type, name, clock_rate))
                continue
            by_payload_type[payload_type] = codec
        return cls(by_payload_type, tuple(ignored))

    @classmethod
    def static(cls) -> PayloadMap:
        """The RFC 3551 static assignments, for a session without rtpmap lines."""
        return cls({c.static_payload_type: c for c in (PCMU, PCMA, G722)
                    if c.static_payload_type is not None})

    def codec(self, payload_type: int) -> Codec | None:
        return self._by_payload_type.get(payload_type)

    def payload_type(self, name: str) -> int | None:
        """The (lowest) payload type negotiated for a codec name."""
        return self._by_name.get(name.lower())

    def __contains__(self, payload_type: object) -> bool:
        return payload_type in self._by_payload_type

    def __iter__(self) -> Iterator[tuple[int, Codec]]:
        return iter(sorted(self._by_payload_type.items()))

    def __len__(self) -> int:
        return len(self._by_payload_type)

    def __repr__(self) -> str:
        pairs = ", ".join(f"{pt}={codec.name}" for pt, codec in self)
        return f"PayloadMap({pairs})"


FrameEncoder = Callable[[npt.ArrayLike], bytes]
FrameDecoder = Callable[[bytes], npt.NDArray[np.int16]]


def frame_encoder(codec: Codec) -> FrameEncoder:
    """A callable encoding PCM at ``codec.sample_rate``; one per stream (state)."""
    if codec is PCMU:
        return g711.ulaw_encode
    if codec is PCMA:
        return g711.alaw_encode
    if codec is G722:
        return g722.G722Encoder().encode
    raise ValueError(f"{codec.name} is not an audio codec we can encode")


def frame_decoder(codec: Codec) -> FrameDecoder:
    """A callable decoding to PCM at ``codec.sample_rate``; one per stream (state)."""
    if codec is PCMU:
        return g711.ulaw_decode
    if codec is PCMA:
        return g711.alaw_decode
    if codec is G722:
        return g722.G722Decoder().decode
    raise ValueError(f"{codec.name} is not an audio codec we can decode")


def silence_frame(codec: Codec, ptime_ms: int = 20) -> bytes:
    """One frame of silence, fit to be repeated: PCMU 0xFF, PCMA 0xD5, and for
    G.722 the last frame of a second of encoded zeros (the ADPCM encoder's
    first frames of zeros are not: repeated, they decode to a +/-400 buzz)."""
    if codec is PCMU:
        return bytes((g711.PCMU_SILENCE,)) * codec.frame_size(ptime_ms)
    if codec is PCMA:
        return bytes((g711.PCMA_SILENCE,)) * codec.frame_size(ptime_ms)
    samples = codec.samples_per_frame(ptime_ms)
    frames = max(1, 1000 // ptime_ms)
    encoded = frame_encoder(codec)(np.zeros(samples * frames, dtype=np.int16))
    return encoded[-codec.frame_size(ptime_ms):]
