"""Locating SIP servers by DNS (RFC 3263 §4) with dnspython's asyncio resolver.

A trunk given by name becomes an ordered list of ``Target``s (transport, IP
address, port) to try in turn:

- an IP literal is itself (default port 5060, 5061 for TLS);
- an explicit port means A/AAAA records only (RFC 3263 §4.2);
- an explicit transport means the SRV records of that transport, else
  A/AAAA with the default port;
- otherwise NAPTR (SIP+D2U, SIP+D2T, SIPS+D2T) leads to SRV names; without
  usable NAPTR records the SRV names ``_sip._udp``, ``_sip._tcp`` and
  ``_sips._tcp`` are tried; without those, A/AAAA with the default port.

SRV records are ordered by priority, and within a priority by the weighted
random selection of RFC 2782; the random draw is injectable. Answers,
negative ones included, are cached for their TTL on an injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from ..sip.errors import SipError

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
TRANSPORTS = ("udp", "tcp", "tls")

# NAPTR service field -> transport (RFC 3263 §4.1); the ones we speak.
NAPTR_SERVICES = {"sip+d2u": "udp", "sip+d2t": "tcp", "sips+d2t": "tls"}
# Transport -> SRV name prefix (RFC 3263 §4.1).
SRV_PREFIXES = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}

# Cache TTL for a negative answer that carried no SOA record.
DEFAULT_NEGATIVE_TTL_S = 30.0


@dataclass(frozen=True, slots=True)
class Target:
    """One place to send a request: ``host`` is an IP address, never a name."""

    transport: str
    host: str
    port: int
    priority: int = 0
    weight: int = 0


class DnsLookupError(SipError):
    """A server name does not resolve to any address (RFC 3263 §4.3: answer 503)."""

    status = 503
    reason = "Service Unavailable"

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"cannot resolve {name!r}: {detail}")
        self.name = name


@dataclass(frozen=True, slots=True)
class _CacheEntry:
    expires_at: float
    records: tuple[Any, ...]
    nxdomain: bool


def order_srv_records(records: Sequence[Any], random_draw: Callable[[], float]) -> list[Any]:
    """RFC 2782 order: ascending priority; weighted random choice within one.

    ``random_draw()`` returns a float in [0, 1). Records with target "."
    ("service not available here") are dropped.
    """
    usable = [r for r in records if r.target != dns.name.root]
    ordered: list[Any] = []
    for priority in sorted({r.priority for r in usable}):
        # RFC 2782 allows any order with the weight-0 records first; sorting
        # by weight (then name) does that and makes a given draw reproducible
        # whatever order the DNS server shuffled the records into.
        group = sorted(
            (r for r in usable if r.priority == priority),
            key=lambda r: (r.weight, r.target.to_text().lower(), r.port),
        )
        while group:
            total = sum(r.weight for r in group)
            pick = min(int(random_draw() * (total + 1)), total)
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    ordered.append(group.pop(index))
                    break
    return ordered


def _ip_literal(host: str) -> str | None:
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


class ServerLocator:
    """RFC 3263 server location with a TTL cache; keep one per process.

    ``clock`` gives seconds (monotonic), ``random_draw`` floats in [0, 1).
    """

    __slots__ = (
        "_cache",
        "clock",
        "max_cache_entries",
        "negative_ttl_s",
        "random_draw",
        "resolver",
    )

    def __init__(
        self,
        *,
        resolver: dns.asyncresolver.Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
        random_draw: Callable[[], float] = random.random,
        max_cache_entries: int = 4096,
        negative_ttl_s: float = DEFAULT_NEGATIVE_TTL_S,
    ) -> None:
        self.resolver = resolver if resolver is not None else dns.asyncresolver.Resolver()
        self.clock = clock
        self.random_draw = random_draw
        self.max_cache_entries = max(1, max_cache_entries)
        self.negative_ttl_s = negative_ttl_s
        self._cache: dict[tuple[str, int], _CacheEntry] = {}

    # -- cached queries ----------------------------------------------------

    async def _query(self, name: str, rdtype: dns.rdatatype.RdataType) -> _CacheEntry:
        """Records of ``name``/``rdtype``; errors other than NXDOMAIN/NODATA raise."""
        absolute = name if name.endswith(".") else name + "."
        key = (absolute.lower(), int(rdtype))
        now = self.clock()
        entry = self._cache.get(key)
        if entry is not None:
            if entry.expires_at > now:
                return entry
            del self._cache[key]
        try:
            answer = await self.resolver.resolve(
                absolute, rdtype, raise_on_no_answer=False, search=False
            )
            ttl_s = float(answer.chaining_result.minimum_ttl)
            records: tuple[Any, ...] = tuple(answer.rrset) if answer.rrset is not None else ()
            nxdomain = False
        except dns.resolver.NXDOMAIN as error:
            ttl_s = self.negative_ttl_s
            responses: dict[Any, Any] = error.kwargs.get("responses") or {}
            for response in responses.values():
                with contextlib.suppress(dns.exception.DNSException):
                    ttl_s = float(response.resolve_chaining().minimum_ttl)
                break
            records = ()
            nxdomain = True
        entry = _CacheEntry(now + ttl_s, records, nxdomain)
        while len(self._cache) >= self.max_cache_entries:
            del self._cache[next(iter(self._cache))]
        self._cache[key] = entry
        return entry

    async def _optional(self, name: str, rdtype: dns.rdatatype.RdataType) -> tuple[Any, ...]:
        """Records, or () when the lookup failed: NAPTR and SRV are optional."""
        try:
            return (await self._query(name, rdtype)).records
        except dns.exception.DNSException:
            return ()

    async def addresses(self, name: str) -> list[str]:
        """IPv4 then IPv6 addresses of ``name``; DnsLookupError when there are none."""
        results = await asyncio.gather(
            self._query(name, dns.rdatatype.A),
            self._query(name, dns.rdatatype.AAAA),
            return_exceptions=True,
        )
        found: list[str] = []
        failures: list[str] = []
        nxdomain = False
        for result in results:
            if isinstance(result, dns.exception.DNSException):
                failures.append(f"{type(result).__name__}: {result}")
            elif isinstance(result, BaseException):
                raise result
            else:
                found.extend(record.address for record in result.records)
                nxdomain = nxdomain or result.nxdomain
        if found:
            return found
        if nxdomain:
            raise DnsLookupError(name, "no such domain (NXDOMAIN)")
        if failures:
            raise DnsLookupError(name, "; ".join(failures))
        raise DnsLookupError(name, "no A or AAAA records")

    def clear_cache(self) -> None:
        self._cache.clear()

    # -- RFC 3263 ----------------------------------------------------------

    async def _srv_targets(self, srv_name: str, transport: str) -> list[Target]:
        records = await self._optional(srv_name, dns.rdatatype.SRV)
        targets: list[Target] = []
        for record in order_srv_records(records, self.random_draw):
            try:
                ips = await self.addresses(record.target.to_text())
            except DnsLookupError:
                continue
            targets.extend(
                Target(transport, ip, record.port, record.priority, record.weight) for ip in ips
            )
        return targets

    async def _naptr_targets(self, host: str, sips: bool) -> list[Target]:
        records = await self._optional(host, dns.rdatatype.NAPTR)
        usable = []
        for record in records:
            service = record.service.decode("ascii", "replace").lower()
            transport = NAPTR_SERVICES.get(service)
            if transport is None or record.flags.lower() != b"s":
                continue
            if sips and transport != "tls":
                continue
            usable.append((record.order, record.preference, transport, record.replacement))
        usable.sort(key=lambda item: (item[0], item[1]))
        targets: list[Target] = []
        for _, _, transport, replacement in usable:
            targets.extend(await self._srv_targets(replacement.to_text(), transport))
        return targets

    async def locate(
        self, host: str, *, port: int | None, transport: str | None, sips: bool = False
    ) -> list[Target]:
        """Targets for ``host`` in the order to try them (RFC 3263 §4)."""
        explicit: str | None = None
        if transport is not None:
            explicit = transport.lower()
            if explicit not in DEFAULT_PORTS:
                raise ValueError(f"unsupported SIP transport {transport!r}")
            if sips:
                if explicit == "udp":
                    raise ValueError("a sips URI cannot use UDP")
                explicit = "tls"  # SIPS means TLS over TCP (RFC 3261 §26.2.2)
        fallback = explicit or ("tls" if sips else "udp")
        ip = _ip_literal(host)
        if ip is not None:
            return [Target(fallback, ip, port or DEFAULT_PORTS[fallback])]
        if port is not None:
            return [Target(fallback, address, port) for address in await self.addresses(host)]
        targets: list[Target] = []
        if explicit is not None:
            targets = await self._srv_targets(SRV_PREFIXES[explicit] + host, explicit)
        else:
            targets = await self._naptr_targets(host, sips)
            if not targets:
                # The SRV queries are independent: ask them at once.
                candidates = ("tls",) if sips else TRANSPORTS
                found = await asyncio.gather(
                    *(self._srv_targets(SRV_PREFIXES[c] + host, c) for c in candidates)
                )
                targets = [target for group in found for target in group]
        if targets:
            return targets
        port = DEFAULT_PORTS[fallback]
        return [Target(fallback, address, port) for address in await self.addresses(host)]


async def locate_servers(
    host: str,
    *,
    port: int | None,
    transport: str | None,
    resolver: dns.asyncresolver.Resolver | None = None,
    sips: bool = False,
    locator: ServerLocator | None = None,
) -> list[Target]:
    """RFC 3263 §4 targets for ``host``; see the module docstring.

    Pass a long-lived ``locator`` to get its cache (and its clock and random
    draw); without one a fresh, uncached locator on ``resolver`` is used.
    Raises DnsLookupError (status 503) when the name resolves to nothing.
    """
    if locator is None:
        locator = ServerLocator(resolver=resolver)
    return await locator.locate(host, port=port, transport=transport, sips=sips)
