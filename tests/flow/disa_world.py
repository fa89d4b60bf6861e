"""A loopback world for the disa tests (not a conftest: tests/flow is shared).

- the ``CallManager`` of tests/call/test_manager.py (``world``) on real UDP
  sockets on 127.0.0.1, with a trunk ``carrier`` whose source is 127.0.0.1:
  the ``Caller`` calls in through it and its call (an answered
  ``InboundCall``, the callback leg as Boomerang sees it) runs ``Disa``;
- ``Phone``: an extension phone or the carrier, answering INVITEs as told
  (``answer``, ``busy``, ``ring``), recording them, with an ``RtpPeer``
  where its SDP says it receives;
- ``RtpPeer``: a raw RTP socket that keeps what arrives and sends RFC 4733
  telephone-events (``send_digits``) on one continuing stream;
- ``Recorder``: a flow observer keeping tones, digits and notes in order.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_TESTS = Path(__file__).resolve().parent.parent
for _folder in (_TESTS / "sip", _TESTS / "call"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from simcall import FakeMedia  # noqa: E402
from test_manager import T1_S, FakePhone, StubRegistrar, _endpoint, binding_for, world  # noqa: E402

from boomerang.call.calls import InboundCall  # noqa: E402
from boomerang.call.leg import LegAddressing, LegRegistry  # noqa: E402
from boomerang.call.manager import CallManager  # noqa: E402
from boomerang.call.trunks import Trunk  # noqa: E402
from boomerang.call.uac_leg import UacLeg  # noqa: E402
from boomerang.call.uas_leg import UasLeg  # noqa: E402
from boomerang.flow.components.disa import Disa, DisaParams  # noqa: E402
from boomerang.flow.context import FlowContext  # noqa: E402
from boomerang.flow.model import Flow, FlowNode  # noqa: E402
from boomerang.media.dtmf_rfc4733 import telephone_event_packets  # noqa: E402
from boomerang.media.g711 import ulaw_decode  # noqa: E402
from boomerang.media.rtp import RtpPacket, pack_rtp  # noqa: E402
from boomerang.sip.address import Address  # noqa: E402
from boomerang.sip.message import Request  # noqa: E402
from boomerang.sip.transaction.events import TransactionKey  # noqa: E402

LOOPBACK = "127.0.0.1"
DID = "+48221234567"
COMPANY = "+48221230000"
_AUDIO_PORT = re.compile(rb"m=audio (\d+) ")


class TeMedia(FakeMedia):  # type: ignore[misc]
    """``FakeMedia`` offering PCMU and telephone-event/8000 (payload type 101)."""

    def _sdp(self, direction: str) -> bytes:
        return (f"v=0\r\no=- 1 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 {self.host}\r\n"
                f"t=0 0\r\nm=audio {self.port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
                f"a={direction}\r\n").encode()


def audio_port(sdp: bytes) -> int:
    match = _AUDIO_PORT.search(sdp)
    assert match is not None, sdp
    return int(match.group(1))


class RtpPeer(asyncio.DatagramProtocol):
    """A phone's RTP socket: keeps (arrival time, packet); sends digits."""

    def __init__(self, ssrc: int) -> None:
        self.packets: list[tuple[float, RtpPacket]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.ssrc = ssrc
        self.sequence_number = 100
        self.timestamp = 16_000

    @classmethod
    async def open(cls, ssrc: int) -> RtpPeer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(lambda: cls(ssrc),
                                                      local_addr=(LOOPBACK, 0))
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) >= 12 and not 72 <= data[1] & 0x7F <= 76:  # RTP, not RTCP
            self.packets.append((asyncio.get_running_loop().time(), RtpPacket.parse(data)))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def send_digits(self, digits: str, port: int, *, gap_s: float = 0.04) -> None:
        """RFC 4733 key presses of 60 ms, ``gap_s`` apart, to ``port``."""
        assert self.transport is not None
        for digit in digits:
            for item in telephone_event_packets(digit, duration_ms=60):
                self.transport.sendto(pack_rtp(
                    payload_type=101, sequence_number=self.sequence_number,
                    timestamp=self.timestamp + item.timestamp_offset, ssrc=self.ssrc,
                    payload=item.payload, marker=item.marker), (LOOPBACK, port))
                self.sequence_number += 1
                await asyncio.sleep(0.004)
            self.timestamp += 8 * (60 + 40 + round(gap_s * 1000))
            await asyncio.sleep(gap_s)

    def audio_since(self, since: float) -> list[bytes]:
        """PCMU payloads that arrived after loop time ``since``."""
        return [packet.payload for at, packet in self.packets
                if at >= since and packet.payload_type == 0]


