"""WAV prompts: decode a RIFF/WAVE file's bytes into encoded codec frames.

Sans-I/O: the caller reads the file and passes its bytes. Accepted: PCM
WAV, 16-bit (also 8-bit unsigned, 24-bit and 32-bit integer PCM, reduced
to 16 bits), any channel count (mixed down to mono by averaging), any
sample rate. A rate other than the codec's is converted by a polyphase
windowed-sinc resampler (Kaiser window, numpy only): exact rational ratio
L/M, anti-alias cutoff at 0.9 of the lower Nyquist frequency, 32 input
samples under the filter (more when decimating).

``encode_prompt`` pads the last frame with silence and returns the frames;
``PromptFrames`` plays them with ``TonePlayer``-like ``next_frame``.
"""

from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .codecs import Codec, frame_encoder, silence_frame

RESAMPLER_TAPS_PER_PHASE = 32
RESAMPLER_CUTOFF = 0.9
RESAMPLER_KAISER_BETA = 8.0
RESAMPLER_BLOCK = 8192


class PromptError(ValueError):
    """A prompt file that is not a WAV we can play."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WavAudio:
    samples: npt.NDArray[np.int16]  # mono
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def read_wav(data: bytes) -> WavAudio:
    """Decode WAV bytes into mono 16-bit samples at the file's rate."""
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            sample_rate = reader.getframerate()
            raw = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as error:
        raise PromptError(f"not a PCM WAV file: {error}") from None
    if sample_rate <= 0 or channels <= 0:
        raise PromptError(f"WAV header with {channels} channels at {sample_rate} Hz")
    if width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int32)
    elif width == 3:
        triplets = np.frombuffer(raw[: len(raw) // 3 * 3], dtype=np.uint8).reshape(-1, 3)
        value = (triplets[:, 0].astype(np.int32) | (triplets[:, 1].astype(np.int32) << 8)
                 | (triplets[:, 2].astype(np.int32) << 16))
        samples = ((value ^ 0x800000) - 0x800000) >> 8
    elif width == 4:
        samples = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int32)
    else:
        raise PromptError(f"WAV sample width of {width} octets is not supported")
    usable = len(samples) // channels * channels
    if channels > 1:
        mono = samples[:usable].reshape(-1, channels).mean(axis=1)
        samples = np.round(mono).astype(np.int32)
    return WavAudio(samples=samples.astype(np.int16), sample_rate=sample_rate)


def _taps_per_phase(up: int, down: int) -> int:
    """Input samples under the filter: more when decimating (a narrower passband)."""
    taps = math.ceil(RESAMPLER_TAPS_PER_PHASE * max(1.0, down / up))
    return taps + taps % 2


def _lowpass_bank(up: int, down: int) -> npt.NDArray[np.float64]:
    """The polyphase filter bank: row p holds the taps of phase p."""
    taps_per_phase = _taps_per_phase(up, down)
    length = taps_per_phase * up
    # Cutoff in cycles per sample at the upsampled rate: the lower Nyquist, derated.
    cutoff = RESAMPLER_CUTOFF / (2 * max(up, down))
    n = np.arange(length) - length / 2  # row p, column o sits at p + (o - taps/2) * up
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(length, RESAMPLER_KAISER_BETA)
    taps *= up / taps.sum()  # unity gain at DC after the zero insertion
    # Row p: taps p, p + up, p + 2 up...
    bank: npt.NDArray[np.float64] = taps.reshape(taps_per_phase, up).T.copy()
    return bank


def resample(samples: npt.NDArray[np.int16], from_rate: int, to_rate: int,
             ) -> npt.NDArray[np.int16]:
    """Polyphase windowed-sinc resampling by the exact ratio ``to_rate/from_rate``."""
    if from_rate == to_rate:
        return samples
    divisor = math.gcd(from_rate, to_rate)
    up, down = to_rate // divisor, from_rate // divisor
    bank = _lowpass_bank(up, down)
    taps = _taps_per_phase(up, down)
    half = taps // 2
    padded = np.concatenate([np.zeros(taps), samples.astype(np.float64), np.zeros(taps)])
    count = len(samples) * up // down
    out = np.empty(count)
    offsets = np.arange(taps)
    for start in range(0, count, RESAMPLER_BLOCK):
        k = np.arange(start, min(start + RESAMPLER_BLOCK, count))
        position = k * down  # in upsampled samples
        # Output k sums x[i] * g(position - i * up) over the taps inputs
        # around position / up; i = position // up + half - o for column o.
        first = position // up + half + taps  # padded index of column 0
        phase = position % up
        window = padded[first[:, None] - offsets[None, :]]
        out[start:start + len(k)] = np.einsum("ij,ij->i", window, bank[phase])
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptFrames:
    """A prompt encoded for one codec and ptime."""

    codec: Codec
    ptime_ms: int
    frames: tuple[bytes, ...]
    silence: bytes

    @property
    def duration_ms(self) -> int:
        return len(self.frames) * self.ptime_ms


def encode_prompt(audio: WavAudio, codec: Codec, ptime_ms: int = 20) -> PromptFrames:
    """Resample ``audio`` to the codec's rate and encode it into frames."""
    samples = resample(audio.samples, audio.sample_rate, codec.sample_rate)
    frame_samples = codec.samples_per_frame(ptime_ms)
    samples = np.concatenate([samples, np.zeros(-len(samples) % frame_samples, np.int16)])
    encoded = frame_encoder(codec)(samples)
    frame_size = codec.frame_size(ptime_ms)
    frames = tuple(encoded[i:i + frame_size] for i in range(0, len(encoded), frame_size))
    return PromptFrames(codec=codec, ptime_ms=ptime_ms, frames=frames,
                        silence=silence_frame(codec, ptime_ms))


def load_prompt(data: bytes, codec: Codec, ptime_ms: int = 20) -> PromptFrames:
    """WAV bytes -> encoded frames: ``encode_prompt(read_wav(data), ...)``."""
    return encode_prompt(read_wav(data), codec, ptime_ms)
