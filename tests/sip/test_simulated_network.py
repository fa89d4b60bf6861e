"""Two transaction layers over a lossy, duplicating, reordering network.

Each side runs a tiny TU written here: the UAC sends INVITE (or OPTIONS)
and ACKs every 2xx it sees itself (send_stateless); the UAS answers 180 and
then, after a delay, 486 or 200, and retransmits its 2xx (§13.3.1.4, with
SuccessRetransmissions) until the ACK comes. Time is simulated: every run
plays up to 200 s of SIP timers in a few milliseconds.
"""

from __future__ import annotations

import pytest
from simnet import ManualClock, SimulatedNetwork, Simulation

from boomerang.sip.address import Address
from boomerang.sip.ids import CountingIds
from boomerang.sip.message import Request, make_response
from boomerang.sip.transaction.events import (
    CancelReceived,
    Outgoing,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTimedOut,
)
from boomerang.sip.transaction.layer import TransactionLayer
from boomerang.sip.transaction.reliability import SuccessRetransmissions

ALICE = Address("udp", "127.0.0.1", 5061)
BOB = Address("udp", "127.0.0.1", 5062)
NOBODY = Address("udp", "127.0.0.1", 5099)
SEEDS = range(200)


def _min(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


class Uac:
    """Sends one request; ACKs 2xx itself; optionally CANCELs on the first 1xx."""

    def __init__(self, address: Address, peer: Address, *, cancel: bool = False) -> None:
        self.address = address
        self.peer = peer
        self.layer = TransactionLayer()
        self.ids = CountingIds("uac")
        self.cancel_on_provisional = cancel
        self.key: TransactionKey | None = None
        self.request: Request | None = None
        self.provisionals: list[int] = []
        self.finals: list[int] = []
        self.successes = 0
        self.cancel_finals: list[int] = []
        self.timeouts: list[str] = []

    def start(self, method: str, now: float) -> None:
        transport = self.address.transport.upper()
        self.request = Request(method, f"sip:bob@{self.peer.host}:{self.peer.port}", [
            ("Via", f"SIP/2.0/{transport} {self.address.host}:{self.address.port}"
                    f";branch={self.ids.branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@{self.address.host}>;tag={self.ids.tag()}"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", self.ids.call_id()),
            ("CSeq", f"1 {method}"),
        ])
        self.key = self.layer.send_request(self.request, self.peer, now)

    def _ack_2xx(self, response_to: str) -> None:
        assert self.request is not None
        transport = self.address.transport.upper()
        ack = Request("ACK", self.request.uri, [
            ("Via", f"SIP/2.0/{transport} {self.address.host}:{self.address.port}"
                    f";branch={self.ids.branch()}"),
            ("Max-Forwards", "70"),
            ("From", self.request.headers.get("From") or ""),
            ("To", response_to),
            ("Call-ID", self.request.call_id),
            ("CSeq", f"{self.request.cseq.number} ACK"),
        ])
        self.layer.send_stateless(ack, self.peer)

    def _process(self, now: float) -> None:
        for event in self.layer.events():
            if isinstance(event, ResponseReceived):
                status = event.response.status
                if event.transaction.method == "CANCEL":
                    self.cancel_finals.append(status)
                elif status < 200:
                    self.provisionals.append(status)
                    if self.cancel_on_provisional and self.key is not None:
                        self.layer.cancel(self.key, now)
                        self.cancel_on_provisional = False
                elif status < 300:
                    self.successes += 1
                    self._ack_2xx(event.response.headers.get("To") or "")
                else:
                    self.finals.append(status)
            elif isinstance(event, TransactionTimedOut):
                self.timeouts.append(event.timer)

    def receive(self, data: bytes, source: Address, now: float) -> None:
        self.layer.receive(data, source, now)
        self._process(now)

    def datagrams_to_send(self) -> list[Outgoing]:
        return self.layer.datagrams_to_send()

    def get_timer(self) -> float | None:
        return self.layer.get_timer()

    def handle_timer(self, now: float) -> None:
        self.layer.handle_timer(now)
        self._process(now)


class Uas:
    """Rings at once, answers ``final_status`` after ``answer_delay_s``."""

    def __init__(self, address: Address, final_status: int, answer_delay_s: float = 1.0) -> None:
        self.address = address
        self.layer = TransactionLayer()
        self.retransmissions = SuccessRetransmissions()
        self.final_status = final_status
        self.answer_delay_s = answer_delay_s
        self.answer_at: float | None = None
        self.invite: RequestReceived | None = None
        self.requests_seen: list[str] = []
        self.acks = 0
        self.cancels = 0
        self.timeouts: list[str] = []

    def _process(self, now: float) -> None:
        for event in self.layer.events():
            if isinstance(event, RequestReceived) and event.transaction is None:
                self.acks += 1
                self.retransmissions.acknowledged(event.request)
            elif isinstance(event, RequestReceived):
                request = event.request
                self.requests_seen.append(request.method)
                if request.method == "INVITE":
                    self.invite = event
                    self.layer.send_response(make_response(request, 180, to_tag="bob"), now)
                    self.answer_at = now + self.answer_delay_s
                else:
                    self.layer.send_response(make_response(request, 200, to_tag="bob"), now)
            elif isinstance(event, CancelReceived):
                self.cancels += 1
                assert self.invite is not None
                self.layer.send_response(make_response(self.invite.request, 487, to_tag="bob"),
                                         now)
                self.answer_at = None
            elif isinstance(event, TransactionTimedOut):
                self.timeouts.append(event.timer)

    def receive(self, data: bytes, source: Address, now: float) -> None:
        self.layer.receive(data, source, now)
        self._process(now)

    def datagrams_to_send(self) -> list[Outgoing]:
        return self.layer.datagrams_to_send()

    def get_timer(self) -> float | None:
        return _min(self.layer.get_timer(), self.retransmissions.get_timer(), self.answer_at)

    def handle_timer(self, now: float) -> None:
        self.layer.handle_timer(now)
        if self.answer_at is not None and self.answer_at <= now:
            self.answer_at = None
            assert self.invite is not None
            response = make_response(self.invite.request, self.final_status, to_tag="bob")
            self.layer.send_response(response, now)
            if self.final_status < 300:
                self.retransmissions.start(response, self.invite.source, now)
        for pending in self.retransmissions.handle_timer(now):
            self.layer.send_stateless(pending.response, pending.destination)
        self._process(now)


def play(seed: int, method: str, final_status: int = 486, *, cancel: bool = False,
         loss: float = 0.3, uac_address: Address = ALICE, uas_address: Address = BOB,
         answer_delay_s: float = 1.0) -> tuple[Uac, Uas, SimulatedNetwork]:
    clock = ManualClock()
    network = SimulatedNetwork(seed=seed, loss=loss, duplication=0.3, reordering=0.3)
    uac = Uac(uac_address, uas_address, cancel=cancel)
    uas = Uas(uas_address, final_status, answer_delay_s)
    simulation = Simulation(network, clock, [uac, uas])
    uac.start(method, clock.now)
    simulation.run(until=300.0)
    # everything has settled: no transaction, no 2xx retransmission left
    assert len(uac.layer) == 0 and len(uas.layer) == 0
    assert uac.get_timer() is None and uas.get_timer() is None
    assert len(uas.retransmissions) == 0 and uas.retransmissions.expired() == []
    return uac, uas, network


def test_reject_after_ringing_completes_in_every_lossy_run() -> None:
    lost = duplicated = 0
    for seed in SEEDS:
        uac, uas, network = play(seed, "INVITE", 486)
        assert uac.finals == [486], seed  # passed up once, ACKed by the layer
        assert uac.successes == 0 and uac.timeouts == [], seed
        assert set(uac.provisionals) <= {100, 180}, seed
        assert uas.requests_seen == ["INVITE"], seed  # retransmissions absorbed
        assert uas.timeouts == [], seed  # the ACK reached the server transaction
        lost += len(network.transmissions("lost"))
        duplicated += len(network.transmissions("duplicated"))
    assert lost > 300 and duplicated > 300  # the network did its worst


def test_answered_invite_is_acked_in_every_lossy_run() -> None:
    for seed in SEEDS:
        uac, uas, _ = play(seed, "INVITE", 200)
        assert uac.successes >= 1 and uac.finals == [] and uac.timeouts == [], seed
        assert uas.requests_seen == ["INVITE"] and uas.acks >= 1, seed


def test_options_completes_in_every_lossy_run() -> None:
    for seed in SEEDS:
        uac, uas, _ = play(seed, "OPTIONS")
        assert uac.finals == [] and uac.successes == 1 and uac.timeouts == [], seed
        assert uas.requests_seen == ["OPTIONS"], seed


def test_cancel_in_every_lossy_run() -> None:
    cancelled = 0
    for seed in SEEDS:
        uac, uas, _ = play(seed, "INVITE", 486, cancel=True, answer_delay_s=10.0)
        # §9.1: the CANCEL leaves only once a provisional arrived (none may get
        # through before the final response when the network is unlucky)
        assert uac.cancel_finals == ([200] if uac.provisionals else []), seed
        assert uac.finals == ([487] if uas.cancels else [486]), seed
        assert uas.cancels <= 1 and uac.timeouts == [] and uas.timeouts == [], seed
        cancelled += uas.cancels
    assert cancelled >= len(SEEDS) * 9 // 10


def test_reliable_transport_sends_each_message_once() -> None:
    alice = Address("tcp", "127.0.0.1", 40001)
    bob = Address("tcp", "127.0.0.1", 5062)
    uac, _, network = play(0, "INVITE", 486, uac_address=alice, uas_address=bob)
    assert uac.finals == [486]
    sent = [t.data.split(b" ", 2)[:2] for t in network.transmissions("sent")]
    assert sent == [[b"INVITE", b"sip:bob@127.0.0.1:5062"], [b"SIP/2.0", b"100"],
                    [b"SIP/2.0", b"180"], [b"SIP/2.0", b"486"], [b"ACK", b"sip:bob@127.0.0.1:5062"]]


@pytest.mark.parametrize(
    ("method", "resends", "timer"),
    [
        ("INVITE", [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5], "B"),
        ("OPTIONS", [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5], "F"),
    ],
)
def test_silent_peer_gets_the_rfc_retransmission_schedule(
    method: str, resends: list[float], timer: str
) -> None:
    clock = ManualClock()
    network = SimulatedNetwork(seed=1)
    uac = Uac(ALICE, NOBODY)
    simulation = Simulation(network, clock, [uac])
    uac.start(method, clock.now)
    simulation.run(until=300.0)
    assert [t.time for t in network.transmissions("sent")] == resends
    assert len(network.transmissions("unreachable")) == len(resends)
    assert uac.timeouts == [timer] and clock.now == 32.0
    assert len(uac.layer) == 0
