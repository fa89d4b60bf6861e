"""The registrar and location service over real UDP sockets on 127.0.0.1.

An Endpoint (real TransactionLayer with fast timers, real DigestServer) runs
a Registrar; a small stub phone sends REGISTER requests, answers the
registrar's digest challenge with ``DigestClient``, and answers (or ignores)
the keep-alive OPTIONS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from boomerang.app import Endpoint
from boomerang.call.location import Binding
from boomerang.call.registrar import ContactUnregistered, Registrar, RegistrarEvent
from boomerang.config import load_config_text
from boomerang.sip.address import Address
from boomerang.sip.auth import DigestClient, DigestServer, parse_challenge
from boomerang.sip.ids import CountingIds
from boomerang.sip.message import Request, Response, make_response
from boomerang.sip.parser import parse_message
from boomerang.sip.transaction.layer import TimerSettings, TransactionLayer
from boomerang.store import Store, open_store

LOOPBACK = "127.0.0.1"
REALM = "test.example"
STEP_S = 2.0
# Timer F = 64 * T1 = 0.64 s: an unanswered keep-alive fails fast
FAST_TIMERS = TimerSettings(t1=0.01, t2=0.08, t4=0.04, timer_d=0.2)
CONFIG = "sip:\n  listen: [udp:127.0.0.1:0]\n  shutdown_grace_s: 0.2\n"


EXTENSIONS = """\
extensions:
  - {number: "101", password: secret101}
  - {number: "102", password: secret102, max_contacts: 2}
  - {number: "103", password: null}
