"""The transaction layer: every transaction of one SIP endpoint, sans I/O.

The contract (aioquic's shape): the transport feeds it datagrams/stream
messages with ``receive(data, source, now)``; the user (TU) sends with
``send_request`` / ``send_response`` / ``send_stateless``; after each call
the owner drains ``events()`` and ``datagrams_to_send()``, and keeps ONE
timer armed at ``get_timer()``, calling ``handle_timer(now)`` when it fires.

STATUS: contract only; the implementation is being written (see
transaction/client_invite.py etc.). The signatures below are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..address import Address
from ..message import Request, Response
from ..parser import DEFAULT_LIMITS, Limits
from .events import Event, Outgoing, TransactionKey


@dataclass(frozen=True, slots=True)
class TimerSettings:
    """RFC 3261 §17 timer values in seconds (T1, T2, T4)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


class TransactionLayer:
    def __init__(
        self,
        *,
        timers: TimerSettings = TimerSettings(),
        limits: Limits = DEFAULT_LIMITS,
        auto_trying: bool = True,
    ) -> None:
        """``auto_trying``: answer a new INVITE with 100 Trying at once."""
        raise NotImplementedError

    def receive(self, data: bytes, source: Address, now: float) -> None:
        """Take one datagram (UDP) or one framed message (TCP/TLS)."""
        raise NotImplementedError

    def send_request(self, request: Request, destination: Address, now: float) -> TransactionKey:
        """Start a client transaction. ``request`` carries its top Via with a
        fresh branch already. INVITE gets the §17.1.1 machine, others §17.1.2.
        ACK is not allowed here (use ``send_stateless``)."""
        raise NotImplementedError

    def send_response(self, response: Response, now: float) -> None:
        """Answer through the server transaction the response matches (by its
        top Via and CSeq method); routed per RFC 3261 §18.2.2 and RFC 3581."""
        raise NotImplementedError

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        """Send outside any transaction: ACK for a 2xx, 2xx retransmissions
        by the TU core (§13.3.1.4), stateless replies."""
        raise NotImplementedError

    def cancel(self, transaction: TransactionKey, now: float) -> TransactionKey | None:
        """Send a CANCEL for a pending client INVITE transaction (§9.1); returns
        the CANCEL's own client transaction, or None when none is possible yet
        (no provisional received: the CANCEL is sent when one arrives)."""
        raise NotImplementedError

    def transport_error(self, destination: Address, now: float) -> None:
        """The transport failed to deliver to ``destination``."""
        raise NotImplementedError

    def events(self) -> list[Event]:
        """Drain the events produced since the last call."""
        raise NotImplementedError

    def datagrams_to_send(self) -> list[Outgoing]:
        """Drain the messages to send, in the order they were produced."""
        raise NotImplementedError

    def get_timer(self) -> float | None:
        """The earliest deadline of any transaction, or None."""
        raise NotImplementedError

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        raise NotImplementedError

    def __len__(self) -> int:
        """Number of live transactions."""
        raise NotImplementedError


__all__ = ["Outgoing", "TimerSettings", "TransactionKey", "TransactionLayer"]