def dominant_hz(payloads: list[bytes]) -> float:
    """The strongest frequency of PCMU audio (0 for silence)."""
    if not payloads:
        return 0.0
    pcm = np.concatenate([ulaw_decode(p) for p in payloads]).astype(float)
    if np.abs(pcm).mean() < 100:
        return 0.0
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    spectrum[0] = 0
    return float(np.fft.rfftfreq(len(pcm), 1 / 8000)[int(np.argmax(spectrum))])


@dataclass
class Phone(FakePhone):  # type: ignore[misc]
    """``FakePhone`` with telephone-event in its SDP and a real RTP socket."""

    rtp: RtpPeer | None = None

    async def start(self) -> None:
        self.rtp = await RtpPeer.open(ssrc=0x2000 + len(self.name))
        self.media_port = self.rtp.port
        await super().start()

    def _invite(self, request: Request, transaction: TransactionKey, source: Address) -> None:
        assert self.address is not None
        sent_by = f"{LOOPBACK}:{self.address.port}"
        leg = UasLeg(sip=self.endpoint, scheduler=asyncio.get_running_loop(),
                     media=TeMedia(port=self.media_port), addressing=LegAddressing(
                         sent_by=sent_by, contact=f"<sip:{self.name}@{sent_by}>"),
                     request=request, transaction=transaction, source=source,
                     registry=self._registry, t1_s=T1_S)
        self.legs.append(leg)
        leg.ring()
        if self.behaviour == "busy":
            leg.reject(486)
        elif self.behaviour == "answer":
            asyncio.get_running_loop().call_later(
                self.delay_s, lambda: None if leg.ended else leg.answer())

    def manager_port(self, index: int = -1) -> int:
        """The manager's RTP port for this phone's call ``index`` (its offer)."""
        return audio_port(self.legs[index].invite.body)


@dataclass
class Recorder:
    """A flow observer that keeps what it is told, in order."""

    events: list[tuple[str, ...]] = field(default_factory=list)

    def node_entered(self, context: FlowContext, node_id: str, node_type: str) -> None:
        self.events.append(("entered", node_id))

    def node_left(self, context: FlowContext, node_id: str, outcome: str) -> None:
        self.events.append(("left", node_id, outcome))

    def digit(self, context: FlowContext, call_id: str, digit: str, source: str) -> None:
        self.events.append(("digit", digit))

    def tone(self, context: FlowContext, call_id: str, name: str, playing: bool) -> None:
        self.events.append(("tone", name, "on" if playing else "off"))

    def note(self, context: FlowContext, text: str) -> None:
        self.events.append(("note", text))

    @property
    def digits(self) -> str:
        return "".join(event[1] for event in self.events if event[0] == "digit")

    def tones_on(self) -> list[str]:
        return [event[1] for event in self.events if event[0] == "tone" and event[2] == "on"]


@dataclass
class Story:
    """One call into disa: the caller's side and Boomerang's."""

    manager: CallManager
    caller: Caller
    carrier: Phone
    phones: dict[str, Phone]
    recorder: Recorder
    outcome: asyncio.Future[str]
    call: InboundCall | None = None

    async def result(self, timeout_s: float = 5.0) -> str:
        return await asyncio.wait_for(asyncio.shield(self.outcome), timeout_s)

    async def digits(self, digits: str) -> None:
        await self.caller.rtp.send_digits(digits, self.caller.manager_port)


