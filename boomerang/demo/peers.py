"""The demo's simulated peers: a carrier with a mobile behind it, and a desk phone.

Both are built from Boomerang's own SIP stack, exactly as a third-party
phone would use a SIP stack: an ``Endpoint`` on its own loopback UDP socket
(its own transaction layer, ids and digest code), ``UacLeg`` / ``UasLeg``
call legs and a ``PeerAudio`` (audio.py) per call on its own RTP ports.
Nothing is shared with the Boomerang under test but the network.

- ``MobilePeer`` is the carrier's SIP side (the address the config's trunk
  points at, so the trunk's ``sources`` admit it) and the mobile behind
  it: ``call(did, ...)`` sends the trigger INVITE from the mobile's number
  (From and P-Asserted-Identity, as a carrier asserts it); an INVITE coming
  back (the callback) rings and is answered after ``answer_after_s``, or
  refused with ``refuse_status`` when the demo is told to break that step.
- ``PhonePeer`` is extension 101's phone: ``register(...)`` does the real
  REGISTER / 401 / REGISTER with digest / 200 exchange; an INVITE rings
  (180) and is answered after ``answer_after_s``.

Every SIP message either peer sends or receives passes a ``TracingLayer``
(a ``TransactionLayer`` whose ``receive`` and ``datagrams_to_send`` report
the bytes to a tap): that is where the demo's ladder comes from, so each
arrow it prints is a datagram that crossed a socket, retransmissions
included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..app import ClientEvent, Endpoint
from ..call.events import CallAnswered, CallEnded, CallEvent, CallRinging, EndCause
from ..call.leg import CallLeg, LegAddressing, LegRegistry
from ..call.uac_leg import UacLeg
from ..call.uas_leg import UasLeg
from ..config import load_config_text
from ..ids import RandomIds
from ..sip.address import Address
from ..sip.auth import DigestClient, DigestServer
from ..sip.auth_retry import retry_with_credentials
from ..sip.errors import AuthError, SipError
from ..sip.message import Message, Request, Response
from ..sip.parser import parse_message
from ..sip.transaction.events import (
    Outgoing,
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from ..sip.transaction.layer import TransactionLayer
from ..transport.rtp_socket import PortAllocator, PortsExhausted
from .audio import PeerAudio

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
T1_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class WireMessage:
    """One SIP message a peer sent or received, as it crossed its socket.
    ``at`` is the event loop's clock; ``remote`` the other end."""

    at: float
    peer: str
    sent: bool
    message: Message
    remote: Address
    data: bytes


WireTap = Callable[[WireMessage], None]


class TracingLayer(TransactionLayer):
    """A transaction layer that reports every datagram in and out to ``tap``."""

    __slots__ = ("_clock", "_peer", "_tap")

    def __init__(self, *, peer: str, tap: WireTap, clock: Callable[[], float]) -> None:
        super().__init__()
        self._peer = peer
        self._tap = tap
        self._clock = clock

    def receive(self, data: bytes, source: Address, now: float) -> None:
        self._report(data, source, sent=False)
        super().receive(data, source, now)

    def datagrams_to_send(self) -> list[Outgoing]:
        outgoing = super().datagrams_to_send()
        for item in outgoing:
            self._report(item.data, item.destination, sent=True)
        return outgoing

    def _report(self, data: bytes, remote: Address, *, sent: bool) -> None:
        if not data.strip():
            return  # a keep-alive CRLF, not a message
        try:
            message = parse_message(data)
        except SipError:
            return  # the layer answers or drops it; nothing to draw
        self._tap(WireMessage(at=self._clock(), peer=self._peer, sent=sent, message=message,
                              remote=remote, data=data))


class LegProgress:
    """What one call leg reported: futures for ringing, answer and end."""

    def __init__(self, leg: CallLeg) -> None:
        loop = asyncio.get_running_loop()
        self.leg = leg
        self.ringing: asyncio.Future[CallRinging] = loop.create_future()
        self.answered: asyncio.Future[CallAnswered] = loop.create_future()
        self.ended: asyncio.Future[EndCause] = loop.create_future()
        leg.add_listener(self._on_event)

    def _on_event(self, event: CallEvent) -> None:
        if isinstance(event, CallRinging) and not self.ringing.done():
            self.ringing.set_result(event)
        elif isinstance(event, CallAnswered) and not self.answered.done():
            self.answered.set_result(event)
        elif isinstance(event, CallEnded) and not self.ended.done():
            self.ended.set_result(event.cause)


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerCall:
    """A call at a peer: its leg, its audio and what the leg reported."""

    leg: CallLeg
    audio: PeerAudio
    progress: LegProgress
    request: Request


