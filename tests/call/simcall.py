"""Simulated endpoints for call-layer tests: no sockets, no loop, no wall clock.

- ``SimulatedScheduler``: the ``Scheduler`` port on a ``ManualClock``
  (``time()``, ``call_at`` returning a cancellable handle).
- ``SimulatedEndpoint``: the ``SipPort`` port (``boomerang.app.Endpoint``'s
  API and its dispatch: ``handlers["INVITE"]``, ``dialog_handler``) on a real
  ``TransactionLayer``; attachable to ``simnet.SimulatedNetwork``. Its
  ``get_timer`` is the earliest of the layer's and its scheduler's
  deadlines, so ``simnet.Simulation`` advances to whichever comes first.
- ``FakeMedia``: the ``MediaPort`` port; SDP text with the direction the
  hold state asks for, and a switch to refuse offers (488).
- ``EventLog``: a leg listener that keeps every call-control event.
- ``CallWorld``: a network, a clock and named endpoints, ready to ``run``.
- ``ForkingProxy``: a stateful proxy on one endpoint that forks each new
  INVITE to several endpoints (RFC 3261 §16), forwards every provisional
  and 2xx upstream, CANCELs the other branches on the first 2xx (with
  ``Reason: SIP;cause=200``, RFC 3326) and forwards the best final
  response when no branch answered. No Record-Route: ACK and BYE go
  end to end.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from simnet import ManualClock, SimulatedNetwork, Simulation

from boomerang.call.events import CallEnded, CallEvent, EndCause
from boomerang.call.leg import LegAddressing, LegRegistry
from boomerang.call.ports import CancelCallback, ClientCallback, LegView
from boomerang.sip.address import Address
from boomerang.sip.errors import ProtocolError
from boomerang.sip.ids import CountingIds, IdGenerator
from boomerang.sip.message import Request, Response, make_response
from boomerang.sip.sdp import not_acceptable
from boomerang.sip.transaction.events import (
    CancelReceived,
    Outgoing,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from boomerang.sip.transaction.layer import TransactionLayer

RequestHandler = Callable[[Request, TransactionKey, Address], None]
DialogHandler = Callable[[Request, TransactionKey | None, Address], bool]


class ScheduledCall:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimulatedScheduler:
    """One-shot timers on a manual clock; ``run_due(now)`` fires them in order."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, ScheduledCall]] = []
        self._sequence = 0

    def time(self) -> float:
        return self.clock.now

    def call_at(self, when: float, callback: Callable[[], object]) -> ScheduledCall:
        handle = ScheduledCall(when, callback)
        self._sequence += 1
        heapq.heappush(self._heap, (when, self._sequence, handle))
        return handle

    def next_deadline(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def run_due(self, now: float) -> None:
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > now:
                return
            _, _, handle = heapq.heappop(self._heap)
            handle.cancelled = True
            handle.callback()


def _earliest(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


class SimulatedEndpoint:
    """A SIP endpoint with ``boomerang.app.Endpoint``'s API, in simulated time."""

    def __init__(self, name: str, address: Address, clock: ManualClock) -> None:
        self.name = name
        self.address = address
        self.clock = clock
        self.layer = TransactionLayer()
        self.scheduler = SimulatedScheduler(clock)
        self._ids = CountingIds(name)
        self.handlers: dict[str, RequestHandler] = {}
        self.dialog_handler: DialogHandler | None = None
        self.registry = LegRegistry()
        self.dialog_handler = self.registry
        self._client_callbacks: dict[TransactionKey, ClientCallback] = {}
        self._cancel_callbacks: dict[TransactionKey, CancelCallback] = {}
        self.requests_received: list[Request] = []
        self.responses_received: list[Response] = []
        self._pumping = False

    @property
    def ids(self) -> IdGenerator:
        return self._ids

    def addressing(self, user: str) -> LegAddressing:
        host_port = f"{self.address.host}:{self.address.port}"
        return LegAddressing(sent_by=host_port, contact=f"<sip:{user}@{host_port}>",
                             transport=self.address.transport)

    def uri(self, user: str) -> str:
        return f"sip:{user}@{self.address.host}:{self.address.port}"

    # -- the SipPort API ---------------------------------------------------------------

    def send_request(self, request: Request, destination: Address,
                     on_event: ClientCallback) -> TransactionKey:
        key = self.layer.send_request(request, destination, self.clock.now)
        self._client_callbacks[key] = on_event
        return key

    def respond(self, request: Request, status: int,
                headers: tuple[tuple[str, str], ...] = (), *, body: bytes = b"",
                to_tag: str | None = None) -> Response | None:
        response = make_response(request, status, to_tag=to_tag or self._ids.tag(),
                                 headers=headers, body=body)
        try:
            self.layer.send_response(response, self.clock.now)
        except ProtocolError:
            return None
        return response

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        self.layer.send_stateless(message, destination)

    def cancel(self, transaction: TransactionKey,
               headers: tuple[tuple[str, str], ...] = ()) -> TransactionKey | None:
        return self.layer.cancel(transaction, self.clock.now, headers)

    def on_cancel(self, transaction: TransactionKey, callback: CancelCallback) -> None:
        self._cancel_callbacks[transaction] = callback

    # -- simnet.Endpoint ------------------------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> None:
        self.layer.receive(data, source, now)
        self._pump()

    def datagrams_to_send(self) -> list[Outgoing]:
        return self.layer.datagrams_to_send()

    def get_timer(self) -> float | None:
        return _earliest(self.layer.get_timer(), self.scheduler.next_deadline())

    def handle_timer(self, now: float) -> None:
        deadline = self.layer.get_timer()
        if deadline is not None and deadline <= now:
            self.layer.handle_timer(now)
            self._pump()
        self.scheduler.run_due(now)
        self._pump()

    # -- dispatch (boomerang.app.Endpoint.handle, without the screening) -------------------

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            while True:
                events = self.layer.events()
                if not events:
                    return
                for event in events:
                    self._dispatch(event)
        finally:
            self._pumping = False

    def _dispatch(self, event: object) -> None:
        if isinstance(event, RequestReceived):
            self.requests_received.append(event.request)
            if event.transaction is None:
                if self.dialog_handler is not None:
                    self.dialog_handler(event.request, None, event.source)
            else:
                self._on_request(event.request, event.transaction, event.source)
        elif isinstance(event, CancelReceived):
            callback = self._cancel_callbacks.pop(event.transaction, None)
            if callback is not None:
                callback(event)
        elif isinstance(event, ResponseReceived | TransactionTimedOut | TransportErrorOccurred):
            if isinstance(event, ResponseReceived):
                self.responses_received.append(event.response)
            client = self._client_callbacks.get(event.transaction)
            if client is not None:
                client(event)
        elif isinstance(event, TransactionTerminated):
            self._cancel_callbacks.pop(event.transaction, None)
            client = self._client_callbacks.pop(event.transaction, None)
            if client is not None:
                client(event)

    def _on_request(self, request: Request, key: TransactionKey, source: Address) -> None:
        method = request.method
        if method == "ACK":
            return
        if request.to_tag is not None and method != "CANCEL":
            handled = self.dialog_handler is not None and self.dialog_handler(
                request, key, source)
            if not handled:
                self.respond(request, 481)
            return
        handler = self.handlers.get(method)
        if handler is not None:
            handler(request, key, source)
        elif method in ("BYE", "INFO", "UPDATE"):
            self.respond(request, 481)
        elif method == "INVITE":
            self.respond(request, 404)
        else:
            self.respond(request, 501)

    def requests(self, method: str) -> list[Request]:
        return [r for r in self.requests_received if r.method == method]

    def responses(self, status: int, method: str = "INVITE") -> list[Response]:
        return [r for r in self.responses_received
                if r.status == status and r.cseq.method == method]


class FakeMedia:
    """SDP for tests: sendrecv, or sendonly when holding; ``refuse`` -> 488."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4000) -> None:
        self.host = host
        self.port = port
        self.refuse = False
        self.offers_made: list[bool] = []
        self.offers_answered: list[bytes] = []
        self.answers_taken: list[bytes] = []

    def _sdp(self, direction: str) -> bytes:
        return (f"v=0\r\no=- 1 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 {self.host}\r\n"
                f"t=0 0\r\nm=audio {self.port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                f"a={direction}\r\n").encode()

    def offer(self, leg: LegView, *, hold: bool = False) -> bytes:
        self.offers_made.append(hold)
        return self._sdp("sendonly" if hold else "sendrecv")

    def answer(self, leg: LegView, remote_offer: bytes) -> bytes:
        if self.refuse:
            raise not_acceptable("refused by the test")
        self.offers_answered.append(remote_offer)
        held = b"a=sendonly" in remote_offer or b"a=inactive" in remote_offer
        return self._sdp("recvonly" if held else "sendrecv")

    def remote_answer(self, leg: LegView, sdp: bytes) -> None:
        self.answers_taken.append(sdp)


@dataclass
class EventLog:
    """Listener keeping the events of one leg."""

    events: list[CallEvent] = field(default_factory=list)

    def __call__(self, event: CallEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[CallEvent]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def cause(self) -> EndCause | None:
        ended = [e for e in self.events if isinstance(e, CallEnded)]
        return ended[-1].cause if ended else None

    @property
    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


class CallWorld:
    """Named simulated endpoints on one lossy network with one clock."""

    def __init__(self, names: list[str], *, seed: int = 0, loss: float = 0.0,
                 duplication: float = 0.0, reordering: float = 0.0) -> None:
        self.clock = ManualClock()
        self.network = SimulatedNetwork(seed=seed, loss=loss, duplication=duplication,
                                        reordering=reordering)
        self.endpoints = {
            name: SimulatedEndpoint(name, Address("udp", "127.0.0.1", 5061 + i), self.clock)
            for i, name in enumerate(names)
        }
        self.simulation = Simulation(self.network, self.clock, self.endpoints.values())

    def __getitem__(self, name: str) -> SimulatedEndpoint:
        return self.endpoints[name]

    def at(self, when: float, callback: Callable[[], object], *, on: str) -> None:
        """Run ``callback`` (a user action) at simulated time ``when``."""
        self.endpoints[on].scheduler.call_at(when, callback)

    def run(self, until: float) -> None:
        self.simulation.run(until=until)


class ForkingProxy:
    """Forks INVITEs arriving at ``endpoint`` to ``targets`` (see the module doc)."""

    COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'

    def __init__(self, endpoint: SimulatedEndpoint, targets: list[SimulatedEndpoint],
                 user: str) -> None:
        self.endpoint = endpoint
        self.targets = targets
        self.user = user
        self.branches: dict[TransactionKey, SimulatedEndpoint] = {}
        self.finals: dict[TransactionKey, Response] = {}
        self.answered = False
        self.cancelled: list[str] = []
        endpoint.handlers["INVITE"] = self.on_invite

    def on_invite(self, request: Request, key: TransactionKey, source: Address) -> None:
        self.endpoint.on_cancel(key, lambda event: self._cancel_all(None))
        for target in self.targets:
            headers = request.headers.copy()
            host_port = f"{self.endpoint.address.host}:{self.endpoint.address.port}"
            via = f"SIP/2.0/UDP {host_port};branch={self.endpoint.ids.branch()}"
            rest = headers.get_all("Via")
            headers.remove("Via")
            headers.add("Via", via)
            for value in rest:
                headers.add("Via", value)
            headers.set("Max-Forwards", str(int(headers.get("Max-Forwards") or "70") - 1))
            forwarded = Request("INVITE", target.uri(self.user), headers, request.body)
            branch = self.endpoint.send_request(
                forwarded, target.address, lambda event: self._on_branch_event(event))
            self.branches[branch] = target

    def _on_branch_event(self, event: object) -> None:
        if not isinstance(event, ResponseReceived):
            return
        response = event.response
        if response.status == 100:
            return
        if response.status >= 300:
            self.finals[event.transaction] = response
            if self.answered or len(self.finals) < len(self.branches):
                return
            response = min(self.finals.values(), key=lambda r: r.status)
        elif response.status >= 200:
            first = not self.answered
            self.answered = True
            if first:
                self._cancel_all(event.transaction)
        headers = response.headers.copy()
        headers.remove_first_value("Via")
        upstream = Response(response.status, response.reason, headers, response.body)
        with contextlib.suppress(ProtocolError):  # the upstream transaction has ended
            self.endpoint.layer.send_response(upstream, self.endpoint.clock.now)

    def _cancel_all(self, keep: TransactionKey | None) -> None:
        for key, target in self.branches.items():
            if key != keep and key not in self.finals:
                self.endpoint.cancel(key, (("Reason", self.COMPLETED_ELSEWHERE),)
                                     if keep is not None else ())
                self.cancelled.append(target.name)


__all__ = [
    "CallWorld",
    "EventLog",
    "FakeMedia",
    "ForkingProxy",
    "ScheduledCall",
    "SimulatedEndpoint",
    "SimulatedScheduler",
]
