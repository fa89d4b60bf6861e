"""UasLeg specifics: the ACK that never comes, CANCEL, INFO, 488, the registry."""

from __future__ import annotations

from simcall import CallWorld, FakeMedia
from test_uac_leg import Peer, dial

from boomerang.call.events import CallAnswered, InfoReceived, Outcome
from boomerang.call.leg import LegState
from boomerang.call.uas_leg import UasLeg
from boomerang.sip.address import Address
from boomerang.sip.message import Request
from boomerang.sip.transaction.events import TransactionKey


def test_ack_that_never_comes_ends_with_bye_failed() -> None:
    world = CallWorld(["alice", "bob"])
    peer = Peer(world, UasLeg.answer)
    world["alice"].handlers.clear()
    leg, _ = dial(world)
    # alice's ACKs are lost: drop every datagram starting with ACK
    network = world.network
    original = network.send

    def send(data: bytes, source: Address, destination: Address, now: float) -> None:
        if not data.startswith(b"ACK"):
            original(data, source, destination, now)

    network.send = send  # type: ignore[method-assign]
    world.run(until=100.0)
    cause = peer.log.cause
    assert cause is not None
    assert (cause.outcome, cause.sip_status) == (Outcome.FAILED, 408)
    assert not peer.log.of(CallAnswered)
    byes = network.transmissions("sent", starts_with=b"BYE")
    assert byes and byes[0].time >= 32.0
    # 200 sent at 0.01, then retransmitted at 0.5, 1.5, 3.5, 7.5, 11.5 ... until 64*T1
    oks = [t.time for t in network.transmissions("sent", starts_with=b"SIP/2.0 200 OK")
           if b"INVITE" in t.data.split(b"\r\n\r\n")[0]
           and t.source == world["bob"].address]
    assert [round(t - oks[0], 3) for t in oks[:5]] == [0.0, 0.5, 1.5, 3.5, 7.5]
    assert leg.state is LegState.ENDED  # alice heard the BYE


def test_cancel_is_answered_487_and_reported_cancelled_with_its_reason() -> None:
    world = CallWorld(["alice", "bob"])
    peer = Peer(world, UasLeg.ring)
    leg, _log = dial(world)
    world.run(until=1.0)
    leg.cancel()
    world.run(until=60.0)
    assert peer.log.cause is not None
    assert (peer.log.cause.outcome, peer.log.cause.sip_status) == (Outcome.CANCELLED, 487)
    assert world["alice"].responses(487)


def test_info_in_dialog_is_answered_and_reported() -> None:
    world = CallWorld(["alice", "bob"])
    peer = Peer(world, UasLeg.answer)
    leg, _ = dial(world)
    world.run(until=2.0)
    assert leg.dialog is not None
    info = leg.dialog.create_request("INFO", world["alice"].ids, sent_by="127.0.0.1:5061",
                                     body=b"Signal=5\r\nDuration=160\r\n",
                                     content_type="application/dtmf-relay")
    world["alice"].send_request(info, world["bob"].address, lambda event: None)
    world.run(until=4.0)
    infos = [e for e in peer.log.of(InfoReceived) if isinstance(e, InfoReceived)]
    assert [(e.content_type, e.body) for e in infos] == [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n")]
    assert world["alice"].responses(200, "INFO")


def test_unacceptable_offer_is_rejected_488() -> None:
    world = CallWorld(["alice", "bob"])

    def refuse_media(leg: UasLeg) -> None:
        leg.media.refuse = True  # type: ignore[attr-defined]
        leg.answer()

    peer = Peer(world, refuse_media)
    _leg, log = dial(world)
    world.run(until=40.0)
    assert log.cause is not None and log.cause.sip_status == 488
    assert peer.log.cause is not None and peer.log.cause.outcome is Outcome.REJECTED


def test_request_for_an_unknown_dialog_gets_481() -> None:
    world = CallWorld(["alice", "bob"])
    Peer(world, UasLeg.answer)
    leg, _ = dial(world)
    world.run(until=2.0)
    assert leg.dialog is not None
    bye = leg.dialog.create_request("BYE", world["alice"].ids, sent_by="127.0.0.1:5061")
    bye.headers.set("Call-ID", "nobody-knows-this")
    world["alice"].send_request(bye, world["bob"].address, lambda event: None)
    world.run(until=4.0)
    assert world["alice"].responses(481, "BYE")
    assert leg.state is LegState.CONFIRMED


def test_registry_routes_by_call_id_and_both_tags() -> None:
    world = CallWorld(["alice", "bob"])
    peer = Peer(world, UasLeg.answer)
    dial(world)
    world.run(until=2.0)
    bob_leg = peer.legs[0]
    assert bob_leg.dialog is not None
    did = bob_leg.dialog.id
    registry = world["bob"].registry
    assert registry.find(did.call_id, did.local_tag, did.remote_tag) is bob_leg
    assert registry.find(did.call_id, did.remote_tag, did.local_tag) is None


def test_invite_handler_arguments_build_a_leg() -> None:
    world = CallWorld(["alice", "bob"])
    made: list[UasLeg] = []

    def on_invite(request: Request, key: TransactionKey, source: Address) -> None:
        bob = world["bob"]
        made.append(UasLeg(sip=bob, scheduler=bob.scheduler, media=FakeMedia(),
                           addressing=bob.addressing("bob"), request=request,
                           transaction=key, source=source))

    world["bob"].handlers["INVITE"] = on_invite
    dial(world, ring_timeout_s=1.0)
    world.run(until=40.0)
    # the ring timeout CANCELs; the leg answers 487 and ends though nobody listens
    assert len(made) == 1 and made[0].state is LegState.ENDED
    assert made[0].end_cause is not None and made[0].end_cause.outcome is Outcome.CANCELLED
