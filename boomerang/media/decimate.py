"""16 kHz to 8 kHz for a stream, frame by frame (sans I/O).

The in-band DTMF detector works on 8 kHz audio; a G.722 stream decodes to
16 kHz. ``HalfRateDecimator`` low-passes (a windowed-sinc FIR, cut-off
3.6 kHz, well above the highest DTMF tone at 1633 Hz) and keeps every other
sample. It carries the filter's history and the sample phase across calls,
so feeding a stream in 20 ms frames gives the same output as feeding it in
one piece: no transient at frame edges.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

TAPS = 31
CUTOFF_HZ = 3600.0
INPUT_RATE = 16_000


def _lowpass(taps: int, cutoff_hz: float, rate: int) -> npt.NDArray[np.float64]:
    n = np.arange(taps) - (taps - 1) / 2
    kernel: npt.NDArray[np.float64] = np.sinc(2 * cutoff_hz / rate * n) * np.hamming(taps)
    normalised: npt.NDArray[np.float64] = kernel / kernel.sum()  # unity gain at 0 Hz
    return normalised


class HalfRateDecimator:
    """Stateful 2:1 decimation of int16 PCM."""

    __slots__ = ("_history", "_kernel", "_phase")

    def __init__(self) -> None:
        self._kernel = _lowpass(TAPS, CUTOFF_HZ, INPUT_RATE)
        self._history = np.zeros(TAPS - 1)
        self._phase = 0  # index, in this call's filtered samples, of the next one kept

    def feed(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Half as many samples as given (rounded by the running phase)."""
        joined = np.concatenate([self._history, samples.astype(np.float64)])
        filtered = np.convolve(joined, self._kernel, mode="valid")  # len(samples) outputs
        kept = filtered[self._phase::2]
        self._phase = (self._phase + len(samples)) % 2
        self._history = joined[len(joined) - (TAPS - 1):]
        return np.clip(np.round(kept), -32768, 32767).astype(np.int16)


__all__ = ["HalfRateDecimator"]
