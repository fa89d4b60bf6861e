"""G.711 tables: known values, code round trips, quantisation error bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from boomerang.media import g711

ALL_LINEAR = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


@pytest.mark.parametrize(("code", "linear"), [
    (0xFF, 0), (0x7F, 0), (0x00, -32124), (0x80, 32124), (0xFE, 8), (0x7E, -8),
    (0xF0, 120), (0xEF, 132), (0x6F, -132),
])
def test_ulaw_decodes_known_codes(code: int, linear: int) -> None:
    assert int(g711.ulaw_decode(bytes((code,)))[0]) == linear


@pytest.mark.parametrize(("code", "linear"), [
    (0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xD4, 24), (0xC5, 264),
])
def test_alaw_decodes_known_codes(code: int, linear: int) -> None:
    assert int(g711.alaw_decode(bytes((code,)))[0]) == linear


@pytest.mark.parametrize(("linear", "ulaw", "alaw"), [
    (0, 0xFF, 0xD5), (-1, 0x7F, 0x55), (32767, 0x80, 0xAA), (-32768, 0x00, 0x2A),
])
def test_encodes_known_values(linear: int, ulaw: int, alaw: int) -> None:
    samples = np.array([linear], dtype=np.int16)
    assert g711.ulaw_encode(samples) == bytes((ulaw,))
    assert g711.alaw_encode(samples) == bytes((alaw,))


def test_every_alaw_code_round_trips() -> None:
    assert g711.alaw_encode(g711.alaw_decode(ALL_CODES)) == ALL_CODES


def test_every_ulaw_code_round_trips_except_negative_zero() -> None:
    again = g711.ulaw_encode(g711.ulaw_decode(ALL_CODES))
    differing = [code for code in range(256) if again[code] != code]
    # 0x7F (-0) and 0xFF (+0) both decode to 0, which encodes to 0xFF.
    assert differing == [0x7F]
    assert again[0x7F] == 0xFF


@given(st.integers(0, 255))
def test_encode_decode_is_idempotent_on_codes(code: int) -> None:
    data = bytes((code,))
    once = g711.ulaw_encode(g711.ulaw_decode(data))
    assert g711.ulaw_encode(g711.ulaw_decode(once)) == once
    assert g711.alaw_encode(g711.alaw_decode(data)) == data


def test_ulaw_error_is_within_half_a_step_for_all_16_bit_inputs() -> None:
    codes = np.frombuffer(g711.ulaw_encode(ALL_LINEAR), dtype=np.uint8)
    decoded = g711.ulaw_decode(codes.tobytes()).astype(np.int32)
    segment = ((~codes.astype(np.int32)) >> 4) & 7
    half_step = (8 << segment) // 2  # steps of 8, 16 ... 1024 in 16-bit units
    error = np.abs(decoded - ALL_LINEAR.astype(np.int32))
    clipped = np.abs(ALL_LINEAR.astype(np.int32)) > 32635
    assert np.all(error[~clipped] <= half_step[~clipped])
    assert np.all(np.abs(decoded[clipped]) == 32124)


def test_alaw_error_is_within_half_a_step_for_all_16_bit_inputs() -> None:
    codes = np.frombuffer(g711.alaw_encode(ALL_LINEAR), dtype=np.uint8)
    decoded = g711.alaw_decode(codes.tobytes()).astype(np.int32)
    segment = ((codes.astype(np.int32) ^ 0x55) >> 4) & 7
    half_step = (16 << np.maximum(segment - 1, 0)) // 2  # 16, 16, 32 ... 1024
    error = np.abs(decoded - ALL_LINEAR.astype(np.int32))
    clipped = np.abs(ALL_LINEAR.astype(np.int32)) > 32767 - 511
    assert np.all(error[~clipped] <= half_step[~clipped])
    assert np.all(error[clipped] <= 512)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_both_laws_are_monotonic_and_odd_symmetric(law: str) -> None:
    encode = getattr(g711, f"{law}_encode")
    decode = getattr(g711, f"{law}_decode")
    decoded = decode(encode(ALL_LINEAR)).astype(np.int32)
    assert np.all(np.diff(decoded) >= 0)
    positive = decoded[32768 + 1:]  # inputs 1..32767
    negative = decoded[32768 - 1:0:-1]  # inputs -1..-32767
    # A-law codes negative inputs one's-complement, so -x mirrors x - 1.
    if law == "ulaw":
        assert np.array_equal(positive, -negative)
    else:
        assert np.array_equal(decoded[32768:], -decoded[32767::-1])


def test_non_int16_input_is_clipped_not_wrapped() -> None:
    loud = np.array([40000, -40000], dtype=np.int32)
    assert g711.ulaw_encode(loud) == bytes((0x80, 0x00))
    assert g711.alaw_encode(loud) == bytes((0xAA, 0x2A))


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        g711.ULAW_DECODE[0] = 1


def test_silence_codes_decode_to_the_smallest_levels() -> None:
    assert int(g711.ulaw_decode(bytes((g711.PCMU_SILENCE,)))[0]) == 0
    assert int(g711.alaw_decode(bytes((g711.PCMA_SILENCE,)))[0]) == 8
