"""G.722 (64 kbit/s wideband ADPCM), through the optional ``G722`` package.

The codec itself is sippy's libg722 (PyPI ``G722``, a bit-exact C
implementation that passes the ITU test vectors), installed with the
``boomerang[g722]`` extra. Without it ``G722_AVAILABLE`` is False and the
SDP offer leaves G.722 out; creating an encoder or decoder then raises
``G722Unavailable``.

G.722 samples at 16 kHz but its RTP clock runs at 8 kHz (RFC 3551 §4.5.2),
so a 20 ms frame is 320 samples, 160 octets and a timestamp step of 160.
Encoder and decoder keep ADPCM state: use one per stream and direction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

try:
    import G722 as _g722_module
except ImportError:  # the optional extra is not installed
    _g722_module = None

G722_AVAILABLE: bool = _g722_module is not None
G722_SAMPLE_RATE = 16_000
G722_BIT_RATE = 64_000


class G722Unavailable(RuntimeError):
    """The optional G722 package is not installed (pip install boomerang[g722])."""


def _new_codec() -> Any:
    if _g722_module is None:
        raise G722Unavailable("G.722 needs the G722 package: pip install 'boomerang[g722]'")
    try:
        return _g722_module.G722(G722_SAMPLE_RATE, G722_BIT_RATE, use_numpy=False)
    except TypeError:  # releases before the use_numpy keyword
        return _g722_module.G722(G722_SAMPLE_RATE, G722_BIT_RATE)


class G722Encoder:
    """16 kHz 16-bit PCM -> G.722 octets (one octet per two samples)."""

    __slots__ = ("_codec",)

    def __init__(self) -> None:
        self._codec = _new_codec()

    def encode(self, samples: npt.ArrayLike) -> bytes:
        array = np.asarray(samples)
        if array.dtype != np.int16:
            array = np.clip(array, -32768, 32767).astype(np.int16)
        if len(array) % 2:
            raise ValueError("G.722 encodes sample pairs: give an even number of samples")
        return bytes(self._codec.encode(array))


class G722Decoder:
    """G.722 octets -> 16 kHz 16-bit PCM (two samples per octet)."""

    __slots__ = ("_codec",)

    def __init__(self) -> None:
        self._codec = _new_codec()

    def decode(self, data: bytes) -> npt.NDArray[np.int16]:
        return np.asarray(self._codec.decode(data), dtype=np.int16)
