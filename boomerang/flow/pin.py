"""The PIN of a dial tone: constant-time check, lockout, and keeping it secret.

``disa`` may ask for a PIN before its dial tone (SPEC §3). The caller keys
the PIN and ``#``; ``pin_matches`` compares it with ``hmac.compare_digest``,
so the time taken does not tell how many leading digits were right (only
the length of the stored PIN can show, which is no help to a guesser who
must key whole PINs anyway).

Lockout (``PinGuard``): guessing a 4-digit PIN three tries per call is easy
with an autodialler, so wrong PINs are counted per key (the owner
extension, or the DID when nobody owns the call) across calls:

- ``LOCKOUT_FAILURES`` wrong PINs within ``LOCKOUT_WINDOW_S`` lock the key
  out of disa for ``LOCKOUT_S``: every call gets the error tone at once,
  the right PIN included (the lock does not tell a guesser when a guess
  was right);
- a right PIN clears the count; the lock ends by itself, and failures
  older than the window are forgotten (the memory held is bounded by the
  number of keys).

The state is in memory, per process, with an injected clock: one
``PinGuard`` must live as long as the server (the flow runner keeps one
``Disa`` instance, or passes one guard to every instance). Several nodes
each count on their own; a cluster-wide lock would need the database.

Secrecy: the PIN never goes into a log line, a record or an exception
message. The media session logs every digit it accepts (useful on a dial
tone); ``digits_hidden(call_id)`` masks the digits in those lines for one
call while its PIN is keyed (a filter on that module's logger, removed on
exit, so no state outlives the PIN entry).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

LOCKOUT_FAILURES = 5          # wrong PINs ...
LOCKOUT_WINDOW_S = 15 * 60.0  # ... within this long lock the key out ...
LOCKOUT_S = 15 * 60.0         # ... for this long

# The logger whose lines show the digits a media session accepts.
MEDIA_SESSION_LOGGER = "boomerang.call.media_session"
HIDDEN = "[hidden]"
_DTMF = re.compile(r"[0-9*#A-Da-d]+")
_KEY = re.compile(r"\bkey [0-9*#A-Da-d]")


def pin_matches(entered: str, pin: str) -> bool:
    """True when ``entered`` is ``pin``; constant time in the digits."""
    return hmac.compare_digest(entered.encode("ascii", "replace"),
                               pin.encode("ascii", "replace"))


class PinGuard:
    """Counts wrong PINs per key and locks a key out (see the module doc)."""

    __slots__ = ("_failures", "_locked_until", "clock", "failures", "lockout_s", "window_s")

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 failures: int = LOCKOUT_FAILURES, window_s: float = LOCKOUT_WINDOW_S,
                 lockout_s: float = LOCKOUT_S) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        self.clock = clock
        self.failures = failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def locked_for_s(self, key: str) -> float:
        """Seconds left of ``key``'s lockout; 0 when it is not locked."""
        until = self._locked_until.get(key)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._locked_until[key]
            return 0.0
        return left

    def is_locked(self, key: str) -> bool:
        return self.locked_for_s(key) > 0

    def recent_failures(self, key: str) -> int:
        """Wrong PINs of ``key`` still inside the window."""
        times = self._failures.get(key)
        if times is None:
            return 0
        self._forget_old(key, times, self.clock())
        return len(times)

    def check(self, key: str, entered: str, pin: str) -> bool:
        """Compare ``entered`` with ``pin`` and count the result; False when
        wrong or while ``key`` is locked out."""
        if self.is_locked(key):
            return False
        if pin_matches(entered, pin):
            self._failures.pop(key, None)
            return True
        self.record_failure(key)
        return False

    def record_failure(self, key: str) -> None:
        now = self.clock()
        times = self._failures.setdefault(key, deque())
        times.append(now)
        self._forget_old(key, times, now)
        if len(times) >= self.failures:
            self._locked_until[key] = now + self.lockout_s
            self._failures.pop(key, None)
            log.warning("disa locked for %s: %d wrong PINs within %.0f s; locked for %.0f s",
                        key, self.failures, self.window_s, self.lockout_s)

    def _forget_old(self, key: str, times: deque[float], now: float) -> None:
        while times and now - times[0] > self.window_s:
            times.popleft()
        if not times:
            self._failures.pop(key, None)


class _HideDigits(logging.Filter):
    """Masks the digits in the media session's lines about one call."""

    def __init__(self, call_id: str) -> None:
        super().__init__()
        self.call_id = call_id

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and args[0] == self.call_id:
            record.args = (args[0], *(_mask(arg) for arg in args[1:]))
        return True


def _mask(value: object) -> object:
    if isinstance(value, str):
        if _DTMF.fullmatch(value):
            return HIDDEN
        return _KEY.sub(f"key {HIDDEN}", value)
    return value


@contextmanager
def digits_hidden(call_id: str) -> Iterator[None]:
    """While inside, the media session's log lines about ``call_id`` show
    ``[hidden]`` instead of the digits keyed."""
    logger = logging.getLogger(MEDIA_SESSION_LOGGER)
    hider = _HideDigits(call_id)
    logger.addFilter(hider)
    try:
        yield
    finally:
        logger.removeFilter(hider)


__all__ = [
    "HIDDEN",
    "LOCKOUT_FAILURES",
    "LOCKOUT_S",
    "LOCKOUT_WINDOW_S",
    "PinGuard",
    "digits_hidden",
    "pin_matches",
]
