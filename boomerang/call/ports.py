"""What a call leg needs from outside, as Protocols.

A leg never owns a socket, a loop or a clock: it is handed a ``SipPort``
(the shape of ``boomerang.app.Endpoint``'s API, so the endpoint itself is
one), a ``Scheduler`` (asyncio's event loop is one: ``time()`` and
``call_at``) and a ``MediaPort`` (what SDP to offer and answer on the
leg's behalf). Tests pass ``tests/call/simcall.py``'s simulated endpoint
and manual-clock scheduler, and a fake media port.

Legs hold their ports; ports never hold legs (the endpoint reaches a leg
only through the callbacks the leg gave it and through ``LegRegistry``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..sip.address import Address
from ..sip.ids import IdGenerator
from ..sip.message import Request, Response
from ..sip.transaction.events import (
    CancelReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)

ClientEvent = (ResponseReceived | TransactionTimedOut | TransportErrorOccurred
               | TransactionTerminated)
ClientCallback = Callable[[ClientEvent], None]
CancelCallback = Callable[[CancelReceived], None]


class SipPort(Protocol):
    """The endpoint API a leg uses (``boomerang.app.Endpoint`` has this shape)."""

    @property
    def ids(self) -> IdGenerator: ...

    def send_request(self, request: Request, destination: Address,
                     on_event: ClientCallback) -> TransactionKey: ...

    def respond(
        self,
        request: Request,
        status: int,
        headers: tuple[tuple[str, str], ...] = (),
        *,
        body: bytes = b"",
        to_tag: str | None = None,
    ) -> Response | None: ...

    def send_stateless(self, message: Request | Response, destination: Address) -> None: ...

    def cancel(self, transaction: TransactionKey,
               headers: tuple[tuple[str, str], ...] = ()) -> TransactionKey | None: ...

    def on_cancel(self, transaction: TransactionKey, callback: CancelCallback) -> None: ...


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """A monotonic clock and one-shot timers (``asyncio.AbstractEventLoop`` fits)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle: ...


class LegView(Protocol):
    """What a media port may read of the leg it works for."""

    @property
    def call_id(self) -> str: ...


class MediaPort(Protocol):
    """The SDP a leg offers and answers; the media engine lives behind it.

    ``answer`` raises ``boomerang.sip.sdp.SdpError`` (status 488) for an
    offer it cannot accept; the leg then answers the request 488.
    """

    def offer(self, leg: LegView, *, hold: bool = False) -> bytes: ...

    def answer(self, leg: LegView, remote_offer: bytes) -> bytes: ...

    def remote_answer(self, leg: LegView, sdp: bytes) -> None: ...


__all__ = [
    "CancelCallback",
    "ClientCallback",
    "ClientEvent",
    "LegView",
    "MediaPort",
    "Scheduler",
    "SipPort",
    "TimerHandle",
]
