"""Trunks: registration, back-off, keep-alive, inbound checks and outbound shaping.

A real Endpoint on 127.0.0.1 (fast transaction timers) talks over UDP to a
tiny fake carrier: a datagram socket that answers each request with a
scripted function. Back-off and refresh delays are read from an injected
``sleep`` that records the delay asked for and waits a scaled-down time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from boomerang.app import Endpoint
from boomerang.call.numbers import NumberError
from boomerang.call.trunk_shaping import (
    ANONYMOUS_FROM,
    build_outbound_invite_headers,
    dial_string,
    did_of,
)
from boomerang.call.trunks import (
    Trunk,
    TrunkEvent,
    TrunkSet,
    TrunkWentDown,
    TrunkWentUp,
    backoff_delay_s,
)
from boomerang.config import Config, TrunkSettings, load_config_text
from boomerang.sip.address import Address
from boomerang.sip.auth import DigestServer
from boomerang.sip.headers import parse_name_addr
from boomerang.sip.ids import CountingIds
from boomerang.sip.message import Request, make_response
from boomerang.sip.parser import parse_message
from boomerang.sip.transaction.layer import TimerSettings, TransactionLayer
from boomerang.transport.dns import Target

LOOPBACK = "127.0.0.1"
# Timer F = 64 * T1 = 0.64 s: an unanswered OPTIONS fails fast.
TIMERS = TimerSettings(t1=0.01, t2=0.08, t4=0.05, timer_d=0.2)
PASSWORDS = {"trunkuser": "trunkpw"}
Answer = list[tuple[int, tuple[tuple[str, str], ...]]]


# -- the fake carrier ----------------------------------------------------------------------


class FakeCarrier(asyncio.DatagramProtocol):
    """Answers each request with ``answer(request)``; records what arrived."""

    def __init__(self, answer: Callable[[Request], Answer]) -> None:
        self.answer = answer
        self.requests: list[tuple[float, Request]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        if not isinstance(message, Request):
            return
        self.requests.append((asyncio.get_running_loop().time(), message))
        for status, headers in self.answer(message):
            response = make_response(message, status, to_tag="carrier", headers=headers)
            assert self.transport is not None
            self.transport.sendto(response.serialize(), addr)

    def methods(self, method: str) -> list[Request]:
        return [r for _, r in self.requests if r.method == method]

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                seen = [(r.method, r.headers.get("Expires")) for _, r in self.requests]
                raise AssertionError(f"condition not met in {timeout_s} s; got {seen}")
            await asyncio.sleep(0.01)


@asynccontextmanager
async def carrier(answer: Callable[[Request], Answer]) -> AsyncIterator[FakeCarrier]:
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: FakeCarrier(answer), local_addr=(LOOPBACK, 0))
    try:
        yield protocol
    finally:
        transport.close()


def registrar(grant_s: int = 3600, passwords: dict[str, str] = PASSWORDS
              ) -> Callable[[Request], Answer]:
    """A digest-checking registrar (MD5, qop=auth) that grants ``grant_s``."""
    server = DigestServer(realm="carrier.example", secret=b"r" * 32, algorithms=("MD5",))

    def answer(request: Request) -> Answer:
        if request.method != "REGISTER":
            return [(200, ())]
        result = server.verify(request, passwords.get, time.time())
        if not result.ok:
            return [(401, tuple(("WWW-Authenticate", c) for c in server.challenge(time.time())))]
        if request.headers.get("Expires") == "0":
            return [(200, ())]
        contact = request.headers.get("Contact")
        return [(200, (("Contact", f"{contact};expires={grant_s}"),))]

    return answer


def always(status: int) -> Callable[[Request], Answer]:
    return lambda request: [(status, ())]


@dataclass
class RecordingSleep:
    """Records each delay asked for and waits ``scale`` times as long."""

    scale: float
    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)
        await asyncio.sleep(delay_s * self.scale)


# -- endpoint and trunk set ---------------------------------------------------------------


def trunk_yaml(port: int, **fields: object) -> str:
    values: dict[str, object] = {
        "name": "carrier", "host": LOOPBACK, "port": port, "username": "trunkuser",
        "password": "trunkpw", "register": "false", "keepalive_s": 0,
        "sources": "[10.0.0.0/8]",
    }
    values.update(fields)
    body = "\n".join(f"    {key}: {value}" for key, value in values.items())
    return f"sip:\n  listen: [udp:127.0.0.1:0]\ntrunks:\n  - {body.lstrip()}\n"


def make_config(port: int, **fields: object) -> Config:
    return load_config_text(trunk_yaml(port, **fields), "test.yaml")


def make_endpoint(config: Config) -> Endpoint:
    return Endpoint(config, challenger=DigestServer(realm="us", secret=b"k" * 32),
                    ids=CountingIds("b"), layer=TransactionLayer(timers=TIMERS))


@asynccontextmanager
async def trunk_set(config: Config, **options: object) -> AsyncIterator[TrunkSet]:
    endpoint = make_endpoint(config)
    await endpoint.start()
    trunks = TrunkSet(config, endpoint, **options)  # type: ignore[arg-type]
    trunks.install()
    trunks.start()
    try:
        yield trunks
    finally:
        await trunks.close()
        await endpoint.close()


# -- registration -------------------------------------------------------------------------


async def test_registration_answers_401_then_registers_and_refreshes_at_90_percent() -> None:
    sleep = RecordingSleep(scale=0.3 / 3240)  # the 3240 s refresh waits 0.3 s
    async with carrier(registrar(grant_s=3600)) as far:
        config = make_config(far.port, register="true", register_expires_s=7200)
        async with trunk_set(config, sleep=sleep) as trunks:
            trunk = trunks.trunk("carrier")
            assert trunk.state == "registering"
            # 401, 200, then the refresh: 401, 200
            await far.wait_for(lambda: len(far.methods("REGISTER")) >= 4)
            await far.wait_for(lambda: len(sleep.delays) >= 2)
            status = trunk.status()
            assert status.state == "registered"
            assert status.registered_expires_s == 3600  # granted, not the 7200 asked
            assert status.last_error is None
    first, second = far.methods("REGISTER")[:2]
    assert first.headers.get("Authorization") is None
    assert "Digest" in (second.headers.get("Authorization") or "")
    assert second.call_id == first.call_id and second.cseq.number == first.cseq.number + 1
    assert first.headers.get("Expires") == "7200"
    assert sleep.delays[:2] == [pytest.approx(3240.0), pytest.approx(3240.0)]
    # the refresh keeps the Call-ID (RFC 3261 §10.2) and raises CSeq
    refresh = far.methods("REGISTER")[2]
    assert refresh.call_id == first.call_id and refresh.cseq.number > second.cseq.number


async def test_refusals_back_off_exponentially_with_the_injected_jitter() -> None:
    sleep = RecordingSleep(scale=0.01)
    async with carrier(always(403)) as far:
        config = make_config(far.port, register="true")
        async with trunk_set(config, sleep=sleep, retry_base_s=2.0, retry_max_s=8.0,
                             random_draw=lambda: 0.5) as trunks:
            await far.wait_for(lambda: len(sleep.delays) >= 5)
            status = trunks.trunk("carrier").status()
    # 2, 4, 8, 8, 8 seconds, each shortened by 0.2 * 0.5 = 10 %
    assert sleep.delays[:5] == pytest.approx([1.8, 3.6, 7.2, 7.2, 7.2])
    assert status.state == "failed"
    assert status.registration_failures >= 5
    assert status.last_error == "403 Forbidden"


def test_default_back_off_runs_from_30_s_doubling_to_30_min() -> None:
    delays = [backoff_delay_s(n, base_s=30, max_s=1800, jitter_draw=0.0) for n in range(1, 9)]
    assert delays == [30, 60, 120, 240, 480, 960, 1800, 1800]
    assert backoff_delay_s(1, base_s=30, max_s=1800, jitter_draw=0.999) == pytest.approx(24.006)


async def test_a_wrong_password_is_sent_once_per_attempt_not_in_a_loop() -> None:
    sleep = RecordingSleep(scale=1.0)  # the first back-off (~30 s) outlasts the test
    async with carrier(registrar(passwords={"trunkuser": "other"})) as far:
        config = make_config(far.port, register="true")
        async with trunk_set(config, sleep=sleep) as trunks:
            await far.wait_for(lambda: len(sleep.delays) >= 1)
            status = trunks.trunk("carrier").status()
            registers_in_first_attempt = len(far.methods("REGISTER"))
    assert registers_in_first_attempt == 2  # without, then with credentials; then give up
    assert status.state == "failed"
    assert status.last_error is not None and status.last_error.startswith("401")
    assert "trunkpw" not in status.last_error


async def test_close_unregisters_with_expires_0() -> None:
    async with carrier(registrar()) as far:
        config = make_config(far.port, register="true")
        async with trunk_set(config) as trunks:
            trunk = trunks.trunk("carrier")
            await far.wait_for(lambda: trunk.state == "registered")
        registers = far.methods("REGISTER")
    assert registers[-1].headers.get("Expires") == "0"
    assert registers[-1].call_id == registers[0].call_id
    assert trunk.registration is None


async def test_a_name_is_located_and_looked_up_again_after_a_failure() -> None:
    class StubLocator:
        def __init__(self, port: int) -> None:
            self.port = port
            self.calls: list[tuple[str, int | None, str | None]] = []

        async def locate(self, host: str, *, port: int | None, transport: str | None,
                         sips: bool = False) -> list[Target]:
            self.calls.append((host, port, transport))
            return [Target("udp", LOOPBACK, self.port)]

    sleep = RecordingSleep(scale=0.0)
    async with carrier(lambda request: []) as far:  # silent: every REGISTER times out
        locator = StubLocator(far.port)
        config = load_config_text(trunk_yaml(0, host="carrier.example", register="true")
                                  .replace("    port: 0\n", ""), "test.yaml")
        async with trunk_set(config, sleep=sleep, locator=locator) as trunks:
            await far.wait_for(lambda: len(sleep.delays) >= 2)
            status = trunks.trunk("carrier").status()
    assert locator.calls[:2] == [("carrier.example", None, None)] * 2
    assert far.methods("REGISTER")[0].uri == "sip:carrier.example"
    assert status.state == "down"  # two registrations unanswered in a row
    assert status.last_error is not None and "no answer" in status.last_error


# -- keep-alive ---------------------------------------------------------------------------


async def test_keepalive_goes_up_then_down_after_two_failures_then_up_again() -> None:
    events: list[TrunkEvent] = []
    answering = True

    def answer(request: Request) -> Answer:
        return [(200, ())] if answering else []

    async with carrier(answer) as far:
        config = make_config(far.port, keepalive_s=0.05, register="false")
        async with trunk_set(config, on_event=events.append) as trunks:
            trunk = trunks.trunk("carrier")
            assert trunk.state == "down"  # nothing answered yet
            await far.wait_for(lambda: trunk.state == "up")
            answering = False
            await far.wait_for(lambda: trunk.state == "down", timeout_s=5)
            assert trunk.status().reachable is False
            answering = True
            await far.wait_for(lambda: trunk.state == "up", timeout_s=5)
    assert [type(e) for e in events] == [TrunkWentUp, TrunkWentDown, TrunkWentUp]
    assert all(e.trunk == "carrier" for e in events)
    down = events[1]
    assert isinstance(down, TrunkWentDown) and "no answer" in down.reason
    assert events[0].time < down.time < events[2].time
    options = far.methods("OPTIONS")
    assert options[0].uri == f"sip:{LOOPBACK}:{far.port}"


async def test_one_missed_keepalive_does_not_take_the_trunk_down() -> None:
    events: list[TrunkEvent] = []

    def answer(request: Request) -> Answer:
        # the 2nd probe (all its retransmissions) goes unanswered, the rest are answered
        probes = {r.call_id for _, r in far.requests}
        return [] if len(probes) == 2 else [(200, ())]

    async with carrier(answer) as far:
        config = make_config(far.port, keepalive_s=0.05)
        async with trunk_set(config, on_event=events.append) as trunks:
            await far.wait_for(lambda: len({r.call_id for _, r in far.requests}) >= 4)
            assert trunks.trunk("carrier").state == "up"
    assert [type(e) for e in events] == [TrunkWentUp]


# -- inbound ------------------------------------------------------------------------------


async def test_sources_admit_their_networks_and_the_registrar_refuses_the_rest() -> None:
    async with carrier(registrar()) as far:
        config = make_config(far.port, register="true", sources="[10.0.0.0/8, 2001:db8::/32]")
        async with trunk_set(config) as trunks:
            trunk = trunks.trunk("carrier")
            await far.wait_for(lambda: trunk.state == "registered")
            assert trunks.trunk_for_source(Address("udp", "10.1.2.3", 5060)) is trunk
            assert trunks.trunk_for_source(Address("tcp", "2001:db8::7", 5060)) is trunk
            # where the registration goes counts as a source too (any port)
            assert trunks.trunk_for_source(Address("udp", LOOPBACK, 5999)) is trunk
            assert trunks.trunk_for_source(Address("udp", "::ffff:10.0.0.1", 5060)) is trunk
            assert trunks.trunk_for_source(Address("udp", "192.0.2.7", 5060)) is None
            assert trunks.trunk_for_source(Address("udp", "11.0.0.1", 5060)) is None
            assert trunks.refused_counts == {"unknown_source": 2}


async def test_a_trunk_that_does_not_register_admits_only_its_sources() -> None:
    config = make_config(5060, sources="[10.0.0.0/8]")
    async with trunk_set(config) as trunks:
        assert trunks.trunk_for_source(Address("udp", LOOPBACK, 5060)) is None


@pytest.mark.parametrize(("sources", "status"), [("[10.0.0.0/8]", 403), ("[127.0.0.1/32]", 404)])
async def test_an_invite_from_outside_every_trunk_gets_403(sources: str, status: int) -> None:
    from test_endpoint import peer

    config = make_config(5060, sources=sources)
    async with trunk_set(config) as trunks:
        bound = {a.transport: a for a in trunks.endpoint.driver.listening}  # type: ignore[union-attr]
        async with peer(bound, "udp") as client:
            client.request("INVITE")
            answers = [(await client.response()).status, (await client.response()).status]
    assert answers == [100, status]
    assert trunks.refused_counts.get("unknown_source", 0) == (1 if status == 403 else 0)


def _request(uri: str, to: str) -> Request:
    text = (f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-d\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:+48600100200@10.0.0.1>;tag=f\r\nTo: {to}\r\n"
            "Call-ID: did-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def settings(**fields: object) -> TrunkSettings:
    values: dict[str, object] = {"name": "carrier", "host": "carrier.example",
                                 "sources": ["10.0.0.0/8"]}
    values.update(fields)
    return TrunkSettings.model_validate(values)


@pytest.mark.parametrize(("uri", "to", "did_from", "expected"), [
    ("sip:+48221234567@10.0.0.2", "<sip:x@10.0.0.2>", "request_uri", "+48221234567"),
    ("sip:221234567@10.0.0.2;user=phone", "<sip:x@10.0.0.2>", "request_uri", "+48221234567"),
    ("sip:0048221234567@10.0.0.2", "<sip:x@10.0.0.2>", "request_uri", "+48221234567"),
    ("tel:+48-22-123-45-67", "<sip:x@10.0.0.2>", "request_uri", "+48221234567"),
    ("sip:trunkuser@10.0.0.2", "<tel:+48-22-123-45-67>", "to", "+48221234567"),
    ("sip:trunkuser@10.0.0.2", '"DID" <sip:(22)%20123-45-67@carrier>', "to", "+48221234567"),
    ("sip:100@10.0.0.2", "<sip:x@10.0.0.2>", "request_uri", "100"),
], ids=["e164-ruri", "national-ruri", "00-ruri", "tel-ruri", "tel-to", "separators-to",
        "short-number-kept"])
def test_did_comes_from_the_request_uri_or_the_to_user(uri: str, to: str, did_from: str,
                                                        expected: str) -> None:
    assert did_of(_request(uri, to), settings(did_from=did_from, country="PL")) == expected


# -- outbound shaping -----------------------------------------------------------------------


@pytest.mark.parametrize(("dial_format", "prefix", "number", "expected"), [
    ("e164", None, "+48600100200", "+48600100200"),
    ("national", None, "+48600100200", "600100200"),
    ("international", None, "+48600100200", "0048600100200"),
    ("national", None, "+442079460000", "00442079460000"),  # foreign: international
    # the outside prefix is what extensions dial; the carrier never gets it
    ("national", "0", "+48600100200", "600100200"),
    ("international", "9", "+48600100200", "0048600100200"),
    ("e164", "0", "+48600100200", "+48600100200"),
])
def test_dial_formats(dial_format: str, prefix: str | None, number: str, expected: str) -> None:
    trunk = settings(dial_format=dial_format, outside_prefix=prefix, country="PL")
    assert dial_string(number, trunk) == expected


def test_the_request_uri_carries_the_dialled_number_port_and_transport() -> None:
    trunk = settings(port=5070, transport="tcp", dial_format="national")
    request_uri, _, _ = build_outbound_invite_headers(
        trunk, dialled_e164="+48600100200", caller_id_e164="+48221234567")
    assert request_uri == "sip:600100200@carrier.example:5070;transport=tcp"


def test_a_number_not_in_e164_is_refused_with_a_status() -> None:
    with pytest.raises(NumberError) as error:
        build_outbound_invite_headers(settings(dial_format="national"),
                                      dialled_e164="600100200", caller_id_e164="+48221234567")
    assert error.value.sip_status == 484
    with pytest.raises(NumberError):
        build_outbound_invite_headers(settings(), dialled_e164="+48600100200",
                                      caller_id_e164="221234567")


@pytest.mark.parametrize(("header", "privacy", "from_header", "extra"), [
    ("from", False, '"Anna K" <sip:+48221234567@carrier.example>', ()),
    ("pai", False, '"Anna K" <sip:+48221234567@carrier.example>',
     (("P-Asserted-Identity", '"Anna K" <sip:+48221234567@carrier.example>'),)),
    ("rpid", False, '"Anna K" <sip:+48221234567@carrier.example>',
     (("Remote-Party-ID",
       '"Anna K" <sip:+48221234567@carrier.example>;party=calling;screen=yes;privacy=off'),)),
    ("pai", True, ANONYMOUS_FROM,
     (("P-Asserted-Identity", '"Anna K" <sip:+48221234567@carrier.example>'),
      ("Privacy", "id"))),
    ("rpid", True, ANONYMOUS_FROM,
     (("Remote-Party-ID",
       '"Anna K" <sip:+48221234567@carrier.example>;party=calling;screen=yes;privacy=full'),
      ("Privacy", "id"))),
    ("from", True, ANONYMOUS_FROM, (("Privacy", "id"),)),
], ids=["from", "pai", "rpid", "pai-privacy", "rpid-privacy", "from-privacy"])
def test_caller_id_headers_and_privacy(header: str, privacy: bool, from_header: str,
                                       extra: tuple[tuple[str, str], ...]) -> None:
    _, got_from, headers = build_outbound_invite_headers(
        settings(caller_id_header=header), dialled_e164="+48600100200",
        caller_id_e164="+48 22 123 45 67", privacy=privacy, display_name="Anna K")
    assert got_from == from_header
    assert headers == extra
    for _, value in (("From", got_from), *headers):
        if value != "id":
            parse_name_addr(value)  # each is a well-formed name-addr


async def test_channels_are_limited_by_max_channels() -> None:
    config = make_config(5060, max_channels=2)
    async with trunk_set(config) as trunks:
        trunk: Trunk = trunks.trunk("carrier")
        assert [trunk.acquire_channel() for _ in range(3)] == [True, True, False]
        assert trunks.refused_counts == {"channel_limit": 1}
        assert trunk.status().channels_in_use == 2
        trunk.release_channel()
        assert trunk.acquire_channel() is True
        for _ in range(5):
            trunk.release_channel()
        assert trunk.channels_in_use == 0


async def test_zero_max_channels_means_unlimited() -> None:
    config = make_config(5060, max_channels=0)
    async with trunk_set(config) as trunks:
        trunk = trunks.trunk("carrier")
        assert all(trunk.acquire_channel() for _ in range(500))
        assert trunks.refused_counts == {}
