"""Events the transaction layer hands to its user, and what it asks to send.

Frozen, slotted, keyword-only dataclasses named in the past tense, each
stamped with ``time``: the ``now`` of the input that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..address import Address
from ..errors import SipError
from ..message import Request, Response


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """Identifies a transaction (RFC 3261 §17.1.3 / §17.2.3).

    ``branch`` of the top Via, ``sent_by`` of that Via (server side only;
    '' on the client side) and ``method`` (ACK and CANCEL are matched as
    described in §17.2.3 / §9.2). ``server`` tells which side.
    """

    branch: str
    method: str
    server: bool
    sent_by: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """Bytes to send to ``destination`` (on the connection to it, for TCP/TLS)."""

    data: bytes
    destination: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived:
    """A new request for the TU. ``transaction`` is None for ACK to a 2xx
    (and for stray ACKs), which have no transaction of their own."""

    request: Request
    source: Address
    transaction: TransactionKey | None
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """A response passed up by a client transaction (or a 2xx retransmission
    absorbed in the RFC 6026 Accepted state, which the TU must re-ACK)."""

    response: Response
    source: Address
    transaction: TransactionKey
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReceived:
    """A CANCEL matched a pending server INVITE transaction. The layer has
    already answered the CANCEL with 200; the TU should answer the INVITE
    with 487 (RFC 3261 §9.2)."""

    request: Request
    source: Address
    transaction: TransactionKey
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTimedOut:
    """Timer B or F fired (client), or Timer H (server INVITE, no ACK)."""

    transaction: TransactionKey
    timer: str
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportErrorOccurred:
    """The transport could not deliver a message of this transaction."""

    transaction: TransactionKey
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTerminated:
    transaction: TransactionKey
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MalformedMessageReceived:
    """Bytes that were not a valid message. ``answered`` tells whether a
    response (400, 513, 505...) was queued for sending; it is False when
    the message was too broken to route an answer (then it is dropped)."""

    source: Address
    error: SipError
    answered: bool
    time: float


Event = (
    RequestReceived
    | ResponseReceived
    | CancelReceived
    | TransactionTimedOut
    | TransportErrorOccurred
    | TransactionTerminated
    | MalformedMessageReceived
)
