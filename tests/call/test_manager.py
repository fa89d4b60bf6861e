"""CallManager over real UDP sockets on 127.0.0.1: originate outcomes against
tiny fake phones (each an Endpoint with a UasLeg and simcall's FakeMedia),
forking, bridge and BYE from either side, the no-media timeout, session
timers from the config, trunk INVITEs (number format, caller ID headers),
the extension concurrent-call cap."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from simcall import FakeMedia

from boomerang.app import Endpoint
from boomerang.call.calls import OutboundCall
from boomerang.call.events import (
    Q850_RECOVERY_ON_TIMER_EXPIRY,
    CallEnded,
    EndCause,
    Outcome,
)
from boomerang.call.leg import LegAddressing, LegRegistry
from boomerang.call.location import Binding
from boomerang.call.manager import (
    CallManager,
    CallRefused,
    ExtensionTarget,
    TrunkTarget,
    UriTarget,
    result_of,
)
from boomerang.call.trunks import TrunkSet
from boomerang.call.uac_leg import UacLeg
from boomerang.call.uas_leg import UasLeg
from boomerang.config import load_config_text
from boomerang.media.tones import ToneBank
from boomerang.sip.address import Address
from boomerang.sip.auth import DigestClient, DigestServer
from boomerang.sip.ids import CountingIds
from boomerang.sip.message import Request
from boomerang.sip.transaction.events import TransactionKey
from boomerang.sip.transaction.layer import TimerSettings, TransactionLayer
from boomerang.store import CallResult
from boomerang.transport.media_relay import PythonMediaRelay
from boomerang.transport.rtp_socket import PortAllocator

CONFIG = "sip:\n  listen: [udp:127.0.0.1:0]\n  shutdown_grace_s: 0.1\n"
# Timer B/F = 64 * T1 = 0.64 s: a call no one answers ends fast
FAST = TimerSettings(t1=0.01, t2=0.08, t4=0.04, timer_d=0.05)
T1_S = 0.01


def _endpoint(name: str, extra: str = "") -> Endpoint:
    return Endpoint(load_config_text(CONFIG + extra, "test.yaml"),
                    challenger=DigestServer(realm="test", secret=b"k" * 32),
                    ids=CountingIds(name), layer=TransactionLayer(timers=FAST))


@dataclass
class FakePhone:
    """Answers every INVITE as told: ``answer`` (after ``delay_s``), ``busy``
    (486) or ``ring`` (180 and nothing more); ``challenge`` answers 407 to an
    INVITE without a valid digest of trunkuser / trunkpw (``challenged``
    counts them), then answers."""

    name: str
    behaviour: str = "answer"
    delay_s: float = 0.0
    endpoint: Endpoint = field(init=False)
    legs: list[UasLeg] = field(default_factory=list)
    address: Address | None = None
    media_port: int = 4000  # where the phone's SDP says it receives RTP
    challenged: int = 0

    async def start(self) -> None:
        self.endpoint = _endpoint(self.name)
        registry = LegRegistry()
        self.endpoint.dialog_handler = registry
        self.endpoint.handlers["INVITE"] = self._invite
        [self.address] = await self.endpoint.start()
        self._registry = registry

    @property
    def uri(self) -> str:
        assert self.address is not None
        return f"sip:{self.name}@127.0.0.1:{self.address.port}"

    def _invite(self, request: Request, transaction: TransactionKey, source: Address) -> None:
        assert self.address is not None
        if self.behaviour == "challenge" and not self._authorised(request):
            return
        sent_by = f"127.0.0.1:{self.address.port}"
        leg = UasLeg(sip=self.endpoint, scheduler=asyncio.get_running_loop(),
                     media=FakeMedia(port=self.media_port), addressing=LegAddressing(
                         sent_by=sent_by, contact=f"<sip:{self.name}@{sent_by}>"),
                     request=request, transaction=transaction, source=source,
                     registry=self._registry, t1_s=T1_S)
        self.legs.append(leg)
        leg.ring()
        if self.behaviour == "busy":
            leg.reject(486)
        elif self.behaviour in ("answer", "challenge"):
            asyncio.get_running_loop().call_later(
                self.delay_s, lambda: None if leg.ended else leg.answer())

    def _authorised(self, request: Request) -> bool:
        digest = self.endpoint.challenger
        assert isinstance(digest, DigestServer)
        now = time.time()
        result = digest.verify(request, {"trunkuser": "trunkpw"}.get, now,
                               header="Proxy-Authorization")
        if result.ok:
            return True
        self.challenged += 1
        self.endpoint.respond(request, 407, tuple(
            ("Proxy-Authenticate", value) for value in digest.challenge(now)))
        return False

    def hangup(self) -> None:
        self.legs[-1].hangup()


@dataclass
class StubRegistrar:
    """``contacts_for`` of a registrar with fixed bindings."""

    bindings: dict[str, list[Binding]] = field(default_factory=dict)

    def contacts_for(self, extension: str) -> list[Binding]:
        return self.bindings.get(extension, [])


def binding_for(extension: str, phone: FakePhone) -> Binding:
    assert phone.address is not None
    return Binding(extension=extension, contact_uri=phone.uri,
                   source=Address("udp", "127.0.0.1", phone.address.port),
                   expires_at=1e12, registered_at=0.0, call_id=f"reg-{phone.name}", cseq=1)


EXTENSION_101 = 'extensions:\n  - {number: "101", password: pw}\n'


def trunk_yaml(carrier: FakePhone, **fields: object) -> str:
    """A ``trunks:`` section whose carrier is ``carrier`` (keep-alive off)."""
    assert carrier.address is not None
    values: dict[str, object] = {"name": "carrier", "host": "127.0.0.1",
                                 "port": carrier.address.port, "keepalive_s": 0,
                                 "sources": "[10.0.0.0/8]"}
    values.update(fields)
    return "trunks:\n  - {" + ", ".join(f"{k}: {v}" for k, v in values.items()) + "}\n"


@asynccontextmanager
async def world(free_port_factory: Callable[[], int], *phones: FakePhone,
                no_media_timeout_s: float = 30.0, extra: Callable[[], str] | None = None,
                warning_lead_s: float = 10.0) -> AsyncIterator[CallManager]:
    """The manager; ``extra()`` (called once the phones listen) adds to the config."""
    for phone in phones:
        await phone.start()
    endpoint = _endpoint("m", extra() if extra is not None else EXTENSION_101)
    await endpoint.start()
    first = free_port_factory() & ~1
    relay = PythonMediaRelay(PortAllocator(first, first + 20),
                             no_media_timeout_s=no_media_timeout_s)
    trunks = TrunkSet(endpoint.config, endpoint) if endpoint.config.trunks else None
    manager = CallManager(endpoint, endpoint.config, registrar=StubRegistrar(),  # type: ignore[arg-type]
                          trunks=trunks, relay=relay, tone_bank=ToneBank(), t1_s=T1_S,
                          warning_lead_s=warning_lead_s)
    manager.install()
    try:
        yield manager
    finally:
        await manager.close()
        if trunks is not None:
            await trunks.close()
        await relay.close()
        for phone in phones:
            await phone.endpoint.close()
        await endpoint.close()


async def originate(manager: CallManager, phone: FakePhone, *, ring_timeout_s: float = 5.0,
                    correlation_id: str | None = None) -> OutboundCall:
    assert phone.address is not None
    return await manager.originate(
        UriTarget(phone.uri, Address("udp", "127.0.0.1", phone.address.port)),
        caller_id="100", ring_timeout_s=ring_timeout_s, correlation_id=correlation_id)


async def test_originate_answered_then_hangup_ends_both_sides(
        free_port_factory: Callable[[], int]) -> None:
    phone = FakePhone("p1")
    async with world(free_port_factory, phone) as manager:
        call = await originate(manager, phone)
        cause = await asyncio.wait_for(call.outcome(), 2)
        assert cause.outcome is Outcome.ANSWERED
        assert call.is_answered
        call.hangup()
        ended = await asyncio.wait_for(call.ended, 2)
        await asyncio.wait_for(_until(lambda: phone.legs[0].ended), 2)
    assert ended.outcome is Outcome.HUNG_UP_LOCAL
    assert phone.legs[0].end_cause is not None
    assert phone.legs[0].end_cause.outcome is Outcome.HUNG_UP_REMOTE


async def test_originate_busy(free_port_factory: Callable[[], int]) -> None:
    phone = FakePhone("p1", "busy")
    async with world(free_port_factory, phone) as manager:
        call = await originate(manager, phone)
        cause = await asyncio.wait_for(call.outcome(), 2)
    assert (cause.outcome, cause.sip_status) == (Outcome.BUSY, 486)
    assert call.ended.result() == cause


async def test_originate_no_answer_after_the_ring_timeout(
        free_port_factory: Callable[[], int]) -> None:
    phone = FakePhone("p1", "ring")
    async with world(free_port_factory, phone) as manager:
        loop = asyncio.get_running_loop()
        started = loop.time()
        call = await originate(manager, phone, ring_timeout_s=0.3)
        cause = await asyncio.wait_for(call.outcome(), 2)
        elapsed_s = loop.time() - started
        await asyncio.wait_for(_until(lambda: phone.legs[0].ended), 2)
    assert cause.outcome is Outcome.NO_ANSWER
    assert 0.3 <= elapsed_s < 1.0
    assert phone.legs[0].end_cause is not None
    assert phone.legs[0].end_cause.outcome is Outcome.CANCELLED


async def test_cancelling_the_awaiting_task_sends_cancel(
        free_port_factory: Callable[[], int]) -> None:
    phone = FakePhone("p1", "ring")
    async with world(free_port_factory, phone) as manager:
        call = await originate(manager, phone)
        waiting = asyncio.create_task(call.outcome())
        await asyncio.wait_for(_until(lambda: bool(phone.legs)), 2)
        await asyncio.sleep(0.05)  # the 180 is back: CANCEL may go
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        cause = await asyncio.wait_for(call.ended, 2)
        await asyncio.wait_for(_until(lambda: phone.legs[0].ended), 2)
    assert (cause.outcome, cause.sip_status) == (Outcome.CANCELLED, 487)
    assert phone.legs[0].end_cause is not None
    assert phone.legs[0].end_cause.outcome is Outcome.CANCELLED


async def test_fork_first_answer_wins_the_other_gets_cancel(
        free_port_factory: Callable[[], int]) -> None:
    desk, mobile = FakePhone("desk", "answer", delay_s=0.1), FakePhone("mobile", "ring")
    async with world(free_port_factory, desk, mobile) as manager:
        registrar = manager.registrar
        assert isinstance(registrar, StubRegistrar)
        registrar.bindings["102"] = [binding_for("102", mobile), binding_for("102", desk)]
        call = await manager.originate(ExtensionTarget("102"), caller_id="101",
                                       ring_timeout_s=5)
        assert len(call.forks) == 2
        cause = await asyncio.wait_for(call.outcome(), 2)
        await asyncio.wait_for(_until(lambda: bool(mobile.legs) and mobile.legs[0].ended), 2)
        assert call.winner is not None and call.winner.destination.port == desk.address.port  # type: ignore[union-attr]
        assert not call.ended.done()
        call.hangup()
        await asyncio.wait_for(call.ended, 2)
    assert cause.outcome is Outcome.ANSWERED
    assert mobile.legs[0].end_cause is not None
    assert mobile.legs[0].end_cause.outcome is Outcome.CANCELLED


async def test_an_unregistered_extension_is_refused_480(
        free_port_factory: Callable[[], int]) -> None:
    async with world(free_port_factory) as manager:
        with pytest.raises(CallRefused) as refused:
            await manager.originate(ExtensionTarget("103"), caller_id="101",
                                    ring_timeout_s=5)
    assert refused.value.status == 480


@pytest.mark.parametrize("hanging_up", ["first", "second"])
async def test_bridge_ends_both_legs_on_bye_from_either_side(
        free_port_factory: Callable[[], int], hanging_up: str) -> None:
    first, second = FakePhone("one"), FakePhone("two")
    async with world(free_port_factory, first, second) as manager:
        a = await originate(manager, first, correlation_id="story-1")
        b = await originate(manager, second, correlation_id="story-1")
        for call in (a, b):
            assert (await asyncio.wait_for(call.outcome(), 2)).outcome is Outcome.ANSWERED
        bridged = asyncio.create_task(manager.bridge(a, b))
        await asyncio.sleep(0.1)
        assert not bridged.done()
        (first if hanging_up == "first" else second).hangup()
        await asyncio.wait_for(bridged, 2)
        other = second if hanging_up == "first" else first
        await asyncio.wait_for(_until(lambda: other.legs[0].ended), 2)
        assert await asyncio.wait_for(_until(lambda: len(manager.relay) == 0), 2)  # type: ignore[arg-type]
    remote, local = (a, b) if hanging_up == "first" else (b, a)
    assert remote.ended.result().outcome is Outcome.HUNG_UP_REMOTE
    assert local.ended.result().outcome is Outcome.HUNG_UP_LOCAL
    assert other.legs[0].end_cause is not None
    assert other.legs[0].end_cause.outcome is Outcome.HUNG_UP_REMOTE


async def test_media_timeout_ends_both_bridged_legs(
        free_port_factory: Callable[[], int]) -> None:
    first, second = FakePhone("one"), FakePhone("two")  # neither sends any RTP
    async with world(free_port_factory, first, second, no_media_timeout_s=0.3) as manager:
        a = await originate(manager, first, correlation_id="story-2")
        b = await originate(manager, second, correlation_id="story-2")
        for call in (a, b):
            await asyncio.wait_for(call.outcome(), 2)
        await asyncio.wait_for(manager.bridge(a, b), 3)
        await asyncio.wait_for(_until(lambda: first.legs[0].ended and second.legs[0].ended), 2)
    for call in (a, b):
        assert call.ended.result().q850_cause == Q850_RECOVERY_ON_TIMER_EXPIRY
    assert not manager.calls


async def test_an_invite_from_outside_the_trunks_without_credentials_gets_407(
        free_port_factory: Callable[[], int]) -> None:
    phone = FakePhone("p1")
    async with world(free_port_factory, phone) as manager:
        [server] = manager.endpoint.driver.listening
        assert phone.address is not None
        sent_by = f"127.0.0.1:{phone.address.port}"
        leg = UacLeg(sip=phone.endpoint, scheduler=asyncio.get_running_loop(),
                     media=FakeMedia(), addressing=LegAddressing(
                         sent_by=sent_by, contact=f"<sip:101@{sent_by}>"),
                     request_uri=f"sip:102@127.0.0.1:{server.port}",
                     from_=f"<sip:101@127.0.0.1:{server.port}>",
                     to=f"<sip:102@127.0.0.1:{server.port}>", destination=server, t1_s=T1_S)
        ended: asyncio.Future[EndCause] = asyncio.get_running_loop().create_future()
        leg.add_listener(lambda event: ended.set_result(event.cause)
                         if isinstance(event, CallEnded) else None)
        leg.start()
        cause = await asyncio.wait_for(ended, 2)
        assert not manager.calls
    assert (cause.outcome, cause.sip_status) == (Outcome.REJECTED, 407)


def test_record_results() -> None:
    bye = EndCause(outcome=Outcome.HUNG_UP_REMOTE)
    assert result_of(bye, answered=True) is CallResult.ANSWERED
    assert result_of(EndCause(outcome=Outcome.BUSY, sip_status=486), answered=False) \
        is CallResult.BUSY
    assert result_of(bye, answered=False) is CallResult.CANCELLED


async def _until(condition: Callable[[], bool]) -> bool:
    for _ in range(400):
        if condition():
            return True
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 4 s")


# -- session timers, trunks, limits ---------------------------------------------------


async def test_every_invite_of_the_manager_carries_the_configured_session_timers(
        free_port_factory: Callable[[], int]) -> None:
    phone = FakePhone("p1")
    config = "  session_expires_s: 600\n  min_se_s: 120\n" + EXTENSION_101
    async with world(free_port_factory, phone, extra=lambda: config) as manager:
        call = await originate(manager, phone)
        assert (await asyncio.wait_for(call.outcome(), 2)).outcome is Outcome.ANSWERED
        invite = phone.legs[0].invite
        call.hangup()
        await asyncio.wait_for(call.ended, 2)
    assert invite.headers.get("Session-Expires") == "600"
    assert invite.headers.get("Min-SE") == "120"
    assert "timer" in (invite.headers.get("Supported") or "")


async def test_session_expires_0_turns_session_timers_off(
        free_port_factory: Callable[[], int]) -> None:
    phone = FakePhone("p1")
    config = "  session_expires_s: 0\n" + EXTENSION_101
    async with world(free_port_factory, phone, extra=lambda: config) as manager:
        call = await originate(manager, phone)
        await asyncio.wait_for(call.outcome(), 2)
        invite = phone.legs[0].invite
        call.hangup()
        await asyncio.wait_for(call.ended, 2)
    assert invite.headers.get("Session-Expires") is None
    assert invite.headers.get("Min-SE") is None


@pytest.mark.parametrize(("fields", "uri_user", "identity", "privacy"), [
    ({"dial_format": "national"}, "600100200", ("P-Asserted-Identity", "+48221234567"), False),
    ({"dial_format": "e164", "caller_id_header": "rpid"}, "+48600100200",
     ("Remote-Party-ID", "+48221234567"), False),
    ({"dial_format": "international", "caller_id_header": "from"}, "0048600100200",
     None, False),
    ({"dial_format": "national"}, "600100200", ("P-Asserted-Identity", "+48221234567"), True),
])
async def test_a_trunk_invite_has_the_dial_format_and_the_caller_id_header(
        free_port_factory: Callable[[], int], fields: dict[str, object], uri_user: str,
        identity: tuple[str, str] | None, privacy: bool) -> None:
    carrier = FakePhone("carrier")
    async with world(free_port_factory, carrier,
                     extra=lambda: trunk_yaml(carrier, **fields)) as manager:
        call = await manager.originate(TrunkTarget("carrier", "+48600100200", privacy=privacy),
                                       caller_id="+48221234567", ring_timeout_s=5)
        assert (await asyncio.wait_for(call.outcome(), 2)).outcome is Outcome.ANSWERED
        invite = carrier.legs[0].invite
        call.hangup()
        await asyncio.wait_for(call.ended, 2)
    assert invite.request_uri.user == uri_user  # type: ignore[union-attr]
    from_ = invite.headers.get("From") or ""
    if privacy:
        assert "anonymous@anonymous.invalid" in from_
        assert invite.headers.get("Privacy") == "id"
    else:
        assert "sip:+48221234567@" in from_
        assert invite.headers.get("Privacy") is None
    for name in ("P-Asserted-Identity", "Remote-Party-ID"):
        value = invite.headers.get(name)
        if identity is not None and name == identity[0]:
            assert value is not None and f"sip:{identity[1]}@" in value
        else:
            assert value is None


@pytest.mark.parametrize(("password", "answered"), [("trunkpw", True), ("wrong", False)])
async def test_a_trunk_call_answers_the_carriers_407_with_the_trunk_credentials(
        free_port_factory: Callable[[], int], password: str, answered: bool) -> None:
    carrier = FakePhone("carrier", "challenge")
    async with world(free_port_factory, carrier, extra=lambda: trunk_yaml(
            carrier, username="trunkuser", password=password)) as manager:
        call = await manager.originate(TrunkTarget("carrier", "+48600100200"),
                                       caller_id="+48221234567", ring_timeout_s=5)
        cause = await asyncio.wait_for(call.outcome(), 3)
        call.hangup()
        await asyncio.wait_for(call.ended, 2)
    if answered:
        assert cause.outcome is Outcome.ANSWERED
        assert carrier.challenged == 1
        [leg] = carrier.legs
        assert "username=\"trunkuser\"" in (leg.invite.headers.get("Proxy-Authorization") or "")
    else:  # a refused digest is challenged again: the call ends with that 407
        assert (cause.outcome, cause.sip_status) == (Outcome.REJECTED, 407)
        assert carrier.challenged == 2 and not carrier.legs


async def test_an_extension_at_its_concurrent_call_cap_is_refused_486(
        free_port_factory: Callable[[], int]) -> None:
    phone, other = FakePhone("p1"), FakePhone("p2")
    config = 'extensions:\n  - {number: "101", password: pw, max_concurrent_calls: 1}\n'
    async with world(free_port_factory, phone, other, extra=lambda: config) as manager:
        first = await manager.originate(
            UriTarget(phone.uri, Address("udp", "127.0.0.1", phone.address.port)),  # type: ignore[union-attr]
            caller_id="101", ring_timeout_s=5, owner_extension="101",
            correlation_id="story-a")
        await asyncio.wait_for(first.outcome(), 2)
        # a second leg of the same story is no new call
        joined = await manager.originate(
            UriTarget(other.uri, Address("udp", "127.0.0.1", other.address.port)),  # type: ignore[union-attr]
            caller_id="101", ring_timeout_s=5, owner_extension="101",
            correlation_id="story-a")
        await asyncio.wait_for(joined.outcome(), 2)
        with pytest.raises(CallRefused) as refused:
            await manager.originate(
                UriTarget(other.uri, Address("udp", "127.0.0.1", other.address.port)),  # type: ignore[union-attr]
                caller_id="101", ring_timeout_s=5, owner_extension="101")
        # the phone of 101 dials while its call is up: 486 after the digest
        [server] = manager.endpoint.driver.listening
        assert phone.address is not None
        sent_by = f"127.0.0.1:{phone.address.port}"
        leg = UacLeg(sip=phone.endpoint, scheduler=asyncio.get_running_loop(),
                     media=FakeMedia(), addressing=LegAddressing(
                         sent_by=sent_by, contact=f"<sip:101@{sent_by}>"),
                     request_uri=f"sip:102@127.0.0.1:{server.port}",
                     from_=f"<sip:101@127.0.0.1:{server.port}>",
                     to=f"<sip:102@127.0.0.1:{server.port}>", destination=server, t1_s=T1_S,
                     credentials=DigestClient(username="101", password="pw"))
        ended: asyncio.Future[EndCause] = asyncio.get_running_loop().create_future()
        leg.add_listener(lambda event: ended.set_result(event.cause)
                         if isinstance(event, CallEnded) else None)
        leg.start()
        cause = await asyncio.wait_for(ended, 2)
        live = len(manager.calls)
        for call in (first, joined):
            call.hangup()
            await asyncio.wait_for(call.ended, 2)
    assert refused.value.status == 486
    assert (cause.outcome, cause.sip_status) == (Outcome.BUSY, 486)
    assert live == 2  # the refused INVITE made no call


async def test_a_finished_bridged_call_leaves_no_cyclic_garbage(
        free_port_factory: Callable[[], int]) -> None:
    """DESIGN.md: finished calls must be freed by reference counting alone;
    objects left in cycles wait for full collections, whose pauses grow with
    the heap (they capped the bridged-call benchmark)."""
    first, second = FakePhone("one"), FakePhone("two")
    async with world(free_port_factory, first, second) as manager:
        gc.collect()
        gc.disable()
        try:
            a = await originate(manager, first, correlation_id="story-1")
            b = await originate(manager, second, correlation_id="story-1")
            for call in (a, b):
                assert (await asyncio.wait_for(call.outcome(), 2)).outcome is Outcome.ANSWERED
            bridged = asyncio.create_task(manager.bridge(a, b))
            await asyncio.sleep(0.1)
            first.hangup()
            await asyncio.wait_for(bridged, 2)
            del a, b, bridged, call
            assert await asyncio.wait_for(_until(lambda: len(manager.endpoint.layer) == 0), 5)
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            ours = sorted({f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage
                           if (type(o).__module__ or "").startswith("boomerang")})
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert ours == []
