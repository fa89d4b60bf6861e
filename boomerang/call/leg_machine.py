"""The call-leg state machines' vocabulary: states, inputs, actions, the
``LegMachine`` table type, and the rows every leg shares once the call is
confirmed (``DIALOG_ROWS``).

A leg is a table machine (h2's ``stream.py`` shape): ``(LegState,
LegInput) -> (actions, next LegState)``; a pair missing from the table
raises ProtocolError. Inputs the network or a timer can produce at any
time have explicit rows (most absorb); the missing pairs are calls the
user may not make in that state (``answer()`` on an ended call).
``uac_leg.py`` and ``uas_leg.py`` each write the rows up to the
confirmed dialog; the rows of a confirmed, ending and ended call are
common and written here:

    confirmed + hangup called          -> BYE sent, CallEnded      -> ending
    confirmed + BYE received           -> 200, CallEnded           -> ended
    confirmed + re-INVITE/UPDATE offer -> answered locally (200 with SDP,
                                          or 491 on glare, 488)    -> confirmed
    confirmed + INFO/other request     -> 200, InfoReceived        -> confirmed
    confirmed + reinvite() called      -> re-INVITE sent           -> confirmed
    confirmed + 491 to our re-INVITE   -> retry after §14.1 delay  -> confirmed
    confirmed + 408/481 (dialog lost)  -> BYE, CallEnded failed    -> ending
    confirmed + no ACK to our 2xx      -> BYE, CallEnded failed    -> ending
    confirmed + session refresh due    -> re-INVITE sent           -> confirmed
    confirmed + session expired        -> BYE, CallEnded failed    -> ending
    ending    + BYE answered/timed out -> nothing                  -> ended
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..sip.errors import ProtocolError


class LegState(enum.Enum):
    __hash__ = object.__hash__

    # UAC, before the answer
    CALLING = "calling"              # INVITE sent, no provisional yet
    PROCEEDING = "proceeding"        # a provisional arrived
    CANCELLING = "cancelling"        # CANCEL asked for, waiting for the final response
    # UAS, before the answer
    OFFERED = "offered"              # INVITE received (100 Trying sent by the layer)
    EARLY = "early"                  # 180/183 sent
    ANSWERING = "answering"          # 2xx sent, waiting for the ACK
    HANGING_UP = "hanging_up"        # hangup() before the ACK: BYE once it comes (§15)
    # both
    CONFIRMED = "confirmed"
    ENDING = "ending"                # our BYE sent; CallEnded already reported
    ENDED = "ended"


class LegInput(enum.Enum):
    __hash__ = object.__hash__

    # responses to our INVITE (UAC)
    TRYING_RECEIVED = "100 received"
    PROVISIONAL_RECEIVED = "101-199 received"
    SUCCESS_RECEIVED = "2xx received"
    FORK_SUCCESS_RECEIVED = "2xx of another fork received"
    FAILURE_RECEIVED = "300-699 received"
    INVITE_FAILED = "INVITE timed out or transport error"
    RING_TIMER_FIRED = "ring timeout"
    CANCEL_TIMER_FIRED = "no final response after CANCEL"
    CANCEL_CALLED = "cancel()"
    # the INVITE we received (UAS)
    RING_CALLED = "ring() or progress()"
    ANSWER_CALLED = "answer()"
    REJECT_CALLED = "reject()"
    CANCEL_RECEIVED = "CANCEL received"
    ACK_RECEIVED = "ACK received"
    ACK_TIMER_FIRED = "no ACK for our 2xx (64*T1)"
    # in the dialog, both sides
    HANGUP_CALLED = "hangup()"
    BYE_RECEIVED = "BYE received"
    BYE_COMPLETED = "our BYE answered or timed out"
    REINVITE_RECEIVED = "re-INVITE or UPDATE with an offer received"
    REQUEST_RECEIVED = "INFO or other in-dialog request received"
    REINVITE_CALLED = "reinvite()"
    REINVITE_ANSWERED = "2xx to our re-INVITE"
    REINVITE_REFUSED = "non-2xx to our re-INVITE"
    DIALOG_LOST = "408/481 to our in-dialog request"
    GLARE_TIMER_FIRED = "re-INVITE retry due"
    # additions: authentication and session timers
    INVITE_RETRIED = "401/407/422 to our INVITE, answered by a new INVITE"
    REFRESH_TIMER_FIRED = "session refresh due (we are the refresher)"
    SESSION_EXPIRED = "no session refresh in time (RFC 4028 §10)"


class Action(enum.Enum):
    """What a transition does; ``CallLeg`` runs ``_do_<name>`` for each."""

    __hash__ = object.__hash__

    # UAC
    REPORT_TRIED = "report_tried"
    REPORT_RINGING = "report_ringing"
    SEND_ACK = "send_ack"
    ACK_AND_BYE_FORK = "ack_and_bye_fork"
    SEND_CANCEL = "send_cancel"
    SEND_INVITE_AGAIN = "send_invite_again"
    # UAS
    SEND_PROVISIONAL = "send_provisional"
    SEND_SUCCESS = "send_success"
    SEND_FAILURE = "send_failure"
    SEND_487 = "send_487"
    # both
    REPORT_ANSWERED = "report_answered"
    REPORT_END = "report_end"
    TAKE_ACK = "take_ack"
    SEND_BYE = "send_bye"
    ANSWER_BYE = "answer_bye"
    ANSWER_OFFER = "answer_offer"
    ANSWER_REQUEST = "answer_request"
    REFUSE_481 = "refuse_481"
    REFUSE_491 = "refuse_491"
    SEND_REINVITE = "send_reinvite"
    ACK_REINVITE = "ack_reinvite"
    RETRY_REINVITE = "retry_reinvite"


Row = tuple[tuple[Action, ...], LegState]
Transitions = Mapping[tuple[LegState, LegInput], Row]


@dataclass(frozen=True, slots=True, eq=False)
class LegMachine:
    name: str
    initial_state: LegState
    transitions: Transitions

    def transition(self, state: LegState, event: LegInput) -> Row:
        try:
            return self.transitions[(state, event)]
        except KeyError:
            raise ProtocolError(f"{self.name}: {event.value} in state {state.value}") from None

    @property
    def states(self) -> set[LegState]:
        found = {self.initial_state}
        for (state, _), (_, next_state) in self.transitions.items():
            found.update((state, next_state))
        return found


_ABSORB_IN_ALL = (LegInput.TRYING_RECEIVED, LegInput.PROVISIONAL_RECEIVED,
                  LegInput.FAILURE_RECEIVED, LegInput.INVITE_FAILED, LegInput.CANCEL_RECEIVED,
                  LegInput.REINVITE_REFUSED, LegInput.DIALOG_LOST,
                  LegInput.GLARE_TIMER_FIRED, LegInput.REFRESH_TIMER_FIRED,
                  LegInput.SESSION_EXPIRED)


def _rows_after_answer() -> dict[tuple[LegState, LegInput], Row]:
    A, S, I = Action, LegState, LegInput  # noqa: E741
    rows: dict[tuple[LegState, LegInput], Row] = {
        (S.CONFIRMED, I.HANGUP_CALLED): ((A.SEND_BYE, A.REPORT_END), S.ENDING),
        (S.CONFIRMED, I.CANCEL_CALLED): ((A.SEND_BYE, A.REPORT_END), S.ENDING),
        (S.CONFIRMED, I.BYE_RECEIVED): ((A.ANSWER_BYE, A.REPORT_END), S.ENDED),
        (S.CONFIRMED, I.REINVITE_RECEIVED): ((A.ANSWER_OFFER,), S.CONFIRMED),
        (S.CONFIRMED, I.REQUEST_RECEIVED): ((A.ANSWER_REQUEST,), S.CONFIRMED),
        (S.CONFIRMED, I.ACK_RECEIVED): ((A.TAKE_ACK,), S.CONFIRMED),
        (S.CONFIRMED, I.ACK_TIMER_FIRED): ((A.SEND_BYE, A.REPORT_END), S.ENDING),
        (S.CONFIRMED, I.REINVITE_CALLED): ((A.SEND_REINVITE,), S.CONFIRMED),
        (S.CONFIRMED, I.REINVITE_ANSWERED): ((A.ACK_REINVITE,), S.CONFIRMED),
        (S.CONFIRMED, I.REINVITE_REFUSED): ((A.RETRY_REINVITE,), S.CONFIRMED),
        (S.CONFIRMED, I.GLARE_TIMER_FIRED): ((A.SEND_REINVITE,), S.CONFIRMED),
        (S.CONFIRMED, I.DIALOG_LOST): ((A.SEND_BYE, A.REPORT_END), S.ENDING),
        (S.CONFIRMED, I.REFRESH_TIMER_FIRED): ((A.SEND_REINVITE,), S.CONFIRMED),
        (S.CONFIRMED, I.SESSION_EXPIRED): ((A.SEND_BYE, A.REPORT_END), S.ENDING),
    }
    for state in (S.CONFIRMED,):
        for event in (I.TRYING_RECEIVED, I.PROVISIONAL_RECEIVED, I.FAILURE_RECEIVED,
                      I.INVITE_FAILED, I.CANCEL_RECEIVED):
            rows[(state, event)] = ((), state)
    # ending: our BYE is out, the call is reported ended
    for state in (S.ENDING, S.ENDED):
        rows[(state, I.BYE_RECEIVED)] = ((A.ANSWER_BYE,), state)
        rows[(state, I.REINVITE_RECEIVED)] = ((A.REFUSE_481,), state)
        rows[(state, I.REQUEST_RECEIVED)] = ((A.REFUSE_481,), state)
        rows[(state, I.ACK_RECEIVED)] = ((), state)
        rows[(state, I.ACK_TIMER_FIRED)] = ((), state)
        rows[(state, I.REINVITE_ANSWERED)] = ((A.ACK_REINVITE,), state)
        rows[(state, I.HANGUP_CALLED)] = ((), state)
        rows[(state, I.CANCEL_CALLED)] = ((), state)
        rows[(state, I.REJECT_CALLED)] = ((), state)
        for event in _ABSORB_IN_ALL:
            rows[(state, event)] = ((), state)
    rows[(S.ENDING, I.BYE_COMPLETED)] = ((), S.ENDED)
    rows[(S.ENDED, I.BYE_COMPLETED)] = ((), S.ENDED)
    return rows


DIALOG_ROWS: Mapping[tuple[LegState, LegInput], Row] = MappingProxyType(_rows_after_answer())


__all__ = [
    "DIALOG_ROWS",
    "Action",
    "LegInput",
    "LegMachine",
    "LegState",
    "Row",
    "Transitions",
]
