"""Tone plans rendered to frames: decoded back and measured.

Frequencies (FFT peak and least-squares residual), levels (dBm0 against the
G.711 reference: a sine at 0 dBm0 peaks 3.17 dB (mu-law) / 3.14 dB (A-law)
below the codec's overload point), cadence timing (on/off runs of the
decoded signal) and seamless looping (no sample jump at the loop seam).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from boomerang.media import codecs, g711, g722
from boomerang.media.tones import (
    TONE_NAMES,
    TONE_PLANS,
    Tone,
    ToneBank,
    TonePlayer,
    ToneSegment,
    cadence,
    continuous,
    frame_due_time,
    render_tone,
    tone_pcm,
    tone_plan,
)

G711 = [codecs.PCMU, codecs.PCMA]
# Independent of the code under test: G.711 Tables 1 and 2 overload points.
ZERO_DBM0_PEAK = {"PCMU": 8159 * 4 / 10 ** (3.17 / 20), "PCMA": 4096 * 8 / 10 ** (3.14 / 20),
                  "G722": 4096 * 8 / 10 ** (3.14 / 20)}
PLANS = sorted({plan.country: plan for plan in TONE_PLANS.values()}.items())
BANK = ToneBank()


def _decode(frames: tuple[bytes, ...], codec: codecs.Codec) -> np.ndarray:
    return codecs.frame_decoder(codec)(b"".join(frames)).astype(np.float64)


def _component_amplitudes(x: np.ndarray, frequencies_hz: tuple[float, ...],
                          sample_rate: int) -> tuple[np.ndarray, float]:
    """Least-squares fit of sines at the given frequencies: their peak
    amplitudes and the residual's power relative to the signal's."""
    n = np.arange(len(x))
    columns = []
    for f in frequencies_hz:
        phase = 2 * np.pi * f * n / sample_rate
        columns += [np.sin(phase), np.cos(phase)]
    basis = np.stack(columns, axis=1)
    coefficients, *_ = np.linalg.lstsq(basis, x, rcond=None)
    residual = x - basis @ coefficients
    amplitudes = np.hypot(coefficients[0::2], coefficients[1::2])
    return amplitudes, float(np.sum(residual**2) / np.sum(x**2))


def _peak_frequencies(x: np.ndarray, sample_rate: int, count: int) -> list[float]:
    size = 1 << 19
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), size))
    peaks: list[float] = []
    for _ in range(count):
        index = int(np.argmax(spectrum))
        peaks.append(index * sample_rate / size)
        guard = int(25 * size / sample_rate)  # blank 25 Hz around a found peak
        spectrum[max(0, index - guard):index + guard] = 0
    return sorted(peaks)


def _on_runs(tone: Tone) -> list[tuple[bool, int]]:
    """(sounding, duration_ms) runs of one cadence cycle, merging neighbours."""
    runs: list[tuple[bool, int]] = []
    for segment in tone.segments:
        sounding = not segment.silent
        if runs and runs[-1][0] == sounding:
            runs[-1] = (sounding, runs[-1][1] + (segment.duration_ms or 0))
        else:
            runs.append((sounding, segment.duration_ms or 0))
    return runs


def _measured_runs(x: np.ndarray, sample_rate: int, threshold: float) -> list[tuple[bool, float]]:
    half_window = sample_rate // 1000  # +/- 1 ms
    padded = np.pad(np.abs(x), half_window)
    envelope = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_window + 1).max(axis=1)
    sounding = envelope > threshold
    edges = np.flatnonzero(np.diff(sounding.astype(np.int8))) + 1
    bounds = [0, *edges.tolist(), len(x)]
    return [(bool(sounding[a]), (b - a) * 1000 / sample_rate)
            for a, b in itertools.pairwise(bounds)]


def _sounding_segments(tone: Tone, x: np.ndarray, sample_rate: int):
    """Yield (segment, samples of its body) for each sounding segment of
    the first cycle, 5 ms trimmed at each edge."""
    offset = 0
    trim = 5 * sample_rate // 1000
    for segment in tone.segments:
        count = (segment.duration_ms or 0) * sample_rate // 1000
        if not segment.silent:
            yield segment, x[offset + trim:offset + count - trim]
        offset += count


def test_plans_cover_the_required_countries_and_tones() -> None:
    assert {"pl", "de", "fr", "it", "es", "nl", "uk", "us", "eu"} <= set(TONE_PLANS)
    for plan in TONE_PLANS.values():
        for name in TONE_NAMES:
            assert isinstance(plan.tone(name), Tone)
    assert tone_plan("GB") is tone_plan("uk")
    with pytest.raises(ValueError, match="known"):
        tone_plan("xx")


@pytest.mark.parametrize(("country", "frequencies_hz"), [
    ("pl", (425,)), ("de", (425,)), ("es", (425,)), ("nl", (425,)), ("eu", (425,)),
    ("fr", (440,)), ("uk", (350, 440)), ("us", (350, 440)),
])
def test_continuous_dial_tones(country: str, frequencies_hz: tuple[float, ...]) -> None:
    dial = tone_plan(country).dial
    assert dial.continuous
    assert dial.segments[0].frequencies_hz == frequencies_hz


@pytest.mark.parametrize(("country", "tone", "frequencies_hz", "runs_ms"), [
    ("us", "ringback", (440, 480), [2000, 4000]),
    ("us", "busy", (480, 620), [500, 500]),
    ("us", "congestion", (480, 620), [250, 250]),
    ("uk", "ringback", (400, 450), [400, 200, 400, 2000]),
    ("uk", "busy", (400,), [375, 375]),
    ("uk", "congestion", (400,), [400, 350, 225, 525]),
    ("de", "busy", (425,), [480, 480]),
    ("de", "congestion", (425,), [240, 240]),
    ("de", "ringback", (425,), [1000, 4000]),
    ("pl", "ringback", (425,), [1000, 4000]),
    ("pl", "busy", (425,), [500, 500]),
    ("fr", "ringback", (440,), [1500, 3500]),
    ("es", "ringback", (425,), [1500, 3000]),
    ("es", "busy", (425,), [200, 200]),
    ("it", "dial", (425,), [200, 200, 600, 1000]),
    ("nl", "congestion", (425,), [250, 250]),
])
def test_cadenced_tones_match_e180(country: str, tone: str, frequencies_hz: tuple[float, ...],
                                   runs_ms: list[int]) -> None:
    rendered = tone_plan(country).tone(tone)
    assert [s.duration_ms for s in rendered.segments] == runs_ms
    assert all(s.frequencies_hz == (frequencies_hz if i % 2 == 0 else ())
               for i, s in enumerate(rendered.segments))


@pytest.mark.parametrize("country", ["us", "uk", "pl"])
def test_special_information_tone_is_950_1400_1800_for_330_ms(country: str) -> None:
    segments = tone_plan(country).special_information.segments
    assert [(s.frequencies_hz, s.duration_ms) for s in segments[:3]] == [
        ((950,), 330), ((1400,), 330), ((1800,), 330)]
    assert segments[3].silent


@pytest.mark.parametrize("codec", G711, ids=lambda c: c.name)
@pytest.mark.parametrize(("country", "plan"), PLANS, ids=[c for c, _ in PLANS])
def test_decoded_frames_have_the_planned_frequencies_levels_and_cadence(
        country: str, plan, codec: codecs.Codec) -> None:
    for name in TONE_NAMES:
        tone = plan.tone(name)
        rendered = BANK.frames(tone, codec)
        assert all(len(frame) == codec.frame_size(20) for frame in rendered.frames)
        x = _decode(rendered.frames, codec)
        rate = codec.sample_rate
        segments = [(tone.segments[0], x)] if tone.continuous else list(
            _sounding_segments(tone, x, rate))
        for segment, body in segments:
            amplitudes, residual = _component_amplitudes(body, segment.frequencies_hz, rate)
            assert residual < 10 ** (-25 / 10), (name, segment)  # nothing else above -25 dB
            expected_peak = ZERO_DBM0_PEAK[codec.name] * 10 ** (segment.level_dbm0 / 20)
            levels_db = 20 * np.log10(amplitudes / expected_peak)
            assert np.all(np.abs(levels_db) < 0.3), (name, segment, levels_db)
            if len(body) >= rate // 10:
                peaks = _peak_frequencies(body, rate, len(segment.frequencies_hz))
                assert np.allclose(peaks, sorted(segment.frequencies_hz), atol=1.5), (name, peaks)
        if not tone.continuous:
            quietest = min(ZERO_DBM0_PEAK[codec.name] * 10 ** (s.level_dbm0 / 20)
                           for s in tone.segments if not s.silent)
            measured = _measured_runs(x, rate, quietest * 0.1)
            cycles = round(len(x) * 1000 / rate / (tone.cycle_ms or 1)) if tone.repeat else 1
            expected = _on_runs(tone) * cycles
            merged: list[tuple[bool, int]] = []
            for run in expected:  # the cycle's last and first runs may join across cycles
                if merged and merged[-1][0] == run[0]:
                    merged[-1] = (run[0], merged[-1][1] + run[1])
                else:
                    merged.append(run)
            assert [s for s, _ in measured] == [s for s, _ in merged], (name, measured)
            for (_, got_ms), (_, want_ms) in zip(measured, merged, strict=True):
                assert abs(got_ms - want_ms) <= 4, (name, measured, merged)


@pytest.mark.parametrize("codec", G711, ids=lambda c: c.name)
@pytest.mark.parametrize(("country", "plan"), PLANS, ids=[c for c, _ in PLANS])
def test_loops_are_whole_frames_and_seamless(country: str, plan, codec: codecs.Codec) -> None:
    for name in TONE_NAMES:
        tone = plan.tone(name)
        if not tone.repeat:
            continue
        pcm = tone_pcm(tone, codec).astype(np.int64)
        assert len(pcm) % codec.samples_per_frame(20) == 0
        if tone.continuous:
            # The sample after the loop is exactly where the loop starts: the
            # tone synthesised straight through twice the loop equals the loop twice.
            segment = tone.segments[0]
            n = np.arange(2 * len(pcm))
            peak = codec.peak_for_dbm0(segment.level_dbm0)
            straight = sum(peak * np.sin(2 * np.pi * f * n / codec.sample_rate)
                           for f in segment.frequencies_hz)
            assert np.max(np.abs(np.tile(pcm, 2) - np.round(straight))) <= 1
        else:
            assert len(pcm) * 1000 // codec.sample_rate % (tone.cycle_ms or 1) == 0
        decoded = _decode(BANK.frames(tone, codec).frames * 2, codec)
        jumps = np.abs(np.diff(decoded))
        seam = len(decoded) // 2
        assert jumps[seam - 1] <= np.max(jumps[:seam - 1]) + 1, name


@pytest.mark.parametrize(("country", "plan"), PLANS, ids=[c for c, _ in PLANS])
def test_bursts_fade_in_and_out_so_cadence_edges_do_not_click(country: str, plan) -> None:
    # A burst cut at an arbitrary phase steps by up to its full amplitude (a
    # click); with the edge ramps every burst starts and ends near zero, also
    # where SIT switches straight from one frequency to the next.
    for name in TONE_NAMES:
        tone = plan.tone(name)
        if tone.continuous:
            continue
        pcm = tone_pcm(tone, codecs.PCMU).astype(np.float64)
        offset = 0
        for segment in tone.segments:
            count = (segment.duration_ms or 0) * 8
            if not segment.silent:
                peak = codecs.PCMU.peak_for_dbm0(segment.level_dbm0) * len(segment.frequencies_hz)
                edges = np.abs(pcm[[offset, offset + 1, offset + count - 2, offset + count - 1]])
                assert np.all(edges <= 0.05 * peak), (name, segment, edges / peak)
                assert np.max(np.abs(pcm[offset:offset + count])) > 0.5 * peak
            offset += count


def test_rendering_is_cached_per_codec_and_ptime() -> None:
    bank = ToneBank()
    dial = tone_plan("pl").dial
    first = bank.frames(dial, codecs.PCMU)
    assert bank.frames(dial, codecs.PCMU) is first
    assert bank.frames(dial, codecs.PCMA) is not first
    assert bank.frames(dial, codecs.PCMU, 30) is not first
    assert len(bank) == 3
    assert all(len(f) == 240 for f in bank.frames(dial, codecs.PCMU, 30).frames)


def test_identical_frames_share_one_bytes_object() -> None:
    busy = render_tone(tone_plan("de").busy, codecs.PCMU)
    silent = [f for f in busy.frames if f == b"\xff" * 160]
    assert len(silent) > 1 and all(f is silent[0] for f in silent)


def test_player_loops_by_index() -> None:
    rendered = render_tone(tone_plan("us").dial, codecs.PCMU)
    player = TonePlayer(rendered)
    count = len(rendered.frames)
    sent = [player.next_frame() for _ in range(3 * count + 1)]
    assert sent[:count] == list(rendered.frames)
    assert sent[count:2 * count] == list(rendered.frames)
    assert sent[-1] is rendered.frames[0]
    assert not player.finished


def test_one_shot_tone_plays_once_then_silence() -> None:
    rendered = render_tone(tone_plan("pl").warning, codecs.PCMA)
    player = TonePlayer(rendered)
    frames = [player.next_frame() for _ in range(len(rendered.frames))]
    assert frames == list(rendered.frames) and player.finished
    assert player.next_frame() == b"\xd5" * 160


def test_frame_due_time_is_an_absolute_schedule() -> None:
    assert frame_due_time(100.0, 0, 20) == 100.0
    assert frame_due_time(100.0, 50, 20) == pytest.approx(101.0)
    # No drift: frame 1,000,000 is exactly 20,000 s later.
    assert frame_due_time(0.0, 1_000_000, 20) == pytest.approx(20_000.0, abs=1e-9)


def test_reference_levels_follow_g711() -> None:
    assert codecs.PCMU.peak_for_dbm0(g711.ULAW_OVERLOAD_DBM0) == pytest.approx(8159 * 4)
    assert codecs.PCMA.peak_for_dbm0(0.0) == pytest.approx(ZERO_DBM0_PEAK["PCMA"])


def test_invalid_tones_are_refused() -> None:
    with pytest.raises(ValueError):
        Tone(name="x", segments=())
    with pytest.raises(ValueError):
        Tone(name="x", segments=(ToneSegment(frequencies_hz=(425,)), ToneSegment(duration_ms=5)))
    with pytest.raises(ValueError):
        cadence("x", (425,), -10, 0, 100)
    assert continuous("x", (425,), -10).continuous


@pytest.mark.skipif(not g722.G722_AVAILABLE, reason="G722 package not installed")
@pytest.mark.parametrize("tone_name", ["dial", "busy"])
def test_g722_tone_loops_without_clicks_and_keeps_frequency(tone_name: str) -> None:
    tone = tone_plan("uk").tone(tone_name)
    rendered = render_tone(tone, codecs.G722)
    loops = max(3, 100 // len(rendered.frames))
    decoded = _decode(rendered.frames * loops, codecs.G722)
    loop_samples = len(decoded) // loops
    jumps = np.abs(np.diff(decoded))
    seams = [k * loop_samples - 1 for k in range(1, loops)]
    inner = np.delete(jumps, seams)
    assert max(jumps[s] for s in seams) <= np.max(inner) * 1.1 + 8
    segment = tone.segments[0]
    body = decoded[loop_samples:2 * loop_samples]
    if not tone.continuous:
        # ADPCM adapts its step size for ~30 ms after silence: measure after that.
        body = body[480:segment.duration_ms * 16 - 80]
    peaks = _peak_frequencies(body, 16000, len(segment.frequencies_hz))
    assert np.allclose(peaks, sorted(segment.frequencies_hz), atol=2)
    amplitudes, residual = _component_amplitudes(body, segment.frequencies_hz, 16000)
    assert residual < 10 ** (-20 / 10)
    expected_peak = ZERO_DBM0_PEAK["G722"] * 10 ** (segment.level_dbm0 / 20)
    assert np.all(np.abs(20 * np.log10(amplitudes / expected_peak)) < 0.5)
