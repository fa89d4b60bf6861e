"""UacLeg against a UasLeg peer, in simulated time, over a lossy network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from simcall import CallWorld, EventLog, FakeMedia

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
from boomerang.sip.message import Request
from boomerang.sip.transaction.events import TransactionKey


@dataclass
class Peer:
    """Bob: makes a UasLeg of each INVITE and hands it to ``script``."""

    world: CallWorld
    script: Callable[[UasLeg], None]
    media: FakeMedia = field(default_factory=lambda: FakeMedia(port=5000))
    legs: list[UasLeg] = field(default_factory=list)
    log: EventLog = field(default_factory=EventLog)

    def __post_init__(self) -> None:
        self.world["bob"].handlers["INVITE"] = self.on_invite

    def on_invite(self, request: Request, key: TransactionKey, source: Address) -> None:
        bob = self.world["bob"]
        leg = UasLeg(sip=bob, scheduler=bob.scheduler, media=self.media,
                     addressing=bob.addressing("bob"), request=request, transaction=key,
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


def ring_then(world: CallWorld, delay_s: float, action: Callable[[UasLeg], None]
              ) -> Callable[[UasLeg], None]:
    def script(leg: UasLeg) -> None:
        leg.ring()
        later(world, delay_s, lambda: action(leg))
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
