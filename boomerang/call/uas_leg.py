"""The called side of a call: ``UasLeg`` answers an INVITE we received.

Rows up to the answer (the rows of a confirmed call are in leg.py):

    offered/early + ring() / progress()  -> 180 / 183 with SDP        -> early
    offered/early + answer()             -> 200 with SDP, retransmitted
                                            until the ACK (§13.3.1.4)  -> answering
    offered/early + reject(status)       -> status, CallEnded rejected -> ended
    offered/early + hangup()             -> 480, CallEnded             -> ended
    offered/early + CANCEL               -> 487, CallEnded cancelled   -> ended
    early         + BYE (caller, §15)    -> 200, 487, CallEnded        -> ended
    answering     + ACK                  -> CallAnswered               -> confirmed
    answering     + no ACK in 64*T1      -> BYE, CallEnded failed      -> ending
    answering     + hangup()             -> CallEnded; BYE once the ACK
                                            comes or times out (§15)   -> hanging_up

With ``session_timers`` (RFC 4028) the INVITE's Session-Expires is agreed
in the 200 (``Supported: timer``); one below our Min-SE makes ring(),
progress() and answer() reject the call 422 with our Min-SE instead.

Build a leg from the endpoint's INVITE handler arguments (request,
transaction, source); it registers for the CANCEL itself.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from types import MappingProxyType
from typing import ClassVar

from ..sip.address import Address
from ..sip.auth import DigestClient
from ..sip.dialog import Dialog, DialogError
from ..sip.errors import SipError
from ..sip.message import Request, Response
from ..sip.sdp import SdpError
from ..sip.transaction.events import CancelReceived, TransactionKey
from ..sip.transaction.routing import response_destination
from .events import CallAnswered, EndCause, Outcome
from .leg import (
    DIALOG_ROWS,
    SDP,
    T1_S,
    Action,
    CallLeg,
    LegAddressing,
    LegInput,
    LegMachine,
    LegRegistry,
    LegState,
    Resolver,
    Row,
    Trigger,
    resolve_literal,
)
from .ports import MediaPort, Scheduler, SipPort
from .session_timer import IntervalTooSmall, SessionTimerSettings, negotiate_as_uas

log = logging.getLogger(__name__)



def _uas_rows() -> dict[tuple[LegState, LegInput], Row]:
    A, S, I = Action, LegState, LegInput  # noqa: E741
    rows: dict[tuple[LegState, LegInput], Row] = {}
    for state in (S.OFFERED, S.EARLY):
        rows[(state, I.RING_CALLED)] = ((A.SEND_PROVISIONAL,), S.EARLY)
        rows[(state, I.ANSWER_CALLED)] = ((A.SEND_SUCCESS,), S.ANSWERING)
        rows[(state, I.REJECT_CALLED)] = ((A.SEND_FAILURE, A.REPORT_END), S.ENDED)
        rows[(state, I.HANGUP_CALLED)] = ((A.SEND_FAILURE, A.REPORT_END), S.ENDED)
        rows[(state, I.CANCEL_RECEIVED)] = ((A.SEND_487, A.REPORT_END), S.ENDED)
        rows[(state, I.REINVITE_RECEIVED)] = ((A.REFUSE_491,), state)
        rows[(state, I.ACK_RECEIVED)] = ((), state)
    rows[(S.OFFERED, I.BYE_RECEIVED)] = ((A.REFUSE_481,), S.OFFERED)
    rows[(S.OFFERED, I.REQUEST_RECEIVED)] = ((A.REFUSE_481,), S.OFFERED)
    rows[(S.EARLY, I.BYE_RECEIVED)] = ((A.ANSWER_BYE, A.SEND_487, A.REPORT_END), S.ENDED)
    rows[(S.EARLY, I.REQUEST_RECEIVED)] = ((A.ANSWER_REQUEST,), S.EARLY)
    rows.update({
        (S.ANSWERING, I.ACK_RECEIVED): ((A.TAKE_ACK, A.REPORT_ANSWERED), S.CONFIRMED),
        (S.ANSWERING, I.ACK_TIMER_FIRED): ((A.SEND_BYE, A.REPORT_END), S.ENDING),
        (S.ANSWERING, I.CANCEL_RECEIVED): ((), S.ANSWERING),
        (S.ANSWERING, I.BYE_RECEIVED): ((A.ANSWER_BYE, A.REPORT_END), S.ENDED),
        (S.ANSWERING, I.HANGUP_CALLED): ((A.REPORT_END,), S.HANGING_UP),
        (S.ANSWERING, I.REQUEST_RECEIVED): ((A.ANSWER_REQUEST,), S.ANSWERING),
        (S.ANSWERING, I.REINVITE_RECEIVED): ((A.REFUSE_491,), S.ANSWERING),
        (S.HANGING_UP, I.ACK_RECEIVED): ((A.TAKE_ACK, A.SEND_BYE), S.ENDING),
        (S.HANGING_UP, I.ACK_TIMER_FIRED): ((A.SEND_BYE,), S.ENDING),
        (S.HANGING_UP, I.BYE_RECEIVED): ((A.ANSWER_BYE,), S.ENDED),
        (S.HANGING_UP, I.HANGUP_CALLED): ((), S.HANGING_UP),
        (S.HANGING_UP, I.REJECT_CALLED): ((), S.HANGING_UP),
        (S.HANGING_UP, I.CANCEL_RECEIVED): ((), S.HANGING_UP),
        (S.HANGING_UP, I.REQUEST_RECEIVED): ((A.REFUSE_481,), S.HANGING_UP),
        (S.HANGING_UP, I.REINVITE_RECEIVED): ((A.REFUSE_481,), S.HANGING_UP),
        # ring() after the caller gave up is harmless
        (S.ENDING, I.RING_CALLED): ((), S.ENDING),
        (S.ENDED, I.RING_CALLED): ((), S.ENDED),
    })
    rows.update(DIALOG_ROWS)
    return rows


UAS_MACHINE = LegMachine("UAS leg", LegState.OFFERED, MappingProxyType(_uas_rows()))


class UasLeg(CallLeg):
    """One incoming call, from the INVITE until its end."""

    machine: ClassVar[LegMachine] = UAS_MACHINE

    __slots__ = ("_local_sdp", "_session_headers", "_session_refusal", "invite", "local_tag",
                 "source", "transaction")

    def __init__(
        self,
        *,
        sip: SipPort,
        scheduler: Scheduler,
        media: MediaPort,
        addressing: LegAddressing,
        request: Request,
        transaction: TransactionKey,
        source: Address,
        registry: LegRegistry | None = None,
        random_draw: Callable[[], float] = random.random,
        resolve: Resolver = resolve_literal,
        t1_s: float = T1_S,
        credentials: DigestClient | None = None,
        cnonce: Callable[[], str] | None = None,
        session_timers: SessionTimerSettings | None = None,
    ) -> None:
        super().__init__(sip=sip, scheduler=scheduler, media=media, addressing=addressing,
                         call_id=request.call_id, registry=registry, random_draw=random_draw,
                         resolve=resolve, t1_s=t1_s, credentials=credentials, cnonce=cnonce,
                         session_timers=session_timers)
        self.invite = request
        self.transaction = transaction
        self.source = source
        self.local_tag = sip.ids.tag()
        self._local_sdp: bytes | None = None
        self._session_headers: tuple[tuple[str, str], ...] = ()
        self._session_refusal: SipError | None = None
        if session_timers is not None:
            try:
                self._session_pending, self._session_headers = negotiate_as_uas(
                    request, session_timers)
            except SipError as error:
                log.info("call_id=%s Session-Expires refused %d: %s", self.call_id,
                         error.status, error.detail)
                self._session_refusal = error
        sip.on_cancel(transaction, self._on_cancel)

    # -- the calls -------------------------------------------------------------------

    def _refused_session(self) -> bool:
        """Reject 422 (or 400) when the INVITE's session interval was refused."""
        refusal = self._session_refusal
        if refusal is None or self.state not in (LegState.OFFERED, LegState.EARLY):
            return False
        headers = refusal.headers if isinstance(refusal, IntervalTooSmall) else ()
        self.reject(refusal.status, headers=headers)
        return True

    def ring(self) -> None:
        """180 Ringing (with our To tag and Contact: an early dialog)."""
        if self._refused_session():
            return
        self._fire(LegInput.RING_CALLED, Trigger(status=180))

    def progress(self) -> None:
        """183 Session Progress with our answer: early media."""
        if self._refused_session():
            return
        try:
            body = self._sdp()
        except SdpError as error:
            self.reject(error.status)
            return
        self._fire(LegInput.RING_CALLED, Trigger(status=183 if body else 180))

    def answer(self) -> None:
        """200 OK with our SDP; CallAnswered follows when the ACK arrives."""
        if self._refused_session():
            return
        if self.state in (LegState.OFFERED, LegState.EARLY):
            try:
                self._sdp()
            except SdpError as error:
                self.reject(error.status)
                return
        self._fire(LegInput.ANSWER_CALLED, Trigger(status=200))

    def reject(self, status: int = 486, *, cause: EndCause | None = None,
               headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Refuse the call with ``status`` (300-699); the Q.850 cause of
        ``cause`` goes in a Reason header (RFC 3326, RFC 6432)."""
        if not 300 <= status <= 699:
            raise ValueError(f"reject needs a 300-699 status, not {status}")
        q850 = cause.q850_cause if cause is not None else None
        text = cause.reason_text if cause is not None else None
        own = EndCause(outcome=Outcome.REJECTED, sip_status=status, q850_cause=q850,
                       reason_text=text)
        reason = own.reason_header()
        if reason is not None:
            headers = (*headers, ("Reason", reason))
        self._fire(LegInput.REJECT_CALLED, Trigger(status=status, cause=own, headers=headers))

    def hangup(self, cause: EndCause | None = None) -> None:
        """BYE once answered; before that, reject with 480."""
        if self.state in (LegState.OFFERED, LegState.EARLY):
            self.reject(480, cause=cause)
        else:
            super().hangup(cause)

    # -- inputs ------------------------------------------------------------------------

    def _on_cancel(self, event: CancelReceived) -> None:
        q850, text = EndCause.q850_of(event.request.reasons)
        self._fire(LegInput.CANCEL_RECEIVED, Trigger(request=event.request, cause=EndCause(
            outcome=Outcome.CANCELLED, sip_status=487, q850_cause=q850, reason_text=text)))

    # -- actions -----------------------------------------------------------------------

    def _sdp(self) -> bytes:
        """Our answer to the INVITE's offer (our offer when it had none); once."""
        if self._local_sdp is None:
            offer = self.invite.body
            self._local_sdp = self.media.answer(self, offer) if offer else self.media.offer(self)
        return self._local_sdp

    def _respond(self, status: int, headers: tuple[tuple[str, str], ...] = (),
                 body: bytes = b"") -> Response | None:
        if body:
            headers = (*headers, ("Content-Type", SDP))
        response = self.sip.respond(self.invite, status, headers, body=body,
                                    to_tag=self.local_tag)
        if response is None:
            return None
        if status >= 300:
            if self.dialog is not None and self.dialog.is_early:
                self.dialog.response_sent(self.invite, response)
            return response
        if self.dialog is None:
            try:
                self.dialog = Dialog.from_uas(self.invite, response)
            except DialogError as error:
                log.info("call_id=%s no dialog: %s", self.call_id, error.detail)
                return response
            self._register(self.dialog)
        else:
            self.dialog.response_sent(self.invite, response)
        return response

    def _do_send_provisional(self, trigger: Trigger) -> None:
        status = trigger.status or 180
        body = self._sdp() if status == 183 else b""
        self._respond(status, (("Contact", self.addressing.contact),), body)

    def _do_send_success(self, trigger: Trigger) -> None:
        response = self._respond(200, (("Contact", self.addressing.contact),
                                       *self._session_headers), self._sdp())
        if response is None:
            return
        log.info("call_id=%s 200 sent", self.call_id)
        self._retransmit(response, response_destination(self.invite.top_via, self.source))

    def _do_send_failure(self, trigger: Trigger) -> None:
        status = trigger.status or 480
        self._respond(status, trigger.headers)

    def _do_send_487(self, trigger: Trigger) -> None:
        self._respond(487)

    def _do_report_answered(self, trigger: Trigger) -> None:
        log.info("call_id=%s answered (ACK received)", self.call_id)
        self._session_restart()
        self._emit(CallAnswered(call_id=self.call_id, time=self._now()))


__all__ = ["UAS_MACHINE", "UasLeg"]
