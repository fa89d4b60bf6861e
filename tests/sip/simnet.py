"""An in-memory lossy network and a manual clock, for sans-I/O stacks in tests.

Endpoints are addressed by ``boomerang.sip.address.Address``. Anything with
``address``, ``receive(data, source, now)``, ``datagrams_to_send()``,
``get_timer()`` and ``handle_timer(now)`` can be attached: a bare
``TransactionLayer`` wrapped with its address, or a test's small TU around
one. ``Simulation.run`` advances the clock from event to event (the next
arrival or the earliest timer), so 32 s of SIP timers take milliseconds.

Datagrams (``udp``) may be lost, duplicated or reordered, each with its own
probability, drawn from one ``random.Random(seed)``: the same seed gives the
same run. Reliable addresses (``tcp``, ``tls``) deliver every message once,
in order. Every fate is kept in ``network.log`` for assertions.

Usage::

    clock = ManualClock()
    network = SimulatedNetwork(seed=7, loss=0.3, duplication=0.1, reordering=0.1)
    simulation = Simulation(network, clock, [alice, bob])
    alice.start(clock.now)
    simulation.run(until=64.0)
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from boomerang.sip.address import Address
from boomerang.sip.transaction.events import Outgoing


class ManualClock:
    """Simulated monotonic time, in seconds; only moves forward."""

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def advance_to(self, when: float) -> None:
        if when > self.now:
            self.now = when


class Endpoint(Protocol):
    address: Address

    def receive(self, data: bytes, source: Address, now: float) -> None: ...

    def datagrams_to_send(self) -> list[Outgoing]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Transmission:
    """One message's fate: ``sent``, ``lost``, ``duplicated``, ``delivered``
    or ``unreachable`` (no endpoint at the destination)."""

    fate: str
    data: bytes
    source: Address
    destination: Address
    time: float


class SimulatedNetwork:
    """Carries bytes between attached endpoints with latency, loss,
    duplication and reordering."""

    def __init__(
        self,
        *,
        seed: int = 0,
        loss: float = 0.0,
        duplication: float = 0.0,
        reordering: float = 0.0,
        latency_s: float = 0.01,
        reorder_delay_s: float = 0.1,
    ) -> None:
        self.random = random.Random(seed)
        self.loss = loss
        self.duplication = duplication
        self.reordering = reordering
        self.latency_s = latency_s
        self.reorder_delay_s = reorder_delay_s
        self.endpoints: dict[Address, Endpoint] = {}
        self.log: list[Transmission] = []
        self._in_flight: list[tuple[float, int, bytes, Address, Address]] = []
        self._sequence = 0

    def attach(self, endpoint: Endpoint) -> None:
        self.endpoints[endpoint.address] = endpoint

    def send(self, data: bytes, source: Address, destination: Address, now: float) -> None:
        self.log.append(Transmission(fate="sent", data=data, source=source,
                                     destination=destination, time=now))
        if destination.reliable:
            self._schedule(now + self.latency_s, data, source, destination)
            return
        rng = self.random
        if rng.random() < self.loss:
            self.log.append(Transmission(fate="lost", data=data, source=source,
                                         destination=destination, time=now))
            return
        copies = 2 if rng.random() < self.duplication else 1
        if copies == 2:
            self.log.append(Transmission(fate="duplicated", data=data, source=source,
                                         destination=destination, time=now))
        for _ in range(copies):
            delay_s = self.latency_s
            if rng.random() < self.reordering:
                delay_s += rng.random() * self.reorder_delay_s
            self._schedule(now + delay_s, data, source, destination)

    def _schedule(self, when: float, data: bytes, source: Address, destination: Address) -> None:
        self._sequence += 1
        heapq.heappush(self._in_flight, (when, self._sequence, data, source, destination))

    def next_arrival(self) -> float | None:
        return self._in_flight[0][0] if self._in_flight else None

    def deliver_due(self, now: float) -> int:
        """Hand every message due by ``now`` to its endpoint; how many."""
        count = 0
        while self._in_flight and self._in_flight[0][0] <= now:
            _, _, data, source, destination = heapq.heappop(self._in_flight)
            endpoint = self.endpoints.get(destination)
            fate = "delivered" if endpoint is not None else "unreachable"
            self.log.append(Transmission(fate=fate, data=data, source=source,
                                         destination=destination, time=now))
            if endpoint is not None:
                endpoint.receive(data, source, now)
                count += 1
        return count

    def transmissions(
        self, fate: str, *, starts_with: bytes = b"", source: Address | None = None
    ) -> list[Transmission]:
        """The log entries of one fate, optionally by first bytes and sender."""
        return [t for t in self.log if t.fate == fate and t.data.startswith(starts_with)
                and (source is None or t.source == source)]


class Simulation:
    """Runs endpoints over a network in simulated time."""

    def __init__(
        self, network: SimulatedNetwork, clock: ManualClock, endpoints: Iterable[Endpoint]
    ) -> None:
        self.network = network
        self.clock = clock
        self.endpoints: Sequence[Endpoint] = list(endpoints)
        for endpoint in self.endpoints:
            network.attach(endpoint)

    def flush(self) -> None:
        """Move what every endpoint wants to send into the network."""
        now = self.clock.now
        for endpoint in self.endpoints:
            for out in endpoint.datagrams_to_send():
                self.network.send(out.data, endpoint.address, out.destination, now)

    def run(self, *, until: float, max_steps: int = 100_000) -> None:
        """Advance from event to event until nothing is pending or ``until``.

        Raises RuntimeError when ``max_steps`` is reached (a live lock)."""
        for _ in range(max_steps):
            self.flush()
            deadlines = [self.network.next_arrival()]
            deadlines.extend(endpoint.get_timer() for endpoint in self.endpoints)
            pending = [d for d in deadlines if d is not None]
            if not pending:
                return
            when = min(pending)
            if when > until:
                self.clock.advance_to(until)
                return
            self.clock.advance_to(when)
            now = self.clock.now
            self.network.deliver_due(now)
            for endpoint in self.endpoints:
                deadline = endpoint.get_timer()
                if deadline is not None and deadline <= now:
                    endpoint.handle_timer(now)
        raise RuntimeError(f"simulation did not settle in {max_steps} steps")


__all__ = ["Endpoint", "ManualClock", "SimulatedNetwork", "Simulation", "Transmission"]
