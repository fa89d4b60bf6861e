"""The 16 -> 8 kHz decimator in front of the in-band DTMF detector."""

from __future__ import annotations

import numpy as np

from boomerang.media.decimate import HalfRateDecimator
from boomerang.media.dtmf_inband import GoertzelDetector, dtmf_signal, to_int16


def _tone(frequency_hz: float, seconds: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return to_int16(10_000 * np.sin(2 * np.pi * frequency_hz * t))


def test_framewise_output_equals_one_piece_output() -> None:
    signal = _tone(941.0, 0.5)
    whole = HalfRateDecimator().feed(signal)
    decimator = HalfRateDecimator()
    pieces = np.concatenate([decimator.feed(signal[i:i + 317])  # odd sizes: phase carried
                             for i in range(0, len(signal), 317)])
    assert np.array_equal(whole, pieces)
    assert len(whole) == len(signal) // 2


def test_dtmf_band_passes_and_the_upper_band_is_removed() -> None:
    def level(samples: np.ndarray) -> float:
        return float(np.sqrt(np.mean(samples[200:].astype(np.float64) ** 2)))

    passed = HalfRateDecimator().feed(_tone(1633.0, 0.3))
    assert abs(level(passed) / level(_tone(1633.0, 0.3)) - 1) < 0.05
    # 6 kHz would alias onto 2 kHz at 8 kHz: it must be filtered out first
    stopped = HalfRateDecimator().feed(_tone(6000.0, 0.3))
    assert level(stopped) < 0.01 * level(_tone(6000.0, 0.3))


def test_16_khz_dtmf_is_detected_after_decimation_in_20_ms_frames() -> None:
    pcm = to_int16(dtmf_signal("1590#", tone_ms=80, pause_ms=80, lead_ms=40,
                               sample_rate=16_000))
    decimator = HalfRateDecimator()
    detector = GoertzelDetector()
    digits = []
    for index, start in enumerate(range(0, len(pcm) - 319, 320)):
        digits += detector.feed(decimator.feed(pcm[start:start + 320]), (index + 1) * 0.02)
    digits += detector.feed(np.zeros(1600, dtype=np.int16), len(pcm) / 16_000 + 0.2)
    assert "".join(d.digit for d in digits) == "1590#"
