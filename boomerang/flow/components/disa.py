"""``disa``: dial tone, digits, then the call (SPEC §3).

The story's call is answered (a callback leg, or an inbound call on a DID);
Boomerang terminates its media (``context.media_session()``) until the
bridge. In order:

1. **PIN** (when ``pin`` is set): silence while the caller keys the PIN
   and ``#`` (or waits ``timeout`` after the last key); ``pin_attempts``
   tries. The comparison and the lockout across calls are ``flow/pin.py``
   (``PinGuard``: 5 wrong PINs in 15 min lock the owner extension out for
   15 min). Failure, or a locked extension: the special information tone,
   outcome ``pin_failed``. The PIN is never logged (the media session's
   digit lines are masked while it is keyed), never recorded, never given
   to the observer (it hears "PIN accepted" or "wrong PIN", not digits),
   and its digits are dropped from the session's history.
2. **Dial tone** of the tone plan (``tone_plan``, else ``media.tone_plan``)
   until the first key. Collection ends on ``#``; on an unambiguous
   extension (the digits are an extension number and no other extension
   number starts with them); on ``max_digits``; or on the inter-digit
   timeout (``timeout``, else ``values["inter_digit_timeout_s"]`` from the
   callback node, else 5 s) when the digits are a complete number. No key
   within ``first_digit_timeout``: hang up, outcome ``timeout``. An
   inter-digit timeout on an incomplete or invalid number: error tone
   (special information), outcome ``timeout``.
3. **Dialling** (``dial.decide_dial``): an extension rings its registered
   phones; an external number (the trunk's outside prefix, ``+`` or
   ``00``) needs the owner's transit permission and must be neither
   premium-rate nor under a blocked prefix, else error tone and outcome
   ``refused`` (no INVITE leaves). The trunk is ``trunk``, else the DID's,
   else the first one up; the destination sees ``caller_id``, else (an
   extension) the owner's number, (external) the owner's ``caller_id``,
   else the company number, else the DID.
4. **Ringing** (``dialling.place_call``): ringback from the destination's
   180/183. Busy: the busy tone for a few seconds; no answer or a failure:
   the congestion tone; outcome ``failed`` either way (the tone tells the
   caller which).
5. **Bridge** (``dialling.bridge``): outcome ``ended`` when it ends. With
   ``star_star``, ``**`` keyed by the caller (never the destination) sends
   BYE to the destination and goes back to step 2 on the same call.

Each failure outcome hangs the call up unless the node names a ``next``
for it (then the flow goes on, e.g. to a ``play`` or a ``menu``). The
caller hanging up at any time gives ``ended``. Every digit of steps 2-5
goes to ``observer.digit``, every tone to ``observer.tone``; every log
line names the call's ``call_id``; the digits dialled may be logged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from ...call.calls import AnyCall
from ...call.media_session import MediaSession, MediaSessionError
from ...media.digits import DigitCollectionEnded, DigitEndReason, DigitEvent, DigitReceived
from ...media.tones import tone_plan
from ..component import DEFAULT_BRANCH, Component, ComponentParams
from ..context import FlowContext
from ..dialling import STAR_STAR_WINDOW_S, bridge, place_call
from ..pin import PinGuard, digits_hidden
from .dial import decide_dial

log = logging.getLogger(__name__)

DEFAULT_INTER_DIGIT_TIMEOUT_S = 5.0
ERROR_TONE = "special_information"
ERROR_TONE_S = 1.0      # E.180 special information: three 330 ms tones
BUSY_TONE_S = 3.0       # busy / congestion before hanging up
PIN_MAX_DIGITS = 16     # a PIN is 4-12 digits; a longer entry ends by itself
DIAL_TONE = "dial"

# The tone a failure plays before the call ends.
_FAILURE_TONES = {"refused": ERROR_TONE, "pin_failed": ERROR_TONE, "busy": "busy",
                  "no_answer": "congestion", "failed": "congestion"}


class DisaParams(ComponentParams):
    tone_plan: str | None = None        # default: media.tone_plan
    first_digit_timeout: float = Field(default=10.0, gt=0, le=120)
    timeout: float | None = Field(default=None, gt=0, le=120)  # default: callback's, else 5
    max_digits: int = Field(default=20, ge=1, le=32)
    pin: str | None = Field(default=None, repr=False)  # digits; never logged
    pin_attempts: int = Field(default=3, ge=1, le=10)
    star_star: bool = True              # ** in a bridged call: back to dial tone
    trunk: str | None = None            # external calls; default: the DID's trunk
    caller_id: str | None = None        # default: the owner's caller_id, else company
    ring_timeout: float = Field(default=60.0, gt=0, le=600)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Collected:
    """The digits to dial, or the outcome (and tone) that ends the node."""

    digits: str = ""
    outcome: str | None = None
    tone: str | None = None


class Disa(Component):
    """See the module doc. One instance should live as long as the server:
    its ``pin_guard`` counts wrong PINs across calls."""

    type = "disa"
    Params = DisaParams
    outcomes = ("ended", "timeout", "refused", "failed", "pin_failed")
    help = ("Dial tone of the tone plan until the first digit; collects digits with the "
            "first-digit and inter-digit timeouts, ends on #, an exact extension or the "
            "timeout after a valid number; optional PIN first; then dials: extensions "
            "freely, external numbers only with transit permission and never premium-rate "
            "or blocked prefixes (error tone otherwise); ** in the call gives dial tone "
            "again.")
    collects_input = True
    needs_next = False

    def __init__(self, *, pin_guard: PinGuard | None = None, error_tone_s: float = ERROR_TONE_S,
                 busy_tone_s: float = BUSY_TONE_S,
                 star_star_window_s: float = STAR_STAR_WINDOW_S) -> None:
        self.pin_guard = pin_guard or PinGuard()
        self.error_tone_s = error_tone_s
        self.busy_tone_s = busy_tone_s
        self.star_star_window_s = star_star_window_s

    async def run(self, context: FlowContext, params: Any) -> str:
        assert isinstance(params, DisaParams)
        call = context.active_call()
        session = await self._open_session(context, params)
        if session is None:
            return self._hang_up(context, params, "failed")
        inter_digit_s = float(params.timeout or context.values.get("inter_digit_timeout_s")
                              or DEFAULT_INTER_DIGIT_TIMEOUT_S)
        if params.pin is not None:
            outcome = await self._check_pin(context, params, session, inter_digit_s)
            if outcome is not None:
                return await self._finish(context, params, session, outcome,
                                          _FAILURE_TONES.get(outcome))
        while True:
            collected = await self._collect(context, params, session, inter_digit_s)
            if collected.outcome is not None:
                return await self._finish(context, params, session, collected.outcome,
                                          collected.tone)
            digits = collected.digits
            context.values["digits"] = digits
            decision = decide_dial(context, digits, trunk=params.trunk,
                                   caller_id=params.caller_id)
            if decision.target is None:
                log.info("call_id=%s disa: %r refused: %s (%d)", call.call_id, digits,
                         decision.reason, decision.sip_status)
                context.observer.note(context, f"disa refused {digits}: {decision.reason}")
                outcome = "failed" if decision.sip_status == 503 else "refused"
                return await self._finish(context, params, session, outcome,
                                          _FAILURE_TONES[outcome])
            log.info("call_id=%s disa: %r -> %s", call.call_id, digits, decision.target)
            placed = await place_call(context, session, decision,
                                      ring_timeout_s=params.ring_timeout)
            if placed.outcome == "ended":
                return "ended"
            if placed.outcome != "answered" or placed.call is None:
                return await self._finish(context, params, session, "failed",
                                          _FAILURE_TONES.get(placed.outcome))
            end = await bridge(context, placed.call, star_star=params.star_star,
                               window_s=self.star_star_window_s)
            if end == "ended":
                return "ended"
            opened = await self._open_session(context, params)
            if opened is None:
                return self._hang_up(context, params, "failed")
            session = opened

    # -- media ---------------------------------------------------------------------

    async def _open_session(self, context: FlowContext,
                            params: DisaParams) -> MediaSession | None:
        call = context.active_call()
        if call.ended.done():
            return None
        try:
            session = await context.media_session()
        except MediaSessionError as error:
            log.warning("call_id=%s disa without media: %s", call.call_id, error)
            return None
        if params.tone_plan is not None:
            session.tone_plan = tone_plan(params.tone_plan)
        return session

    def _play(self, context: FlowContext, session: MediaSession, name: str) -> None:
        """An interruptible tone; the observer hears when it starts and stops."""
        call_id = context.active_call().call_id
        playback = session.play_tone(name)
        context.observer.tone(context, call_id, name, True)
        playback.add_done_callback(
            lambda _: context.observer.tone(context, call_id, name, False))

    async def _play_for(self, context: FlowContext, session: MediaSession, name: str,
                        duration_s: float) -> None:
        call_id = context.active_call().call_id
        context.observer.tone(context, call_id, name, True)
        try:
            await session.play_tone_for(name, duration_s)
        except MediaSessionError as error:
            log.info("call_id=%s no %s tone: %s", call_id, name, error)
        finally:
            context.observer.tone(context, call_id, name, False)

    # -- digits --------------------------------------------------------------------

    def _start_collecting(self, session: MediaSession, *, first_digit_timeout_s: float,
                          inter_digit_timeout_s: float, max_digits: int) -> None:
        collector = session.collector
        collector.first_digit_timeout_s = first_digit_timeout_s
        collector.inter_digit_timeout_s = inter_digit_timeout_s
        collector.terminator = "#"
        collector.max_digits = max_digits
        session.clear_digits()  # keys pressed before this question are not its answer
        session.start_collecting()

    async def _collect(self, context: FlowContext, params: DisaParams, session: MediaSession,
                       inter_digit_s: float) -> _Collected:
        """Dial tone, then digits until one of the ends of the module doc."""
        call = context.active_call()
        extensions = [extension.number for extension in context.config.extensions]
        self._start_collecting(session, first_digit_timeout_s=params.first_digit_timeout,
                               inter_digit_timeout_s=inter_digit_s,
                               max_digits=params.max_digits)
        self._play(context, session, DIAL_TONE)
        try:
            while True:
                event = await _next_event(session, call)
                if event is None:
                    return _Collected(outcome="ended")
                if isinstance(event, DigitReceived):
                    context.observer.digit(context, call.call_id, event.digit, event.source)
                    digits = session.collector.collected
                    if event.digit != "#" and _unambiguous_extension(digits, extensions):
                        session.collector.finish(session.clock(), DigitEndReason.TERMINATOR)
                        log.info("call_id=%s disa: %s is an extension", call.call_id, digits)
                        return _Collected(digits=digits)
                    continue
                if event.reason is DigitEndReason.FIRST_DIGIT_TIMEOUT:
                    log.info("call_id=%s disa: no digit in %.1f s", call.call_id,
                             params.first_digit_timeout)
                    return _Collected(outcome="timeout")
                if event.reason is DigitEndReason.INTER_DIGIT_TIMEOUT:
                    dialled = decide_dial(context, event.digits, trunk=params.trunk).dialled
                    if dialled.kind not in ("extension", "external"):
                        log.info("call_id=%s disa: %r is %s after %.1f s", call.call_id,
                                 event.digits, dialled.kind, inter_digit_s)
                        return _Collected(outcome="timeout", tone=ERROR_TONE)
                return _Collected(digits=event.digits)
        finally:
            if session.tone_playing and session.tone_name == DIAL_TONE:
                session.stop_tone(reason="collection over")

    async def _check_pin(self, context: FlowContext, params: DisaParams,
                         session: MediaSession, inter_digit_s: float) -> str | None:
        """None when the PIN was right; else the outcome (``pin_failed``, ``ended``)."""
        call = context.active_call()
        pin = params.pin
        assert pin is not None
        key = _lock_key(context)
        guard = self.pin_guard
        if guard.is_locked(key):
            log.warning("call_id=%s disa locked for %s (%.0f s left): refused", call.call_id,
                        key, guard.locked_for_s(key))
            context.observer.note(context, "disa locked out")
            return "pin_failed"
        for attempt in range(1, params.pin_attempts + 1):
            entered = await self._read_pin(context, params, session, inter_digit_s)
            if entered is None:
                return "ended"
            if entered and guard.check(key, entered, pin):
                log.info("call_id=%s PIN accepted", call.call_id)
                context.observer.note(context, "PIN accepted")
                return None
            log.info("call_id=%s wrong PIN (attempt %d of %d)", call.call_id, attempt,
                     params.pin_attempts)
            context.observer.note(context, f"wrong PIN ({attempt} of {params.pin_attempts})")
            if guard.is_locked(key):
                break
        return "pin_failed"

    async def _read_pin(self, context: FlowContext, params: DisaParams, session: MediaSession,
                        inter_digit_s: float) -> str | None:
        """The digits keyed before ``#`` or a timeout; None: the caller hung up."""
        call = context.active_call()
        history_mark = len(session.history)
        with digits_hidden(session.call_id):
            try:
                self._start_collecting(session, first_digit_timeout_s=params.first_digit_timeout,
                                       inter_digit_timeout_s=inter_digit_s,
                                       max_digits=PIN_MAX_DIGITS)
                while True:
                    event = await _next_event(session, call)
                    if event is None:
                        return None
                    if isinstance(event, DigitCollectionEnded):
                        return event.digits
            finally:
                del session.history[history_mark:]

    # -- the end ---------------------------------------------------------------------

    async def _finish(self, context: FlowContext, params: DisaParams,
                      session: MediaSession | None, outcome: str, tone: str | None) -> str:
        """Play ``tone`` for a while, then hang up unless the node goes on."""
        call = context.active_call()
        if tone is not None and session is not None and not session.closed \
                and not call.ended.done():
            duration_s = self.busy_tone_s if tone in ("busy", "congestion") \
                else self.error_tone_s
            await self._play_for(context, session, tone, duration_s)
        return self._hang_up(context, params, outcome)

    def _hang_up(self, context: FlowContext, params: DisaParams, outcome: str) -> str:
        call = context.active_call()
        branches = params.branches()
        if outcome != "ended" and outcome not in branches and DEFAULT_BRANCH not in branches \
                and not call.ended.done():
            log.info("call_id=%s disa %s: hanging up", call.call_id, outcome)
            call.hangup()
        return outcome


async def _next_event(session: MediaSession, call: AnyCall) -> DigitEvent | None:
    """The session's next digit event, or None when the call ended first."""
    getting = asyncio.ensure_future(session.events.get())
    either: set[asyncio.Future[Any]] = {getting, call.ended}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getting.done():
            getting.cancel()
    if getting.done() and not getting.cancelled():
        return getting.result()
    return None


def _unambiguous_extension(digits: str, extensions: list[str]) -> bool:
    """``digits`` are an extension number and no other one starts with them."""
    return digits in extensions and not any(
        number != digits and number.startswith(digits) for number in extensions)


def _lock_key(context: FlowContext) -> str:
    """Whose wrong PINs count together: the owner extension, else the DID."""
    if context.owner is not None:
        return f"extension {context.owner.number}"
    if context.did is not None:
        return f"did {context.did.number}"
    return "nobody"


__all__ = ["BUSY_TONE_S", "ERROR_TONE_S", "Disa", "DisaParams"]
