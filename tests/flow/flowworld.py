"""A real-loopback world for flow tests: a CallManager on 127.0.0.1 and
phones that are in-process SIP endpoints with a real RTP socket each.

- ``Phone``: answers every INVITE as told (``answer`` after ``delay_s``,
  ``busy``, ``ring``, ``early_busy``: 183 with SDP then 486 after
  ``delay_s``), counts the INVITEs it got, keeps every RTP packet that
  reaches its socket, and sends key presses as RFC 4733 events or SIP INFO
  to the media address our SDP gave it.
- ``world(...)``: the manager (a ``PythonMediaRelay``, a stub registrar
  whose bindings tests set, trunks when the config has some); the config
  is built once the phones listen, so it can name their ports.
- ``Recorder``: a ``FlowObserver`` that keeps what it is told.
- helpers: ``until``, ``dominant_hz``, ``sine_wav``, ``flow_of``, ``context_for``.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from boomerang.app import Endpoint
from boomerang.call.calls import OutboundCall
from boomerang.call.events import CallEnded, CallEvent, EndCause
from boomerang.call.leg import LegAddressing, LegRegistry
from boomerang.call.location import Binding
from boomerang.call.manager import CallManager, UriTarget
from boomerang.call.ports import LegView
from boomerang.call.trunks import TrunkSet
from boomerang.call.uas_leg import UasLeg
from boomerang.config import load_config_text
from boomerang.config_flows import flow_node
from boomerang.flow.component import ComponentParams
from boomerang.flow.context import FlowContext
from boomerang.flow.model import Flow
from boomerang.media.dtmf_rfc4733 import telephone_event_packets
from boomerang.media.g711 import ulaw_decode
from boomerang.media.rtp import RtpPacket, pack_rtp
from boomerang.media.tones import ToneBank
from boomerang.sip.address import Address
from boomerang.sip.auth import DigestServer
from boomerang.sip.ids import CountingIds
from boomerang.sip.message import Request
from boomerang.sip.sdp import SessionDescription
from boomerang.sip.transaction.events import TransactionKey
from boomerang.sip.transaction.layer import TimerSettings, TransactionLayer
from boomerang.transport.media_relay import PythonMediaRelay
from boomerang.transport.rtp_socket import PortAllocator

LOOPBACK = "127.0.0.1"
SIP = "sip:\n  listen: [udp:127.0.0.1:0]\n  shutdown_grace_s: 0.1\n"
# Timer B/F = 64 * T1 = 0.64 s: a call no one answers ends fast
FAST = TimerSettings(t1=0.01, t2=0.08, t4=0.04, timer_d=0.05)
T1_S = 0.01
TELEPHONE_EVENT = 101


def endpoint(name: str, extra: str = "") -> Endpoint:
    return Endpoint(load_config_text(SIP + extra, "test.yaml"),
                    challenger=DigestServer(realm="test", secret=b"k" * 32),
                    ids=CountingIds(name), layer=TransactionLayer(timers=FAST))


class RtpSocket(asyncio.DatagramProtocol):
    """The phone's RTP socket: keeps (arrival time, packet) of what arrives."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.packets: list[tuple[float, RtpPacket]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append((self.loop.time(), RtpPacket.parse(data)))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, where: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, where)


class PhoneMedia:
    """The phone's ``MediaPort``: PCMU and telephone-event on its RTP socket;
    remembers where the other side wants media (its SDP)."""

    def __init__(self, rtp: RtpSocket) -> None:
        self.rtp = rtp
        self.remote: tuple[str, int] | None = None

    def _sdp(self) -> bytes:
        port = self.rtp.port
        return (f"v=0\r\no=phone 1 1 IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\n"
                f"t=0 0\r\nm=audio {port} RTP/AVP 0 {TELEPHONE_EVENT}\r\n"
                f"a=rtpmap:0 PCMU/8000\r\na=rtpmap:{TELEPHONE_EVENT} telephone-event/8000\r\n"
                f"a=fmtp:{TELEPHONE_EVENT} 0-16\r\na=ptime:20\r\na=sendrecv\r\n").encode()

    def _take(self, sdp: bytes) -> None:
        parsed = SessionDescription.parse(sdp)
        media = parsed.media[0]
        connection = parsed.connection_of(media)
        assert connection is not None
        self.remote = (connection.address, media.port)

    def offer(self, leg: LegView, *, hold: bool = False) -> bytes:
        return self._sdp()

    def answer(self, leg: LegView, remote_offer: bytes) -> bytes:
        self._take(remote_offer)
        return self._sdp()

    def remote_answer(self, leg: LegView, sdp: bytes) -> None:
        self._take(sdp)


