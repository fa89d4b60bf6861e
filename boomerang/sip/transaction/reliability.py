"""2xx retransmission by the UAS core (RFC 3261 §13.3.1.4), sans I/O.

The INVITE server transaction does not retransmit a 2xx: the UAS core
does, from T1 doubling up to T2, until the ACK arrives, and gives up after
64*T1 (then it should end the dialog with BYE). This helper keeps those
schedules for many calls: ``start`` after sending a 2xx, ``acknowledged``
on each ACK received outside a transaction, ``get_timer`` /
``handle_timer(now)`` like the layer; ``handle_timer`` returns the
responses to send again (with ``TransactionLayer.send_stateless``), and
``expired()`` drains the calls whose ACK never came.
"""

from __future__ import annotations

from dataclasses import dataclass
from heapq import heappop, heappush

from ..address import Address
from ..message import Request, Response
from .transaction import INFINITY


@dataclass(frozen=True, slots=True, kw_only=True)
class AckTimedOut:
    """No ACK for the 2xx within 64*T1 (§13.3.1.4): end the dialog."""

    call_id: str
    cseq_number: int
    time: float


class PendingSuccess:
    """One 2xx waiting for its ACK."""

    __slots__ = ("destination", "give_up_at", "interval_s", "key", "next_at", "response")

    def __init__(self, key: tuple[str, int], response: Response, destination: Address,
                 interval_s: float, next_at: float, give_up_at: float) -> None:
        self.key = key
        self.response = response
        self.destination = destination
        self.interval_s = interval_s
        self.next_at = next_at
        self.give_up_at = give_up_at


class SuccessRetransmissions:
    __slots__ = ("_expired", "_heap", "_pending", "_sequence", "t1", "t2")

    def __init__(self, *, t1: float = 0.5, t2: float = 4.0) -> None:
        self.t1 = t1
        self.t2 = t2
        self._pending: dict[tuple[str, int], PendingSuccess] = {}
        self._heap: list[tuple[float, int, PendingSuccess]] = []
        self._sequence = 0
        self._expired: list[AckTimedOut] = []

    def start(self, response: Response, destination: Address, now: float) -> None:
        """Retransmit ``response`` (a 2xx to an INVITE, already sent once)."""
        key = (response.call_id, response.cseq.number)
        pending = PendingSuccess(key, response, destination, self.t1, now + self.t1,
                                 now + 64 * self.t1)
        self._pending[key] = pending
        self._push(pending)

    def acknowledged(self, ack: Request) -> bool:
        """Stop for the 2xx this ACK acknowledges; False if none was pending."""
        pending = self._pending.pop((ack.call_id, ack.cseq.number), None)
        if pending is None:
            return False
        pending.next_at = INFINITY
        return True

    def get_timer(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, pending = heap[0]
            if deadline == pending.next_at:
                return deadline
            heappop(heap)
        return None

    def handle_timer(self, now: float) -> list[PendingSuccess]:
        """The 2xx responses due for retransmission at ``now``."""
        due: list[PendingSuccess] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, pending = heappop(heap)
            if deadline != pending.next_at:
                continue
            if now >= pending.give_up_at:
                pending.next_at = INFINITY
                del self._pending[pending.key]
                self._expired.append(AckTimedOut(
                    call_id=pending.key[0], cseq_number=pending.key[1], time=now))
                continue
            due.append(pending)
            pending.interval_s = min(2 * pending.interval_s, self.t2)
            pending.next_at = min(now + pending.interval_s, pending.give_up_at)
            self._push(pending)
        return due

    def expired(self) -> list[AckTimedOut]:
        """Drain the 2xx responses that were never acknowledged."""
        expired = self._expired
        self._expired = []
        return expired

    def _push(self, pending: PendingSuccess) -> None:
        self._sequence += 1
        heappush(self._heap, (pending.next_at, self._sequence, pending))

    def __len__(self) -> int:
        return len(self._pending)


__all__ = ["AckTimedOut", "PendingSuccess", "SuccessRetransmissions"]
