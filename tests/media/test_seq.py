"""Wrap-around arithmetic laws and RFC 3550 A.1 sequence extension."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boomerang.media.seq import (
    MAX_DROPOUT,
    SequenceValidator,
    uint16_add,
    uint16_diff,
    uint16_gt,
    uint16_gte,
    uint16_lt,
    uint16_sub,
    uint32_add,
    uint32_diff,
    uint32_gt,
    uint32_lt,
    uint32_sub,
)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
step16 = st.integers(1, 0x7FFF)
step32 = st.integers(1, 0x7FFFFFFF)


def test_known_wrap_around_values() -> None:
    assert uint16_add(65535, 1) == 0
    assert uint16_sub(0, 1) == 65535
    assert uint16_gt(0, 65535) and uint16_lt(65535, 0)
    assert uint16_gt(5, 65530) and not uint16_gt(65530, 5)
    assert uint16_diff(2, 65534) == 4 and uint16_diff(65534, 2) == -4
    assert uint32_add(0xFFFFFFFF, 2) == 1
    assert uint32_gt(1, 0xFFFFFFFF)
    assert uint32_diff(0, 0xFFFFFFFF) == 1


@given(u16, step16)
def test_uint16_adding_a_forward_step_is_after(a: int, step: int) -> None:
    b = uint16_add(a, step)
    assert uint16_gt(b, a) and uint16_lt(a, b)
    assert not uint16_gt(a, b)
    assert uint16_sub(b, a) == step
    assert uint16_diff(b, a) == step and uint16_diff(a, b) == -step


@given(u16, u16)
def test_uint16_add_sub_inverse_and_trichotomy(a: int, b: int) -> None:
    assert uint16_add(uint16_sub(a, b), b) == a
    relations = [uint16_gt(a, b), uint16_gt(b, a), a == b]
    # Exactly half the space apart is neither before nor after.
    if uint16_sub(a, b) == 0x8000:
        assert relations == [False, False, False]
    else:
        assert sum(relations) == 1
    assert uint16_gte(a, b) == (uint16_gt(a, b) or a == b)
    assert -0x8000 <= uint16_diff(a, b) < 0x8000


@given(u32, step32)
def test_uint32_adding_a_forward_step_is_after(a: int, step: int) -> None:
    b = uint32_add(a, step)
    assert uint32_gt(b, a) and uint32_lt(a, b) and not uint32_gt(a, b)
    assert uint32_sub(b, a) == step and uint32_diff(a, b) == -step


def _feed(validator: SequenceValidator, numbers: list[int]) -> list[bool]:
    return [validator.update(n) for n in numbers]


def test_probation_needs_two_packets_in_sequence() -> None:
    validator = SequenceValidator(100)
    assert _feed(validator, [100]) == [False]
    assert not validator.valid
    assert _feed(validator, [101, 102]) == [True, True]
    assert validator.valid and validator.base_seq == 101 and validator.received == 2


def test_min_sequential_one_trusts_the_first_packet() -> None:
    validator = SequenceValidator(7, min_sequential=1)
    assert _feed(validator, [7, 8]) == [True, True]
    assert validator.received == 2 and validator.base_seq == 7


def test_extension_counts_cycles_across_the_wrap() -> None:
    validator = SequenceValidator(65534, min_sequential=1)
    assert all(_feed(validator, [65534, 65535, 0, 1]))
    assert validator.cycles == 65536
    assert validator.extended_max == 65536 + 1


def test_extend_maps_a_late_packet_before_the_wrap_to_the_previous_cycle() -> None:
    validator = SequenceValidator(65530, min_sequential=1)
    _feed(validator, [65530, 65531, 2])  # 65532..1 missing
    assert validator.extended_max == 65536 + 2
    assert validator.extend(65533) == 65533
    assert validator.extend(5) == 65536 + 5


def test_a_large_jump_is_refused_until_confirmed_then_resyncs() -> None:
    validator = SequenceValidator(10, min_sequential=1)
    _feed(validator, [10, 11])
    jump = 11 + MAX_DROPOUT + 10
    assert validator.update(jump) is False
    assert validator.extended_max == 11
    assert validator.update(jump + 1) is True  # the sender restarted: resync
    assert validator.base_seq == jump + 1 and validator.received == 1


def test_reordered_and_duplicate_packets_count_without_moving_the_maximum() -> None:
    validator = SequenceValidator(10, min_sequential=1)
    assert all(_feed(validator, [10, 12, 11, 12]))
    assert validator.extended_max == 12
    assert validator.received == 4


@given(st.integers(0, 0xFFFF), st.lists(st.integers(1, 9), min_size=1, max_size=300))
def test_extended_max_follows_the_true_count_through_many_wraps(start: int,
                                                                gaps: list[int]) -> None:
    validator = SequenceValidator(start, min_sequential=1)
    assert validator.update(start)
    true_number = start
    for gap in gaps:
        true_number += gap * 300  # big forward steps, still under MAX_DROPOUT
        assert validator.update(true_number & 0xFFFF)
        assert validator.extended_max == true_number


def test_min_sequential_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        SequenceValidator(1, min_sequential=0)