@dataclass
class Phone:
    """An in-process phone with real SIP and RTP sockets (see the module doc)."""

    name: str
    behaviour: str = "answer"
    delay_s: float = 0.0
    endpoint: Endpoint = field(init=False)
    legs: list[UasLeg] = field(default_factory=list)
    invites: list[Request] = field(default_factory=list)
    address: Address | None = None
    rtp: RtpSocket = field(init=False)
    media: PhoneMedia = field(init=False)
    registry: LegRegistry = field(init=False)
    _rtp_transport: asyncio.BaseTransport | None = None
    _sequence_number: int = 100
    _timestamp: int = 8000

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._rtp_transport, self.rtp = await loop.create_datagram_endpoint(
            RtpSocket, local_addr=(LOOPBACK, 0))
        self.media = PhoneMedia(self.rtp)
        self.endpoint = endpoint(self.name)
        self.registry = LegRegistry()
        self.endpoint.dialog_handler = self.registry
        self.endpoint.handlers["INVITE"] = self._invite
        [self.address] = await self.endpoint.start()

    async def close(self) -> None:
        await self.endpoint.close()
        if self._rtp_transport is not None:
            self._rtp_transport.close()

    @property
    def uri(self) -> str:
        assert self.address is not None
        return f"sip:{self.name}@127.0.0.1:{self.address.port}"

    @property
    def sip_address(self) -> Address:
        assert self.address is not None
        return Address("udp", LOOPBACK, self.address.port)

    def _invite(self, request: Request, transaction: TransactionKey, source: Address) -> None:
        assert self.address is not None
        self.invites.append(request)
        sent_by = f"127.0.0.1:{self.address.port}"
        leg = UasLeg(sip=self.endpoint, scheduler=asyncio.get_running_loop(),
                     media=self.media, addressing=LegAddressing(
                         sent_by=sent_by, contact=f"<sip:{self.name}@{sent_by}>"),
                     request=request, transaction=transaction, source=source,
                     registry=self.registry, t1_s=T1_S)
        self.legs.append(leg)
        loop = asyncio.get_running_loop()
        if self.behaviour == "busy":
            leg.ring()
            leg.reject(486)
        elif self.behaviour == "early_busy":
            leg.progress()  # 183 with our SDP: early media, not an answer
            loop.call_later(self.delay_s, lambda: None if leg.ended else leg.reject(486))
        elif self.behaviour == "answer":
            leg.ring()
            loop.call_later(self.delay_s, lambda: None if leg.ended else leg.answer())
        else:
            leg.ring()

    def hangup(self) -> None:
        self.legs[-1].hangup()

    @property
    def leg(self) -> UasLeg:
        return self.legs[-1]

    # -- media out -------------------------------------------------------------------

    async def send_digits(self, digits: str, *, gap_ms: float = 120) -> None:
        """Key presses as RFC 4733 events, on a 20 ms schedule, to our SDP's address."""
        remote = self.media.remote
        assert remote is not None, "no SDP from the other side yet"
        for digit in digits:
            for item in telephone_event_packets(digit, duration_ms=100):
                self.rtp.send(pack_rtp(payload_type=TELEPHONE_EVENT,
                                       sequence_number=self._sequence_number,
                                       timestamp=self._timestamp + item.timestamp_offset,
                                       ssrc=0x5EED, payload=item.payload,
                                       marker=item.marker), remote)
                self._sequence_number += 1
                await asyncio.sleep(0.020)
            self._timestamp += 8 * (100 + 60 + round(gap_ms))
            await asyncio.sleep(gap_ms / 1000)

    def send_audio(self, count: int = 5) -> None:
        """``count`` PCMU frames of silence (to see them relayed)."""
        remote = self.media.remote
        assert remote is not None
        for _ in range(count):
            self.rtp.send(pack_rtp(payload_type=0, sequence_number=self._sequence_number,
                                   timestamp=self._timestamp, ssrc=0xA0D10,
                                   payload=b"\xff" * 160), remote)
            self._sequence_number += 1
            self._timestamp += 160

    def send_info(self, body: bytes, content_type: str = "application/dtmf-relay") -> None:
        """A SIP INFO with ``body`` in the answered dialog of the last leg."""
        leg = self.leg
        assert leg.dialog is not None and self.address is not None
        request = leg.dialog.create_request(
            "INFO", self.endpoint.ids, sent_by=f"127.0.0.1:{self.address.port}",
            body=body, content_type=content_type)
        self.endpoint.send_request(request, leg.source, lambda event: None)

    def packets_since(self, when: float) -> list[RtpPacket]:
        return [packet for arrived, packet in self.rtp.packets if arrived >= when]


@dataclass
class StubRegistrar:
    """``contacts_for`` of a registrar with fixed bindings."""

    bindings: dict[str, list[Binding]] = field(default_factory=dict)

    def contacts_for(self, extension: str) -> list[Binding]:
        return self.bindings.get(extension, [])

    def bind(self, extension: str, phone: Phone) -> None:
        self.bindings.setdefault(extension, []).append(Binding(
            extension=extension, contact_uri=phone.uri, source=phone.sip_address,
            expires_at=1e12, registered_at=0.0, call_id=f"reg-{phone.name}", cseq=1))


