"""WAV prompts: reading, mixdown, resampling, framing and encoding."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from boomerang.media import codecs, g722
from boomerang.media.prompts import PromptError, encode_prompt, load_prompt, read_wav, resample


def _wav(samples: np.ndarray, sample_rate: int, channels: int = 1, width: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(sample_rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


def _sine(frequency_hz: float, seconds: float, sample_rate: int, peak: float = 8000) -> np.ndarray:
    n = np.arange(int(seconds * sample_rate))
    return np.round(peak * np.sin(2 * np.pi * frequency_hz * n / sample_rate)).astype(np.int16)


def _peak_hz(x: np.ndarray, sample_rate: int) -> float:
    size = 1 << 18
    spectrum = np.abs(np.fft.rfft(x.astype(float) * np.hanning(len(x)), size))
    return float(np.argmax(spectrum) * sample_rate / size)


def test_8khz_mono_prompt_encodes_sample_for_sample_to_pcmu() -> None:
    pcm = _sine(1000, 0.5, 8000)
    prompt = load_prompt(_wav(pcm, 8000), codecs.PCMU)
    assert len(prompt.frames) == 25 and all(len(f) == 160 for f in prompt.frames)
    decoded = codecs.frame_decoder(codecs.PCMU)(b"".join(prompt.frames)).astype(int)
    assert np.max(np.abs(decoded - pcm)) <= 256  # G.711 half step at 8000
    assert prompt.duration_ms == 500


def test_last_frame_is_padded_with_silence() -> None:
    prompt = load_prompt(_wav(_sine(500, 0.03, 8000), 8000), codecs.PCMA)
    assert len(prompt.frames) == 2
    decoded = codecs.frame_decoder(codecs.PCMA)(prompt.frames[1])
    assert np.all(np.abs(decoded[80:]) <= 8)  # 10 ms of sound, then A-law silence
    assert prompt.silence == b"\xd5" * 160


def test_stereo_is_mixed_down_by_averaging() -> None:
    left = np.full(800, 1000, dtype=np.int16)
    right = np.full(800, 3000, dtype=np.int16)
    interleaved = np.stack([left, right], axis=1).reshape(-1)
    audio = read_wav(_wav(interleaved, 8000, channels=2))
    assert audio.sample_rate == 8000 and len(audio.samples) == 800
    assert np.all(audio.samples == 2000)


def test_8_bit_unsigned_is_scaled_to_16_bit() -> None:
    audio = read_wav(_wav(np.array([128, 255, 0], dtype=np.uint8), 8000, width=1))
    assert audio.samples.tolist() == [0, 127 * 256, -128 * 256]


@pytest.mark.parametrize("source_rate", [11025, 16000, 22050, 44100, 48000])
def test_other_rates_are_resampled_keeping_frequency_and_level(source_rate: int) -> None:
    audio = read_wav(_wav(_sine(1000, 1.0, source_rate), source_rate))
    prompt = encode_prompt(audio, codecs.PCMU)
    assert len(prompt.frames) == 50
    decoded = codecs.frame_decoder(codecs.PCMU)(b"".join(prompt.frames)).astype(float)
    body = decoded[400:-400]
    assert abs(_peak_hz(body, 8000) - 1000) < 1
    level_db = 20 * np.log10(np.sqrt(np.mean(body**2)) / (8000 / np.sqrt(2)))
    assert abs(level_db) < 0.2


def test_resampling_removes_what_the_lower_rate_cannot_carry() -> None:
    # 6 kHz at 16 kHz would alias to 2 kHz at 8 kHz: the filter must remove it.
    out = resample(_sine(6000, 1.0, 16000), 16000, 8000).astype(float)
    assert np.max(np.abs(out[200:-200])) < 8000 * 10 ** (-40 / 20)


def test_resampling_matches_the_analytic_sine_within_a_few_lsb() -> None:
    out = resample(_sine(1000, 1.0, 44100, 10000), 44100, 8000).astype(float)
    n = np.arange(len(out))
    reference = 10000 * np.sin(2 * np.pi * 1000 * n / 8000)
    assert len(out) == 8000
    assert np.max(np.abs(out - reference)[300:-300]) <= 3


def test_garbage_and_unsupported_files_raise_prompt_error() -> None:
    with pytest.raises(PromptError):
        read_wav(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(PromptError):
        read_wav(b"not a wav at all")
    assert issubclass(PromptError, ValueError)


@pytest.mark.skipif(not g722.G722_AVAILABLE, reason="G722 package not installed")
def test_16khz_prompt_encodes_to_g722_frames() -> None:
    prompt = load_prompt(_wav(_sine(3000, 0.5, 16000), 16000), codecs.G722)
    assert len(prompt.frames) == 25 and all(len(f) == 160 for f in prompt.frames)
    decoded = codecs.frame_decoder(codecs.G722)(b"".join(prompt.frames))
    assert abs(_peak_hz(decoded[800:], 16000) - 3000) < 2