class Caller:
    """Calls the manager from a trunk source address (the callback leg)."""

    def __init__(self) -> None:
        self.endpoint = _endpoint("caller")
        self.registry = LegRegistry()
        self.endpoint.dialog_handler = self.registry
        self.rtp: RtpPeer
        self.media: TeMedia
        self.leg: UacLeg | None = None

    async def start(self) -> None:
        self.rtp = await RtpPeer.open(ssrc=0x1234)
        self.media = TeMedia(port=self.rtp.port)
        [self.address] = await self.endpoint.start()

    def call(self, server: Address) -> UacLeg:
        sent_by = f"{LOOPBACK}:{self.address.port}"
        self.leg = UacLeg(sip=self.endpoint, scheduler=asyncio.get_running_loop(),
                          media=self.media, addressing=LegAddressing(
                              sent_by=sent_by, contact=f"<sip:mobile@{sent_by}>"),
                          request_uri=f"sip:{DID}@{LOOPBACK}:{server.port}",
                          from_=f"<sip:+48600100200@{LOOPBACK}:{server.port}>",
                          to=f"<sip:{DID}@{LOOPBACK}:{server.port}>", destination=server,
                          registry=self.registry, t1_s=T1_S)
        self.leg.start()
        return self.leg

    @property
    def manager_port(self) -> int:
        assert self.media.answers_taken, "the call is not answered yet"
        return audio_port(self.media.answers_taken[-1])

    async def close(self) -> None:
        self.rtp.close()
        await self.endpoint.close()


def config_yaml(carrier: Phone, *, transit: bool = True, extensions: tuple[str, ...] = (),
                outside_prefix: str | None = "0", dial_format: str = "national",
                numbers: str = f'numbers: {{company_number: "{COMPANY}"}}\n') -> str:
    assert carrier.address is not None
    trunk = (f"trunks:\n  - {{name: carrier, host: {LOOPBACK}, port: {carrier.address.port}, "
             f"keepalive_s: 0, sources: [{LOOPBACK}/32], dial_format: {dial_format}"
             + (f", outside_prefix: \"{outside_prefix}\"" if outside_prefix else "") + "}\n")
    owner = f'  - {{number: "101", password: pw, transit: {str(transit).lower()}}}\n'
    others = "".join(f'  - {{number: "{number}", password: pw}}\n' for number in extensions)
    return trunk + "extensions:\n" + owner + others + numbers


@asynccontextmanager
async def disa_story(free_port_factory: Callable[[], int], params: DisaParams, *,
                     disa: Disa | None = None, phones: dict[str, Phone] | None = None,
                     carrier: Phone | None = None, values: dict[str, Any] | None = None,
                     config: Callable[[Phone], str] | None = None,
                     ) -> AsyncIterator[Story]:
    """The world with ``phones`` registered for their extensions; yields the
    story once the caller's call is answered and disa runs on it."""
    carrier = carrier or Phone("carrier")
    phones = phones or {}
    component = disa or Disa(error_tone_s=0.4, busy_tone_s=0.4)
    caller = Caller()
    await caller.start()
    recorder = Recorder()
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    make_config = config or (lambda c: config_yaml(c, extensions=tuple(phones)))
    try:
        async with world(free_port_factory, carrier, *phones.values(),
                         extra=lambda: make_config(carrier)) as manager:
            registrar = manager.registrar
            assert isinstance(registrar, StubRegistrar)
            for number, phone in phones.items():
                registrar.bindings[number] = [binding_for(number, phone)]
            story = Story(manager=manager, caller=caller, carrier=carrier, phones=phones,
                          recorder=recorder, outcome=outcome)
            flow = Flow(name="test", nodes=(FlowNode(id=params.id, type="disa", params=params,
                                                     branches=params.branches()),))

            async def on_trunk_call(call: InboundCall, trunk: Trunk) -> None:
                story.call = call
                try:
                    await call.answer()
                    context = FlowContext(
                        manager=manager, config=manager.config, flow=flow,
                        correlation_id=call.correlation_id,
                        owner=manager.config.extension("101"), call=call,
                        trunk_name=trunk.name, values=dict(values or {}), observer=recorder)
                    result = await component.run(context, params)
                except BaseException as error:
                    if not outcome.done():
                        outcome.set_exception(error)
                    raise
                if not outcome.done():
                    outcome.set_result(result)

            manager.on_trunk_call = on_trunk_call
            [server] = manager.endpoint.driver.listening
            caller.call(server)
            await until(lambda: bool(caller.media.answers_taken))
            yield story
            if caller.leg is not None and not caller.leg.ended:
                caller.leg.hangup()
            await until(lambda: outcome.done())
    finally:
        await caller.close()
        for phone in (carrier, *phones.values()):
            if phone.rtp is not None:
                phone.rtp.close()


async def until(condition: Callable[[], bool], timeout_s: float = 4.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


__all__ = ["COMPANY", "DID", "Caller", "Phone", "Recorder", "RtpPeer", "Story", "config_yaml",
           "disa_story", "dominant_hz", "until"]
