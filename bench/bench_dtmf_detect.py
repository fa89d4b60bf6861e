"""Benchmark of the in-band DTMF detector (boomerang.media.dtmf_inband).

Plain script: ``python bench/bench_dtmf_detect.py [--quick] [--seed N]``.
Prints Markdown tables: detection rate against frequency deviation, twist,
level and white noise, tone and pause duration; talk-off (false digits per
hour) on espeak-ng speech (several voices, speeds, pitches, languages) and
on synthetic music; and the CPU cost per 20 ms block.

Every signal goes through G.711 mu-law (encode + decode) as on the wire.
Detection counts a digit as found when the detector reports that digit
within 30 ms of the tone's start; anything else reported is a false digit.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from boomerang.media.dtmf_inband import (
    SAMPLE_RATE,
    GoertzelDetector,
    dtmf_tone,
    power_to_dbm0,
)

DIGITS = "0123456789*#ABCD"
BLOCK = 160  # 20 ms, as the RTP layer delivers it


# -- G.711 mu-law round trip (numpy, for the benchmark only) -------------------

def ulaw_round_trip(samples: np.ndarray) -> np.ndarray:
    bias, clip = 0x84, 32635
    x = np.clip(np.rint(samples), -32768, 32767).astype(np.int64)
    sign = x < 0
    magnitude = np.minimum(np.abs(x), clip) + bias
    exponent = np.floor(np.log2(magnitude)).astype(np.int64) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    decoded = ((mantissa << 3) + bias) << exponent
    decoded -= bias
    return np.where(sign, -decoded, decoded).astype(np.float64)


# -- running the detector ---------------------------------------------------------

def detect(samples: np.ndarray, detector: GoertzelDetector | None = None) -> list:
    detector = detector or GoertzelDetector()
    pcm = ulaw_round_trip(samples)
    out = []
    for start in range(0, len(pcm), BLOCK):
        block = pcm[start:start + BLOCK]
        out += detector.feed(block, now=(start + len(block)) / SAMPLE_RATE)
    return out


def trial(rng: np.random.Generator, *, repeats: int, tone_ms: float = 60, pause_ms: float = 60,
          noise_dbm0: float | None = None, **tone) -> tuple[int, int, int]:
    """Digits sent, found, false, over ``repeats`` passes of all 16 digits."""
    parts, starts, digits = [], [], []
    position = int(rng.integers(0, 160))
    parts.append(np.zeros(position))
    for _ in range(repeats):
        for digit in DIGITS:
            tone_samples = dtmf_tone(digit, tone_ms, start_sample=int(rng.integers(0, 8000)),
                                     **tone)
            starts.append(position / SAMPLE_RATE)
            digits.append(digit)
            pause = int(pause_ms * 8 + rng.integers(0, 40))
            parts += [tone_samples, np.zeros(pause)]
            position += tone_samples.size + pause
    parts.append(np.zeros(1600))
    signal = np.concatenate(parts)
    if noise_dbm0 is not None:
        sigma = np.sqrt(power_of_dbm0(noise_dbm0))
        signal = signal + rng.normal(0, sigma, signal.size)
    found = false = 0
    matched = [False] * len(starts)
    start_array = np.asarray(starts)
    for event in detect(signal):
        index = int(np.argmin(np.abs(start_array - event.time)))
        if (abs(start_array[index] - event.time) <= 0.03 and digits[index] == event.digit
                and not matched[index]):
            matched[index] = True
            found += 1
        else:
            false += 1
    return len(starts), found, false


def power_of_dbm0(level_dbm0: float) -> float:
    return 10 ** (level_dbm0 / 10) * (32768 * 10 ** (-3.17 / 20)) ** 2 / 2


def rate(found: int, sent: int) -> str:
    return f"{100 * found / sent:5.1f} %"


# -- tables ----------------------------------------------------------------------

def table_deviation(rng, repeats):
    print("\n### Frequency deviation (tones -10 dBm0, 60 ms, no noise)\n")
    print("| deviation | low tone only | high tone only | both tones |")
    print("|---:|---:|---:|---:|")
    for deviation in (0.0, 0.01, -0.01, 0.015, -0.015, 0.02, -0.02, 0.025, -0.025,
                      0.03, -0.03, 0.035, -0.035, 0.05, -0.05):
        cells = []
        for low, high in ((deviation, 0.0), (0.0, deviation), (deviation, deviation)):
            sent, found, _ = trial(rng, repeats=repeats, low_dbm0=-10, high_dbm0=-10,
                                   low_deviation=low, high_deviation=high)
            cells.append(rate(found, sent))
        print(f"| {100 * deviation:+.1f} % | " + " | ".join(cells) + " |")


def table_twist(rng, repeats):
    print("\n### Twist (low minus high level; positive = high group weaker; "
          "stronger tone -8 dBm0)\n")
    print("| twist dB | detected |")
    print("|---:|---:|")
    for twist in (-8, -6, -5, -4, -2, 0, 2, 4, 6, 8, 9, 10, 12):
        low = -8.0 if twist >= 0 else -8.0 + twist
        high = -8.0 - twist if twist >= 0 else -8.0
        sent, found, _ = trial(rng, repeats=repeats, low_dbm0=low, high_dbm0=high)
        print(f"| {twist:+d} | {rate(found, sent)} |")


def table_noise(rng, repeats):
    print("\n### Level and white noise (SNR = both tones' power over the noise power, "
          "0-4 kHz; 60 ms tones)\n")
    snrs = (30, 20, 15, 12, 10, 8, 6)
    print("| tone level (each) | " + " | ".join(f"SNR {s} dB" for s in snrs) + " | false digits |")
    print("|---:|" + "---:|" * (len(snrs) + 1))
    for level in (-6, -10, -20, -26, -30, -33, -36):
        cells, false_total = [], 0
        for snr in snrs:
            noise = level + 3.01 - snr  # two tones: +3 dB
            sent, found, false = trial(rng, repeats=repeats, low_dbm0=level, high_dbm0=level,
                                       noise_dbm0=noise)
            cells.append(rate(found, sent))
            false_total += false
        print(f"| {level} dBm0 | " + " | ".join(cells) + f" | {false_total} |")


def table_duration(rng, repeats):
    print("\n### Tone duration (pause 60 ms) and pause duration (tones 60 ms)\n")
    print("| tone ms | detected |")
    print("|---:|---:|")
    for tone_ms in (20, 25, 30, 35, 38, 40, 45, 50, 65):
        sent, found, _ = trial(rng, repeats=repeats, tone_ms=tone_ms, low_dbm0=-10,
                               high_dbm0=-10)
        print(f"| {tone_ms} | {rate(found, sent)} |")
    print("\n| pause ms between two equal digits | seen as two digits |")
    print("|---:|---:|")
    for pause_ms in (10, 20, 25, 30, 35, 40, 50):
        twos = total = 0
        for trial_index in range(repeats * 16):
            digit = DIGITS[trial_index % 16]
            lead = np.zeros(int(rng.integers(0, 160)) + 80)
            first = dtmf_tone(digit, 60, low_dbm0=-10, high_dbm0=-10)
            gap = np.zeros(int(pause_ms * 8))
            second = dtmf_tone(digit, 60, low_dbm0=-10, high_dbm0=-10,
                               start_sample=first.size + gap.size)
            events = detect(np.concatenate((lead, first, gap, second, np.zeros(1600))))
            twos += len(events) == 2
            total += 1
        print(f"| {pause_ms} | {rate(twos, total)} |")


# -- talk-off ------------------------------------------------------------------------

TEXTS = (
    "One two three four five six seven eight nine zero. Call me back on five five five "
    "one two three four, extension forty two.",
    "Please hold the line while we connect your call. Your number is important to us. "
    "The meeting moved to half past three on Thursday the twenty first.",
    "She sells sea shells by the sea shore. Peter Piper picked a peck of pickled peppers. "
    "How much wood would a woodchuck chuck.",
    "Hello? Hello, can you hear me? I am calling about the invoice number eight one "
    "seven three nine, dated the ninth of November two thousand twenty four.",
    "Oooh, aaah, eeee, mmmm, hmm, yes, yes, no, maybe. Whistle while you work. "
    "La la la la, do re mi fa so la ti do.",
)
VOICES = (
    ("en-us", "en"), ("en-gb", "en"), ("en-us+f3", "en"), ("en-gb-scotland+m3", "en"),
    ("en-029+f2", "en"), ("de+f4", "de"), ("fr", "fr"), ("es+m5", "es"), ("pl+f1", "pl"),
    ("it", "it"),
)
FOREIGN = {
    "de": "Eins zwei drei vier fünf sechs sieben acht neun null. Bitte rufen Sie mich "
          "zurück, die Nummer ist vier sieben elf.",
    "fr": "Un deux trois quatre cinq six sept huit neuf zéro. Rappelez-moi au "
          "zéro six douze trente quatre cinquante six.",
    "es": "Uno dos tres cuatro cinco seis siete ocho nueve cero. Llámeme al "
          "nueve uno dos tres cuatro cinco.",
    "pl": "Jeden dwa trzy cztery pięć sześć siedem osiem dziewięć zero. Proszę "
          "oddzwonić na numer sześćset dwanaście.",
    "it": "Uno due tre quattro cinque sei sette otto nove zero. Mi richiami al "
          "numero trecento quaranta.",
}


def espeak_corpus(directory: Path, quick: bool) -> list[tuple[str, np.ndarray]]:
    clips = []
    speeds = (130, 175, 230)
    pitches = (20, 50, 85)
    for voice_index, (voice, language) in enumerate(VOICES):
        texts = TEXTS if language == "en" else (FOREIGN[language],)
        for text_index, text in enumerate(texts):
            speed = speeds[(voice_index + text_index) % 3]
            pitch = pitches[(voice_index * 2 + text_index) % 3]
            if quick and text_index > 0:
                continue
            raw = directory / f"{voice}-{text_index}.wav"
            low = directory / f"{voice}-{text_index}-8k.wav"
            subprocess.run(["timeout", "30", "espeak-ng", "-v", voice, "-s", str(speed),
                            "-p", str(pitch), "-w", str(raw), text], check=True,
                           capture_output=True)
            subprocess.run(["timeout", "30", "sox", str(raw), "-r", "8000", "-c", "1", "-b",
                            "16", str(low)], check=True, capture_output=True)
            with wave.open(str(low)) as handle:
                pcm = np.frombuffer(handle.readframes(handle.getnframes()), np.int16)
            clips.append((f"{voice} s{speed} p{pitch}", pcm.astype(np.float64)))
    return clips


def music(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Synthetic music: chords of 1-3 notes with 1-6 harmonics, some vibrato."""
    out = np.zeros(int(seconds * SAMPLE_RATE))
    position = 0
    while position < out.size:
        length = int(rng.uniform(0.08, 0.7) * SAMPLE_RATE)
        n = np.arange(length)
        envelope = np.minimum(1, n / 80) * np.exp(-n / rng.uniform(800, 8000))
        for _ in range(int(rng.integers(1, 4))):
            base = 220 * 2 ** (int(rng.integers(-12, 24)) / 12)
            vibrato = 1 + rng.choice((0, 0.004)) * np.sin(2 * np.pi * 5.5 * n / SAMPLE_RATE)
            for harmonic in range(1, int(rng.integers(1, 7)) + 1):
                if base * harmonic > 3800:
                    break
                phase = 2 * np.pi * np.cumsum(base * harmonic * vibrato) / SAMPLE_RATE
                out[position:position + length] += (
                    envelope[: out.size - position] * np.sin(phase)[: out.size - position]
                    / harmonic
                )
        position += length
    return out


