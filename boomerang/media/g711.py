"""G.711 PCMU (mu-law) and PCMA (A-law), table-driven with numpy.

The tables are built once per process, when this module is imported, from
the ITU-T G.711 segment algorithm (not the deprecated ``audioop``): a
256-entry decode table per law (code -> 16-bit linear) and a 65536-entry
encode table (16-bit linear -> code). Encoding and decoding a frame is then
one numpy gather. The tables are read-only.

Linear samples are 16-bit (the G.711 14-bit mu-law and 13-bit A-law ranges
scaled up by 4 and 8). Decoding returns the middle of each quantisation
interval, as G.711 does, so ``decode(encode(x))`` is within half a step of
``x`` (steps are 8..1024 for mu-law and 16..1024 for A-law, in 16-bit
units) except where ``x`` is beyond the largest decision value (clipping).

Codes round trip: ``encode(decode(c)) == c`` for every A-law code and every
mu-law code but one: mu-law has two codes for zero, 0xFF (+0) and 0x7F
(-0); both decode to 0, which encodes to 0xFF.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

PCMU_SILENCE = 0xFF  # mu-law +0
PCMA_SILENCE = 0xD5  # A-law +8 (the smallest positive level; A-law has no zero code)

ULAW_BIAS = 0x84  # 132: the 14-bit bias 33 in 16-bit units
ULAW_CLIP = 32635  # largest magnitude before the bias overflows the top segment
# Level of a full-scale sine relative to 0 dBm0 (G.711 Table 1/2 note:
# the digital milliwatt sits 3.17 dB (mu-law) and 3.14 dB (A-law) below it).
ULAW_OVERLOAD_DBM0 = 3.17
ALAW_OVERLOAD_DBM0 = 3.14
ULAW_OVERLOAD_LINEAR = 32636  # 8159 x 4: the mu-law overload point in 16-bit units
ALAW_OVERLOAD_LINEAR = 32768  # 4096 x 8

Int16Array = npt.NDArray[np.int16]
Uint8Array = npt.NDArray[np.uint8]


def _ulaw_decode_table() -> Int16Array:
    code = np.arange(256, dtype=np.int32)
    inverted = ~code & 0xFF
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS
    value = np.where(inverted & 0x80, -magnitude, magnitude)
    return value.astype(np.int16)


def _ulaw_encode_table() -> Uint8Array:
    linear = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(linear < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(linear), ULAW_CLIP) + ULAW_BIAS
    # The segment is the position of the highest set bit above bit 7.
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    code = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return _index_by_uint16(linear, code)


def _alaw_decode_table() -> Int16Array:
    code = np.arange(256, dtype=np.int32)
    toggled = code ^ 0x55
    segment = (toggled >> 4) & 0x07
    mantissa = toggled & 0x0F
    base = (mantissa << 4) + 8
    magnitude = np.where(segment == 0, base, (base + 0x100) << np.maximum(segment - 1, 0))
    value = np.where(toggled & 0x80, magnitude, -magnitude)
    return value.astype(np.int16)


def _alaw_encode_table() -> Uint8Array:
    linear = np.arange(-32768, 32768, dtype=np.int32)
    positive = linear >= 0
    mask = np.where(positive, 0xD5, 0x55)
    # Negative values are one's-complemented, as the 13-bit G.711 coder does.
    magnitude = np.where(positive, linear, -linear - 1) >> 4  # 12-bit magnitude 0..2047
    high_bit = np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32)
    segment = np.where(magnitude < 16, 0, high_bit - 3)
    mantissa = (magnitude >> np.maximum(segment - 1, 0)) & 0x0F
    code = ((segment << 4) | mantissa) ^ mask
    return _index_by_uint16(linear, code)


def _index_by_uint16(linear: npt.NDArray[np.int32], code: npt.NDArray[np.int32]) -> Uint8Array:
    """Reorder a table over -32768..32767 so the int16 bits, read as uint16, index it."""
    table = np.empty(65536, dtype=np.uint8)
    table[linear & 0xFFFF] = code
    return table


def _frozen(array: npt.NDArray[np.generic]) -> None:
    array.setflags(write=False)


ULAW_DECODE = _ulaw_decode_table()
ULAW_ENCODE = _ulaw_encode_table()
ALAW_DECODE = _alaw_decode_table()
ALAW_ENCODE = _alaw_encode_table()
for _table in (ULAW_DECODE, ULAW_ENCODE, ALAW_DECODE, ALAW_ENCODE):
    _frozen(_table)
del _table


def _as_uint16(samples: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    array = np.asarray(samples)
    if array.dtype != np.int16:
        array = np.clip(array, -32768, 32767).astype(np.int16)
    return array.view(np.uint16)


def ulaw_encode(samples: npt.ArrayLike) -> bytes:
    """16-bit linear samples (other dtypes are clipped to int16) -> PCMU octets."""
    return ULAW_ENCODE[_as_uint16(samples)].tobytes()


def ulaw_decode(data: bytes) -> Int16Array:
    """PCMU octets -> 16-bit linear samples."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(samples: npt.ArrayLike) -> bytes:
    """16-bit linear samples (other dtypes are clipped to int16) -> PCMA octets."""
    return ALAW_ENCODE[_as_uint16(samples)].tobytes()


def alaw_decode(data: bytes) -> Int16Array:
    """PCMA octets -> 16-bit linear samples."""
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]
