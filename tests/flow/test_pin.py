"""The disa PIN: constant-time comparison, lockout across calls on an
injected clock, and the masking of digits in the media session's log."""

from __future__ import annotations

import logging

import pytest

from boomerang.flow.components.disa import DisaParams
from boomerang.flow.pin import (
    LOCKOUT_FAILURES,
    LOCKOUT_S,
    LOCKOUT_WINDOW_S,
    MEDIA_SESSION_LOGGER,
    PinGuard,
    digits_hidden,
    pin_matches,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pin_matches_only_the_exact_digits() -> None:
    assert pin_matches("4711", "4711")
    assert not pin_matches("4712", "4711")
    assert not pin_matches("471", "4711")
    assert not pin_matches("47111", "4711")
    assert not pin_matches("", "4711")


def test_the_default_lockout_is_5_failures_in_15_minutes_for_15_minutes() -> None:
    assert (LOCKOUT_FAILURES, LOCKOUT_WINDOW_S, LOCKOUT_S) == (5, 900.0, 900.0)


def test_five_wrong_pins_in_the_window_lock_the_extension_out() -> None:
    clock = Clock()
    guard = PinGuard(clock=clock)
    for _ in range(4):
        assert not guard.check("extension 101", "0000", "4711")
        clock.now += 60
    assert not guard.is_locked("extension 101")
    assert not guard.check("extension 101", "0000", "4711")
    assert guard.is_locked("extension 101")
    assert guard.locked_for_s("extension 101") == pytest.approx(LOCKOUT_S)
    # locked: even the right PIN is refused, and other extensions are not affected
    assert not guard.check("extension 101", "4711", "4711")
    assert guard.check("extension 102", "4711", "4711")
    clock.now += LOCKOUT_S - 1
    assert guard.is_locked("extension 101")
    clock.now += 2
    assert not guard.is_locked("extension 101")
    assert guard.check("extension 101", "4711", "4711")


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    guard = PinGuard(clock=clock, failures=3, window_s=100, lockout_s=50)
    guard.check("k", "1", "4711")
    clock.now += 60
    guard.check("k", "2", "4711")
    clock.now += 60  # the first failure is 120 s old now
    guard.check("k", "3", "4711")
    assert not guard.is_locked("k")
    assert guard.recent_failures("k") == 2
    guard.check("k", "4", "4711")
    assert guard.is_locked("k")


def test_a_right_pin_clears_the_count() -> None:
    clock = Clock()
    guard = PinGuard(clock=clock, failures=2)
    assert not guard.check("k", "1", "4711")
    assert guard.check("k", "4711", "4711")
    assert guard.recent_failures("k") == 0
    assert not guard.check("k", "1", "4711")
    assert not guard.is_locked("k")


def test_the_pin_is_not_in_the_params_repr() -> None:
    params = DisaParams.model_validate({"id": "tone", "type": "disa", "pin": "73914628"})
    assert params.pin == "73914628"
    assert "73914628" not in repr(params)
    assert "73914628" not in str(params)


def test_digits_hidden_masks_one_calls_digit_lines_while_inside(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=MEDIA_SESSION_LOGGER)
    log = logging.getLogger(MEDIA_SESSION_LOGGER)
    with digits_hidden("story-1"):
        log.info("call_id=%s digit %s (%s)", "story-1", "7", "rfc4733")
        log.info("call_id=%s digits %r ended: %s", "story-1", "7391", "terminator")
        log.info("call_id=%s %s stopped (%s) after %d frames", "story-1", "dial tone",
                 "key 7 down", 3)
        log.info("call_id=%s digit %s (%s)", "story-2", "5", "rfc4733")  # another call
    log.info("call_id=%s digit %s (%s)", "story-1", "8", "rfc4733")  # after the PIN
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "call_id=story-1 digit [hidden] (rfc4733)",
        "call_id=story-1 digits '[hidden]' ended: terminator",
        "call_id=story-1 dial tone stopped (key [hidden] down) after 3 frames",
        "call_id=story-2 digit 5 (rfc4733)",
        "call_id=story-1 digit 8 (rfc4733)",
    ]
    assert not logging.getLogger(MEDIA_SESSION_LOGGER).filters
