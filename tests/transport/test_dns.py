"""RFC 3263 server location against a tiny authoritative DNS server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import cast

import dns.asyncresolver
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from boomerang.transport.dns import (
    DnsLookupError,
    ServerLocator,
    Target,
    locate_servers,
    order_srv_records,
)

SOA = "ns.test. admin.test. 1 3600 600 86400 {minimum}"

Zone = dict[tuple[str, str], tuple[int, list[str]]]


class FakeAuthoritativeDns(asyncio.DatagramProtocol):
    """Answers from ``zone``: (name, type) -> (ttl, [rdata text]); counts queries."""

    def __init__(self, negative_ttl_s: int = 5) -> None:
        self.zone: Zone = {}
        self.queries: list[tuple[str, str]] = []
        self.negative_ttl_s = negative_ttl_s
        self.transport: asyncio.DatagramTransport | None = None

    def add(self, name: str, rdtype: str, *rdatas: str, ttl: int = 60) -> None:
        self.zone[(name.lower().rstrip(".") + ".", rdtype)] = (ttl, list(rdatas))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        entry = self.zone.get((name, rdtype))
        if entry is not None:
            ttl, rdatas = entry
            response.answer.append(
                dns.rrset.from_text_list(question.name, ttl, "IN", rdtype, rdatas)
            )
        else:
            if not any(known == name for known, _ in self.zone):
                response.set_rcode(dns.rcode.NXDOMAIN)
            soa = SOA.format(minimum=self.negative_ttl_s)
            response.authority.append(dns.rrset.from_text("test.", 3600, "IN", "SOA", soa))
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)

    def count(self, name: str, rdtype: str) -> int:
        return self.queries.count((name.lower().rstrip(".") + ".", rdtype))


@dataclass
class ManualClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Draws:
    """An injected random draw replaying fixed values."""

    values: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.values.pop(0) if self.values else 0.0


def make_resolver(port: int, *, lifetime_s: float = 2.0) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.timeout = lifetime_s
    resolver.lifetime = lifetime_s
    return resolver


@dataclass
class DnsFixture:
    server: FakeAuthoritativeDns
    resolver: dns.asyncresolver.Resolver
    clock: ManualClock
    draws: Draws

    def locator(self) -> ServerLocator:
        return ServerLocator(resolver=self.resolver, clock=self.clock, random_draw=self.draws)


@pytest.fixture
async def fake_dns() -> AsyncIterator[DnsFixture]:
    loop = asyncio.get_running_loop()
    server = FakeAuthoritativeDns()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: server, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        yield DnsFixture(server, make_resolver(port), ManualClock(), Draws())
    finally:
        transport.close()


def trunk_zone(server: FakeAuthoritativeDns) -> None:
    server.add(
        "trunk.test", "NAPTR",
        '20 50 "s" "SIP+D2U" "" _sip._udp.trunk.test.',
        '10 50 "s" "SIP+D2T" "" _sip._tcp.trunk.test.',
        '5 10 "u" "E2U+sip" "!^.*$!sip:info@example.com!" .',
        '30 50 "s" "SIPS+D2T" "" _sips._tcp.trunk.test.',
    )
    server.add("_sip._tcp.trunk.test", "SRV", "0 0 5070 sip1.trunk.test.")
    server.add("_sip._udp.trunk.test", "SRV", "0 0 5080 sip2.trunk.test.")
    server.add("_sips._tcp.trunk.test", "SRV", "0 0 5071 sip1.trunk.test.")
    server.add("sip1.trunk.test", "A", "127.0.0.11")
    server.add("sip2.trunk.test", "A", "127.0.0.12")
    server.add("trunk.test", "A", "127.0.0.99")


async def test_naptr_then_srv_then_a(fake_dns: DnsFixture) -> None:
    trunk_zone(fake_dns.server)
    targets = await fake_dns.locator().locate("trunk.test", port=None, transport=None)
    assert targets == [
        Target("tcp", "127.0.0.11", 5070),
        Target("udp", "127.0.0.12", 5080),
        Target("tls", "127.0.0.11", 5071),
    ]
    assert fake_dns.server.count("trunk.test", "A") == 0  # not needed: NAPTR answered


async def test_naptr_for_sips_uses_only_sips_d2t(fake_dns: DnsFixture) -> None:
    trunk_zone(fake_dns.server)
    targets = await fake_dns.locator().locate("trunk.test", port=None, transport=None, sips=True)
    assert targets == [Target("tls", "127.0.0.11", 5071)]
    assert fake_dns.server.count("_sip._tcp.trunk.test", "SRV") == 0


async def test_srv_only(fake_dns: DnsFixture) -> None:
    server = fake_dns.server
    server.add("srv.test", "A", "127.0.0.99")
    server.add("_sip._udp.srv.test", "SRV", "0 0 5062 a.srv.test.", "1 0 5064 b.srv.test.")
    server.add("a.srv.test", "A", "127.0.0.21")
    server.add("b.srv.test", "A", "127.0.0.22")
    server.add("b.srv.test", "AAAA", "::1")
    targets = await locate_servers(
        "srv.test", port=None, transport=None, locator=fake_dns.locator()
    )
    assert targets == [
        Target("udp", "127.0.0.21", 5062, 0, 0),
        Target("udp", "127.0.0.22", 5064, 1, 0),
        Target("udp", "::1", 5064, 1, 0),
    ]
    assert server.count("srv.test", "NAPTR") == 1
    assert server.count("_sip._tcp.srv.test", "SRV") == 1
    assert server.count("_sips._tcp.srv.test", "SRV") == 1


async def test_a_only_with_default_ports(fake_dns: DnsFixture) -> None:
    fake_dns.server.add("plain.test", "A", "127.0.0.5")
    fake_dns.server.add("plain.test", "AAAA", "::1")
    locator = fake_dns.locator()
    assert await locator.locate("plain.test", port=None, transport=None) == [
        Target("udp", "127.0.0.5", 5060),
        Target("udp", "::1", 5060),
    ]
    assert await locator.locate("plain.test", port=None, transport=None, sips=True) == [
        Target("tls", "127.0.0.5", 5061),
        Target("tls", "::1", 5061),
    ]


async def test_explicit_port_means_a_records_only(fake_dns: DnsFixture) -> None:
    trunk_zone(fake_dns.server)
    targets = await fake_dns.locator().locate("trunk.test", port=5090, transport=None)
    assert targets == [Target("udp", "127.0.0.99", 5090)]
    kinds = {rdtype for _, rdtype in fake_dns.server.queries}
    assert kinds == {"A", "AAAA"}
    targets = await fake_dns.locator().locate("trunk.test", port=5091, transport="TCP")
    assert targets == [Target("tcp", "127.0.0.99", 5091)]


async def test_explicit_transport_uses_that_srv_only(fake_dns: DnsFixture) -> None:
    trunk_zone(fake_dns.server)
    targets = await fake_dns.locator().locate("trunk.test", port=None, transport="tcp")
    assert targets == [Target("tcp", "127.0.0.11", 5070)]
    assert fake_dns.server.count("trunk.test", "NAPTR") == 0
    assert fake_dns.server.count("_sip._udp.trunk.test", "SRV") == 0


async def test_explicit_transport_without_srv_falls_back_to_a(fake_dns: DnsFixture) -> None:
    fake_dns.server.add("plain.test", "A", "127.0.0.5")
    locator = fake_dns.locator()
    assert await locator.locate("plain.test", port=None, transport="tcp") == [
        Target("tcp", "127.0.0.5", 5060)
    ]
    assert await locator.locate("plain.test", port=None, transport="tls") == [
        Target("tls", "127.0.0.5", 5061)
    ]


async def test_ip_literal_needs_no_dns(fake_dns: DnsFixture) -> None:
    locator = fake_dns.locator()
    assert await locator.locate("127.0.0.1", port=None, transport=None) == [
        Target("udp", "127.0.0.1", 5060)
    ]
    assert await locator.locate("[::1]", port=5070, transport="tcp") == [
        Target("tcp", "::1", 5070)
    ]
    assert await locator.locate("127.0.0.1", port=None, transport=None, sips=True) == [
        Target("tls", "127.0.0.1", 5061)
    ]
    assert fake_dns.server.queries == []


async def test_priority_then_weighted_random_order(fake_dns: DnsFixture) -> None:
    server = fake_dns.server
    server.add(
        "_sip._udp.w.test", "SRV",
        "10 0 5003 c.w.test.",
        "0 10 5001 a.w.test.",
        "0 30 5002 b.w.test.",
        "0 5 5009 gone.w.test.",  # no address: skipped
    )
    server.add("w.test", "A", "127.0.0.99")
    for host, ip in (("a", "127.0.0.1"), ("b", "127.0.0.2"), ("c", "127.0.0.3")):
        server.add(f"{host}.w.test", "A", ip)

    async def ports(draws: list[float]) -> list[int]:
        fake_dns.draws.values = list(draws)
        targets = await fake_dns.locator().locate("w.test", port=None, transport="udp")
        return [t.port for t in targets]

    # Priority 0 group sorted by weight: gone 5, a 10, b 30 (sum 45).
    # Draw 0.5 -> 23 -> running sums 5, 15, 45 -> b; then (gone, a): draw 0.0
    # -> gone, which has no address and is skipped; then a; then priority 10.
    assert await ports([0.5, 0.0]) == [5002, 5001, 5003]
    # Draw 0.2 -> 9 -> a; then (gone, b): draw 0.0 -> gone; then b.
    assert await ports([0.2, 0.0]) == [5001, 5002, 5003]


@dataclass
class Srv:
    priority: int
    weight: int
    target: dns.name.Name
    port: int = 5060


def srv(priority: int, weight: int, name: str) -> Srv:
    return Srv(priority, weight, dns.name.from_text(name))


def test_srv_first_choice_is_proportional_to_weight() -> None:
    records = [srv(0, 10, "a."), srv(0, 30, "b."), srv(0, 0, "c.")]
    firsts = []
    for pick in range(41):  # every integer the draw can land on, 0..sum
        draw = iter([(pick + 0.5) / 41, 0.0, 0.0]).__next__
        firsts.append(order_srv_records(records, draw)[0].target.to_text())
    assert (firsts.count("c."), firsts.count("a."), firsts.count("b.")) == (1, 10, 30)


def test_order_srv_records_weight_zero_first_and_dot_target_dropped() -> None:

    records = [srv(0, 20, "heavy."), srv(0, 0, "zero."), srv(1, 0, "."), srv(2, 1, "last.")]

    def names(draws: Iterator[float]) -> list[str]:
        return [r.target.to_text() for r in order_srv_records(records, lambda: next(draws))]

    # Sum 20: a draw of 0 picks the weight-0 record, which sorts first.
    assert names(iter([0.0, 0.0, 0.0])) == ["zero.", "heavy.", "last."]
    assert names(iter([0.5, 0.0, 0.0])) == ["heavy.", "zero.", "last."]


async def test_cache_honours_ttl(fake_dns: DnsFixture) -> None:
    server = fake_dns.server
    server.add("cached.test", "A", "127.0.0.7", ttl=30)
    locator = fake_dns.locator()

    async def lookup_at(now: float) -> list[Target]:
        fake_dns.clock.now = now
        return await locator.locate("cached.test", port=None, transport=None)

    assert await lookup_at(0.0) == [Target("udp", "127.0.0.7", 5060)]
    assert await lookup_at(4.9) == [Target("udp", "127.0.0.7", 5060)]
    # Negative answers (NAPTR, SRV, AAAA) are cached for the SOA minimum, 5 s.
    assert (server.count("cached.test", "NAPTR"), server.count("cached.test", "A")) == (1, 1)
    server.add("cached.test", "A", "127.0.0.8", ttl=30)
    assert await lookup_at(29.9) == [Target("udp", "127.0.0.7", 5060)]  # still cached
    assert (server.count("cached.test", "NAPTR"), server.count("cached.test", "A")) == (2, 1)
    assert await lookup_at(30.1) == [Target("udp", "127.0.0.8", 5060)]  # expired: asked again
    assert server.count("cached.test", "A") == 2


async def test_nxdomain_is_a_clear_error(fake_dns: DnsFixture) -> None:
    with pytest.raises(DnsLookupError) as info:
        await fake_dns.locator().locate("nowhere.test", port=None, transport=None)
    assert info.value.name == "nowhere.test"
    assert info.value.status == 503
    assert "NXDOMAIN" in str(info.value)
    assert "nowhere.test" in str(info.value)


async def test_name_without_addresses_is_a_clear_error(fake_dns: DnsFixture) -> None:
    fake_dns.server.add("empty.test", "TXT", '"nothing here"')
    with pytest.raises(DnsLookupError) as info:
        await fake_dns.locator().locate("empty.test", port=5060, transport=None)
    assert info.value.name == "empty.test"
    assert "no A or AAAA" in str(info.value)


async def test_silent_server_times_out_into_dns_lookup_error() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        port = transport.get_extra_info("sockname")[1]
        locator = ServerLocator(resolver=make_resolver(port, lifetime_s=0.2))
        with pytest.raises(DnsLookupError) as info:
            await asyncio.wait_for(
                locator.locate("silent.test", port=None, transport=None), timeout=5.0
            )
        assert info.value.name == "silent.test"
    finally:
        transport.close()


async def test_bad_transport_is_refused() -> None:
    with pytest.raises(ValueError):
        await ServerLocator(resolver=make_resolver(53)).locate("x.test", port=None,
                                                              transport="sctp")
    with pytest.raises(ValueError):
        await ServerLocator(resolver=make_resolver(53)).locate("x.test", port=None,
                                                              transport="udp", sips=True)
