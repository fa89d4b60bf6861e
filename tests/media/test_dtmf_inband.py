"""In-band DTMF detector: the ITU-T Q.24 acceptance figures, and talk-off."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from boomerang.media.digits import DigitSource
from boomerang.media.dtmf_inband import GoertzelDetector, dtmf_signal, dtmf_tone, to_int16

try:
    from boomerang.media.g711 import ulaw_decode, ulaw_encode

    def g711(samples: np.ndarray) -> np.ndarray:
        return ulaw_decode(ulaw_encode(to_int16(samples))).astype(np.float64)
except ImportError:  # pragma: no cover - until g711.py exists
    def g711(samples: np.ndarray) -> np.ndarray:
        return samples

ALL = "0123456789*#ABCD"


def detect(samples: np.ndarray, block: int = 160) -> list:
    detector = GoertzelDetector()
    pcm = g711(np.concatenate((samples, np.zeros(1600))))
    out = []
    for start in range(0, pcm.size, block):
        out += detector.feed(pcm[start:start + block], now=(start + block) / 8000)
    return out


def digits(samples: np.ndarray) -> str:
    return "".join(event.digit for event in detect(samples))


def test_all_sixteen_digits_are_detected_in_order_with_times_and_durations() -> None:
    events = detect(dtmf_signal(ALL, tone_ms=70, pause_ms=60, lead_ms=13))
    assert "".join(e.digit for e in events) == ALL
    assert all(e.source == DigitSource.INBAND for e in events)
    starts = [0.013 + i * 0.13 for i in range(16)]
    assert [e.time for e in events] == pytest.approx(starts, abs=0.004)
    assert all(abs(e.duration_ms - 70) <= 4 for e in events)


def test_block_size_does_not_change_the_result() -> None:
    signal = dtmf_signal("159#", tone_ms=50, pause_ms=50, lead_ms=7)
    assert digits(signal) == "159#"
    detector = GoertzelDetector()
    pcm = g711(np.concatenate((signal, np.zeros(1600))))
    odd = []
    for start in range(0, pcm.size, 37):
        odd += detector.feed(pcm[start:start + 37], now=0.0)
    assert "".join(e.digit for e in odd) == "159#"


@pytest.mark.parametrize("deviation", [-0.015, -0.01, 0.01, 0.015])
def test_frequency_deviation_within_1_5_percent_is_accepted(deviation: float) -> None:
    assert digits(dtmf_signal(ALL, low_deviation=deviation, high_deviation=deviation)) == ALL
    assert digits(dtmf_signal(ALL, low_deviation=deviation)) == ALL
    assert digits(dtmf_signal(ALL, high_deviation=-deviation)) == ALL


@pytest.mark.parametrize("deviation", [-0.05, -0.035, 0.035, 0.05])
def test_frequency_deviation_beyond_3_5_percent_is_rejected(deviation: float) -> None:
    assert digits(dtmf_signal(ALL, low_deviation=deviation)) == ""
    assert digits(dtmf_signal(ALL, high_deviation=deviation)) == ""


@pytest.mark.parametrize(("low_dbm0", "high_dbm0"), [(-6, -14), (-10, -6), (-8, -8)])
def test_normal_twist_8_db_and_reverse_twist_4_db_are_accepted(
    low_dbm0: float, high_dbm0: float
) -> None:
    assert digits(dtmf_signal(ALL, low_dbm0=low_dbm0, high_dbm0=high_dbm0)) == ALL


@pytest.mark.parametrize(("low_dbm0", "high_dbm0"), [(-6, -18), (-14, -6)])
def test_excessive_twist_is_rejected(low_dbm0: float, high_dbm0: float) -> None:
    assert digits(dtmf_signal(ALL, low_dbm0=low_dbm0, high_dbm0=high_dbm0)) == ""


@pytest.mark.parametrize("lead_samples", range(0, 40, 7))
def test_40_ms_tones_are_detected_and_30_ms_tones_rejected(lead_samples: int) -> None:
    lead_ms = 10 + lead_samples / 8
    assert digits(dtmf_signal("2580", tone_ms=40, pause_ms=60, lead_ms=lead_ms)) == "2580"
    assert digits(dtmf_signal("2580", tone_ms=30, pause_ms=60, lead_ms=lead_ms)) == ""


@pytest.mark.parametrize("lead_samples", range(0, 80, 13))
def test_a_40_ms_pause_separates_two_equal_digits(lead_samples: int) -> None:
    lead_ms = 10 + lead_samples / 8
    assert digits(dtmf_signal("55", tone_ms=60, pause_ms=40, lead_ms=lead_ms)) == "55"


@pytest.mark.parametrize("lead_samples", range(0, 80, 23))
def test_digits_without_any_pause_between_them_are_each_detected(lead_samples: int) -> None:
    signal = dtmf_signal("1234567890", tone_ms=80, pause_ms=0, lead_ms=10 + lead_samples / 8)
    assert digits(signal) == "1234567890"


def test_a_20_ms_dropout_does_not_split_a_digit() -> None:
    tone = dtmf_tone("6", 200)
    tone[640:800] = 0.0  # one lost 20 ms packet, tone continues in phase
    assert digits(np.concatenate((np.zeros(123), tone))) == "6"


def test_minus_26_dbm0_tones_in_white_noise_at_10_db_snr() -> None:
    rng = np.random.default_rng(26)
    signal = dtmf_signal(ALL, tone_ms=60, pause_ms=60, low_dbm0=-26, high_dbm0=-26)
    noise_power = 2 * (22656 * 10 ** (-26 / 20)) ** 2 / 2 / 10  # both tones / 10 dB
    noisy = signal + rng.normal(0, np.sqrt(noise_power), signal.size)
    assert digits(noisy) == ALL


def test_white_noise_alone_gives_no_digits() -> None:
    rng = np.random.default_rng(3)
    assert digits(rng.normal(0, 2000, 8000 * 10)) == ""


def test_a_single_tone_gives_no_digit() -> None:
    n = np.arange(8000)
    assert digits(8000 * np.sin(2 * np.pi * 697 * n / 8000)) == ""
    assert digits(8000 * np.sin(2 * np.pi * 1336 * n / 8000)) == ""


def test_dial_tone_frequencies_give_no_digit() -> None:
    n = np.arange(16000)
    dial = 6000 * (np.sin(2 * np.pi * 350 * n / 8000) + np.sin(2 * np.pi * 440 * n / 8000))
    assert digits(dial) == ""


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                    reason="espeak-ng or sox not installed")
def test_synthetic_speech_gives_no_false_digits(tmp_path: Path) -> None:
    text = ("One two three four five six seven eight nine zero star hash. "
            "Please call me back at five five five, one two three four. "
            "Hello, can you hear me? The quick brown fox jumps over the lazy dog.")
    speech = []
    for voice, speed, pitch in (("en-us", "160", "50"), ("en-gb+f3", "200", "80")):
        raw, low = tmp_path / f"{voice}.wav", tmp_path / f"{voice}-8k.wav"
        subprocess.run(["timeout", "30", "espeak-ng", "-v", voice, "-s", speed, "-p", pitch,
                        "-w", str(raw), text], check=True, capture_output=True)
        subprocess.run(["timeout", "30", "sox", str(raw), "-r", "8000", "-c", "1", "-b", "16",
                        str(low)], check=True, capture_output=True)
        with wave.open(str(low)) as handle:
            speech.append(np.frombuffer(handle.readframes(handle.getnframes()), np.int16))
    pcm = np.concatenate(speech).astype(np.float64)
    assert pcm.size > 8000 * 10
    for gain in (0.3, 1.0, 2.0):
        assert digits(pcm * gain) == ""
