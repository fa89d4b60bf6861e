"""Session timers (RFC 4028) between a UacLeg and a UasLeg, in simulated time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from simcall import CallWorld, EventLog, FakeMedia

from boomerang.call.events import CallEnded, EndCause, Outcome
from boomerang.call.leg import LegState
from boomerang.call.session_timer import (
    IntervalTooSmall,
    Refresher,
    SessionExpires,
    SessionInterval,
    SessionTimerSettings,
    negotiate_as_uas,
)
from boomerang.call.uac_leg import UacLeg
from boomerang.call.uas_leg import UasLeg
from boomerang.sip.address import Address
from boomerang.sip.message import Request
from boomerang.sip.transaction.events import TransactionKey


@dataclass
class Bob:
    world: CallWorld
    settings: SessionTimerSettings | None
    script: Callable[[UasLeg], None] = UasLeg.answer
    legs: list[UasLeg] = field(default_factory=list)
    log: EventLog = field(default_factory=EventLog)

    def __post_init__(self) -> None:
        self.world["bob"].handlers["INVITE"] = self.on_invite

    def on_invite(self, request: Request, key: TransactionKey, source: Address) -> None:
        bob = self.world["bob"]
        leg = UasLeg(sip=bob, scheduler=bob.scheduler, media=FakeMedia(port=5000),
                     addressing=bob.addressing("bob"), request=request, transaction=key,
                     source=source, registry=bob.registry, random_draw=lambda: 0.5,
                     session_timers=self.settings)
        leg.add_listener(self.log)
        self.legs.append(leg)
        self.script(leg)


def dial(world: CallWorld, settings: SessionTimerSettings | None) -> tuple[UacLeg, EventLog]:
    alice = world["alice"]
    bob = world["bob"]
    leg = UacLeg(sip=alice, scheduler=alice.scheduler, media=FakeMedia(),
                 addressing=alice.addressing("alice"), request_uri=bob.uri("bob"),
                 from_="<sip:alice@example.com>", to="<sip:bob@example.com>",
                 destination=bob.address, ring_timeout_s=30.0, registry=alice.registry,
                 random_draw=lambda: 0.5, session_timers=settings)
    log = EventLog()
    leg.add_listener(log)
    leg.start()
    return leg, log


def reinvite_times(world: CallWorld, sender: str) -> list[float]:
    """When ``sender`` sent an in-dialog INVITE (one with a To tag), first copies only."""
    address = world[sender].address
    return [round(t.time, 2) for t in world.network.transmissions("sent", starts_with=b"INVITE")
            if t.source == address and b";tag=" in t.data.split(b"\r\nTo:")[1].split(b"\r\n")[0]]


def test_uac_refresher_refreshes_at_half_the_interval_and_the_call_lives_on() -> None:
    world = CallWorld(["alice", "bob"])
    bob = Bob(world, SessionTimerSettings())
    leg, log = dial(world, SessionTimerSettings(session_expires_s=120,
                                                refresher=Refresher.UAC))
    world.run(until=300.0)
    invite = world["bob"].requests("INVITE")[0]
    assert invite.headers.get("Session-Expires") == "120;refresher=uac"
    assert invite.headers.get("Min-SE") == "90"
    assert "timer" in invite.header_tokens("Supported")
    (ok,) = world["alice"].responses(200)[:1]
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    assert "timer" in ok.header_tokens("Require")
    # answered at ~0.02: refreshes every 60 s; bob's 88 s expiry is pushed back each time
    assert reinvite_times(world, "alice") == pytest.approx([60.02, 120.04, 180.06, 240.08],
                                                           abs=0.02)
    assert reinvite_times(world, "bob") == []
    assert leg.state is LegState.CONFIRMED and bob.legs[0].state is LegState.CONFIRMED
    assert not log.of(CallEnded) and not bob.log.of(CallEnded)
    assert leg.session_timer.interval == SessionInterval(interval_s=120, we_refresh=True)
    assert bob.legs[0].session_timer.interval == SessionInterval(interval_s=120,
                                                                 we_refresh=False)


def test_uas_refresher_refreshes_and_the_uac_watches() -> None:
    world = CallWorld(["alice", "bob"])
    bob = Bob(world, SessionTimerSettings())
    leg, _ = dial(world, SessionTimerSettings(session_expires_s=100,
                                              refresher=Refresher.UAS))
    world.run(until=230.0)
    assert reinvite_times(world, "bob") == pytest.approx([50.02, 100.04, 150.06, 200.08],
                                                         abs=0.02)
    assert reinvite_times(world, "alice") == []
    # bob's refreshes keep the roles: refresher=uac of his re-INVITE is bob
    refresh = world["alice"].requests("INVITE")[0]
    assert refresh.headers.get("Session-Expires") == "100;refresher=uac"
    assert leg.state is LegState.CONFIRMED and bob.legs[0].state is LegState.CONFIRMED


@pytest.mark.parametrize("silent", ["alice", "bob"])
def test_missing_refresh_ends_the_call_with_bye_before_the_interval(silent: str) -> None:
    world = CallWorld(["alice", "bob"])
    bob = Bob(world, SessionTimerSettings())
    refresher = Refresher.UAC if silent == "alice" else Refresher.UAS
    leg, log = dial(world, SessionTimerSettings(session_expires_s=120, refresher=refresher))
    world.run(until=1.0)
    silent_leg = leg if silent == "alice" else bob.legs[0]
    silent_leg.session_timer.stop()  # agreed to refresh, never does
    world.run(until=200.0)
    watcher = "bob" if silent == "alice" else "alice"
    (bye,) = world[silent].requests("BYE")
    byes = world.network.transmissions("sent", starts_with=b"BYE")
    # 120 - min(32, 120/3) = 88 s after the session started (answer at ~0.02)
    assert byes[0].time == pytest.approx(88.02, abs=0.02)
    assert byes[0].source == world[watcher].address
    assert bye.headers.get("Reason") == 'Q.850;cause=102;text="Session timer expired"'
    watcher_log, silent_log = (bob.log, log) if silent == "alice" else (log, bob.log)
    assert watcher_log.cause == EndCause(outcome=Outcome.FAILED, q850_cause=102,
                                         reason_text="Session timer expired")
    assert silent_log.cause is not None
    assert (silent_log.cause.outcome, silent_log.cause.q850_cause) == (
        Outcome.HUNG_UP_REMOTE, 102)
    assert leg.state is LegState.ENDED and bob.legs[0].state is LegState.ENDED


def test_422_is_retried_with_the_larger_interval() -> None:
    world = CallWorld(["alice", "bob"])

    def ring_then_answer(uas: UasLeg) -> None:
        uas.ring()  # the first INVITE is refused 422 here
        if not uas.ended:
            world.at(world.clock.now + 1.0, uas.answer, on="bob")

    bob = Bob(world, SessionTimerSettings(min_se_s=300), script=ring_then_answer)
    leg, log = dial(world, SessionTimerSettings(session_expires_s=100))
    world.run(until=10.0)
    assert [r.status for r in world["alice"].responses_received
            if r.cseq.method == "INVITE" and r.status >= 200][:1] == [422]
    (too_small,) = world["alice"].responses(422)
    assert too_small.headers.get("Min-SE") == "300"
    first, second = world["bob"].requests("INVITE")
    assert (second.call_id, second.from_tag) == (first.call_id, first.from_tag)
    assert second.cseq.number == first.cseq.number + 1
    assert second.headers.get("Session-Expires") == "300"
    assert second.headers.get("Min-SE") == "300"
    assert log.kinds == ["CallTried", "CallRinging", "CallAnswered"]
    assert bob.legs[0].end_cause is not None and bob.legs[0].end_cause.sip_status == 422
    assert leg.session_timer.interval is not None
    assert leg.session_timer.interval.interval_s == 300
    assert leg.state is LegState.CONFIRMED


def test_uas_adds_its_own_timer_for_a_uac_that_asked_none() -> None:
    world = CallWorld(["alice", "bob"])
    bob = Bob(world, SessionTimerSettings(session_expires_s=90))
    leg, _ = dial(world, None)
    world.run(until=100.0)
    ok = world["alice"].responses(200)[0]
    assert ok.headers.get("Session-Expires") == "90;refresher=uas"
    assert reinvite_times(world, "bob") == pytest.approx([45.02, 90.04], abs=0.02)
    assert leg.state is LegState.CONFIRMED and bob.legs[0].state is LegState.CONFIRMED


def test_negotiation_rules() -> None:
    settings = SessionTimerSettings(session_expires_s=600, min_se_s=120)

    def invite(*headers: tuple[str, str]) -> Request:
        request = Request("INVITE", "sip:bob@example.com", None)
        for name, value in headers:
            request.headers.add(name, value)
        return request

    with pytest.raises(IntervalTooSmall) as refused:
        negotiate_as_uas(invite(("Session-Expires", "100")), settings)
    assert refused.value.status == 422 and refused.value.headers == (("Min-SE", "120"),)
    interval, headers = negotiate_as_uas(
        invite(("Supported", "timer"), ("Session-Expires", "1800")), settings)
    assert interval == SessionInterval(interval_s=600, we_refresh=False)
    assert ("Session-Expires", "600;refresher=uac") in headers
    assert ("Require", "timer") in headers
    interval, _ = negotiate_as_uas(invite(("Session-Expires", "300")), settings)
    assert interval == SessionInterval(interval_s=300, we_refresh=True)
    assert SessionExpires.parse("1800 ; refresher=UAS") == SessionExpires(
        interval_s=1800, refresher=Refresher.UAS)
    assert SessionInterval(interval_s=90, we_refresh=False).expiry_after_s == 60.0
    assert SessionInterval(interval_s=1800, we_refresh=False).expiry_after_s == 1768.0
    with pytest.raises(ValueError):
        SessionTimerSettings(min_se_s=60)
