"""caller -> us (B2BUA: UasLeg a + UacLeg b) -> callee, in simulated time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from simcall import CallWorld, EventLog, FakeMedia

from boomerang.call.b2bua import B2bua, status_for
from boomerang.call.events import EndCause, HoldChanged, Outcome
from boomerang.call.leg import LegState
from boomerang.call.uac_leg import UacLeg
from boomerang.call.uas_leg import UasLeg
from boomerang.sip.address import Address
from boomerang.sip.message import Request
from boomerang.sip.parser import parse_message
from boomerang.sip.transaction.events import TransactionKey


@dataclass
class Bridge:
    world: CallWorld
    callee_script: Callable[[UasLeg], None]
    ring_timeout_s: float = 30.0
    callee_legs: list[UasLeg] = field(default_factory=list)
    callee_log: EventLog = field(default_factory=EventLog)
    bridges: list[B2bua] = field(default_factory=list)
    a_log: EventLog = field(default_factory=EventLog)
    b_log: EventLog = field(default_factory=EventLog)

    def __post_init__(self) -> None:
        self.world["us"].handlers["INVITE"] = self.on_us_invite
        self.world["callee"].handlers["INVITE"] = self.on_callee_invite

    def on_us_invite(self, request: Request, key: TransactionKey, source: Address) -> None:
        us = self.world["us"]
        a = UasLeg(sip=us, scheduler=us.scheduler, media=FakeMedia(port=6000),
                   addressing=us.addressing("us"), request=request, transaction=key,
                   source=source, registry=us.registry, random_draw=lambda: 0.3)
        callee = self.world["callee"]
        b = UacLeg(sip=us, scheduler=us.scheduler, media=FakeMedia(port=6002),
                   addressing=us.addressing("us"), request_uri=callee.uri("callee"),
                   from_="<sip:us@example.com>", to="<sip:callee@example.com>",
                   destination=callee.address, ring_timeout_s=self.ring_timeout_s,
                   registry=us.registry, random_draw=lambda: 0.3)
        a.add_listener(self.a_log)
        b.add_listener(self.b_log)
        self.bridges.append(B2bua(a, b))
        b.start()

    def on_callee_invite(self, request: Request, key: TransactionKey, source: Address
                         ) -> None:
        callee = self.world["callee"]
        leg = UasLeg(sip=callee, scheduler=callee.scheduler, media=FakeMedia(port=7000),
                     addressing=callee.addressing("callee"), request=request,
                     transaction=key, source=source, registry=callee.registry,
                     random_draw=lambda: 0.9)
        leg.add_listener(self.callee_log)
        self.callee_legs.append(leg)
        self.callee_script(leg)


def call(world: CallWorld) -> tuple[UacLeg, EventLog]:
    caller = world["caller"]
    us = world["us"]
    leg = UacLeg(sip=caller, scheduler=caller.scheduler, media=FakeMedia(),
                 addressing=caller.addressing("caller"), request_uri=us.uri("roaming"),
                 from_="<sip:caller@example.com>", to="<sip:roaming@example.com>",
                 destination=us.address, ring_timeout_s=60.0, registry=caller.registry,
                 random_draw=lambda: 0.1)
    log = EventLog()
    leg.add_listener(log)
    leg.start()
    return leg, log


def answer_after(world: CallWorld, delay_s: float) -> Callable[[UasLeg], None]:
    def script(leg: UasLeg) -> None:
        leg.ring()
        world.at(world.clock.now + delay_s, leg.answer, on="callee")
    return script


def world_of(**kwargs: float) -> CallWorld:
    return CallWorld(["caller", "us", "callee"], **kwargs)  # type: ignore[arg-type]


def all_ended(bridge: Bridge, caller: UacLeg) -> bool:
    legs = [caller, *bridge.callee_legs, bridge.bridges[0].a, bridge.bridges[0].b]
    return all(leg.state is LegState.ENDED for leg in legs)


@pytest.mark.parametrize("hanging_up", ["caller", "callee"])
def test_bye_from_either_side_ends_both_legs(hanging_up: str) -> None:
    world = world_of()
    bridge = Bridge(world, answer_after(world, 2.0))
    caller, caller_log = call(world)
    world.run(until=5.0)
    assert caller.state is LegState.CONFIRMED
    assert bridge.callee_legs[0].state is LegState.CONFIRMED
    cause = EndCause(outcome=Outcome.HUNG_UP_LOCAL, q850_cause=31)
    if hanging_up == "caller":
        world.at(6.0, lambda: caller.hangup(cause), on="caller")
    else:
        world.at(6.0, lambda: bridge.callee_legs[0].hangup(cause), on="callee")
    world.run(until=60.0)
    assert all_ended(bridge, caller)
    far_log = bridge.callee_log if hanging_up == "caller" else caller_log
    assert far_log.cause is not None
    assert far_log.cause.outcome is Outcome.HUNG_UP_REMOTE
    assert far_log.cause.q850_cause == 31  # carried across the B2BUA
    assert len(world["us"].registry) == 0


@pytest.mark.parametrize(("status", "expected"), [(486, 486), (404, 404), (503, 503),
                                                  (500, 502)])
def test_callee_refusal_is_mapped_to_the_caller(status: int, expected: int) -> None:
    world = world_of()
    bridge = Bridge(world, lambda leg: leg.reject(status))
    caller, caller_log = call(world)
    world.run(until=60.0)
    assert caller_log.cause is not None
    assert caller_log.cause.sip_status == expected
    assert all_ended(bridge, caller)


def test_callee_no_answer_gives_the_caller_480() -> None:
    world = world_of()
    bridge = Bridge(world, UasLeg.ring, ring_timeout_s=8.0)
    caller, caller_log = call(world)
    world.run(until=80.0)
    assert caller_log.cause is not None
    assert (caller_log.cause.outcome, caller_log.cause.sip_status) == (Outcome.REJECTED, 480)
    assert bridge.b_log.cause is not None and bridge.b_log.cause.outcome is Outcome.NO_ANSWER
    assert all_ended(bridge, caller)


def test_caller_cancel_while_callee_rings_cancels_the_callee() -> None:
    world = world_of()
    bridge = Bridge(world, UasLeg.ring)
    caller, caller_log = call(world)
    world.at(3.0, caller.cancel, on="caller")
    world.run(until=80.0)
    assert caller_log.cause is not None and caller_log.cause.outcome is Outcome.CANCELLED
    assert bridge.callee_log.cause is not None
    assert bridge.callee_log.cause.outcome is Outcome.CANCELLED
    assert all_ended(bridge, caller)


def test_reinvite_during_bridge_is_answered_locally_and_reported() -> None:
    world = world_of()
    bridge = Bridge(world, answer_after(world, 1.0))
    caller, _ = call(world)
    world.run(until=4.0)
    heard: list[object] = []
    bridge.bridges[0].listeners.append(heard.append)
    caller.reinvite(hold=True)
    world.run(until=6.0)
    holds = [e for e in heard if isinstance(e, HoldChanged)]
    assert [(e.held, e.by_remote, e.call_id) for e in holds] == [
        (True, True, caller.call_id)]
    # answered by us: the callee saw no re-INVITE
    assert len(world["callee"].requests("INVITE")) == 1
    assert bridge.callee_legs[0].state is LegState.CONFIRMED


@pytest.mark.parametrize("seed", range(6))
def test_bridged_call_under_loss_never_orphans_a_leg(seed: int) -> None:
    world = world_of(seed=seed, loss=0.2, duplication=0.2)
    bridge = Bridge(world, answer_after(world, 1.0))
    caller, _ = call(world)
    world.at(15.0, lambda: caller.hangup(), on="caller")
    world.run(until=200.0)
    assert all_ended(bridge, caller)


def test_status_for_maps_every_outcome() -> None:
    assert status_for(EndCause(outcome=Outcome.BUSY)) == 486
    assert status_for(EndCause(outcome=Outcome.NO_ANSWER)) == 480
    assert status_for(EndCause(outcome=Outcome.REJECTED, sip_status=404)) == 404
    assert status_for(EndCause(outcome=Outcome.FAILED, sip_status=503)) == 503
    assert status_for(EndCause(outcome=Outcome.FAILED, sip_status=408)) == 502
    assert status_for(EndCause(outcome=Outcome.CANCELLED)) == 487


def test_caller_cancel_reason_is_carried_on_the_callee_cancel() -> None:
    world = world_of()
    bridge = Bridge(world, UasLeg.ring)
    caller, _ = call(world)
    cause = EndCause(outcome=Outcome.HUNG_UP_LOCAL, q850_cause=31, reason_text="Normal")
    world.at(3.0, lambda: caller.cancel(cause), on="caller")
    world.run(until=80.0)
    cancels = [parse_message(t.data) for t in
               world.network.transmissions("sent", starts_with=b"CANCEL")
               if t.source == world["us"].address]
    assert len(cancels) == 1
    assert cancels[0].headers.get("Reason") == 'Q.850;cause=31;text="Normal"'
    assert bridge.callee_log.cause is not None
    assert (bridge.callee_log.cause.outcome, bridge.callee_log.cause.q850_cause) == (
        Outcome.CANCELLED, 31)
    assert all_ended(bridge, caller)
