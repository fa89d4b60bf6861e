"""The transaction layer: every transaction of one SIP endpoint, sans I/O.

The contract (aioquic's shape): the transport feeds it datagrams/stream
messages with ``receive(data, source, now)``; the user (TU) sends with
``send_request`` / ``send_response`` / ``send_stateless``; after each call
the owner drains ``events()`` and ``datagrams_to_send()``, and keeps ONE
timer armed at ``get_timer()``, calling ``handle_timer(now)`` when it fires.

The four machines are tables (client_invite.py, client_non_invite.py,
server_invite.py, server_non_invite.py); this module matches messages to
transactions (RFC 3261 §17.1.3, §17.2.3, §9.2), carries out the machines'
actions and keeps the timers.

Matching and its limits:

- Client side: top Via branch + CSeq method. Responses matching nothing are
  dropped (strays); so is a response that cannot be parsed.
- Server side: top Via branch + sent-by + method, ACK matching the INVITE.
  A request whose branch lacks the RFC 3261 magic cookie is matched by
  Call-ID + From tag + CSeq number + sent-by + method, an approximation of
  the RFC 2543 rules (Request-URI, To tag and the whole Via not compared).
- Received requests get ``received``/``rport`` in their top Via before the
  TU sees them (routing.py); responses are routed per §18.2.2/RFC 3581.

Timers: a heap of ``(deadline, sequence, transaction)`` with at most one
live entry per transaction (its earliest deadline); entries whose deadline
is no longer the transaction's are skipped when they surface (lazy
invalidation), so ``get_timer()`` is O(1) amortised. Zero-length timers
(D, I, J, K on reliable transports) fire at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from heapq import heappop, heappush
from typing import NoReturn

from ..address import Address
from ..errors import ProtocolError, SipError
from ..headers import Via
from ..ids import BRANCH_MAGIC
from ..message import Message, Request, Response, make_response
from ..parser import DEFAULT_LIMITS, Limits, parse_message
from .client_invite import CLIENT_INVITE
from .client_non_invite import CLIENT_NON_INVITE
from .events import (
    CancelReceived,
    Event,
    MalformedMessageReceived,
    Outgoing,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from .machine import Action, Input, Machine, State
from .malformed import salvage_answer
from .requests import build_ack, build_cancel
from .routing import response_destination, stamp_via
from .server_invite import SERVER_INVITE
from .server_non_invite import SERVER_NON_INVITE
from .transaction import INFINITY, Transaction


@dataclass(frozen=True, slots=True)
class TimerSettings:
    """RFC 3261 §17 timer values in seconds (T1, T2, T4).

    ``timer_d`` is Timer D on unreliable transports ("at least 32 s").
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0


_RETRANSMIT_INPUT = {
    CLIENT_INVITE: Input.TIMER_A,
    CLIENT_NON_INVITE: Input.TIMER_E,
    SERVER_INVITE: Input.TIMER_G,
    SERVER_NON_INVITE: Input.TIMER_J,  # unused: the server non-INVITE never retransmits
}
_START_RETRANSMIT = frozenset((Action.START_A, Action.START_E, Action.START_G))
_DOUBLE_RETRANSMIT = frozenset((Action.DOUBLE_E, Action.DOUBLE_G))


def _response_input(status: int, *, sent: bool) -> Input:
    if status < 200:
        return Input.PROVISIONAL_SENT if sent else Input.PROVISIONAL_RECEIVED
    if status < 300:
        return Input.SUCCESS_SENT if sent else Input.SUCCESS_RECEIVED
    return Input.FAILURE_SENT if sent else Input.FAILURE_RECEIVED


def _refuse(txn: Transaction, event: Input) -> NoReturn:
    """Raise the machine's ProtocolError for ``event`` in the current state."""
    txn.machine.transition(txn.state, event)
    raise AssertionError(f"{event} was expected to be refused")  # pragma: no cover


def _rfc2543_branch(message: Message) -> str:
    """A stand-in branch for a request without the magic cookie."""
    return f"rfc2543|{message.call_id}|{message.from_tag or ''}|{message.cseq.number}"