"""


@dataclass(frozen=True, slots=True)
class Settings:
    """The ``registrar`` section of the test config."""

    min_expires_s: int = 60
    max_expires_s: int = 3600
    default_expires_s: int = 3600
    keepalive_s: float = 0.0
    keepalive_failures: int = 3

    def yaml(self) -> str:
        return ("registrar: {" + ", ".join(
            f"{name}: {getattr(self, name)}" for name in self.__slots__) + "}\n")


def make_endpoint(settings: Settings) -> Endpoint:
    config = load_config_text(CONFIG + EXTENSIONS + settings.yaml(), "test.yaml")
    return Endpoint(config, challenger=DigestServer(realm=REALM, secret=b"k" * 32,
                                                    algorithms=("MD5",)),
                    ids=CountingIds("r"), layer=TransactionLayer(timers=FAST_TIMERS))


@dataclass
class Harness:
    endpoint: Endpoint
    registrar: Registrar
    address: Address
    events: list[RegistrarEvent] = field(default_factory=list)


@asynccontextmanager
async def running(settings: Settings | None = None, store: Store | None = None,
                  wall_clock: Callable[[], float] | None = None) -> AsyncIterator[Harness]:
    endpoint = make_endpoint(settings or Settings())
    events: list[RegistrarEvent] = []
    registrar = Registrar.for_config(endpoint, store=store, on_event=events.append,
                                     wall_clock=wall_clock or time.time)
    bound = await endpoint.start()
    await registrar.start()
    try:
        yield Harness(endpoint, registrar, bound[0], events)
    finally:
        await registrar.close()
        await endpoint.close()


class Phone(asyncio.DatagramProtocol):
    """A SIP phone stub on one UDP socket."""

    def __init__(self, user: str, password: str, *, answer_options: bool = True) -> None:
        self.user = user
        self.client = DigestClient(username=user, password=password)
        self.answer_options = answer_options
        self.responses: asyncio.Queue[Response] = asyncio.Queue()
        self.options: list[Request] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.target = Address("udp", LOOPBACK, 0)
        self.cseq = 0
        self.call_id = f"reg-{user}@phone"
        self._branch = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        if isinstance(message, Response):
            self.responses.put_nowait(message)
        elif message.method == "OPTIONS":
            self.options.append(message)
            if self.answer_options and self.transport is not None:
                self.transport.sendto(bytes(make_response(message, 200, to_tag="ph")), addr)

    async def open(self, target: Address) -> Phone:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(LOOPBACK, 0))
        self.port = self.transport.get_extra_info("sockname")[1]
        self.target = target
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def contact(self) -> str:
        return f"<sip:{self.user}@{LOOPBACK}:{self.port}>"

    def send_register(self, *, contacts: tuple[str, ...] | None = None,
                      expires: int | None = None, to_user: str | None = None,
                      authorization: str | None = None, cseq: int | None = None,
                      extra: tuple[tuple[str, str], ...] = ()) -> Request:
        self._branch += 1
        self.cseq = cseq if cseq is not None else self.cseq + 1
        to = f"<sip:{to_user or self.user}@{REALM}>"
        headers = [
            ("Via", f"SIP/2.0/UDP {LOOPBACK}:{self.port};branch=z9hG4bK-{self.user}-"
                    f"{self._branch};rport"),
            ("Max-Forwards", "70"), ("From", f"{to};tag=ph-{self.user}"), ("To", to),
            ("Call-ID", self.call_id), ("CSeq", f"{self.cseq} REGISTER"),
            *(("Contact", c) for c in (self.contact,) if contacts is None),
            *(("Contact", c) for c in contacts or ()),
            *((("Expires", str(expires)),) if expires is not None else ()),
            *((("Authorization", authorization),) if authorization else ()),
            ("User-Agent", "stub-phone"),
            *extra,
        ]
        request = Request("REGISTER", f"sip:{REALM}", headers)
        assert self.transport is not None
        self.transport.sendto(bytes(request), (self.target.host, self.target.port))
        return request

    async def response(self) -> Response:
        return await asyncio.wait_for(self.responses.get(), STEP_S)

    async def register(self, **kwargs: object) -> Response:
        """REGISTER, take the 401, answer the challenge; the final response."""
        self.send_register(**kwargs)  # type: ignore[arg-type]
        challenged = await self.response()
        if challenged.status != 401:
            return challenged
        challenge = parse_challenge(challenged.headers.get("WWW-Authenticate") or "")
        authorization = self.client.authorize(challenge, "REGISTER", f"sip:{REALM}",
                                              cnonce=f"cn{self.cseq}")
        self.send_register(authorization=authorization, **kwargs)  # type: ignore[arg-type]
        return await self.response()


@asynccontextmanager
async def phone(harness: Harness, user: str, password: str, *,
                answer_options: bool = True) -> AsyncIterator[Phone]:
    stub = await Phone(user, password, answer_options=answer_options).open(harness.address)
    try:
        yield stub
    finally:
        stub.close()


def contact_expires(response: Response) -> dict[str, int]:
    """Contact URI -> expires of a 200."""
    out: dict[str, int] = {}
    for contact in response.contacts:
        expires = contact.expires
        assert expires is not None
        out[str(contact.uri)] = expires
    return out


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


# -- authentication and authorisation --------------------------------------------------


async def test_a_challenged_register_is_answered_200_with_the_binding() -> None:
    async with running() as harness, phone(harness, "101", "secret101") as ph:
        ph.send_register()
        challenged = await ph.response()
        assert challenged.status == 401
        assert "nonce=" in (challenged.headers.get("WWW-Authenticate") or "")
        assert not harness.registrar.is_registered("101")
        challenge = parse_challenge(challenged.headers.get("WWW-Authenticate") or "")
        ok_auth = ph.client.authorize(challenge, "REGISTER", f"sip:{REALM}", cnonce="c1")
        ph.send_register(authorization=ok_auth)
        ok = await ph.response()
    assert ok.status == 200
    assert contact_expires(ok) == {f"sip:101@{LOOPBACK}:{ph.port}": 3600}
    assert ok.headers.get("Date")
    [binding] = harness.registrar.contacts_for("101")
    assert binding.contact_uri == f"sip:101@{LOOPBACK}:{ph.port}"
    assert binding.destination == Address("udp", LOOPBACK, ph.port)
    assert binding.user_agent == "stub-phone"


async def test_a_wrong_password_gets_401_again_and_no_binding() -> None:
    async with running() as harness, phone(harness, "101", "wrong") as ph:
        response = await ph.register()
    assert response.status == 401
    assert "nonce=" in (response.headers.get("WWW-Authenticate") or "")
    assert not harness.registrar.is_registered("101")


def _shape(response: Response) -> tuple[int, tuple[str, ...], str]:
    challenge = parse_challenge(response.headers.get("WWW-Authenticate") or "")
    return response.status, tuple(sorted(p.name for p in challenge.params)), challenge.realm


async def test_an_unknown_user_gets_the_same_401_as_a_known_one() -> None:
    async with running() as harness, phone(harness, "999", "guess") as unknown, \
            phone(harness, "101", "guess") as known, \
            phone(harness, "103", "guess") as no_password:
        answers = [await p.register() for p in (unknown, known, no_password)]
    assert {_shape(r) for r in answers} == {(401, _shape(answers[0])[1], REALM)}
    header_names = {tuple(sorted(name for name, _ in r.headers)) for r in answers}
    assert len(header_names) == 1, header_names


async def test_a_stale_nonce_gets_401_with_stale_true() -> None:
    wall = [1_000_000.0]
    async with running(wall_clock=lambda: wall[0]) as harness, \
            phone(harness, "101", "secret101") as ph:
        ph.send_register()
        challenged = await ph.response()
        challenge = parse_challenge(challenged.headers.get("WWW-Authenticate") or "")
        wall[0] += 3600  # far past the nonce lifetime
        ph.send_register(authorization=ph.client.authorize(
            challenge, "REGISTER", f"sip:{REALM}", cnonce="c1"))
        stale = await ph.response()
    assert stale.status == 401
    assert parse_challenge(stale.headers.get("WWW-Authenticate") or "").stale


async def test_registering_another_users_address_is_403() -> None:
    async with running() as harness, phone(harness, "101", "secret101") as ph:
        response = await ph.register(to_user="102")
    assert response.status == 403
    assert not harness.registrar.is_registered("102")
    assert not harness.registrar.is_registered("101")


# -- expiry -----------------------------------------------------------------------------


async def test_an_expiry_below_the_minimum_is_423_with_min_expires() -> None:
    async with running() as harness, phone(harness, "101", "secret101") as ph:
        response = await ph.register(expires=30)
    assert response.status == 423
    assert response.headers.get("Min-Expires") == "60"
    assert not harness.registrar.is_registered("101")


async def test_an_expiry_above_the_maximum_is_lowered_to_it() -> None:
    async with running(Settings(max_expires_s=600, default_expires_s=600)) as harness, \
            phone(harness, "101", "secret101") as ph:
        response = await ph.register(
            contacts=(f"<sip:101@{LOOPBACK}:{ph.port}>;expires=7200",))
    assert response.status == 200
    assert list(contact_expires(response).values()) == [600]
    [binding] = harness.registrar.contacts_for("101")
    assert 599 <= binding.expires_at - binding.registered_at <= 600


async def test_expires_zero_removes_that_binding_only() -> None:
    async with running() as harness, phone(harness, "101", "secret101") as ph:
        first, second = (f"<sip:101@{LOOPBACK}:{ph.port}>",
                         f"<sip:101@{LOOPBACK}:{ph.port};transport=udp;line=2>")
        assert (await ph.register(contacts=(first, second))).status == 200
        assert len(harness.registrar.contacts_for("101")) == 2
        response = await ph.register(contacts=(first,), expires=0)
    assert response.status == 200
    assert list(contact_expires(response)) == [second[1:-1]]
    assert [b.contact_uri for b in harness.registrar.contacts_for("101")] == [second[1:-1]]
    removed = [e for e in harness.events if isinstance(e, ContactUnregistered)]
    assert [(e.binding.contact_uri, e.reason) for e in removed] == [(first[1:-1],
                                                                     "unregistered")]


async def test_contact_star_with_expires_zero_removes_every_binding() -> None:
    async with running() as harness, phone(harness, "101", "secret101") as ph:
        await ph.register(contacts=(ph.contact, f"<sip:101@{LOOPBACK}:{ph.port};line=2>"))
        assert len(harness.registrar.contacts_for("101")) == 2
        response = await ph.register(contacts=("*",), expires=0)
    assert response.status == 200
    assert response.contacts == []
    assert not harness.registrar.is_registered("101")


async def test_contact_star_with_a_nonzero_expires_is_400() -> None:
    async with running() as harness, phone(harness, "101", "secret101") as ph:
        await ph.register()
        response = await ph.register(contacts=("*",), expires=60)
    assert response.status == 400
    assert harness.registrar.is_registered("101")


# -- several contacts, limits and ordering ---------------------------------------------


async def test_a_200_lists_every_binding_of_the_extension() -> None:
    async with running() as harness, phone(harness, "101", "secret101") as desk, \
            phone(harness, "101", "secret101") as soft:
        soft.call_id = "other-call@soft"
        assert (await desk.register(expires=300)).status == 200
        response = await soft.register(
            contacts=(f"<sip:101@{LOOPBACK}:{soft.port}>;q=0.5",), expires=600)
    assert response.status == 200
    listed = contact_expires(response)
    assert listed == {f"sip:101@{LOOPBACK}:{desk.port}": pytest.approx(300, abs=1),
                      f"sip:101@{LOOPBACK}:{soft.port}": 600}
    # q orders the location service: the desk phone (q absent = 1.0) first
    assert [b.source.port for b in harness.registrar.contacts_for("101")] == [desk.port,
                                                                              soft.port]


async def test_past_max_contacts_the_least_recently_refreshed_binding_is_replaced() -> None:
    async with running() as harness, phone(harness, "102", "secret102") as ph:  # max 2
        for line in (1, 2, 3):
            uri = f"<sip:102@{LOOPBACK}:{ph.port};line={line}>"
            assert (await ph.register(contacts=(uri,))).status == 200
        too_many = await ph.register(contacts=tuple(
            f"<sip:102@{LOOPBACK}:{ph.port};line={n}>" for n in (4, 5, 6)))
    assert too_many.status == 403
    assert sorted(b.contact_uri for b in harness.registrar.contacts_for("102")) == [
        f"sip:102@{LOOPBACK}:{ph.port};line=2", f"sip:102@{LOOPBACK}:{ph.port};line=3"]
    replaced = [e.binding.contact_uri for e in harness.events
                if isinstance(e, ContactUnregistered) and e.reason == "replaced"]
    assert replaced == [f"sip:102@{LOOPBACK}:{ph.port};line=1"]


async def test_an_older_cseq_for_the_same_call_id_is_refused_and_changes_nothing() -> None:
    async with running() as harness, phone(harness, "101", "secret101") as ph:
        assert (await ph.register(expires=600)).status == 200  # CSeq 2
        registered_cseq = ph.cseq
        ph.cseq = 0  # the next REGISTER goes out with CSeq 1 (challenged) and 2 (answered)
        late = await ph.register(expires=0)
    assert ph.cseq <= registered_cseq
    assert late.status == 500
    [binding] = harness.registrar.contacts_for("101")
    assert binding.cseq == registered_cseq


# -- NAT and Path ---------------------------------------------------------------------


async def test_a_phone_behind_nat_is_reached_at_the_address_its_register_came_from() -> None:
    async with running() as harness, phone(harness, "101", "secret101") as ph:
        response = await ph.register(contacts=("<sip:101@192.0.2.10:5060>",))
    assert response.status == 200
    [binding] = harness.registrar.contacts_for("101")
    assert binding.behind_nat
    assert binding.destination == Address("udp", LOOPBACK, ph.port)


async def test_path_is_stored_used_for_routing_and_echoed_when_supported() -> None:
    path = f"<sip:edge@{LOOPBACK}:5999;lr>"
    async with running() as harness, phone(harness, "101", "secret101") as ph:
        response = await ph.register(extra=(("Path", path), ("Supported", "path")))
    assert response.status == 200
    assert response.headers.values("Path") == [path]
    [binding] = harness.registrar.contacts_for("101")
    assert binding.route_set == (path,)
    assert binding.destination == Address("udp", LOOPBACK, 5999)


# -- persistence ------------------------------------------------------------------------


async def test_bindings_survive_a_restart_through_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registrar.db'}"
    store = await open_store(url)
    try:
        async with running(store=store) as harness, phone(harness, "101", "secret101") as ph:
            assert (await ph.register(expires=600)).status == 200
    finally:
        await store.close()
    store = await open_store(url)
    try:
        async with running(store=store) as harness:
            [binding] = harness.registrar.contacts_for("101")
    finally:
        await store.close()
    assert binding.contact_uri == f"sip:101@{LOOPBACK}:{ph.port}"
    assert binding.source == Address("udp", LOOPBACK, ph.port)
    assert binding.call_id == ph.call_id and binding.user_agent == "stub-phone"
    assert 590 < binding.expires_at - binding.registered_at <= 600


async def test_an_unregistered_binding_is_gone_from_the_store_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registrar.db'}"
    store = await open_store(url)
    try:
        async with running(store=store) as harness, phone(harness, "101", "secret101") as ph:
            assert (await ph.register()).status == 200
            assert (await ph.register(expires=0)).status == 200
        async with running(store=store) as harness:
            assert harness.registrar.contacts_for("101") == []
    finally:
        await store.close()


# -- expiry sweep and keep-alive ----------------------------------------------------------


async def test_an_expired_binding_is_no_longer_a_contact_and_is_swept() -> None:
    wall = [1_000_000.0]
    async with running(wall_clock=lambda: wall[0]) as harness, \
            phone(harness, "101", "secret101") as ph:
        assert (await ph.register(expires=60)).status == 200
        assert harness.registrar.is_registered("101")
        wall[0] += 61
        assert not harness.registrar.is_registered("101")
        assert harness.registrar.sweep(wall[0]) == 1
    assert [e.reason for e in harness.events if isinstance(e, ContactUnregistered)] == [
        "expired"]


KEEPALIVE = Settings(keepalive_s=0.1, keepalive_failures=2)


async def test_a_contact_that_never_answers_keepalives_is_removed() -> None:
    async with running(KEEPALIVE) as harness, \
            phone(harness, "101", "secret101", answer_options=False) as ph:
        assert (await ph.register()).status == 200
        removed = await wait_until(lambda: not harness.registrar.is_registered("101"), 5.0)
        options_seen = len(ph.options)
    assert removed
    # two pings unanswered (each retransmitted by Timer E until Timer F)
    assert len({o.headers.get("Call-ID") for o in ph.options}) == 2
    assert options_seen >= 2
    [event] = [e for e in harness.events if isinstance(e, ContactUnregistered)]
    assert event.reason == "keepalive_failed"


async def test_a_contact_that_answers_keepalives_stays() -> None:
    async with running(KEEPALIVE) as harness, phone(harness, "101", "secret101") as ph:
        assert (await ph.register()).status == 200
        await wait_until(lambda: len(ph.options) >= 6, 3.0)
        assert len(ph.options) >= 6
        assert harness.registrar.is_registered("101")
    request = ph.options[0]
    assert request.uri == f"sip:101@{LOOPBACK}:{ph.port}"
    assert not [e for e in harness.events if isinstance(e, ContactUnregistered)]


def test_binding_destination_without_nat_is_the_contact() -> None:
    binding = Binding(extension="101", contact_uri="sip:101@198.51.100.7:5062",
                      source=Address("udp", "198.51.100.7", 5062), expires_at=10.0,
                      registered_at=0.0, call_id="c", cseq=1)
    assert not binding.behind_nat
    assert binding.destination == Address("udp", "198.51.100.7", 5062)
    assert binding.expires_in_s(4.2) == 6


async def test_boomerang_run_with_extensions_serves_register(
        run_boomerang: Callable[..., Any]) -> None:
    server = run_boomerang(
        "sip:\n  listen: [udp:127.0.0.1:0]\n  realm: test.example\n  shutdown_grace_s: 0.2\n"
        + EXTENSIONS)
    host, port = server.address("udp")
    stub = await Phone("101", "secret101").open(Address("udp", host, port))
    try:
        response = await stub.register(expires=300)
    finally:
        stub.close()
    assert response.status == 200, server.output()[-2000:]
    assert contact_expires(response) == {f"sip:101@{LOOPBACK}:{stub.port}": 300}
    assert server.stop() == 0
    assert (Path(server.config_path).parent / "boomerang.db").exists()
