"""Placing and bridging the call a user dialled, with ``**`` back to the dial tone.

What to call and as whom is ``dial.decide_dial`` (classify the digits with
the trunk's outside prefix, ``may_dial``, the trunk, the caller ID). This
module does the two steps that follow, for any component whose call is
already answered and has a media session (``disa``; ``dial`` can use them
too):

- ``place_call(context, session, decision, ring_timeout_s=...)``: the
  destination leg (``manager.originate`` in the story), ringback to the
  caller from the destination's first 180/183 (we generate it: the
  callback leg is answered, early media is not passed on), and the result:
  ``answered`` with the ``OutboundCall``, or ``busy`` / ``no_answer`` /
  ``failed``, or ``ended`` when the caller hung up while it rang (the
  destination then gets CANCEL). Cancelling the caller's task sends CANCEL
  too.
- ``bridge(context, outbound, star_star=...)``: ``manager.bridge`` of the
  two calls until it ends (``ended``), or, with ``star_star``, until the
  caller keys ``**`` (``star_star``): the destination leg gets BYE
  (Q.850 16), the caller's leg stays up and its media is ours again, for a
  new dial tone. While it listens for ``**`` every key the caller presses
  goes to ``observer.digit`` too.

``**`` is heard on the caller's leg only: its RFC 4733 telephone-events are
decoded by the relay although they are relayed
(``PythonMediaRelay.watch_digits``), its SIP INFO digits are read from the
call's events; the destination's digits never count. Two ``*`` whose key
presses start at most ``STAR_STAR_WINDOW_S`` apart, with no other key
between, make ``**``; one key press sent both as telephone-event and INFO
counts once (``DigitCollector``'s de-duplication). In-band DTMF is not
listened to during a bridge (a Goertzel detector on every relayed packet
would cost the hot path). With the rtpengine relay ``**`` is not available:
it neither reports relayed digits nor lets a media session take the leg
back.

Parting a bridge: ``CallManager.bridge`` has no ``unbridge``, and the
``B2bua`` it puts between the legs ends the caller's leg when the
destination's ends. ``_part`` takes that ``B2bua``'s listeners off both
legs before the BYE, and the relay stops relaying
(``PythonMediaRelay.unbridge``); the manager's ``bridge`` coroutine, run as
its own task and never cancelled (cancelling it would cancel the calls'
``ended`` futures it gathers), finishes when the caller's leg ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..call.b2bua import B2bua
from ..call.calls import AnyCall, OutboundCall
from ..call.events import (
    Q850_NORMAL_CLEARING,
    CallEvent,
    CallRinging,
    EndCause,
    InfoReceived,
    Outcome,
)
from ..call.leg import CallLeg
from ..call.manager import CallRefused
from ..call.media_session import MediaSession, MediaSessionError
from ..media.digits import DigitCollector, DigitReceived
from ..media.dtmf_info import DtmfBodyError, is_dtmf_content_type, parse_dtmf_info
from ..media.relay import RelayError
from ..transport.media_relay import PythonMediaRelay
from ..transport.rtp_socket import PortsExhausted
from .context import FlowContext

if TYPE_CHECKING:  # at run time dial.py imports nothing from here either way
    from .components.dial import DialDecision

log = logging.getLogger(__name__)

RINGBACK_TONE = "ringback"
STAR_STAR_WINDOW_S = 2.0  # the second * must start this soon after the first
NO_ANSWER_STATUSES = frozenset((408, 480))
# The BYE of a destination leg the caller left with **.
STAR_STAR_END = EndCause(outcome=Outcome.HUNG_UP_LOCAL, q850_cause=Q850_NORMAL_CLEARING,
                         reason_text="Caller keyed **")

PlaceOutcome = Literal["answered", "busy", "no_answer", "failed", "ended"]
BridgeEnd = Literal["ended", "star_star"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Placed:
    """What came of a destination leg: ``call`` is set when ``answered``."""

    outcome: PlaceOutcome
    call: OutboundCall | None = None
    cause: EndCause | None = None


def _refused_outcome(status: int) -> PlaceOutcome:
    if status == 486:
        return "busy"
    if status in NO_ANSWER_STATUSES:
        return "no_answer"
    return "failed"


async def place_call(context: FlowContext, session: MediaSession | None,
                     decision: DialDecision, *, ring_timeout_s: float) -> Placed:
    """Call ``decision.target`` for the story's call (see the module doc)."""
    call = context.active_call()
    target = decision.target
    assert target is not None, "a refused decision has nothing to call"
    owner = context.owner
    try:
        outbound = await context.manager.originate(
            target, caller_id=decision.caller_id, ring_timeout_s=ring_timeout_s,
            correlation_id=call.correlation_id,
            owner_extension=owner.number if owner is not None else None,
            display_name=decision.display_name)
    except CallRefused as error:
        log.info("call_id=%s calling %s refused: %d %s", call.call_id, target, error.status,
                 error.detail)
        return Placed(outcome=_refused_outcome(error.status))
    except (PortsExhausted, RelayError) as error:
        log.warning("call_id=%s calling %s: no media port: %s", call.call_id, target, error)
        return Placed(outcome="failed")
    log.info("call_id=%s calling %s as %s (call_id=%s)", call.call_id, target,
             decision.caller_id, outbound.call_id)
    ringback = _Ringback(context, session)
    outbound.listeners.append(ringback)
    waiting = asyncio.ensure_future(outbound.outcome())
    try:
        await asyncio.wait({waiting, call.ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ringback.stop()
        if ringback in outbound.listeners:
            outbound.listeners.remove(ringback)
        if not waiting.done():
            waiting.cancel()  # CANCEL to every fork (OutboundCall.outcome)
    if not waiting.done() or waiting.cancelled():
        log.info("call_id=%s hung up while %s rang", call.call_id, target)
        outbound.hangup()
        return Placed(outcome="ended")
    cause = waiting.result()
    if cause.outcome is not Outcome.ANSWERED:
        log.info("call_id=%s %s not answered: %s %s", call.call_id, target, cause.outcome,
                 cause.sip_status or "")
        return Placed(outcome=_not_answered(cause), cause=cause)
    if call.ended.done():
        outbound.hangup()
        return Placed(outcome="ended", call=outbound)
    return Placed(outcome="answered", call=outbound, cause=cause)


def _not_answered(cause: EndCause) -> PlaceOutcome:
    """The outcome of a destination leg that was not answered (dial's ``outcome_of``)."""
    if cause.outcome is Outcome.BUSY:
        return "busy"
    if cause.outcome is Outcome.NO_ANSWER or cause.sip_status in NO_ANSWER_STATUSES:
        return "no_answer"
    return "failed"


class _Ringback:
    """Ringback to the caller from the destination's first 180/183 until stopped."""

    __slots__ = ("context", "playing", "session")

    def __init__(self, context: FlowContext, session: MediaSession | None) -> None:
        self.context = context
        self.session = session
        self.playing = False

    def __call__(self, event: CallEvent) -> None:
        session = self.session
        if not isinstance(event, CallRinging) or self.playing or session is None \
                or session.closed:
            return
        try:
            session.play_tone(RINGBACK_TONE, interruptible=False)
        except MediaSessionError as error:
            log.info("call_id=%s no ringback: %s", event.call_id, error)
            return
        self.playing = True
        self.context.observer.tone(self.context, self.context.active_call().call_id,
                                   RINGBACK_TONE, True)

    def stop(self) -> None:
        if not self.playing:
            return
        self.playing = False
        session = self.session
        if session is not None and not session.closed and session.tone_playing \
                and session.tone_name == RINGBACK_TONE:
            session.stop_tone(reason="ringing over")
        self.context.observer.tone(self.context, self.context.active_call().call_id,
                                   RINGBACK_TONE, False)


# -- the bridge and ** -----------------------------------------------------------------


class StarStar:
    """Spots ``**`` in the digits of one leg (see the module doc); calls
    ``on_match`` once per ``**``, and ``on_digit`` with every key press
    (each once, whatever the routes it came by)."""

    __slots__ = ("_collector", "_last_star_at", "on_digit", "on_match", "window_s")

    def __init__(self, on_match: Callable[[], None], *,
                 window_s: float = STAR_STAR_WINDOW_S,
                 on_digit: Callable[[DigitReceived], None] | None = None) -> None:
        self.on_match = on_match
        self.on_digit = on_digit
        self.window_s = window_s
        # only for its de-duplication across sources: no terminator, no timers
        self._collector = DigitCollector(terminator=None)
        self._last_star_at: float | None = None

    def digit(self, digit: DigitReceived) -> None:
        for event in self._collector.add(digit, digit.time):
            if isinstance(event, DigitReceived):
                self._key(event)

    def _key(self, event: DigitReceived) -> None:
        if self.on_digit is not None:
            self.on_digit(event)
        if event.digit != "*":
            self._last_star_at = None
            return
        last = self._last_star_at
        if last is not None and 0 <= event.time - last <= self.window_s:
            self._last_star_at = None
            self.on_match()
        else:
            self._last_star_at = event.time


async def bridge(context: FlowContext, outbound: OutboundCall, *, star_star: bool,
                 window_s: float = STAR_STAR_WINDOW_S) -> BridgeEnd:
    """Bridge the story's call with ``outbound`` until the bridge ends
    (``ended``) or the caller keys ``**`` (``star_star``; only when asked)."""
    call = context.active_call()
    manager = context.manager
    loop = asyncio.get_running_loop()
    keyed: asyncio.Future[None] = loop.create_future()

    def matched() -> None:
        if not keyed.done():
            keyed.set_result(None)

    def digit(event: DigitReceived) -> None:
        context.observer.digit(context, call.call_id, event.digit, event.source)

    detector = StarStar(matched, window_s=window_s, on_digit=digit)
    unwatch = _watch_star_star(context, call, detector) if star_star else None
    bridging = loop.create_task(manager.bridge(call, outbound))
    bridging.add_done_callback(_bridge_done)
    context.observer.note(context, "bridged")
    try:
        await asyncio.wait({bridging, keyed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if unwatch is not None:
            unwatch()
        if not keyed.done():
            keyed.cancel()
    if bridging.done() or call.ended.done() or outbound.ended.done():
        if not bridging.done():
            await asyncio.shield(bridging)
        return "ended"
    await _part(context, call, outbound)
    return "star_star"


def _bridge_done(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("bridge failed", exc_info=task.exception())


def _watch_star_star(context: FlowContext, call: AnyCall,
                     detector: StarStar) -> Callable[[], None] | None:
    """Feed the caller's digits to ``detector``; returns how to stop."""
    relay = context.manager.relay
    if not isinstance(relay, PythonMediaRelay):
        log.info("call_id=%s ** not available: the media relay cannot report digits",
                 call.call_id)
        return None
    media_key, leg_name = call.media.media_key, call.media.leg_name
    try:
        relay.watch_digits(media_key, leg_name, detector.digit)
    except (RelayError, KeyError) as error:
        log.info("call_id=%s ** not available: %s", call.call_id, error)
        return None
    clock = relay.clock

    def info(event: CallEvent) -> None:
        if not isinstance(event, InfoReceived) or not event.content_type \
                or not is_dtmf_content_type(event.content_type):
            return
        with contextlib.suppress(DtmfBodyError):
            detector.digit(parse_dtmf_info(event.content_type, event.body).received(clock()))

    call.listeners.append(info)

    def stop() -> None:
        if info in call.listeners:
            call.listeners.remove(info)
        with contextlib.suppress(RelayError, KeyError):
            relay.watch_digits(media_key, leg_name, None)

    return stop


async def _part(context: FlowContext, call: AnyCall, outbound: OutboundCall) -> None:
    """End the destination leg of a bridge and keep the caller's (``**``)."""
    _detach_b2bua(call.leg, outbound.leg)
    relay = context.manager.relay
    if isinstance(relay, PythonMediaRelay):
        with contextlib.suppress(RelayError, KeyError):
            await relay.unbridge(call.media.media_key, call.media.leg_name)
    log.info("call_id=%s keyed **: BYE to call_id=%s, dial tone again", call.call_id,
             outbound.call_id)
    context.observer.note(context, "** : destination hung up, dial tone again")
    outbound.hangup(STAR_STAR_END)


def _detach_b2bua(a: CallLeg, b: CallLeg) -> None:
    """Take the listeners of the ``B2bua`` joining ``a`` and ``b`` off both."""
    for leg in (a, b):
        leg.listeners[:] = [listener for listener in leg.listeners
                            if not _joins(listener, a, b)]


def _joins(listener: Any, a: CallLeg, b: CallLeg) -> bool:
    owner = getattr(listener, "__self__", None)
    return isinstance(owner, B2bua) and (
        (owner.a is a and owner.b is b) or (owner.a is b and owner.b is a))


__all__ = [
    "STAR_STAR_END",
    "STAR_STAR_WINDOW_S",
    "BridgeEnd",
    "PlaceOutcome",
    "Placed",
    "StarStar",
    "bridge",
    "place_call",
]