def scale_to(signal: np.ndarray, level_dbm0: float) -> np.ndarray:
    active = signal[np.abs(signal) > 0.02 * np.max(np.abs(signal))]
    power = float(np.mean(active**2))
    return signal * np.sqrt(power_of_dbm0(level_dbm0) / power)


def table_talk_off(rng, quick):
    print("\n### Talk-off (false digits; speech scaled to its active level)\n")
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        print("espeak-ng or sox missing: skipped")
        return
    with tempfile.TemporaryDirectory() as directory:
        clips = espeak_corpus(Path(directory), quick)
    speech = np.concatenate([np.concatenate((clip, np.zeros(800))) for _, clip in clips])
    print(f"{len(clips)} espeak-ng clips ({len({c.split()[0] for c, _ in clips})} voices, "
          f"3 speeds, 3 pitches, 6 languages), {speech.size / SAMPLE_RATE / 60:.1f} min.\n")
    print("| material | level | minutes | false digits | per hour |")
    print("|---|---:|---:|---:|---:|")
    for level in (-25, -15, -8):
        events = detect(scale_to(speech, level))
        minutes = speech.size / SAMPLE_RATE / 60
        print(f"| speech | {level} dBm0 | {minutes:.1f} | {len(events)} | "
              f"{len(events) * 60 / minutes:.1f} |"
              + (f" {''.join(e.digit for e in events)}" if events else ""))
    seconds = 60 if quick else 240
    tune = music(rng, seconds)
    for level in (-20, -10):
        events = detect(scale_to(tune, level))
        print(f"| synthetic music | {level} dBm0 | {seconds / 60:.1f} | {len(events)} | "
              f"{len(events) * 3600 / seconds:.1f} |")
    noise = rng.normal(0, np.sqrt(power_of_dbm0(-20)), seconds * SAMPLE_RATE)
    events = detect(noise)
    print(f"| white noise | -20 dBm0 | {seconds / 60:.1f} | {len(events)} | "
          f"{len(events) * 3600 / seconds:.1f} |")