class TransactionLayer:
    __slots__ = (
        "_auto_trying",
        "_cancel_headers",
        "_clients",
        "_events",
        "_heap",
        "_limits",
        "_outgoing",
        "_sequence",
        "_servers",
        "_timeouts",
        "_timers",
    )

    def __init__(
        self,
        *,
        timers: TimerSettings = TimerSettings(),
        limits: Limits = DEFAULT_LIMITS,
        auto_trying: bool = True,
    ) -> None:
        """``auto_trying``: answer a new INVITE with 100 Trying at once."""
        self._timers = timers
        self._limits = limits
        self._auto_trying = auto_trying
        # (branch, method) -> client transaction
        self._clients: dict[tuple[str, ...], Transaction] = {}
        # (branch, sent-by, method) -> server transaction
        self._servers: dict[tuple[str, ...], Transaction] = {}
        # branch -> extra headers of a CANCEL waiting for the first provisional
        self._cancel_headers: dict[str, tuple[tuple[str, str], ...]] = {}
        self._events: list[Event] = []
        self._outgoing: list[Outgoing] = []
        self._heap: list[tuple[float, int, Transaction]] = []
        self._sequence = 0
        long_s = 64 * timers.t1
        # START_x -> (timer input, seconds on UDP, seconds on reliable transports)
        self._timeouts: dict[Action, tuple[Input, float, float]] = {
            Action.START_B: (Input.TIMER_B, long_s, long_s),
            Action.START_D: (Input.TIMER_D, max(timers.timer_d, long_s), 0.0),
            Action.START_F: (Input.TIMER_F, long_s, long_s),
            Action.START_H: (Input.TIMER_H, long_s, long_s),
            Action.START_I: (Input.TIMER_I, timers.t4, 0.0),
            Action.START_J: (Input.TIMER_J, long_s, 0.0),
            Action.START_K: (Input.TIMER_K, timers.t4, 0.0),
            Action.START_L: (Input.TIMER_L, long_s, long_s),
            Action.START_M: (Input.TIMER_M, long_s, long_s),
        }

    # -- input from the network ---------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> None:
        """Take one datagram (UDP) or one framed message (TCP/TLS)."""
        try:
            message = parse_message(data, self._limits, stream=source.transport != "udp")
        except SipError as error:
            self._answer_unparsable(data, source, error, now)
            return
        if type(message) is Response:
            self._receive_response(message, data, source, now)
        else:
            assert isinstance(message, Request)
            self._receive_request(message, source, now)

    def _receive_response(
        self, response: Response, data: bytes, source: Address, now: float
    ) -> None:
        try:
            branch = response.top_via.branch or ""
            method = response.cseq.method
        except SipError:
            self._events.append(MalformedMessageReceived(
                source=source, error=SipError("unreadable response"), answered=False, time=now))
            return
        txn = self._clients.get((branch, method))
        if txn is None:
            return  # a stray response: §17.1.3 / §18.1.2
        status = response.status
        if status < 200:
            if txn.state is State.CALLING or txn.state is State.TRYING \
                    or txn.state is State.PROCEEDING:
                seen = txn.provisionals_seen
                if seen is None:
                    txn.provisionals_seen = [data]
                elif data in seen:
                    return  # the same provisional again: passed up once
                else:
                    seen.append(data)
            event = Input.PROVISIONAL_RECEIVED
        elif status < 300:
            event = Input.SUCCESS_RECEIVED
        else:
            event = Input.FAILURE_RECEIVED
        if not self._fire(txn, event, now, message=response, source=source):
            return
        if txn.cancel_pending:
            if txn.state is State.PROCEEDING:
                txn.cancel_pending = False
                self._send_cancel(txn, now)
            elif txn.state is not State.CALLING:
                txn.cancel_pending = False
                self._cancel_headers.pop(txn.key.branch, None)

    def _receive_request(self, request: Request, source: Address, now: float) -> None:
        method = request.method
        try:
            via = request.top_via
            branch = via.branch or ""
            if not branch.startswith(BRANCH_MAGIC):
                branch = _rfc2543_branch(request)
            request.call_id  # noqa: B018 - a bad Call-ID is a 400
        except SipError as error:
            self._answer_bad_request(request, source, error, now)
            return
        sent_by = via.sent_by
        txn = self._servers.get((branch, sent_by, "INVITE" if method == "ACK" else method))
        if txn is not None:
            if method == "ACK":
                if txn.state is State.ACCEPTED:  # passed up: the TU sees it stamped
                    stamp_via(request, via, source)
                self._fire(txn, Input.ACK_RECEIVED, now, message=request, source=source)
            else:
                self._fire(txn, Input.REQUEST_RECEIVED, now)
            return
        stamp_via(request, via, source)
        if method == "ACK":
            # the ACK of a 2xx, or a stray: no transaction of its own
            self._events.append(
                RequestReceived(request=request, source=source, transaction=None, time=now))
            return
        if method == "CANCEL":
            self._receive_cancel(request, via, branch, source, now)
            return
        invite = method == "INVITE"
        machine = SERVER_INVITE if invite else SERVER_NON_INVITE
        txn = self._new_server(machine, branch, sent_by, method, via, source)
        self._run(txn, machine.initial_actions, now, message=request, source=source)
        if invite and self._auto_trying:
            trying = make_response(request, 100)
            self._fire(txn, Input.PROVISIONAL_SENT, now, data=trying.serialize())

    def _new_server(
        self, machine: Machine, branch: str, sent_by: str, method: str, via: Via, source: Address
    ) -> Transaction:
        map_key = (branch, sent_by, method)
        txn = Transaction(
            TransactionKey(branch, method, True, sent_by),
            machine,
            map_key,
            response_destination(via, source),
            _RETRANSMIT_INPUT[machine],
        )
        self._servers[map_key] = txn
        return txn

    def _receive_cancel(
        self, cancel: Request, via: Via, branch: str, source: Address, now: float
    ) -> None:
        """§9.2: 200 when the CANCEL matches an INVITE transaction, else 481;
        CancelReceived when that transaction still waits for a final answer."""
        sent_by = via.sent_by
        invite = self._servers.get((branch, sent_by, "INVITE"))
        txn = self._new_server(SERVER_NON_INVITE, branch, sent_by, "CANCEL", via, source)
        if invite is None:
            answer = make_response(cancel, 481)
        else:
            answer = make_response(cancel, 200)
            if invite.to_header is not None:  # §9.2: the same To tag as the INVITE's
                answer.headers.set("To", invite.to_header)
        self._fire(txn, Input.SUCCESS_SENT if invite else Input.FAILURE_SENT, now,
                   data=answer.serialize())
        if invite is not None and invite.state is State.PROCEEDING:
            self._events.append(CancelReceived(
                request=cancel, source=source, transaction=invite.key, time=now))

    def _answer_bad_request(
        self, request: Request, source: Address, error: SipError, now: float
    ) -> None:
        answered = False
        if request.method != "ACK":
            try:
                via = request.top_via
                answer = make_response(request, error.status if error.status >= 400 else 400,
                                       error.reason)
                self._outgoing.append(Outgoing(
                    data=answer.serialize(), destination=response_destination(via, source)))
                answered = True
            except SipError:
                pass
        self._events.append(MalformedMessageReceived(
            source=source, error=error, answered=answered, time=now))

    def _answer_unparsable(
        self, data: bytes, source: Address, error: SipError, now: float
    ) -> None:
        salvaged = salvage_answer(data, error)
        if salvaged is not None:
            answer, via = salvaged
            self._outgoing.append(Outgoing(
                data=answer.serialize(), destination=response_destination(via, source)))
        self._events.append(MalformedMessageReceived(
            source=source, error=error, answered=salvaged is not None, time=now))

    # -- input from the TU ----------------------------------------------------

    def send_request(self, request: Request, destination: Address, now: float) -> TransactionKey:
        """Start a client transaction. ``request`` carries its top Via with a
        fresh branch already. INVITE gets the §17.1.1 machine, others §17.1.2.
        ACK is not allowed here (use ``send_stateless``).

        Raises ProtocolError for an ACK, a request without a branch, or a
        branch already in use by a client transaction of that method."""
        method = request.method
        if method == "ACK":
            raise ProtocolError("ACK is sent with send_stateless, outside any transaction")
        branch = request.top_via.branch
        if not branch:
            raise ProtocolError("a request needs a branch in its top Via")
        map_key = (branch, method)
        if map_key in self._clients:
            raise ProtocolError(f"branch {branch} is already in use for {method}")
        machine = CLIENT_INVITE if method == "INVITE" else CLIENT_NON_INVITE
        txn = Transaction(TransactionKey(branch, method, False), machine, map_key, destination,
                          _RETRANSMIT_INPUT[machine])
        txn.request = request
        txn.request_bytes = request.serialize()
        self._clients[map_key] = txn
        self._run(txn, machine.initial_actions, now)
        return txn.key

    def send_response(self, response: Response, now: float) -> None:
        """Answer through the server transaction the response matches (by its
        top Via and CSeq method); routed per RFC 3261 §18.2.2 and RFC 3581.

        Raises ProtocolError when no server transaction matches (it ended, or
        the response was not built from a received request), or when the
        transaction cannot send it (a non-2xx after a 2xx to an INVITE).
        Responses passed after a final one are discarded (§17.2.2)."""
        via = response.top_via
        branch = via.branch or ""
        if not branch.startswith(BRANCH_MAGIC):
            branch = _rfc2543_branch(response)
        method = response.cseq.method
        txn = self._servers.get((branch, via.sent_by, method))
        if txn is None:
            raise ProtocolError(f"no server transaction for {response!r} ({method} {branch})")
        status = response.status
        event = _response_input(status, sent=True)
        if status > 100 and txn.machine is SERVER_INVITE and txn.state is State.PROCEEDING:
            txn.to_header = response.headers.get("To")
        if not self._fire(txn, event, now, data=response.serialize()):
            _refuse(txn, event)

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        """Send outside any transaction: ACK for a 2xx, 2xx retransmissions
        by the TU core (§13.3.1.4), stateless replies."""
        self._outgoing.append(Outgoing(data=message.serialize(), destination=destination))

    def cancel(self, transaction: TransactionKey, now: float,
               headers: tuple[tuple[str, str], ...] = ()) -> TransactionKey | None:
        """Send a CANCEL for a pending client INVITE transaction (§9.1); returns
        the CANCEL's own client transaction, or None when none is possible yet
        (no provisional received: the CANCEL is sent when one arrives).
        ``headers`` are added to the CANCEL (a Reason, RFC 3326).

        Also None, and nothing sent, when the transaction is not a pending
        client INVITE (a final response was received, or it has ended)."""
        if transaction.server or transaction.method != "INVITE":
            return None
        txn = self._clients.get((transaction.branch, "INVITE"))
        if txn is None:
            return None
        if txn.state is State.CALLING:
            txn.cancel_pending = True
            if headers:
                self._cancel_headers[txn.key.branch] = headers
            return None
        if txn.state is State.PROCEEDING:
            return self._send_cancel(txn, now, headers)
        return None

    def _send_cancel(self, txn: Transaction, now: float,
                     headers: tuple[tuple[str, str], ...] | None = None) -> TransactionKey:
        pending = self._cancel_headers.pop(txn.key.branch, ())
        existing = self._clients.get((txn.key.branch, "CANCEL"))
        if existing is not None:
            return existing.key
        assert txn.request is not None
        cancel = build_cancel(txn.request, pending if headers is None else headers)
        return self.send_request(cancel, txn.destination, now)

    def transport_error(self, destination: Address, now: float) -> None:
        """The transport failed to deliver to ``destination``."""
        for table in (self._clients, self._servers):
            for txn in list(table.values()):
                if txn.destination == destination and txn.state is not State.TERMINATED \
                        and (txn.state, Input.TRANSPORT_ERROR) in txn.machine.transitions:
                    self._fire(txn, Input.TRANSPORT_ERROR, now)

    # -- output ---------------------------------------------------------------

    def events(self) -> list[Event]:
        """Drain the events produced since the last call."""
        events = self._events
        self._events = []
        return events

    def datagrams_to_send(self) -> list[Outgoing]:
        """Drain the messages to send, in the order they were produced."""
        outgoing = self._outgoing
        self._outgoing = []
        return outgoing

    # -- timers ---------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest deadline of any transaction, or None."""
        heap = self._heap
        while heap:
            deadline, _, txn = heap[0]
            if deadline == txn.heap_at:
                if deadline == txn.retransmit_at or deadline == txn.timeout_at:
                    return deadline
                # the timer of this entry was stopped: move to the next one
                txn.heap_at = INFINITY
                heappop(heap)
                self._schedule(txn)
            else:
                heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, txn = heappop(heap)
            if deadline != txn.heap_at:
                continue  # superseded
            txn.heap_at = INFINITY
            if txn.timeout_at <= now:
                txn.timeout_at = INFINITY
                self._fire_timer(txn, txn.timeout_input, now)
            if txn.retransmit_at <= now and txn.state is not State.TERMINATED:
                txn.retransmit_at = INFINITY
                self._fire_timer(txn, txn.retransmit_input, now)
            if txn.state is not State.TERMINATED:
                self._schedule(txn)

    def _fire_timer(self, txn: Transaction, timer: Input, now: float) -> None:
        if not self._fire(txn, timer, now):
            _refuse(txn, timer)  # a timer is only armed in the states that take it

    def _schedule(self, txn: Transaction) -> None:
        deadline = txn.retransmit_at if txn.retransmit_at < txn.timeout_at else txn.timeout_at
        if deadline < txn.heap_at:
            self._sequence += 1
            heappush(self._heap, (deadline, self._sequence, txn))
            txn.heap_at = deadline

    # -- the machines' actions --------------------------------------------------

    def _fire(
        self,
        txn: Transaction,
        event: Input,
        now: float,
        *,
        message: Message | None = None,
        source: Address | None = None,
        data: bytes = b"",
    ) -> bool:
        """Feed ``event`` to ``txn``; False (and nothing done) when its
        machine has no transition for it in the current state."""
        entry = txn.machine.transitions.get((txn.state, event))
        if entry is None:
            return False
        actions, txn.state = entry
        self._run(txn, actions, now, message=message, source=source, data=data, cause=event)
        # keep live transactions small: drop what their new state never uses
        state = txn.state
        if state is State.CONFIRMED:
            txn.last_response = b""
        elif (state is State.COMPLETED or state is State.ACCEPTED) and txn.machine.client:
            txn.request = None
            txn.request_bytes = b""
            txn.provisionals_seen = None
        return True

    def _run(
        self,
        txn: Transaction,
        actions: tuple[Action, ...],
        now: float,
        *,
        message: Message | None = None,
        source: Address | None = None,
        data: bytes = b"",
        cause: Input | None = None,
    ) -> None:
        immediate: Input | None = None
        for action in actions:
            if action is Action.SEND_REQUEST:
                self._outgoing.append(Outgoing(data=txn.request_bytes, destination=txn.destination))
            elif action is Action.SEND_RESPONSE:
                txn.last_response = data
                self._outgoing.append(Outgoing(data=data, destination=txn.destination))
            elif action is Action.RESEND_RESPONSE:
                if txn.last_response:
                    self._outgoing.append(
                        Outgoing(data=txn.last_response, destination=txn.destination))
            elif action is Action.PASS_RESPONSE:
                assert isinstance(message, Response) and source is not None
                self._events.append(ResponseReceived(
                    response=message, source=source, transaction=txn.key, time=now))
            elif action is Action.PASS_REQUEST:
                assert isinstance(message, Request) and source is not None
                self._events.append(RequestReceived(
                    request=message, source=source, transaction=txn.key, time=now))
            elif action is Action.PASS_ACK:
                assert isinstance(message, Request) and source is not None
                self._events.append(RequestReceived(
                    request=message, source=source, transaction=None, time=now))
            elif action is Action.SEND_ACK:
                if not txn.ack_bytes:
                    assert isinstance(message, Response) and txn.request is not None
                    txn.ack_bytes = build_ack(txn.request, message).serialize()
                self._outgoing.append(Outgoing(data=txn.ack_bytes, destination=txn.destination))
            elif action in self._timeouts:
                timer, unreliable_s, reliable_s = self._timeouts[action]
                duration_s = reliable_s if txn.reliable else unreliable_s
                if duration_s <= 0.0:
                    txn.timeout_at = INFINITY
                    immediate = timer
                else:
                    txn.timeout_input = timer
                    txn.timeout_at = now + duration_s
            elif action in _START_RETRANSMIT:
                if not txn.reliable:
                    txn.retransmit_interval_s = self._timers.t1
                    txn.retransmit_at = now + self._timers.t1
            elif action is Action.DOUBLE_A:
                txn.retransmit_interval_s *= 2
                txn.retransmit_at = now + txn.retransmit_interval_s
            elif action in _DOUBLE_RETRANSMIT:
                txn.retransmit_interval_s = min(2 * txn.retransmit_interval_s, self._timers.t2)
                txn.retransmit_at = now + txn.retransmit_interval_s
            elif action is Action.RESET_E:
                txn.retransmit_interval_s = self._timers.t2
                txn.retransmit_at = now + self._timers.t2
            elif action is Action.STOP_RETRANSMISSIONS:
                txn.retransmit_at = INFINITY
            elif action is Action.STOP_TIMEOUT:
                txn.timeout_at = INFINITY
            elif action is Action.REPORT_TIMEOUT:
                assert cause is not None
                self._events.append(TransactionTimedOut(
                    transaction=txn.key, timer=cause.timer_name, time=now))
            elif action is Action.REPORT_TRANSPORT_ERROR:
                self._events.append(TransportErrorOccurred(transaction=txn.key, time=now))
            else:  # pragma: no cover - every Action is handled above
                raise ProtocolError(f"unknown action {action}")
        if txn.state is State.TERMINATED:
            self._terminate(txn, now)
        elif immediate is not None:
            self._fire_timer(txn, immediate, now)
        else:
            self._schedule(txn)

    def _terminate(self, txn: Transaction, now: float) -> None:
        table = self._clients if txn.machine.client else self._servers
        if table.get(txn.map_key) is txn:
            del table[txn.map_key]
        if txn.cancel_pending:
            self._cancel_headers.pop(txn.key.branch, None)
        txn.release()
        self._events.append(TransactionTerminated(transaction=txn.key, time=now))

    def __len__(self) -> int:
        """Number of live transactions."""
        return len(self._clients) + len(self._servers)


__all__ = ["Outgoing", "TimerSettings", "TransactionKey", "TransactionLayer"]
