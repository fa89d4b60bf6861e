"""UacLeg against a UasLeg peer, in simulated time, over a lossy network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from simcall import CallWorld, EventLog, FakeMedia, ForkingProxy

from boomerang.call.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    CallTried,
    EndCause,
    HoldChanged,
    Outcome,
)
from boomerang.call.leg import LegState
from boomerang.call.uac_leg import UacLeg
from boomerang.call.uas_leg import UasLeg
from boomerang.sip.address import Address
from boomerang.sip.auth import DigestClient, DigestServer
from boomerang.sip.message import Request
from boomerang.sip.parser import parse_message
from boomerang.sip.transaction.events import TransactionKey


@dataclass
class Peer:
    """Bob: makes a UasLeg of each INVITE and hands it to ``script``."""

    world: CallWorld
    script: Callable[[UasLeg], None]
    media: FakeMedia = field(default_factory=lambda: FakeMedia(port=5000))
    legs: list[UasLeg] = field(default_factory=list)
    log: EventLog = field(default_factory=EventLog)
    name: str = "bob"

    def __post_init__(self) -> None:
        self.world[self.name].handlers["INVITE"] = self.on_invite

    def on_invite(self, request: Request, key: TransactionKey, source: Address) -> None:
        bob = self.world[self.name]
        leg = UasLeg(sip=bob, scheduler=bob.scheduler, media=self.media,
                     addressing=bob.addressing(self.name), request=request, transaction=key,
                     source=source, registry=bob.registry, random_draw=lambda: 0.5)
        leg.add_listener(self.log)
        self.legs.append(leg)
        self.script(leg)


def dial(world: CallWorld, *, ring_timeout_s: float | None = 30.0,
         to: str = "bob") -> tuple[UacLeg, EventLog]:
    alice = world["alice"]
    target = world[to]
    leg = UacLeg(sip=alice, scheduler=alice.scheduler, media=FakeMedia(),
                 addressing=alice.addressing("alice"), request_uri=target.uri("bob"),
                 from_="<sip:alice@example.com>", to="<sip:bob@example.com>",
                 destination=target.address, ring_timeout_s=ring_timeout_s,
                 registry=alice.registry, random_draw=lambda: 0.5)
    log = EventLog()
    leg.add_listener(log)
    leg.start()
    return leg, log


def later(world: CallWorld, delay_s: float, action: Callable[[], object], on: str = "bob"
          ) -> None:
    world.at(world.clock.now + delay_s, action, on=on)


def ring_then(world: CallWorld, delay_s: float, action: Callable[[UasLeg], None],
              on: str = "bob") -> Callable[[UasLeg], None]:
    def script(leg: UasLeg) -> None:
        leg.ring()
        later(world, delay_s, lambda: action(leg), on=on)
    return script


def test_answered_then_local_hangup_ends_both_with_normal_clearing() -> None:
    world = CallWorld(["alice", "bob"])
    peer = Peer(world, ring_then(world, 2.0, UasLeg.answer))
    leg, log = dial(world)
    world.run(until=5.0)
    assert log.kinds == ["CallTried", "CallRinging", "CallAnswered"]
    ringing = log.of(CallRinging)[0]
    assert isinstance(ringing, CallRinging) and ringing.status == 180
    assert not ringing.early_media
    assert leg.state is LegState.CONFIRMED
    assert peer.legs[0].state is LegState.CONFIRMED
    leg.hangup()
    world.run(until=40.0)
    assert log.cause == EndCause(outcome=Outcome.HUNG_UP_LOCAL, q850_cause=16,
                                 reason_text="Normal call clearing")
    assert peer.log.cause is not None
    assert peer.log.cause.outcome is Outcome.HUNG_UP_REMOTE
    assert peer.log.cause.q850_cause == 16
    assert leg.state is LegState.ENDED and peer.legs[0].state is LegState.ENDED
    assert len(world["alice"].registry) == 0 and len(world["bob"].registry) == 0


def test_remote_hangup_carries_the_reason_q850_cause() -> None:
    world = CallWorld(["alice", "bob"])
    cause = EndCause(outcome=Outcome.HUNG_UP_LOCAL, q850_cause=31, reason_text="Normal")
    peer = Peer(world, ring_then(world, 1.0, UasLeg.answer))
    _leg, log = dial(world)
    world.run(until=3.0)
    world.at(3.5, lambda: peer.legs[0].hangup(cause), on="bob")
    world.run(until=40.0)
    assert log.cause == EndCause(outcome=Outcome.HUNG_UP_REMOTE, q850_cause=31,
                                 reason_text="Normal")
    assert world["alice"].requests("BYE")[0].headers.get("Reason") == (
        'Q.850;cause=31;text="Normal"')


@pytest.mark.parametrize(("status", "reason", "outcome", "q850"), [
    (486, None, Outcome.BUSY, None),
    (600, None, Outcome.BUSY, None),
    (480, "Q.850;cause=17", Outcome.BUSY, 17),
    (404, None, Outcome.REJECTED, None),
    (603, "Q.850;cause=21", Outcome.REJECTED, 21),
    (503, None, Outcome.FAILED, None),
    (480, "Q.850;cause=19", Outcome.NO_ANSWER, 19),
])
def test_final_response_sets_outcome_status_and_cause(
    status: int, reason: str | None, outcome: Outcome, q850: int | None
) -> None:
    world = CallWorld(["alice", "bob"])

    def refuse(leg: UasLeg) -> None:
        headers = (("Reason", reason),) if reason else ()
        leg.reject(status, headers=headers)

    Peer(world, ring_then(world, 1.0, refuse))
    leg, log = dial(world)
    world.run(until=40.0)
    assert log.cause is not None
    assert (log.cause.outcome, log.cause.sip_status, log.cause.q850_cause) == (
        outcome, status, q850)
    assert leg.state is LegState.ENDED


def test_ring_timeout_cancels_and_ends_no_answer() -> None:
    world = CallWorld(["alice", "bob"])
    peer = Peer(world, UasLeg.ring)
    _leg, log = dial(world, ring_timeout_s=6.0)
    world.run(until=60.0)
    assert log.cause is not None
    assert (log.cause.outcome, log.cause.sip_status) == (Outcome.NO_ANSWER, 487)
    cancels = world.network.transmissions("sent", starts_with=b"CANCEL")
    assert [t.time for t in cancels] == [6.0]
    assert peer.log.cause is not None and peer.log.cause.outcome is Outcome.CANCELLED


def test_user_cancel_before_any_provisional_waits_for_one_then_cancels() -> None:
    world = CallWorld(["alice", "bob"])
    peer = Peer(world, lambda leg: later(world, 3.0, leg.ring))
    leg, log = dial(world)
    later(world, 0.001, leg.cancel, on="alice")  # before even 100 Trying arrives
    world.run(until=60.0)
    assert log.cause is not None
    assert (log.cause.outcome, log.cause.sip_status) == (Outcome.CANCELLED, 487)
    assert peer.log.cause is not None and peer.log.cause.outcome is Outcome.CANCELLED


def test_no_response_at_all_fails_with_timer_b() -> None:
    world = CallWorld(["alice", "bob"])
    alice = world["alice"]
    leg = UacLeg(sip=alice, scheduler=alice.scheduler, media=FakeMedia(),
                 addressing=alice.addressing("alice"), request_uri="sip:x@127.0.0.1:5099",
                 from_="<sip:alice@example.com>", to="<sip:x@example.com>",
                 destination=Address("udp", "127.0.0.1", 5099), ring_timeout_s=None)
    log = EventLog()
    leg.add_listener(log)
    leg.start()
    world.run(until=100.0)
    assert log.cause is not None
    assert (log.cause.outcome, log.cause.sip_status) == (Outcome.FAILED, 408)
    assert abs(log.events[-1].time - 32.0) < 1e-9


def test_cancel_racing_200_acks_then_byes_and_ends_cancelled() -> None:
    world = CallWorld(["alice", "bob"])
    peer = Peer(world, ring_then(world, 2.0, UasLeg.answer))
    leg, log = dial(world)
    # bob's 200 leaves at t=2.01 (1xx took 10 ms); alice cancels while it flies
    world.at(2.015, leg.cancel, on="alice")
    world.run(until=60.0)
    assert log.cause is not None
    assert (log.cause.outcome, log.cause.sip_status) == (Outcome.CANCELLED, 200)
    assert not log.of(CallAnswered)
    assert world["bob"].requests("ACK") and world["bob"].requests("BYE")
    assert peer.log.cause is not None and peer.log.cause.outcome is Outcome.HUNG_UP_REMOTE
    assert leg.state is LegState.ENDED and peer.legs[0].state is LegState.ENDED


def test_early_media_183_is_ringing_with_early_media_not_an_answer() -> None:
    world = CallWorld(["alice", "bob"])
    Peer(world, UasLeg.progress)
    _leg, log = dial(world, ring_timeout_s=5.0)
    world.run(until=60.0)
    ringing = log.of(CallRinging)
    assert ringing and isinstance(ringing[0], CallRinging)
    assert (ringing[0].status, ringing[0].early_media) == (183, True)
    assert not log.of(CallAnswered)
    assert log.cause is not None and log.cause.outcome is Outcome.NO_ANSWER


def test_hold_by_either_side_is_reported_on_both() -> None:
    world = CallWorld(["alice", "bob"])
    peer = Peer(world, UasLeg.answer)
    leg, log = dial(world)
    world.run(until=2.0)
    leg.reinvite(hold=True)
    world.run(until=4.0)
    holds = [e for e in log.of(HoldChanged) if isinstance(e, HoldChanged)]
    assert [(e.held, e.by_remote) for e in holds] == [(True, False)]
    peer_holds = [e for e in peer.log.of(HoldChanged) if isinstance(e, HoldChanged)]
    assert [(e.held, e.by_remote) for e in peer_holds] == [(True, True)]
    leg.reinvite(hold=False)
    world.run(until=6.0)
    peer.legs[0].reinvite(hold=True)
    world.run(until=8.0)
    holds = [e for e in log.of(HoldChanged) if isinstance(e, HoldChanged)]
    assert [(e.held, e.by_remote) for e in holds] == [(True, False), (False, False),
                                                      (True, True)]
    peer_holds = [e for e in peer.log.of(HoldChanged) if isinstance(e, HoldChanged)]
    assert [(e.held, e.by_remote) for e in peer_holds] == [(True, True), (False, True),
                                                           (True, False)]
    assert leg.state is LegState.CONFIRMED


def test_reinvite_glare_gets_491_both_ways_then_both_succeed() -> None:
    world = CallWorld(["alice", "bob"])
    peer = Peer(world, UasLeg.answer)
    leg, log = dial(world)
    world.run(until=2.0)
    leg.reinvite(hold=True)
    peer.legs[0].reinvite(hold=True)
    world.run(until=20.0)
    assert world["alice"].responses(491) and world["bob"].responses(491)
    mine = [e for e in log.of(HoldChanged) if isinstance(e, HoldChanged)]
    theirs = [e for e in peer.log.of(HoldChanged) if isinstance(e, HoldChanged)]
    assert (True, False) in [(e.held, e.by_remote) for e in mine]
    assert (True, False) in [(e.held, e.by_remote) for e in theirs]
    # the callee (not the Call-ID owner) retried first: 0-2 s, the caller 2.1-4 s
    by_local = sorted([e for e in mine + theirs if not e.by_remote], key=lambda e: e.time)
    assert by_local[0].call_id == leg.call_id and by_local[0] in theirs
    assert leg.state is LegState.CONFIRMED


@pytest.mark.parametrize("seed", range(12))
def test_a_whole_call_survives_loss_and_duplication(seed: int) -> None:
    world = CallWorld(["alice", "bob"], seed=seed, loss=0.2, duplication=0.2)
    peer = Peer(world, ring_then(world, 1.0, UasLeg.answer))
    leg, log = dial(world)
    world.at(10.0, leg.hangup, on="alice")
    world.run(until=120.0)
    assert CallAnswered in [type(e) for e in log.events]
    assert log.cause is not None and log.cause.outcome is Outcome.HUNG_UP_LOCAL
    assert peer.log.cause is not None
    assert peer.log.cause.outcome in (Outcome.HUNG_UP_REMOTE, Outcome.FAILED)
    assert leg.state is LegState.ENDED and peer.legs[0].state is LegState.ENDED


def test_tried_is_reported_once() -> None:
    world = CallWorld(["alice", "bob"])
    Peer(world, lambda leg: None)
    _leg, log = dial(world, ring_timeout_s=3.0)
    world.run(until=60.0)
    assert len(log.of(CallTried)) == 1
    assert isinstance(log.events[-1], CallEnded)


# -- outgoing authentication (a trunk that challenges with 407) ---------------------------


@dataclass
class ChallengingPeer:
    """Bob behind a carrier that challenges every INVITE and BYE with
    ``status`` (407 Proxy-Authenticate or 401 WWW-Authenticate)."""

    world: CallWorld
    password: str = "s3cret"
    status: int = 407
    peer: Peer = field(init=False)
    server: DigestServer = field(init=False)
    challenged: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = DigestServer(realm="carrier", secret=b"k" * 16)
        self.peer = Peer(self.world, ring_then(self.world, 1.0, UasLeg.answer))
        bob = self.world["bob"]
        bob.handlers["INVITE"] = self.on_invite
        registry = bob.registry
        bob.dialog_handler = lambda request, key, source: (
            self.refused(request) or registry(request, key, source))

    @property
    def header(self) -> str:
        return "Proxy-Authorization" if self.status == 407 else "Authorization"

    def refused(self, request: Request) -> bool:
        """Challenge ``request`` unless it carries good credentials."""
        if request.method not in ("INVITE", "BYE"):
            return False
        now = self.world.clock.now
        result = self.server.verify(request, lambda user: self.password if user == "101"
                                    else None, now, header=self.header)
        if result.ok:
            return False
        self.challenged.append(request.method)
        name = "Proxy-Authenticate" if self.status == 407 else "WWW-Authenticate"
        self.world["bob"].respond(request, self.status,
                                  tuple((name, v) for v in self.server.challenge(now)))
        return True

    def on_invite(self, request: Request, key: TransactionKey, source: Address) -> None:
        if not self.refused(request):
            self.peer.on_invite(request, key, source)


def dial_with(world: CallWorld, credentials: DigestClient) -> tuple[UacLeg, EventLog]:
    alice = world["alice"]
    bob = world["bob"]
    leg = UacLeg(sip=alice, scheduler=alice.scheduler, media=FakeMedia(),
                 addressing=alice.addressing("alice"), request_uri=bob.uri("bob"),
                 from_="<sip:alice@example.com>", to="<sip:bob@example.com>",
                 destination=bob.address, ring_timeout_s=30.0, registry=alice.registry,
                 random_draw=lambda: 0.5, credentials=credentials)
    log = EventLog()
    leg.add_listener(log)
    leg.start()
    return leg, log


@pytest.mark.parametrize("status", [407, 401])
def test_challenged_invite_is_sent_again_with_credentials_and_bye_too(status: int) -> None:
    world = CallWorld(["alice", "bob"])
    carrier = ChallengingPeer(world, status=status)
    leg, log = dial_with(world, DigestClient(username="101", password="s3cret"))
    world.run(until=5.0)
    assert log.kinds == ["CallTried", "CallRinging", "CallAnswered"]
    invites = world["bob"].requests("INVITE")
    assert len(invites) == 2
    first, second = invites
    assert (second.call_id, second.from_tag) == (first.call_id, first.from_tag)
    assert second.cseq.number == first.cseq.number + 1
    assert second.top_via.branch != first.top_via.branch
    assert carrier.header in second.headers and carrier.header not in first.headers
    leg.hangup()
    world.run(until=40.0)
    assert carrier.challenged == ["INVITE", "BYE"]
    byes = world["bob"].requests("BYE")
    assert len(byes) == 2 and byes[1].cseq.number == byes[0].cseq.number + 1
    assert world["alice"].responses(200, "BYE")
    assert carrier.peer.log.cause is not None
    assert carrier.peer.log.cause.outcome is Outcome.HUNG_UP_REMOTE
    assert leg.state is LegState.ENDED


def test_refused_credentials_end_rejected_with_the_status_after_one_retry() -> None:
    world = CallWorld(["alice", "bob"])
    ChallengingPeer(world)
    leg, log = dial_with(world, DigestClient(username="101", password="wrong"))
    world.run(until=40.0)
    assert log.cause is not None
    assert (log.cause.outcome, log.cause.sip_status) == (Outcome.REJECTED, 407)
    assert len(world["bob"].requests("INVITE")) == 2
    assert leg.state is LegState.ENDED


def test_without_credentials_a_challenge_is_a_rejection() -> None:
    world = CallWorld(["alice", "bob"])
    ChallengingPeer(world)
    _leg, log = dial(world)
    world.run(until=40.0)
    assert log.cause is not None
    assert (log.cause.outcome, log.cause.sip_status) == (Outcome.REJECTED, 407)
    assert len(world["bob"].requests("INVITE")) == 1


def test_challenged_reinvite_is_sent_again_with_credentials() -> None:
    world = CallWorld(["alice", "bob"])
    carrier = ChallengingPeer(world)
    bob = world["bob"]
    registry = bob.registry
    bob.dialog_handler = lambda request, key, source: (
        (request.method == "INVITE" and carrier.refused(request))
        or registry(request, key, source))
    leg, log = dial_with(world, DigestClient(username="101", password="s3cret"))
    world.run(until=5.0)
    leg.reinvite(hold=True)
    world.run(until=10.0)
    holds = [e for e in log.of(HoldChanged) if isinstance(e, HoldChanged)]
    assert [(e.held, e.by_remote) for e in holds] == [(True, False)]
    assert carrier.challenged == ["INVITE", "INVITE"]
    assert leg.state is LegState.CONFIRMED


# -- Reason on CANCEL (RFC 3326) -----------------------------------------------------------


def sent_cancels(world: CallWorld) -> list[Request]:
    sent = [parse_message(t.data) for t in
            world.network.transmissions("sent", starts_with=b"CANCEL")]
    return [m for m in sent if isinstance(m, Request)]



@pytest.mark.parametrize("before_provisional", [False, True])
def test_cancel_carries_the_cause_in_a_reason_header(before_provisional: bool) -> None:
    world = CallWorld(["alice", "bob"])
    peer = Peer(world, (lambda leg: later(world, 3.0, leg.ring)) if before_provisional
                else UasLeg.ring)
    leg, log = dial(world)
    cause = EndCause(outcome=Outcome.HUNG_UP_LOCAL, q850_cause=31, reason_text="Normal")
    later(world, 0.001 if before_provisional else 1.0, lambda: leg.cancel(cause), on="alice")
    world.run(until=60.0)
    (cancel,) = sent_cancels(world)
    assert cancel.headers.get("Reason") == 'Q.850;cause=31;text="Normal"'
    assert peer.log.cause is not None
    assert (peer.log.cause.outcome, peer.log.cause.q850_cause) == (Outcome.CANCELLED, 31)
    assert log.cause is not None and log.cause.outcome is Outcome.CANCELLED


def test_ring_timeout_cancel_says_no_answer() -> None:
    world = CallWorld(["alice", "bob"])
    peer = Peer(world, UasLeg.ring)
    dial(world, ring_timeout_s=6.0)
    world.run(until=60.0)
    (cancel,) = sent_cancels(world)
    assert (cancel.headers.get("Reason") or "").startswith("Q.850;cause=19")
    assert peer.log.cause is not None and peer.log.cause.q850_cause == 19


# -- forking (RFC 3261 §13.2.2.4) through a simulated forking proxy -------------------------


def forked_world(answer_at: dict[str, float]) -> tuple[CallWorld, dict[str, Peer]]:
    """alice -> proxy -> bob1 and bob2; both ring at once, each answers at its time."""
    world = CallWorld(["alice", "proxy", "bob1", "bob2"])
    ForkingProxy(world["proxy"], [world["bob1"], world["bob2"]], "bob")
    peers: dict[str, Peer] = {}
    for name in ("bob1", "bob2"):
        at = answer_at.get(name)
        peer = Peer(world, ring_then(world, at, UasLeg.answer, on=name) if at is not None
                    else UasLeg.ring, name=name)
        peers[name] = peer
    return world, peers


def test_forked_call_confirms_the_answering_fork_and_the_proxy_cancels_the_other() -> None:
    world, peers = forked_world({"bob1": 2.0})
    leg, log = dial(world, to="proxy")
    world.run(until=60.0)
    ringing = [e for e in log.of(CallRinging) if isinstance(e, CallRinging)]
    assert len(ringing) == 2  # one 180 per fork, each with its own To tag
    tags = {r.to_tag for r in world["alice"].responses(180)}
    assert len(tags) == 2
    assert log.kinds == ["CallTried", "CallRinging", "CallRinging", "CallAnswered"]
    bob1, bob2 = peers["bob1"].legs[0], peers["bob2"].legs[0]
    assert leg.state is LegState.CONFIRMED and bob1.state is LegState.CONFIRMED
    assert leg.dialog is not None and leg.dialog.id.remote_tag == bob1.local_tag
    assert peers["bob2"].log.cause is not None
    assert (peers["bob2"].log.cause.outcome, peers["bob2"].log.cause.sip_status) == (
        Outcome.CANCELLED, 487)
    assert bob2.state is LegState.ENDED
    assert not world["bob2"].requests("BYE") and not world["bob2"].requests("ACK")
    (cancel,) = sent_cancels(world)
    assert cancel.headers.get("Reason") == ForkingProxy.COMPLETED_ELSEWHERE
    assert len(world["alice"].registry) == 1  # the confirmed dialog only
    leg.hangup()
    world.run(until=100.0)
    assert bob1.state is LegState.ENDED and len(world["alice"].registry) == 0


def test_second_2xx_of_a_forked_call_gets_ack_and_bye() -> None:
    world, peers = forked_world({"bob1": 2.0, "bob2": 2.0})
    leg, log = dial(world, to="proxy")
    world.run(until=60.0)
    assert log.kinds == ["CallTried", "CallRinging", "CallRinging", "CallAnswered"]
    assert len(world["alice"].responses(200)) >= 2
    bob1, bob2 = peers["bob1"].legs[0], peers["bob2"].legs[0]
    winner, loser = (bob1, bob2) if leg.dialog is not None and \
        leg.dialog.id.remote_tag == bob1.local_tag else (bob2, bob1)
    assert leg.state is LegState.CONFIRMED and winner.state is LegState.CONFIRMED
    loser_name = "bob1" if loser is bob1 else "bob2"
    assert world[loser_name].requests("ACK") and world[loser_name].requests("BYE")
    assert peers[loser_name].log.cause is not None
    assert peers[loser_name].log.cause.outcome is Outcome.HUNG_UP_REMOTE
    assert loser.state is LegState.ENDED
    assert len(log.of(CallEnded)) == 0


def test_forked_call_when_nobody_answers_ends_with_the_best_final() -> None:
    world, peers = forked_world({})
    peers["bob1"].script = lambda uas: uas.reject(486)
    peers["bob2"].script = lambda uas: (uas.ring(), later(world, 1.0, lambda: uas.reject(603),
                                                          on="bob2"))[0]
    _leg, log = dial(world, to="proxy")
    world.run(until=60.0)
    assert log.cause is not None
    assert (log.cause.outcome, log.cause.sip_status) == (Outcome.BUSY, 486)