def table_cpu():
    print("\n### CPU cost per 20 ms block (160 samples, one stream)\n")
    rng = np.random.default_rng(1)
    cases = {
        "silence": np.zeros(160 * 500),
        "speech-like noise -15 dBm0": rng.normal(0, np.sqrt(power_of_dbm0(-15)), 160 * 500),
        "DTMF digits": np.concatenate([np.concatenate((dtmf_tone(d, 60), np.zeros(480)))
                                       for d in DIGITS * 4])[: 160 * 500],
    }
    print("| input | us per block | share of one core per stream |")
    print("|---|---:|---:|")
    for name, signal in cases.items():
        blocks = [signal[i:i + 160].astype(np.int16) for i in range(0, signal.size, 160)]
        best = float("inf")
        for _ in range(3):
            detector = GoertzelDetector()
            started = time.perf_counter()
            for index, block in enumerate(blocks):
                detector.feed(block, now=index * 0.02)
            best = min(best, (time.perf_counter() - started) / len(blocks))
        print(f"| {name} | {best * 1e6:.0f} | {100 * best / 0.02:.2f} % |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter corpora")
    parser.add_argument("--seed", type=int, default=4733)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    repeats = 2 if args.quick else 8
    started = time.perf_counter()
    print(f"## DTMF detector benchmark (seed {args.seed}, {16 * repeats} digits per cell)")
    table_deviation(rng, repeats)
    table_twist(rng, repeats)
    table_noise(rng, repeats)
    table_duration(rng, repeats)
    table_talk_off(rng, args.quick)
    table_cpu()
    print(f"\n(ran in {time.perf_counter() - started:.0f} s; level of a 0 dBm0 tone pair: "
          f"{power_to_dbm0(2 * power_of_dbm0(0)):.1f} dBm0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