def _peer_config(name: str) -> Any:
    return load_config_text(
        "sip:\n"
        f"  listen: [udp:{LOOPBACK}:0]\n"
        "  shutdown_grace_s: 0\n"
        "  overload_lag_ms: 0\n"
        "  session_expires_s: 0\n"
        f"  user_agent: Boomerang-demo-{name}\n", f"<demo {name}>")


class Peer:
    """A SIP user agent on its own loopback socket and RTP ports."""

    def __init__(self, name: str, *, tap: WireTap, rtp_ports: tuple[int, int],
                 answer_after_s: float, refuse_status: int | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.name = name
        self.answer_after_s = answer_after_s
        self.refuse_status = refuse_status
        layer = TracingLayer(peer=name, tap=tap, clock=loop.time)
        self.endpoint = Endpoint(_peer_config(name), challenger=DigestServer(
            realm=name, secret=secrets.token_bytes(32)), ids=RandomIds(f"{name}.demo"),
            layer=layer)
        self.registry = LegRegistry()
        self.endpoint.dialog_handler = self.registry
        self.endpoint.handlers["INVITE"] = self._on_invite
        self.allocator = PortAllocator(*rtp_ports)
        self.incoming: asyncio.Queue[PeerCall] = asyncio.Queue()
        self.calls: list[PeerCall] = []
        self.address: Address | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> Address:
        [self.address] = await self.endpoint.start()
        return self.address

    def sent_by(self) -> str:
        assert self.address is not None
        return f"{self.address.host}:{self.address.port}"

    def addressing(self, user: str) -> LegAddressing:
        return LegAddressing(sent_by=self.sent_by(), contact=f"<sip:{user}@{self.sent_by()}>")

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task failed", self.name, exc_info=task.exception())

    # -- calls coming in ---------------------------------------------------------------

    def _on_invite(self, request: Request, transaction: TransactionKey,
                   source: Address) -> None:
        self._spawn(self._take_call(request, transaction, source))

    async def _take_call(self, request: Request, transaction: TransactionKey,
                         source: Address) -> None:
        try:
            audio = await PeerAudio.open(self.allocator, LOOPBACK, name=self.name)
        except (OSError, PortsExhausted) as error:  # like a phone out of resources
            log.warning("call_id=%s %s: no RTP port: %s", request.call_id, self.name, error)
            self.endpoint.respond(request, 500)
            return
        loop = asyncio.get_running_loop()
        leg = UasLeg(sip=self.endpoint, scheduler=loop, media=audio,
                     addressing=self.addressing(self.name), request=request,
                     transaction=transaction, source=source, registry=self.registry,
                     t1_s=T1_S)
        call = PeerCall(leg=leg, audio=audio, progress=LegProgress(leg), request=request)
        self.calls.append(call)
        leg.add_listener(lambda event: audio.close() if isinstance(event, CallEnded) else None)
        self.on_incoming(call)
        if self.refuse_status is not None:
            leg.reject(self.refuse_status)
        else:
            leg.ring()
            loop.call_later(self.answer_after_s,
                            lambda: None if leg.ended else leg.answer())
        self.incoming.put_nowait(call)

    def on_incoming(self, call: PeerCall) -> None:
        """Before the call is answered: a subclass starts its voice here."""

    # -- end ---------------------------------------------------------------------------

    async def close(self) -> None:
        for call in self.calls:
            if not call.leg.ended:
                with contextlib.suppress(Exception):
                    call.leg.hangup()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for call in self.calls:
            call.audio.close()
        await self.endpoint.close()


class MobilePeer(Peer):
    """The carrier and the mobile behind it (see the module doc)."""

    def __init__(self, *, mobile_number: str, tap: WireTap, rtp_ports: tuple[int, int],
                 answer_after_s: float = 0.5, refuse_status: int | None = None) -> None:
        super().__init__("mobile", tap=tap, rtp_ports=rtp_ports,
                         answer_after_s=answer_after_s, refuse_status=refuse_status)
        self.mobile_number = mobile_number

    async def call(self, did: str, boomerang: Address) -> PeerCall:
        """Send the trigger INVITE to ``did`` at ``boomerang``, from the mobile."""
        audio = await PeerAudio.open(self.allocator, LOOPBACK, name=self.name)
        here = self.sent_by()
        there = f"{boomerang.host}:{boomerang.port}"
        identity = f"<sip:{self.mobile_number}@{here}>"
        leg = UacLeg(sip=self.endpoint, scheduler=asyncio.get_running_loop(), media=audio,
                     addressing=self.addressing("carrier"),
                     request_uri=f"sip:{did}@{there}", from_=identity,
                     to=f"<sip:{did}@{there}>", destination=boomerang,
                     headers=(("P-Asserted-Identity", identity),), registry=self.registry,
                     t1_s=T1_S)
        call = PeerCall(leg=leg, audio=audio, progress=LegProgress(leg), request=leg.invite)
        self.calls.append(call)
        leg.add_listener(lambda event: audio.close() if isinstance(event, CallEnded) else None)
        leg.start()
        return call


class PhonePeer(Peer):
    """Extension 101's desk phone (see the module doc)."""

    def __init__(self, *, extension: str, tap: WireTap, rtp_ports: tuple[int, int],
                 voice_hz: float, answer_after_s: float = 1.0) -> None:
        super().__init__("phone", tap=tap, rtp_ports=rtp_ports, answer_after_s=answer_after_s)
        self.extension = extension
        self.voice_hz = voice_hz

    def on_incoming(self, call: PeerCall) -> None:
        call.audio.play(self.voice_hz)  # heard once answered: RTP starts with the 200

    async def register(self, registrar: Address, *, password: str, expires_s: int = 300,
                       timeout_s: float = 5.0) -> list[Response]:
        """REGISTER, answer the digest challenge, return every final response
        (the last is the outcome). Raises ``RegistrationFailed``."""
        ids = self.endpoint.ids
        here = self.sent_by()
        there = f"{registrar.host}:{registrar.port}"
        aor = f"sip:{self.extension}@{registrar.host}"
        request = Request("REGISTER", f"sip:{there}", [
            ("Via", f"SIP/2.0/UDP {here};branch={ids.branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<{aor}>;tag={ids.tag()}"),
            ("To", f"<{aor}>"),
            ("Call-ID", ids.call_id()),
            ("CSeq", "1 REGISTER"),
            ("Contact", f"<sip:{self.extension}@{here}>"),
            ("Expires", str(expires_s)),
            ("User-Agent", "Boomerang-demo-phone"),
            ("Content-Length", "0"),
        ])
        credentials = DigestClient(username=self.extension, password=password)
        responses: list[Response] = []
        for _ in range(3):
            response = await asyncio.wait_for(self._transact(request, registrar), timeout_s)
            responses.append(response)
            if response.status in (401, 407):
                try:
                    request = retry_with_credentials(request, response, credentials,
                                                     branch=ids.branch(), cnonce=ids.tag())
                except AuthError as error:
                    raise RegistrationFailed(
                        f"{response.status} {response.reason}: {error.detail}") from None
                continue
            if 200 <= response.status < 300:
                return responses
            raise RegistrationFailed(f"{response.status} {response.reason}")
        raise RegistrationFailed("challenged again and again")

    async def _transact(self, request: Request, destination: Address) -> Response:
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def on_event(event: ClientEvent) -> None:
            if future.done():
                return
            if isinstance(event, ResponseReceived):
                if event.response.status >= 200:
                    future.set_result(event.response)
            elif isinstance(event, TransactionTimedOut):
                future.set_exception(RegistrationFailed(f"no answer from {destination}"))
            elif isinstance(event, TransportErrorOccurred):
                future.set_exception(RegistrationFailed(f"cannot reach {destination}"))
            elif isinstance(event, TransactionTerminated):
                future.set_exception(RegistrationFailed("no final response"))

        self.endpoint.send_request(request, destination, on_event)
        return await future


class RegistrationFailed(Exception):
    """The phone's registration was refused or unanswered."""


__all__ = [
    "LegProgress",
    "MobilePeer",
    "Peer",
    "PeerCall",
    "PhonePeer",
    "RegistrationFailed",
    "TracingLayer",
    "WireMessage",
    "WireTap",
]
