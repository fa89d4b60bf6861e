"""Call-control events, independent of SIP (sippy's try, ring, connect,
disconnect, fail).

A leg reports what happened to it with these; the B2BUA and the flow layer
use nothing else. Frozen, slotted, keyword-only dataclasses named in the
past tense, each stamped with ``time`` (the scheduler's time of the cause)
and the leg's ``call_id``.

How a call ended is an ``EndCause``: an ``Outcome`` plus the SIP status and
the Q.850 cause of the ``Reason`` header (RFC 3326), when there were any.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from ..sip.headers import Reason


class Outcome(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HUNG_UP_LOCAL = "hung_up_local"
    HUNG_UP_REMOTE = "hung_up_remote"


# Q.850 causes we write ourselves (ITU-T Q.850 table 1).
Q850_NORMAL_CLEARING = 16
Q850_USER_BUSY = 17
Q850_NO_USER_RESPONDING = 18
Q850_NO_ANSWER = 19
Q850_CALL_REJECTED = 21
Q850_RECOVERY_ON_TIMER_EXPIRY = 102


@dataclass(frozen=True, slots=True, kw_only=True)
class EndCause:
    """Why a leg ended: the outcome, the SIP status of the final response
    (or None for a BYE), and the Q.850 cause and text of its Reason."""

    outcome: Outcome
    sip_status: int | None = None
    q850_cause: int | None = None
    reason_text: str | None = None

    def reason_header(self) -> str | None:
        """The RFC 3326 ``Reason`` value that carries this cause on, or None."""
        if self.q850_cause is None:
            return None
        return str(Reason(protocol="Q.850", cause=self.q850_cause, text=self.reason_text))

    @staticmethod
    def q850_of(reasons: Iterable[Reason]) -> tuple[int | None, str | None]:
        """The cause and text of the first Q.850 Reason (RFC 3326), else (None, None)."""
        for reason in reasons:
            if reason.protocol.upper() == "Q.850" and reason.cause is not None:
                return reason.cause, reason.text
        return None, None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTried:
    """100 Trying arrived: the next hop has the INVITE."""

    call_id: str
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRinging:
    """A 180 or 183 arrived; ``early_media`` when it carried SDP."""

    call_id: str
    status: int
    early_media: bool
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered:
    """The dialog is confirmed (UAC: 2xx received and ACKed; UAS: ACK received)."""

    call_id: str
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:
    """The leg is over (final for the leg: no event follows)."""

    call_id: str
    cause: EndCause
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferReceived:
    """The peer sent a new offer in the dialog (re-INVITE or UPDATE) and we
    answered it; ``offer`` and ``answer`` are the SDP bodies."""

    call_id: str
    offer: bytes
    answer: bytes
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldChanged:
    """The call went on or off hold; ``by_remote`` when the peer's offer did it."""

    call_id: str
    held: bool
    by_remote: bool
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class InfoReceived:
    """An INFO in the dialog (DTMF relay bodies: application/dtmf-relay...)."""

    call_id: str
    content_type: str | None
    body: bytes
    time: float


CallEvent = (CallTried | CallRinging | CallAnswered | CallEnded | OfferReceived
             | HoldChanged | InfoReceived)

__all__ = [
    "Q850_CALL_REJECTED",
    "Q850_NORMAL_CLEARING",
    "Q850_NO_ANSWER",
    "Q850_NO_USER_RESPONDING",
    "Q850_RECOVERY_ON_TIMER_EXPIRY",
    "Q850_USER_BUSY",
    "CallAnswered",
    "CallEnded",
    "CallEvent",
    "CallRinging",
    "CallTried",
    "EndCause",
    "HoldChanged",
    "InfoReceived",
    "OfferReceived",
    "Outcome",
]
