"""One transaction's data: a small slotted object the layer drives.

It holds no reference to the layer, to other transactions or to events,
so a finished transaction is freed by reference counting alone. Which of
the four machines it follows is ``machine``; its timers are two slots
(see machine.py): the retransmission timer (A, E or G) and one other.
"""

from __future__ import annotations

from ..address import Address
from ..message import Request
from .events import TransactionKey
from .machine import Input, Machine, State

INFINITY = float("inf")


class Transaction:
    __slots__ = (
        "ack_bytes",
        "cancel_pending",
        "destination",
        "heap_at",
        "key",
        "last_response",
        "machine",
        "map_key",
        "provisionals_seen",
        "reliable",
        "request",
        "request_bytes",
        "retransmit_at",
        "retransmit_input",
        "retransmit_interval_s",
        "state",
        "timeout_at",
        "timeout_input",
        "to_header",
    )

    key: TransactionKey
    machine: Machine
    map_key: tuple[str, ...]
    state: State
    destination: Address
    reliable: bool
    # client side: the request (for ACK and CANCEL) and its bytes
    request: Request | None
    request_bytes: bytes
    ack_bytes: bytes
    provisionals_seen: list[bytes] | None
    cancel_pending: bool
    # server side: the last response sent, and its To (for 200 to CANCEL)
    last_response: bytes
    to_header: str | None
    # timers: absolute deadlines, INFINITY when not armed
    retransmit_input: Input
    retransmit_interval_s: float
    retransmit_at: float
    timeout_input: Input
    timeout_at: float
    heap_at: float

    def __init__(
        self,
        key: TransactionKey,
        machine: Machine,
        map_key: tuple[str, ...],
        destination: Address,
        retransmit_input: Input,
    ) -> None:
        self.key = key
        self.machine = machine
        self.map_key = map_key
        self.state = machine.initial_state
        self.destination = destination
        self.reliable = destination.transport != "udp"
        self.request = None
        self.request_bytes = b""
        self.ack_bytes = b""
        self.provisionals_seen = None
        self.cancel_pending = False
        self.last_response = b""
        self.to_header = None
        self.retransmit_input = retransmit_input
        self.retransmit_interval_s = 0.0
        self.retransmit_at = INFINITY
        self.timeout_input = retransmit_input
        self.timeout_at = INFINITY
        self.heap_at = INFINITY

    def release(self) -> None:
        """Drop what a terminated transaction no longer needs."""
        self.state = State.TERMINATED
        self.request = None
        self.request_bytes = b""
        self.ack_bytes = b""
        self.provisionals_seen = None
        self.last_response = b""
        self.to_header = None
        self.retransmit_at = INFINITY
        self.timeout_at = INFINITY
        self.heap_at = INFINITY

    def __repr__(self) -> str:
        return f"<Transaction {self.machine.name} {self.key.branch} {self.state.value}>"


__all__ = ["INFINITY", "Transaction"]
