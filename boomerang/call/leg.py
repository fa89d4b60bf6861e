"""What both call legs share: the in-dialog behaviour once a call is up,
and the plumbing that runs a leg's table (``leg_machine.py`` holds the
states, inputs, actions and the rows common to both legs; they are
re-exported here).

Session timers (RFC 4028, ``session_timer.py``): every INVITE, re-INVITE
and UPDATE a leg sends or answers 2xx negotiates the interval; the leg
keeps one ``SessionTimer``. A request (BYE, re-INVITE) the peer challenges
with 401/407 is sent once more with the leg's ``credentials``.

A leg holds its ports; nothing below holds the leg except the callbacks it
hands to the endpoint and the scheduler, and the registry while the leg is
live. Listeners are dropped once CallEnded is delivered, which breaks any
cycle a B2BUA made.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..sip.address import Address
from ..sip.auth import DigestClient
from ..sip.auth_retry import retry_with_credentials
from ..sip.dialog import Dialog, DialogError
from ..sip.errors import AuthError, SipError
from ..sip.message import Request, Response
from ..sip.sdp import Direction, SdpError, SessionDescription
from ..sip.transaction.events import (
    ResponseReceived,
    TransactionKey,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from ..sip.transaction.reliability import SuccessRetransmissions
from ..sip.transaction.routing import response_destination
from ..sip.uri import SipUri, Uri
from .events import (
    Q850_NORMAL_CLEARING,
    Q850_RECOVERY_ON_TIMER_EXPIRY,
    CallEnded,
    CallEvent,
    EndCause,
    HoldChanged,
    InfoReceived,
    OfferReceived,
    Outcome,
)
from .leg_machine import (
    DIALOG_ROWS,
    Action,
    LegInput,
    LegMachine,
    LegState,
    Row,
    Transitions,
)
from .leg_registry import LegRegistry
from .ports import ClientEvent, MediaPort, Scheduler, SipPort, TimerHandle
from .session_timer import (
    IntervalTooSmall,
    Refresher,
    SessionInterval,
    SessionTimer,
    SessionTimerSettings,
    negotiate_as_uac,
    negotiate_as_uas,
    request_headers,
)

log = logging.getLogger(__name__)

SDP = "application/sdp"
T1_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class LegAddressing:
    """Where we are, as written in our requests: Via sent-by, transport and Contact."""

    sent_by: str
    contact: str
    transport: str = "udp"


Resolver = Callable[[Uri, str], Address]
"""Turns a next-hop URI into a transport address (RFC 3263 lives behind it)."""


def resolve_literal(uri: Uri, transport: str) -> Address:
    """A resolver for URIs that carry an IP address (tests, and peers that do)."""
    if not isinstance(uri, SipUri):
        raise SipError(f"cannot route to {uri}", status=416)
    chosen = uri.param("transport") or transport
    port = uri.port or (5061 if chosen == "tls" else 5060)
    return Address(chosen.lower(), uri.host_address, port)


def sdp_holds(body: bytes) -> bool:
    """Whether an offer asks us not to send (sendonly, inactive, c=0.0.0.0)."""
    try:
        session = SessionDescription.parse(body)
    except SdpError:
        return False
    for media in session.media:
        if media.media != "audio" or media.port == 0:
            continue
        direction = media.direction or session.session_direction or Direction.SENDRECV
        connection = media.connections[0] if media.connections else session.connection
        if connection is not None and connection.is_null:
            return True
        return direction in (Direction.SENDONLY, Direction.INACTIVE)
    return False


@dataclass(slots=True, kw_only=True)
class Trigger:
    """The input being handled and what came with it."""

    request: Request | None = None
    response: Response | None = None
    transaction: TransactionKey | None = None
    source: Address | None = None
    dialog: Dialog | None = None
    cause: EndCause | None = None
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


Listener = Callable[[CallEvent], None]


class CallLeg:
    """Behaviour common to ``UacLeg`` and ``UasLeg``; not used on its own."""

    machine: ClassVar[LegMachine]

    __slots__ = (
        "_acks",
        "_cnonce",
        "_delivering",
        "_glare_timer",
        "_held_local",
        "_held_remote",
        "_outbox",
        "_reinvite_hold",
        "_retransmissions",
        "_retransmit_timer",
        "_session_pending",
        "addressing",
        "call_id",
        "credentials",
        "dialog",
        "end_cause",
        "listeners",
        "media",
        "random_draw",
        "registry",
        "resolve",
        "scheduler",
        "session_timer",
        "session_timers",
        "sip",
        "state",
        "t1_s",
    )

    def __init__(
        self,
        *,
        sip: SipPort,
        scheduler: Scheduler,
        media: MediaPort,
        addressing: LegAddressing,
        call_id: str,
        registry: LegRegistry | None,
        random_draw: Callable[[], float],
        resolve: Resolver,
        t1_s: float,
        credentials: DigestClient | None = None,
        cnonce: Callable[[], str] | None = None,
        session_timers: SessionTimerSettings | None = None,
    ) -> None:
        """``credentials`` answer 401/407 challenges to our requests (a fresh
        ``cnonce()`` each time; default: a new tag from ``sip.ids``).
        ``session_timers``: RFC 4028 on this leg (None: not used)."""
        self.sip = sip
        self.scheduler = scheduler
        self.media = media
        self.addressing = addressing
        self.call_id = call_id
        self.registry = registry
        self.random_draw = random_draw
        self.resolve = resolve
        self.t1_s = t1_s
        self.state = self.machine.initial_state
        self.dialog: Dialog | None = None
        self.end_cause: EndCause | None = None
        self.listeners: list[Listener] = []
        self._outbox: list[CallEvent] = []
        self._delivering = False
        self._acks: dict[tuple[str, int], Request] = {}
        self._retransmissions = SuccessRetransmissions(t1=t1_s, t2=8 * t1_s)
        self._retransmit_timer: TimerHandle | None = None
        self._glare_timer: TimerHandle | None = None
        self._held_local = False
        self._held_remote = False
        self._reinvite_hold: bool | None = None
        self.credentials = credentials
        self._cnonce = cnonce or sip.ids.tag
        self.session_timers = session_timers
        self._session_pending: SessionInterval | None = None
        self.session_timer = SessionTimer(
            scheduler=scheduler, call_id=call_id,
            on_refresh_due=lambda: self._fire(LegInput.REFRESH_TIMER_FIRED, Trigger()),
            on_expired=self._on_session_expired)

    # -- reading ----------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """CallEnded was reported (the BYE may still be on its way)."""
        return self.end_cause is not None

    @property
    def answered(self) -> bool:
        return self.state in (LegState.CONFIRMED, LegState.ANSWERING)

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    # -- the calls every leg takes ------------------------------------------------

    def hangup(self, cause: EndCause | None = None) -> None:
        """End the call: BYE when answered (CANCEL or a reject before); the
        cause's Q.850 travels in a Reason header (RFC 3326)."""
        self._fire(LegInput.HANGUP_CALLED, Trigger(cause=local_end(cause)))

    def reinvite(self, *, hold: bool) -> None:
        """Offer again (hold with sendonly, or resume); a 491 is retried after
        the §14.1 interval."""
        self._reinvite_hold = hold
        self._fire(LegInput.REINVITE_CALLED, Trigger())

    def receive_request(self, request: Request, transaction: TransactionKey | None,
                        source: Address) -> None:
        """An in-dialog request (or ACK, ``transaction`` None) for this leg."""
        method = request.method
        trigger = Trigger(request=request, transaction=transaction, source=source)
        if method == "ACK":
            event = LegInput.ACK_RECEIVED
        elif method == "BYE":
            event = LegInput.BYE_RECEIVED
        elif method == "INVITE" or (method == "UPDATE" and request.body):
            event = LegInput.REINVITE_RECEIVED
        else:
            event = LegInput.REQUEST_RECEIVED
        self._fire(event, trigger)

    # -- the machine --------------------------------------------------------------

    def _fire(self, event: LegInput, trigger: Trigger) -> None:
        actions, next_state = self.machine.transition(self.state, event)
        previous = self.state
        self.state = next_state
        log.debug("call_id=%s %s: %s -> %s", self.call_id, event.value, previous.value,
                  next_state.value)
        for action in actions:
            handler: Callable[[Trigger], None] = getattr(self, "_do_" + action.value)
            handler(trigger)
        if next_state is LegState.ENDED and previous is not LegState.ENDED:
            self._finish()
        elif next_state is LegState.ENDING and previous is not LegState.ENDING:
            self._stop_call_timers()
        self._deliver()

    def _emit(self, event: CallEvent) -> None:
        self._outbox.append(event)

    def _deliver(self) -> None:
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._outbox:
                event = self._outbox.pop(0)
                for listener in list(self.listeners):
                    listener(event)
                if isinstance(event, CallEnded):
                    self.listeners.clear()
        finally:
            self._delivering = False

    def _now(self) -> float:
        return self.scheduler.time()

    def _stop_call_timers(self) -> None:
        """Stop what only a live call needs (ring, glare, session timers)."""
        self.session_timer.stop()
        if self._glare_timer is not None:
            self._glare_timer.cancel()
            self._glare_timer = None

    def _finish(self) -> None:
        self._stop_call_timers()
        self.session_timer.close()
        if self._retransmit_timer is not None:
            self._retransmit_timer.cancel()
            self._retransmit_timer = None
        if self.registry is not None:
            self.registry.discard(self)

    def _register(self, dialog: Dialog) -> None:
        if self.registry is not None:
            self.registry.add(dialog, self)

    def _send_to_peer(self, request: Request) -> Address:
        assert self.dialog is not None
        return self.resolve(self.dialog.next_hop(), self.addressing.transport)

    # -- ending -------------------------------------------------------------------

    def _do_report_end(self, trigger: Trigger) -> None:
        cause = trigger.cause or EndCause(outcome=Outcome.HUNG_UP_LOCAL,
                                          q850_cause=Q850_NORMAL_CLEARING)
        if self.end_cause is not None:
            return
        self.end_cause = cause
        log.info("call_id=%s ended: %s status=%s q850=%s", self.call_id, cause.outcome,
                 cause.sip_status, cause.q850_cause)
        self._emit(CallEnded(call_id=self.call_id, cause=cause, time=self._now()))

    def _bye_headers(self, cause: EndCause | None) -> tuple[tuple[str, str], ...]:
        reason = cause.reason_header() if cause is not None else None
        if reason is None:
            reason = f'Q.850;cause={Q850_NORMAL_CLEARING};text="Normal call clearing"'
        return (("Reason", reason),)

    def _send_bye_on(self, dialog: Dialog, cause: EndCause | None) -> None:
        try:
            bye = dialog.create_request("BYE", self.sip.ids, sent_by=self.addressing.sent_by,
                                        transport=self.addressing.transport,
                                        headers=self._bye_headers(cause))
        except DialogError as error:
            log.info("call_id=%s no BYE: %s", self.call_id, error.detail)
            return
        destination = self.resolve(dialog.next_hop(), self.addressing.transport)
        if dialog is self.dialog:
            self._send_in_dialog(bye, destination, self._on_bye_event)
        else:
            self.sip.send_request(bye, destination, _ignore_client_event)

    def _send_in_dialog(self, request: Request, destination: Address,
                        on_event: Callable[[ClientEvent], None]) -> None:
        """Send ``request``; a 401/407 to it is answered once with our credentials."""

        def on_challenge(event: ClientEvent) -> None:
            if isinstance(event, ResponseReceived) and event.response.status in (401, 407) \
                    and self.credentials is not None:
                retried = self._authenticated(request, event.response)
                if retried is not None:
                    if self.dialog is not None and self.dialog.local_seq is not None:
                        self.dialog.local_seq = max(self.dialog.local_seq, retried.cseq.number)
                    if retried.method == "INVITE" and self.dialog is not None:
                        self.dialog.local_invite_pending = True
                        self.dialog.local_offer_pending = bool(retried.body)
                    self._send_in_dialog(retried, destination, on_event)
                    return
            on_event(event)

        self.sip.send_request(request, destination, on_challenge)

    def _authenticated(self, request: Request, response: Response) -> Request | None:
        """``request`` with credentials for ``response``'s challenge, or None."""
        assert self.credentials is not None
        try:
            return retry_with_credentials(request, response, self.credentials,
                                          branch=self.sip.ids.branch(), cnonce=self._cnonce())
        except AuthError as error:
            log.info("call_id=%s %s %d: %s", self.call_id, request.method, response.status,
                     error.detail)
            return None

    def _do_send_bye(self, trigger: Trigger) -> None:
        assert self.dialog is not None
        self._retransmissions_stop_all()
        self._send_bye_on(self.dialog, trigger.cause or self.end_cause)

    def _on_bye_event(self, event: ClientEvent) -> None:
        if isinstance(event, ResponseReceived) and event.response.status < 200:
            return
        if isinstance(event, ResponseReceived | TransactionTimedOut | TransportErrorOccurred):
            self._fire(LegInput.BYE_COMPLETED, Trigger())

    def _do_answer_bye(self, trigger: Trigger) -> None:
        request = trigger.request
        assert request is not None
        if self.dialog is not None and not self.dialog.is_terminated:
            try:
                self.dialog.receive_request(request)
            except DialogError as error:
                log.debug("call_id=%s BYE: %s", self.call_id, error.detail)
        self._retransmissions_stop_all()
        self.sip.respond(request, 200, to_tag=self._local_tag())
        if trigger.cause is None:
            q850, text = EndCause.q850_of(request.reasons)
            trigger.cause = EndCause(outcome=Outcome.HUNG_UP_REMOTE, q850_cause=q850,
                                     reason_text=text)

    def _local_tag(self) -> str | None:
        return self.dialog.id.local_tag if self.dialog is not None else None

    def _do_refuse_481(self, trigger: Trigger) -> None:
        if trigger.request is not None and trigger.request.method != "ACK":
            self.sip.respond(trigger.request, 481, to_tag=self._local_tag())

    def _do_refuse_491(self, trigger: Trigger) -> None:
        if trigger.request is not None:
            self.sip.respond(trigger.request, 491, to_tag=self._local_tag())

    # -- requests from the peer in the dialog -----------------------------------------

    def _do_answer_request(self, trigger: Trigger) -> None:
        request = trigger.request
        assert request is not None and self.dialog is not None
        try:
            self.dialog.receive_request(request)
        except DialogError as error:
            self.sip.respond(request, error.status, to_tag=self._local_tag())
            return
        headers: tuple[tuple[str, str], ...] = ()
        if request.method == "UPDATE":
            refreshed = self._session_answer(request)
            if refreshed is None:
                return
            headers = refreshed
        self.sip.respond(request, 200, headers, to_tag=self._local_tag())
        if request.method == "UPDATE":
            self._session_restart()
        if request.method == "INFO":
            self._emit(InfoReceived(call_id=self.call_id, content_type=request.content_type,
                                    body=request.body, time=self._now()))

    def _do_answer_offer(self, trigger: Trigger) -> None:
        """Answer a re-INVITE or UPDATE offer locally: media is anchored by us."""
        request = trigger.request
        source = trigger.source
        assert request is not None and source is not None and self.dialog is not None
        dialog = self.dialog
        session_headers = self._session_answer(request)
        if session_headers is None:
            return
        try:
            dialog.receive_request(request)
        except DialogError as error:
            log.info("call_id=%s %s refused %d: %s", self.call_id, request.method,
                     error.status, error.detail)
            self.sip.respond(request, error.status, to_tag=self._local_tag())
            return
        offer = request.body
        try:
            body = self.media.answer(self, offer) if offer else self.media.offer(
                self, hold=self._held_local)
        except SdpError as error:
            response = self.sip.respond(request, 488, to_tag=self._local_tag())
            if response is not None:
                dialog.response_sent(request, response)
            log.info("call_id=%s offer refused: %s", self.call_id, error.detail)
            return
        response = self.sip.respond(
            request, 200, (("Contact", self.addressing.contact), ("Content-Type", SDP),
                           *session_headers),
            body=body, to_tag=self._local_tag())
        if response is None:
            return
        dialog.response_sent(request, response)
        self._session_restart()
        if request.method == "INVITE":
            self._retransmit(response, response_destination(request.top_via, source))
        if offer:
            self._emit(OfferReceived(call_id=self.call_id, offer=offer, answer=body,
                                     time=self._now()))
            held = sdp_holds(offer)
            if held != self._held_remote:
                self._held_remote = held
                self._emit(HoldChanged(call_id=self.call_id, held=held, by_remote=True,
                                       time=self._now()))

    def _do_take_ack(self, trigger: Trigger) -> None:
        request = trigger.request
        assert request is not None
        self._retransmissions.acknowledged(request)
        self._arm_retransmissions()
        if self.dialog is not None:
            had_offer_out = self.dialog.local_offer_pending
            try:
                self.dialog.receive_request(request)
            except DialogError:
                return
            if had_offer_out and request.body:
                self._take_remote_answer(request.body)

    def _take_remote_answer(self, body: bytes) -> None:
        try:
            self.media.remote_answer(self, body)
        except SdpError as error:
            log.info("call_id=%s unusable answer: %s", self.call_id, error.detail)

    # -- 2xx retransmission (§13.3.1.4) ------------------------------------------------

    def _retransmit(self, response: Response, destination: Address) -> None:
        self._retransmissions.start(response, destination, self._now())
        self._arm_retransmissions()

    def _retransmissions_stop_all(self) -> None:
        self._retransmissions = SuccessRetransmissions(t1=self.t1_s, t2=8 * self.t1_s)
        self._arm_retransmissions()

    def _arm_retransmissions(self) -> None:
        if self._retransmit_timer is not None:
            self._retransmit_timer.cancel()
            self._retransmit_timer = None
        deadline = self._retransmissions.get_timer()
        if deadline is not None:
            self._retransmit_timer = self.scheduler.call_at(deadline, self._on_retransmit_timer)

    def _on_retransmit_timer(self) -> None:
        self._retransmit_timer = None
        now = self._now()
        for pending in self._retransmissions.handle_timer(now):
            self.sip.send_stateless(pending.response, pending.destination)
        expired = self._retransmissions.expired()
        self._arm_retransmissions()
        if expired:
            log.info("call_id=%s no ACK for our 2xx: ending", self.call_id)
            self._fire(LegInput.ACK_TIMER_FIRED, Trigger(cause=EndCause(
                outcome=Outcome.FAILED, sip_status=408,
                q850_cause=Q850_RECOVERY_ON_TIMER_EXPIRY, reason_text="ACK timeout")))

    # -- our re-INVITE --------------------------------------------------------------------

    def _do_send_reinvite(self, trigger: Trigger) -> None:
        assert self.dialog is not None
        self._glare_timer = None
        hold = self._held_local if self._reinvite_hold is None else self._reinvite_hold
        body = self.media.offer(self, hold=hold)
        try:
            request = self.dialog.create_request(
                "INVITE", self.sip.ids, sent_by=self.addressing.sent_by,
                transport=self.addressing.transport, body=body, content_type=SDP,
                headers=self._session_request_headers())
        except DialogError as error:
            if error.status != 491:
                raise
            self._schedule_retry()  # their INVITE is still being answered
            return
        self._send_in_dialog(request, self._send_to_peer(request), self._on_reinvite_event)

    def _on_reinvite_event(self, event: ClientEvent) -> None:
        if isinstance(event, ResponseReceived):
            response = event.response
            if response.status < 200:
                return
            if self.dialog is not None and self.dialog.matches(response):
                with contextlib.suppress(DialogError):
                    self.dialog.update_from_response(response)
            trigger = Trigger(response=response, status=response.status)
            if 200 <= response.status < 300:
                self._fire(LegInput.REINVITE_ANSWERED, trigger)
            elif response.status in (408, 481):
                self._fire(LegInput.DIALOG_LOST, self._lost(trigger, response.status))
            else:
                self._fire(LegInput.REINVITE_REFUSED, trigger)
        elif isinstance(event, TransactionTimedOut | TransportErrorOccurred):
            if self.dialog is not None:
                self.dialog.local_invite_pending = self.dialog.local_offer_pending = False
            self._fire(LegInput.DIALOG_LOST, self._lost(Trigger(), 408))

    @staticmethod
    def _lost(trigger: Trigger, status: int) -> Trigger:
        trigger.cause = EndCause(outcome=Outcome.FAILED, sip_status=status)
        return trigger

    def _do_ack_reinvite(self, trigger: Trigger) -> None:
        response = trigger.response
        assert response is not None and self.dialog is not None
        key = (response.to_tag or "", response.cseq.number)
        ack = self._acks.get(key)
        first = ack is None
        if ack is None:
            ack = self.dialog.create_ack(response.cseq.number, self.sip.ids,
                                         sent_by=self.addressing.sent_by,
                                         transport=self.addressing.transport)
            self._acks[key] = ack
        self.sip.send_stateless(ack, self._send_to_peer(ack))
        if not first or self.state is not LegState.CONFIRMED:
            return
        if response.body:
            self._take_remote_answer(response.body)
        if self.session_timers is not None:
            self._session_start(negotiate_as_uac(response, self._session_interval_s()))
        hold = self._held_local if self._reinvite_hold is None else self._reinvite_hold
        self._reinvite_hold = None
        if hold != self._held_local:
            self._held_local = hold
            self._emit(HoldChanged(call_id=self.call_id, held=hold, by_remote=False,
                                   time=self._now()))

    def _do_retry_reinvite(self, trigger: Trigger) -> None:
        if trigger.status == 491:
            self._schedule_retry()
        else:
            log.info("call_id=%s re-INVITE refused %s; session unchanged", self.call_id,
                     trigger.status)
            self._reinvite_hold = None

    def _schedule_retry(self) -> None:
        assert self.dialog is not None
        delay_s = self.dialog.glare_retry_after_s(self.random_draw())
        log.debug("call_id=%s re-INVITE glare: retry in %.2f s", self.call_id, delay_s)
        if self._glare_timer is not None:
            self._glare_timer.cancel()
        self._glare_timer = self.scheduler.call_at(
            self._now() + delay_s, lambda: self._fire(LegInput.GLARE_TIMER_FIRED, Trigger()))

    # -- session timers (RFC 4028) ---------------------------------------------------------

    def _session_interval_s(self) -> int:
        """The interval in force (or the one we ask for before any was agreed)."""
        agreed = self.session_timer.interval
        if agreed is not None:
            return agreed.interval_s
        assert self.session_timers is not None
        return self.session_timers.session_expires_s

    def _session_request_headers(self) -> tuple[tuple[str, str], ...]:
        """For a re-INVITE we send: we keep refreshing (refresher=uac of it)."""
        if self.session_timers is None:
            return ()
        return request_headers(self.session_timers, interval_s=self._session_interval_s(),
                               refresher=Refresher.UAC)

    def _session_answer(self, request: Request) -> tuple[tuple[str, str], ...] | None:
        """Headers for our 2xx to a refresh (re-INVITE or UPDATE), kept to start
        the timer once the 2xx is sent; None when it was refused (422, 400)."""
        self._session_pending = None
        if self.session_timers is None:
            return ()
        try:
            interval, headers = negotiate_as_uas(request, self.session_timers)
        except IntervalTooSmall as error:
            self.sip.respond(request, 422, error.headers, to_tag=self._local_tag())
            return None
        except SipError as error:
            self.sip.respond(request, error.status, to_tag=self._local_tag())
            return None
        self._session_pending = interval
        return headers

    def _session_restart(self) -> None:
        if self._session_pending is not None:
            self._session_start(self._session_pending)
            self._session_pending = None

    def _session_start(self, interval: SessionInterval) -> None:
        if self.state in (LegState.ENDING, LegState.ENDED):
            return
        self.session_timer.start(interval)

    def _on_session_expired(self) -> None:
        self._fire(LegInput.SESSION_EXPIRED, Trigger(cause=EndCause(
            outcome=Outcome.FAILED, q850_cause=Q850_RECOVERY_ON_TIMER_EXPIRY,
            reason_text="Session timer expired")))