def trunk_yaml(carrier: Phone, **fields: object) -> str:
    """A ``trunks:`` entry whose carrier is ``carrier`` (keep-alive off)."""
    assert carrier.address is not None
    values: dict[str, object] = {"name": "carrier", "host": "127.0.0.1",
                                 "port": carrier.address.port, "keepalive_s": 0,
                                 "sources": "[10.0.0.0/8]", "outside_prefix": '"0"'}
    values.update(fields)
    return "trunks:\n  - {" + ", ".join(f"{k}: {v}" for k, v in values.items()) + "}\n"


EXTENSIONS = """\
numbers: {country: PL, company_number: "+48221234567"}
extensions:
  - {number: "101", password: pw, name: Anna, transit: false, callback: true,
     mobiles: ["+48600100200"]}
  - {number: "102", password: pw, name: Bob}
  - {number: "103", password: pw, name: Cy, transit: true}
"""


@asynccontextmanager
async def world(free_port_factory: Callable[[], int], *phones: Phone,
                extra: Callable[[], str] | None = None) -> AsyncIterator[CallManager]:
    """The manager; ``extra()`` (called once the phones listen) is the rest
    of the config (default: ``EXTENSIONS``)."""
    for phone in phones:
        await phone.start()
    manager_endpoint = endpoint("m", extra() if extra is not None else EXTENSIONS)
    await manager_endpoint.start()
    first = free_port_factory() & ~1
    relay = PythonMediaRelay(PortAllocator(first, first + 40), no_media_timeout_s=30.0)
    config = manager_endpoint.config
    trunks = TrunkSet(config, manager_endpoint) if config.trunks else None
    manager = CallManager(manager_endpoint, config, registrar=StubRegistrar(),  # type: ignore[arg-type]
                          trunks=trunks, relay=relay, tone_bank=ToneBank(), t1_s=T1_S)
    manager.install()
    try:
        yield manager
    finally:
        await manager.close()
        if trunks is not None:
            await trunks.close()
        await relay.close()
        for phone in phones:
            await phone.close()
        await manager_endpoint.close()


def registrar_of(manager: CallManager) -> StubRegistrar:
    registrar = manager.registrar
    assert isinstance(registrar, StubRegistrar)
    return registrar


async def answered_call(manager: CallManager, phone: Phone, *,
                        correlation_id: str = "story-1",
                        owner_extension: str | None = None) -> OutboundCall:
    """An outbound call to ``phone``, answered (the leg a flow runs on)."""
    call = await manager.originate(UriTarget(phone.uri, phone.sip_address),
                                   caller_id="+48221234567", ring_timeout_s=5,
                                   correlation_id=correlation_id,
                                   owner_extension=owner_extension)
    cause = await asyncio.wait_for(call.outcome(), 3)
    assert cause.outcome == "answered", cause
    return call


@dataclass
class Recorder:
    """A ``FlowObserver`` keeping what it is told, in order."""

    entered: list[str] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)
    tones: list[tuple[str, bool]] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    context: FlowContext | None = None

    def node_entered(self, context: FlowContext, node_id: str, node_type: str) -> None:
        self.context = context
        self.entered.append(node_id)

    def node_left(self, context: FlowContext, node_id: str, outcome: str) -> None:
        self.left.append((node_id, outcome))

    def digit(self, context: FlowContext, call_id: str, digit: str, source: str) -> None:
        self.digits.append(digit)

    def tone(self, context: FlowContext, call_id: str, name: str, playing: bool) -> None:
        self.tones.append((name, playing))

    def note(self, context: FlowContext, text: str) -> None:
        self.notes.append(text)


class EventLog:
    """A call listener keeping every call-control event."""

    def __init__(self) -> None:
        self.events: list[CallEvent] = []

    def __call__(self, event: CallEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    @property
    def cause(self) -> EndCause | None:
        ended = self.of(CallEnded)
        return ended[-1].cause if ended else None


def flow_of(name: str, *params: ComponentParams) -> Flow:
    return Flow(name=name, nodes=tuple(flow_node(p) for p in params))


def context_for(manager: CallManager, flow: Flow, call: OutboundCall, *,
                owner: str | None = "101", observer: Recorder | None = None,
                trunk_name: str | None = None, values: dict[str, Any] | None = None
                ) -> FlowContext:
    config = manager.config
    return FlowContext(manager=manager, config=config, flow=flow,
                       correlation_id=call.correlation_id,
                       owner=config.extension(owner) if owner is not None else None,
                       call=call, trunk_name=trunk_name, values=dict(values or {}),
                       observer=observer or Recorder())


async def until(condition: Callable[[], bool], timeout_s: float = 4.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.01)


def dominant_hz(packets: list[RtpPacket], rate: int = 8000) -> float:
    samples = np.concatenate([ulaw_decode(p.payload) for p in packets]).astype(float)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def sine_wav(path: Path, *, frequency_hz: float, duration_s: float, rate: int = 16000) -> Path:
    """A mono 16-bit WAV of one sine (a prompt whose pitch a test can check)."""
    t = np.arange(int(rate * duration_s)) / rate
    samples = (8000 * np.sin(2 * np.pi * frequency_hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return path
