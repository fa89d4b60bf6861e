"""The calling side of a call: ``UacLeg`` sends an INVITE and follows it.

Rows up to the answer (the rows of a confirmed call are in leg.py):

    calling     + 100                       -> CallTried                 -> calling
    calling     + 101-199                   -> CallRinging               -> proceeding
    calling     + 2xx                       -> ACK, CallAnswered         -> confirmed
    calling     + 300-699 / timeout / error -> CallEnded (busy, rejected,
                                               failed)                   -> ended
    calling     + ring timeout / cancel()   -> CANCEL (sent by the layer
                                               after the first 1xx)      -> cancelling
    proceeding  + the same, 1xx again       -> CallRinging               -> proceeding
    cancelling  + 487 (or any final)        -> CallEnded (no_answer or
                                               cancelled)                -> ended
    cancelling  + 2xx (CANCEL raced 200)    -> ACK, BYE, CallEnded       -> ending
    cancelling  + no final in 64*T1         -> CallEnded                 -> ended
    calling/proceeding + 401/407 (credentials) or 422 (Min-SE)
                                            -> the INVITE again, CSeq+1  -> calling
    any         + 2xx of another fork       -> ACK and BYE that dialog

Authentication (RFC 3261 §22.2): with ``credentials`` a 401/407 is
answered once per realm by a new INVITE (same Call-ID and From tag, CSeq
+ 1, new branch); refused credentials end the call ``rejected`` with the
challenge's status. 422 (RFC 4028 §7.4) is answered by the INVITE asking
the 422's Min-SE. The CANCEL carries our cause in a Reason (RFC 3326).

Forking (RFC 3261 §13.2.2.4): each tagged 1xx/2xx makes or finds its dialog
in a ``DialogSet``; the first 2xx wins, a later 2xx of another fork is
ACKed and ended with BYE.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from types import MappingProxyType
from typing import ClassVar

from ..sip.address import Address
from ..sip.auth import DigestClient
from ..sip.dialog import MAX_FORWARDS, Dialog, DialogError, DialogSet
from ..sip.errors import SipError
from ..sip.message import Headers, Request, Response
from ..sip.transaction.events import (
    ResponseReceived,
    TransactionKey,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from .events import (
    Q850_NO_ANSWER,
    Q850_NO_USER_RESPONDING,
    Q850_RECOVERY_ON_TIMER_EXPIRY,
    Q850_USER_BUSY,
    CallAnswered,
    CallRinging,
    CallTried,
    EndCause,
    Outcome,
)
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
    local_end,
    resolve_literal,
)
from .ports import ClientEvent, MediaPort, Scheduler, SipPort, TimerHandle
from .session_timer import (
    SessionTimerSettings,
    negotiate_as_uac,
    request_headers,
    retry_after_422,
    session_expires_of,
)

log = logging.getLogger(__name__)



def _uac_rows() -> dict[tuple[LegState, LegInput], Row]:
    A, S, I = Action, LegState, LegInput  # noqa: E741
    rows: dict[tuple[LegState, LegInput], Row] = {
        (S.CALLING, I.TRYING_RECEIVED): ((A.REPORT_TRIED,), S.CALLING),
        (S.CALLING, I.PROVISIONAL_RECEIVED): ((A.REPORT_RINGING,), S.PROCEEDING),
        (S.PROCEEDING, I.TRYING_RECEIVED): ((), S.PROCEEDING),
        (S.PROCEEDING, I.PROVISIONAL_RECEIVED): ((A.REPORT_RINGING,), S.PROCEEDING),
        (S.CANCELLING, I.TRYING_RECEIVED): ((), S.CANCELLING),
        (S.CANCELLING, I.PROVISIONAL_RECEIVED): ((), S.CANCELLING),
        (S.CANCELLING, I.SUCCESS_RECEIVED): ((A.SEND_ACK, A.SEND_BYE, A.REPORT_END), S.ENDING),
        (S.CANCELLING, I.FAILURE_RECEIVED): ((A.REPORT_END,), S.ENDED),
        (S.CANCELLING, I.INVITE_FAILED): ((A.REPORT_END,), S.ENDED),
        (S.CANCELLING, I.CANCEL_TIMER_FIRED): ((A.REPORT_END,), S.ENDED),
        (S.CANCELLING, I.CANCEL_CALLED): ((), S.CANCELLING),
        (S.CANCELLING, I.HANGUP_CALLED): ((), S.CANCELLING),
        (S.CANCELLING, I.FORK_SUCCESS_RECEIVED): ((A.ACK_AND_BYE_FORK,), S.CANCELLING),
        (S.CANCELLING, I.REQUEST_RECEIVED): ((A.REFUSE_481,), S.CANCELLING),
        (S.CANCELLING, I.BYE_RECEIVED): ((A.REFUSE_481,), S.CANCELLING),
    }
    for state in (S.CALLING, S.PROCEEDING):
        rows[(state, I.SUCCESS_RECEIVED)] = ((A.SEND_ACK, A.REPORT_ANSWERED), S.CONFIRMED)
        rows[(state, I.FAILURE_RECEIVED)] = ((A.REPORT_END,), S.ENDED)
        rows[(state, I.INVITE_FAILED)] = ((A.REPORT_END,), S.ENDED)
        rows[(state, I.RING_TIMER_FIRED)] = ((A.SEND_CANCEL,), S.CANCELLING)
        rows[(state, I.CANCEL_CALLED)] = ((A.SEND_CANCEL,), S.CANCELLING)
        rows[(state, I.HANGUP_CALLED)] = ((A.SEND_CANCEL,), S.CANCELLING)
        # the callee may not send BYE on an early dialog (§15); INFO may come early
        rows[(state, I.BYE_RECEIVED)] = ((A.REFUSE_481,), state)
        rows[(state, I.REQUEST_RECEIVED)] = ((A.REFUSE_481,), state)
        rows[(state, I.REINVITE_RECEIVED)] = ((A.REFUSE_491,), state)
        rows[(state, I.INVITE_RETRIED)] = ((A.SEND_INVITE_AGAIN,), S.CALLING)
    rows[(S.CANCELLING, I.REINVITE_RECEIVED)] = ((A.REFUSE_481,), S.CANCELLING)
    rows.update(DIALOG_ROWS)
    for state in (S.CONFIRMED, S.ENDING, S.ENDED):
        rows[(state, I.SUCCESS_RECEIVED)] = ((A.SEND_ACK,), state)
        rows[(state, I.FORK_SUCCESS_RECEIVED)] = ((A.ACK_AND_BYE_FORK,), state)
    return rows


UAC_MACHINE = LegMachine("UAC leg", LegState.CALLING, MappingProxyType(_uac_rows()))

_BUSY_STATUSES = frozenset((486, 600))
MAX_INVITE_ATTEMPTS = 4  # the first INVITE and at most three retries (401/407/422)


def cause_of_failure(response: Response) -> EndCause:
    """The EndCause of a 300-699 final response to our INVITE."""
    status = response.status
    q850, text = EndCause.q850_of(response.reasons)
    if status in _BUSY_STATUSES or q850 == Q850_USER_BUSY:
        outcome = Outcome.BUSY
    elif q850 in (Q850_NO_USER_RESPONDING, Q850_NO_ANSWER):
        outcome = Outcome.NO_ANSWER
    elif 500 <= status < 600:
        outcome = Outcome.FAILED
    else:
        outcome = Outcome.REJECTED
    return EndCause(outcome=outcome, sip_status=status, q850_cause=q850, reason_text=text)


class UacLeg(CallLeg):
    """One outgoing call. Build it, add listeners, then ``start()``."""

    machine: ClassVar[LegMachine] = UAC_MACHINE

    __slots__ = (
        "_cancel_outcome",
        "_cancel_timer",
        "_dialogs",
        "_invite_attempts",
        "_invite_key",
        "_ring_timer",
        "_tried_reported",
        "destination",
        "invite",
        "ring_timeout_s",
    )

    def __init__(
        self,
        *,
        sip: SipPort,
        scheduler: Scheduler,
        media: MediaPort,
        addressing: LegAddressing,
        request_uri: str,
        from_: str,
        to: str,
        destination: Address,
        ring_timeout_s: float | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        registry: LegRegistry | None = None,
        call_id: str | None = None,
        random_draw: Callable[[], float] = random.random,
        resolve: Resolver = resolve_literal,
        t1_s: float = T1_S,
        credentials: DigestClient | None = None,
        cnonce: Callable[[], str] | None = None,
        session_timers: SessionTimerSettings | None = None,
    ) -> None:
        """``from_`` and ``to`` are name-addrs without tags (``<sip:101@pbx>``).
        ``credentials`` answer a 401/407 (a trunk's digest user);
        ``session_timers`` ask for RFC 4028 session timers."""
        ids = sip.ids
        super().__init__(sip=sip, scheduler=scheduler, media=media, addressing=addressing,
                         call_id=call_id or ids.call_id(), registry=registry,
                         random_draw=random_draw, resolve=resolve, t1_s=t1_s,
                         credentials=credentials, cnonce=cnonce,
                         session_timers=session_timers)
        self.destination = destination
        self.ring_timeout_s = ring_timeout_s
        out = Headers()
        out.add("Via", f"SIP/2.0/{addressing.transport.upper()} {addressing.sent_by}"
                       f";branch={ids.branch()};rport")
        out.add("Max-Forwards", str(MAX_FORWARDS))
        out.add("From", f"{from_};tag={ids.tag()}")
        out.add("To", to)
        out.add("Call-ID", self.call_id)
        out.add("CSeq", "1 INVITE")
        out.add("Contact", addressing.contact)
        for name, value in headers:
            out.add(name, value)
        if session_timers is not None:
            for name, value in request_headers(session_timers):
                out.add(name, value)
        self.invite = Request("INVITE", request_uri, out)
        self._dialogs = DialogSet(self.invite)
        self._invite_key: TransactionKey | None = None
        self._ring_timer: TimerHandle | None = None
        self._cancel_timer: TimerHandle | None = None
        self._cancel_outcome = Outcome.CANCELLED
        self._invite_attempts = 1
        self._tried_reported = False

    def start(self) -> None:
        """Send the INVITE with our offer; arm the ring timeout."""
        if self._invite_key is not None:
            raise DialogError("the INVITE was already sent")
        self.invite.body = self.media.offer(self)
        self.invite.headers.add("Content-Type", SDP)
        log.info("call_id=%s INVITE %s", self.call_id, self.invite.uri)
        self._invite_key = self.sip.send_request(self.invite, self.destination,
                                                 self._on_invite_event)
        if self.ring_timeout_s is not None:
            self._ring_timer = self.scheduler.call_at(
                self._now() + self.ring_timeout_s, self._on_ring_timeout)

    def cancel(self, cause: EndCause | None = None) -> None:
        """Give up: CANCEL while ringing (outcome cancelled), BYE once answered
        (``cause`` then goes in its Reason header)."""
        self._fire(LegInput.CANCEL_CALLED, Trigger(cause=local_end(cause)))

    # -- responses to the INVITE ---------------------------------------------------------

    def _on_invite_event(self, event: ClientEvent) -> None:
        if event.transaction != self._invite_key:
            return  # the INVITE a 401/407/422 answered: it is over
        if isinstance(event, ResponseReceived):
            self._on_invite_response(event.response)
        elif isinstance(event, TransactionTimedOut | TransportErrorOccurred):
            timed_out = isinstance(event, TransactionTimedOut)
            cause = EndCause(
                outcome=self._cancel_outcome if self.state is LegState.CANCELLING
                else Outcome.FAILED,
                sip_status=408 if timed_out else 503,
                q850_cause=Q850_RECOVERY_ON_TIMER_EXPIRY if timed_out else None)
            self._fire(LegInput.INVITE_FAILED, Trigger(cause=cause))

    def _on_invite_response(self, response: Response) -> None:
        status = response.status
        try:
            dialog = self._dialogs.receive_response(response)
        except DialogError as error:
            log.info("call_id=%s %d ignored: %s", self.call_id, status, error.detail)
            return
        trigger = Trigger(response=response, dialog=dialog, status=status)
        if status == 100:
            self._fire(LegInput.TRYING_RECEIVED, trigger)
        elif status < 200:
            if dialog is not None:
                self._register(dialog)
            self._fire(LegInput.PROVISIONAL_RECEIVED, trigger)
        elif status < 300:
            if dialog is None:
                log.info("call_id=%s 2xx without To tag ignored", self.call_id)
                return
            if dialog is not self._dialogs.confirmed:
                self._fire(LegInput.FORK_SUCCESS_RECEIVED, trigger)
                return
            if self.dialog is None:
                self.dialog = dialog
                if self.registry is not None:  # the early dialogs of other forks are done
                    self.registry.discard(self)
                self._register(dialog)
            if self.state is LegState.CANCELLING:
                trigger.cause = EndCause(outcome=self._cancel_outcome, sip_status=status)
            self._fire(LegInput.SUCCESS_RECEIVED, trigger)
        else:
            if status in (401, 407, 422) and self.state in (LegState.CALLING,
                                                            LegState.PROCEEDING):
                retried = self._invite_again(response)
                if retried is not None:
                    self._fire(LegInput.INVITE_RETRIED, Trigger(request=retried,
                                                                response=response))
                    return
            if self.state is LegState.CANCELLING:
                q850, text = EndCause.q850_of(response.reasons)
                trigger.cause = EndCause(outcome=self._cancel_outcome, sip_status=status,
                                         q850_cause=q850, reason_text=text)
            else:
                trigger.cause = cause_of_failure(response)
            self._fire(LegInput.FAILURE_RECEIVED, trigger)

    def _invite_again(self, response: Response) -> Request | None:
        """The INVITE answering a 401/407 (credentials) or 422 (Min-SE), or None
        when we cannot or may not (no credentials, refused ones, no larger Min-SE)."""
        if self._invite_attempts >= MAX_INVITE_ATTEMPTS:
            return None
        if response.status == 422:
            try:
                return retry_after_422(self.invite, response, branch=self.sip.ids.branch())
            except SipError as error:
                log.info("call_id=%s 422: %s", self.call_id, error.detail)
                return None
        if self.credentials is None:
            return None
        return self._authenticated(self.invite, response)

    def _do_send_invite_again(self, trigger: Trigger) -> None:
        retried = trigger.request
        assert retried is not None
        self._invite_attempts += 1
        if self.registry is not None:
            self.registry.discard(self)  # early dialogs of the refused INVITE
        self.invite = retried
        self._dialogs = DialogSet(retried)
        log.info("call_id=%s INVITE again (CSeq %d) after %s", self.call_id,
                 retried.cseq.number, trigger.response.status if trigger.response else "?")
        self._invite_key = self.sip.send_request(retried, self.destination,
                                                 self._on_invite_event)

    # -- timers ---------------------------------------------------------------------------

    def _on_ring_timeout(self) -> None:
        self._ring_timer = None
        self._cancel_outcome = Outcome.NO_ANSWER
        log.info("call_id=%s no answer in %s s: CANCEL", self.call_id, self.ring_timeout_s)
        self._fire(LegInput.RING_TIMER_FIRED, Trigger(cause=EndCause(
            outcome=Outcome.NO_ANSWER, q850_cause=Q850_NO_ANSWER,
            reason_text="No answer")))

    def _on_cancel_timeout(self) -> None:
        self._cancel_timer = None
        self._fire(LegInput.CANCEL_TIMER_FIRED, Trigger(cause=EndCause(
            outcome=self._cancel_outcome, sip_status=408,
            q850_cause=Q850_RECOVERY_ON_TIMER_EXPIRY)))

    def _stop_call_timers(self) -> None:
        super()._stop_call_timers()
        for handle in (self._ring_timer, self._cancel_timer):
            if handle is not None:
                handle.cancel()
        self._ring_timer = self._cancel_timer = None

    # -- actions -------------------------------------------------------------------------

    def _do_report_tried(self, trigger: Trigger) -> None:
        if self._tried_reported:
            return  # once per leg, whatever INVITE (401/407/422 retries) it was
        self._tried_reported = True
        self._emit(CallTried(call_id=self.call_id, time=self._now()))

    def _do_report_ringing(self, trigger: Trigger) -> None:
        response = trigger.response
        assert response is not None
        if response.body and self.dialog is None:
            self._take_remote_answer(response.body)
        self._emit(CallRinging(call_id=self.call_id, status=response.status,
                               early_media=bool(response.body), time=self._now()))

    def _do_send_ack(self, trigger: Trigger) -> None:
        response = trigger.response
        dialog = trigger.dialog or self.dialog
        assert response is not None and dialog is not None
        self._ack(dialog, response)

    def _ack(self, dialog: Dialog, response: Response) -> None:
        key = (dialog.id.remote_tag, response.cseq.number)
        ack = self._acks.get(key)
        if ack is None:
            ack = dialog.create_ack(response.cseq.number, self.sip.ids,
                                    sent_by=self.addressing.sent_by,
                                    transport=self.addressing.transport)
            self._acks[key] = ack
            if response.body and dialog is self.dialog and self.state is not LegState.ENDED:
                self._take_remote_answer(response.body)
        self.sip.send_stateless(ack, self.resolve(dialog.next_hop(), self.addressing.transport))

    def _do_ack_and_bye_fork(self, trigger: Trigger) -> None:
        response = trigger.response
        dialog = trigger.dialog
        assert response is not None and dialog is not None
        first = (dialog.id.remote_tag, response.cseq.number) not in self._acks
        self._ack(dialog, response)
        if first:
            log.info("call_id=%s 2xx from a second fork %s: ACK and BYE", self.call_id,
                     dialog.id.remote_tag)
            self._send_bye_on(dialog, None)

    def _do_report_answered(self, trigger: Trigger) -> None:
        if self._ring_timer is not None:
            self._ring_timer.cancel()
            self._ring_timer = None
        log.info("call_id=%s answered", self.call_id)
        if self.session_timers is not None and trigger.response is not None:
            asked = session_expires_of(self.invite)
            self._session_start(negotiate_as_uac(
                trigger.response, asked.interval_s if asked is not None
                else self.session_timers.session_expires_s))
        self._emit(CallAnswered(call_id=self.call_id, time=self._now()))

    def _do_send_cancel(self, trigger: Trigger) -> None:
        assert self._invite_key is not None
        if self._ring_timer is not None:
            self._ring_timer.cancel()
            self._ring_timer = None
        # None when no provisional came yet: the layer sends it after the first one
        self.sip.cancel(self._invite_key, self._bye_headers(trigger.cause))
        self._cancel_timer = self.scheduler.call_at(self._now() + 64 * self.t1_s,
                                                    self._on_cancel_timeout)


__all__ = ["MAX_INVITE_ATTEMPTS", "UAC_MACHINE", "UacLeg", "cause_of_failure"]
