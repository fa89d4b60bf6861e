"""The digit stream the flow layer reads: one API for the three DTMF forms.

Digits reach Boomerang as RFC 4733 telephone-events (``dtmf_rfc4733``), as
SIP INFO bodies (``dtmf_info``) or as in-band tones (``dtmf_inband``). Each
source produces ``DigitReceived`` events; a ``DigitCollector`` merges them,
drops the copies a phone sends of one key press in two forms, and keeps the
first-digit and inter-digit deadlines of the ``disa`` component.

De-duplication rule (one key press, several forms):

1. Two digits from *different* sources are the same key press when they
   carry the same digit and their start times differ by at most
   ``same_press_window_s`` (default 0.3 s). An accepted digit absorbs at
   most one copy from each other source, so "55" sent in two forms still
   gives "55".
2. Once an out-of-band digit (RFC 4733 or SIP INFO) has been accepted, the
   far end is known to signal digits out of band: in-band digits are dropped
   until ``inband_holdoff_s`` (default 30 s) after the last out-of-band digit.
   The in-band copy is then leaked audio (some phones send both, some
   gateways regenerate tones) and only adds risk of talk-off.
3. Digits from the same source are never merged: each source reports one
   event per key press itself.

Times are the caller's clock (``now``), the same clock for all sources.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

# RFC 4733 §3.2 event codes 0..15, in order.
DTMF_DIGITS = "0123456789*#ABCD"


class DigitSource(StrEnum):
    RFC4733 = "rfc4733"
    INFO = "info"
    INBAND = "inband"


class DigitEndReason(StrEnum):
    TERMINATOR = "terminator"
    FIRST_DIGIT_TIMEOUT = "first_digit_timeout"
    INTER_DIGIT_TIMEOUT = "inter_digit_timeout"
    MAX_DIGITS = "max_digits"


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitReceived:
    """One key press. ``time`` is when the key press started (estimated by
    the source), ``duration_ms`` how long it lasted (None when unknown)."""

    digit: str
    source: DigitSource
    time: float
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitCollectionEnded:
    """Collection finished: ``digits`` (without the terminator) and why."""

    digits: str
    reason: DigitEndReason
    time: float


DigitEvent = DigitReceived | DigitCollectionEnded


def digit_for_event_code(code: int) -> str | None:
    """The DTMF digit of an RFC 4733 event code, None for other events."""
    if 0 <= code < 16:
        return DTMF_DIGITS[code]
    return None


def event_code_for_digit(digit: str) -> int:
    """The RFC 4733 event code of a digit ('0'..'9', '*', '#', 'A'..'D')."""
    index = DTMF_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return index


class _Accepted:
    """An accepted digit and the sources whose copy it already absorbed."""

    __slots__ = ("absorbed", "digit", "time")

    def __init__(self, digit: str, time: float, source: DigitSource) -> None:
        self.digit = digit
        self.time = time
        self.absorbed = {source}


class DigitCollector:
    """Collects digits for one call leg (sans I/O).

    Call ``start(now)`` when the dial tone starts (arms the first-digit
    deadline), ``add(digit, now)`` for every ``DigitReceived`` from any source
    and ``handle_timer(now)`` when ``next_deadline()`` passes. Both return
    the events that follow: the accepted ``DigitReceived`` (duplicates give
    nothing) and at most one ``DigitCollectionEnded``.
    """

    __slots__ = (
        "_deadline",
        "_digits",
        "_ended",
        "_last_out_of_band",
        "_recent",
        "first_digit_timeout_s",
        "inband_holdoff_s",
        "inter_digit_timeout_s",
        "max_digits",
        "same_press_window_s",
        "terminator",
    )

    def __init__(
        self,
        *,
        first_digit_timeout_s: float = 10.0,
        inter_digit_timeout_s: float = 5.0,
        terminator: str | None = "#",
        max_digits: int = 32,
        same_press_window_s: float = 0.3,
        inband_holdoff_s: float = 30.0,
    ) -> None:
        if max_digits < 1:
            raise ValueError("max_digits must be at least 1")
        self.first_digit_timeout_s = first_digit_timeout_s
        self.inter_digit_timeout_s = inter_digit_timeout_s
        self.terminator = terminator
        self.max_digits = max_digits
        self.same_press_window_s = same_press_window_s
        self.inband_holdoff_s = inband_holdoff_s
        self._digits: list[str] = []
        self._recent: deque[_Accepted] = deque(maxlen=8)
        self._last_out_of_band: float | None = None
        self._deadline: float | None = None
        self._ended: DigitCollectionEnded | None = None

    # -- what the flow layer reads ------------------------------------------

    @property
    def collected(self) -> str:
        """The digits accepted so far, without the terminator."""
        return "".join(self._digits)

    @property
    def ended(self) -> DigitCollectionEnded | None:
        return self._ended

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must run next; None when nothing is armed."""
        return None if self._ended is not None else self._deadline

    # -- inputs ---------------------------------------------------------------

    def start(self, now: float) -> None:
        """Start (or restart) a collection: clears digits, arms the first-digit
        deadline. Duplicate detection keeps its history across restarts."""
        self._digits.clear()
        self._ended = None
        self._deadline = now + self.first_digit_timeout_s

    def finish(self, now: float, reason: DigitEndReason) -> DigitCollectionEnded:
        """End the collection from outside (e.g. a dial-plan match)."""
        if self._ended is None:
            self._ended = DigitCollectionEnded(digits=self.collected, reason=reason, time=now)
        return self._ended

    def add(self, digit: DigitReceived, now: float) -> list[DigitEvent]:
        if not self._accept(digit):
            return []
        events: list[DigitEvent] = [digit]
        if self._ended is not None:
            return events  # still reported (e.g. "**" while bridged), not collected
        if self.terminator is not None and digit.digit == self.terminator:
            events.append(self.finish(now, DigitEndReason.TERMINATOR))
            return events
        self._digits.append(digit.digit)
        if len(self._digits) >= self.max_digits:
            events.append(self.finish(now, DigitEndReason.MAX_DIGITS))
        else:
            self._deadline = now + self.inter_digit_timeout_s
        return events

    def handle_timer(self, now: float) -> list[DigitEvent]:
        if self._ended is not None or self._deadline is None or now < self._deadline:
            return []
        reason = (
            DigitEndReason.INTER_DIGIT_TIMEOUT if self._digits
            else DigitEndReason.FIRST_DIGIT_TIMEOUT
        )
        return [self.finish(now, reason)]

    # -- de-duplication ---------------------------------------------------------

    def _accept(self, digit: DigitReceived) -> bool:
        source = digit.source
        if source == DigitSource.INBAND:
            last = self._last_out_of_band
            if last is not None and digit.time - last <= self.inband_holdoff_s:
                return False
        for accepted in self._recent:
            if (
                accepted.digit == digit.digit
                and source not in accepted.absorbed
                and abs(accepted.time - digit.time) <= self.same_press_window_s
            ):
                accepted.absorbed.add(source)
                self._note_out_of_band(digit)
                return False
        self._recent.append(_Accepted(digit.digit, digit.time, source))
        self._note_out_of_band(digit)
        return True

    def _note_out_of_band(self, digit: DigitReceived) -> None:
        if digit.source != DigitSource.INBAND:
            last = self._last_out_of_band
            if last is None or digit.time > last:
                self._last_out_of_band = digit.time