def local_end(cause: EndCause | None) -> EndCause:
    """Our own EndCause when we end a leg, carrying on the Q.850 cause of
    ``cause`` (why the other leg of a B2BUA ended), normal clearing if none."""
    if cause is None or cause.q850_cause is None:
        return EndCause(outcome=Outcome.HUNG_UP_LOCAL, q850_cause=Q850_NORMAL_CLEARING,
                        reason_text="Normal call clearing")
    return EndCause(outcome=Outcome.HUNG_UP_LOCAL, q850_cause=cause.q850_cause,
                    reason_text=cause.reason_text)


def _ignore_client_event(event: ClientEvent) -> None:
    return None


def handler_of(obj: Any, action: Action) -> Callable[[Trigger], None]:
    """The method that runs ``action`` on ``obj`` (for tests of the tables)."""
    method: Callable[[Trigger], None] = getattr(obj, "_do_" + action.value)
    return method


__all__ = [
    "DIALOG_ROWS",
    "T1_S",
    "Action",
    "CallLeg",
    "LegAddressing",
    "LegInput",
    "LegMachine",
    "LegRegistry",
    "LegState",
    "Listener",
    "Resolver",
    "Row",
    "Transitions",
    "Trigger",
    "handler_of",
    "local_end",
    "resolve_literal",
    "sdp_holds",
]
