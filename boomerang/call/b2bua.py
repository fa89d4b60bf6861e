"""Two legs joined: the signalling side of a bridge (drachtio-srf's createB2BUA).

``B2bua(a, b)`` uses only call-control events (sippy's idea): it never
reads a SIP message. ``a`` is usually the UasLeg of the call we received
and ``b`` the UacLeg we placed; any two legs work.

- b rings (180) -> a rings; b sends early media (183) -> a progresses.
- b answers -> a is answered.
- Either ends -> the other is ended the right way, with the cause carried
  across (the Q.850 cause in a Reason header, RFC 3326):

  | other leg                 | how it is ended                               |
  |---------------------------|-----------------------------------------------|
  | UAC not answered          | CANCEL                                        |
  | UAS not answered          | reject with the status ``status_for(cause)`` |
  | answered (either)         | BYE                                           |

- re-INVITEs are answered by each leg locally (media is anchored by us);
  the legs report them as OfferReceived / HoldChanged, passed on to the
  B2BUA's listeners with every other event of both legs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRinging,
    EndCause,
    Outcome,
)
from .leg import CallLeg, LegState
from .uac_leg import UacLeg
from .uas_leg import UasLeg

log = logging.getLogger(__name__)

_NOT_ANSWERED = frozenset((LegState.OFFERED, LegState.EARLY, LegState.CALLING,
                           LegState.PROCEEDING))


def status_for(cause: EndCause) -> int:
    """The status to reject an unanswered inbound leg with, given why the
    outbound leg ended."""
    outcome = cause.outcome
    if outcome is Outcome.BUSY:
        return 486
    if outcome is Outcome.NO_ANSWER:
        return 480
    if outcome is Outcome.REJECTED:
        status = cause.sip_status
        return status if status is not None and 300 <= status <= 699 else 603
    if outcome is Outcome.FAILED:
        return 503 if cause.sip_status == 503 else 502
    if outcome is Outcome.CANCELLED:
        return 487
    return 480


class B2bua:
    """Pairs two legs; ``listeners`` hear every event of both."""

    __slots__ = ("a", "b", "listeners")

    def __init__(self, a: CallLeg, b: CallLeg) -> None:
        self.a = a
        self.b = b
        self.listeners: list[Callable[[CallEvent], None]] = []
        a.add_listener(self._on_a)
        b.add_listener(self._on_b)

    @property
    def ended(self) -> bool:
        return (self.a.state is LegState.ENDED and self.b.state is LegState.ENDED) \
            or (self.a.ended and self.b.ended)

    def hangup(self, cause: EndCause | None = None) -> None:
        """End both legs (the flow layer's hangup of a bridged call)."""
        for leg in (self.a, self.b):
            if not leg.ended:
                end_leg(leg, cause)

    def _on_a(self, event: CallEvent) -> None:
        self._on_event(event, self.a, self.b)

    def _on_b(self, event: CallEvent) -> None:
        self._on_event(event, self.b, self.a)

    def _on_event(self, event: CallEvent, leg: CallLeg, other: CallLeg) -> None:
        if isinstance(event, CallRinging) and isinstance(other, UasLeg) \
                and other.state in (LegState.OFFERED, LegState.EARLY):
            if event.early_media:
                other.progress()
            else:
                other.ring()
        elif isinstance(event, CallAnswered) and isinstance(other, UasLeg) \
                and other.state in (LegState.OFFERED, LegState.EARLY):
            other.answer()
        elif isinstance(event, CallEnded) and not other.ended:
            log.info("call_id=%s ended (%s): ending call_id=%s", event.call_id,
                     event.cause.outcome, other.call_id)
            end_leg(other, event.cause)
        for listener in list(self.listeners):
            listener(event)


def end_leg(leg: CallLeg, cause: EndCause | None) -> None:
    """End ``leg`` because of ``cause``: CANCEL, reject or BYE as its state needs."""
    if isinstance(leg, UasLeg) and leg.state in _NOT_ANSWERED:
        leg.reject(status_for(cause) if cause is not None else 480, cause=cause)
    elif isinstance(leg, UacLeg) and leg.state in _NOT_ANSWERED:
        leg.cancel(cause)
    else:
        leg.hangup(cause)


__all__ = ["B2bua", "end_leg", "status_for"]
