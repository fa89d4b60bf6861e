"""G.722 wrapper around the optional G722 package."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from boomerang.media import codecs, g722

pytestmark = pytest.mark.skipif(not g722.G722_AVAILABLE, reason="G722 package not installed")


def _sine(frequency_hz: float, seconds: float, peak: float) -> np.ndarray:
    n = np.arange(int(16000 * seconds))
    return np.round(peak * np.sin(2 * np.pi * frequency_hz * n / 16000)).astype(np.int16)


def test_available_flag_matches_the_installed_package() -> None:
    installed = importlib.util.find_spec("G722") is not None
    assert installed == g722.G722_AVAILABLE


def test_a_20_ms_frame_is_320_samples_in_160_octets() -> None:
    encoded = g722.G722Encoder().encode(np.zeros(320, dtype=np.int16))
    assert len(encoded) == 160 == codecs.G722.frame_size(20)
    assert len(g722.G722Decoder().decode(encoded)) == 320


@pytest.mark.parametrize("frequency_hz", [425.0, 1000.0, 5000.0])
def test_decoded_tone_keeps_its_frequency_and_level(frequency_hz: float) -> None:
    pcm = _sine(frequency_hz, 1.0, 8000)
    decoded = g722.G722Decoder().decode(g722.G722Encoder().encode(pcm)).astype(float)
    settled = decoded[1600:]  # after the ADPCM and QMF settle
    spectrum = np.abs(np.fft.rfft(settled * np.hanning(len(settled)), 1 << 18))
    peak_hz = np.argmax(spectrum) * 16000 / (1 << 18)
    assert abs(peak_hz - frequency_hz) < 2
    rms = np.sqrt(np.mean(settled**2))
    assert 20 * np.log10(rms / (8000 / np.sqrt(2))) == pytest.approx(0, abs=0.5)


def test_streams_keep_separate_state() -> None:
    pcm = _sine(1000, 0.1, 8000)
    first = g722.G722Encoder()
    first.encode(_sine(300, 0.5, 12000))  # leave state behind in one encoder
    assert first.encode(pcm) != g722.G722Encoder().encode(pcm)
    assert g722.G722Encoder().encode(pcm) == g722.G722Encoder().encode(pcm)


def test_odd_sample_count_is_refused() -> None:
    with pytest.raises(ValueError):
        g722.G722Encoder().encode(np.zeros(3, dtype=np.int16))


def test_silence_frame_decodes_to_near_silence() -> None:
    frame = codecs.silence_frame(codecs.G722)
    decoded = g722.G722Decoder().decode(frame * 50)
    assert np.max(np.abs(decoded.astype(int))) < 50  # under -56 dBov
