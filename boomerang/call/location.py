"""The location service (RFC 3261 §10.3): which contacts each extension has
registered, and where to send requests for them.

Pure data, no I/O and no clock: callers pass ``now`` (wall-clock seconds).
The registrar (``registrar.py``) fills it from REGISTER requests and from the
store; the call layer reads it through ``Registrar.contacts_for``.

Bindings are keyed per extension by the RFC 5626 ``+sip.instance`` and
``reg-id`` pair when the phone sends both, else by the contact URI, as the
store keys them (``boomerang.store.models.binding_key``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..sip.address import Address
from ..sip.errors import SipError
from ..sip.headers import parse_name_addr
from ..sip.uri import SipUri, parse_uri
from ..store.models import binding_key

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


def uri_address(uri_text: str) -> Address | None:
    """Transport, host and port a SIP URI names when its host is an IP
    address (no DNS here); None for anything else."""
    try:
        uri = parse_uri(uri_text)
    except (SipError, ValueError):
        return None
    if not isinstance(uri, SipUri):
        return None
    host = uri.host_address
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    transport = uri.transport
    if transport not in DEFAULT_PORTS:
        return None
    return Address(transport, host, uri.port or DEFAULT_PORTS[transport])


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """One registered contact of an extension.

    ``source`` is where the REGISTER came from (RFC 3581 received/rport);
    ``path`` the RFC 3327 Path values, outermost first (the route set to the
    phone). Times are wall-clock seconds.
    """

    extension: str
    contact_uri: str
    source: Address
    expires_at: float
    registered_at: float
    call_id: str
    cseq: int
    path: tuple[str, ...] = ()
    user_agent: str | None = None
    q: float | None = None
    instance_id: str | None = None
    reg_id: int | None = None

    @property
    def key(self) -> str:
        return binding_key(self.contact_uri, self.instance_id, self.reg_id)

    @property
    def contact_address(self) -> Address | None:
        """Where the Contact URI itself points (None for a host name)."""
        return uri_address(self.contact_uri)

    @property
    def behind_nat(self) -> bool:
        """The REGISTER did not come from the address its Contact names."""
        contact = self.contact_address
        return contact is None or (contact.host, contact.port) != (self.source.host,
                                                                   self.source.port)

    @property
    def route_set(self) -> tuple[str, ...]:
        """Route header values for requests to this contact (RFC 3327 §5.3)."""
        return self.path

    @property
    def destination(self) -> Address:
        """Where to send a request for this binding.

        With a Path: the first Path hop (the edge proxy), or the source the
        REGISTER came from when that hop is not a numeric address. Else the
        source address for a phone behind NAT (and for a stream transport,
        the connection it opened), the contact's own address otherwise.
        """
        if self.path:
            first_hop = uri_address(_uri_of(self.path[0]))
            return first_hop if first_hop is not None else self.source
        if self.source.transport != "udp" or self.behind_nat:
            return self.source
        contact = self.contact_address
        return contact if contact is not None else self.source

    def expires_in_s(self, now: float) -> int:
        """Whole seconds left, never negative (the 200's ``expires`` value)."""
        return max(0, int(self.expires_at - now + 0.5))


def _uri_of(name_addr_text: str) -> str:
    try:
        return str(parse_name_addr(name_addr_text).uri)
    except (SipError, ValueError):
        return name_addr_text


def _order(binding: Binding) -> tuple[float, float]:
    # q first (absent q counts as 1.0, RFC 3261 §10.2.1.2), then most recent
    return (-(1.0 if binding.q is None else binding.q), -binding.registered_at)


class Location:
    """Bindings by extension and key; reads never return an expired binding."""

    __slots__ = ("_bindings",)

    def __init__(self) -> None:
        self._bindings: dict[str, dict[str, Binding]] = {}

    def bindings(self, extension: str, now: float) -> list[Binding]:
        """The extension's live bindings, highest q first, then most recent."""
        found = [b for b in self._bindings.get(extension, {}).values() if b.expires_at > now]
        found.sort(key=_order)
        return found

    def get(self, extension: str, key: str) -> Binding | None:
        return self._bindings.get(extension, {}).get(key)

    def put(self, binding: Binding) -> Binding | None:
        """Add or replace; returns the binding replaced."""
        table = self._bindings.setdefault(binding.extension, {})
        old = table.get(binding.key)
        table[binding.key] = binding
        return old

    def remove(self, extension: str, key: str) -> Binding | None:
        table = self._bindings.get(extension)
        if table is None:
            return None
        removed = table.pop(key, None)
        if not table:
            del self._bindings[extension]
        return removed

    def all(self) -> list[Binding]:
        """Every binding held, expired or not."""
        return [b for table in self._bindings.values() for b in table.values()]

    def pop_expired(self, now: float) -> list[Binding]:
        """Remove and return the bindings whose expiry has passed."""
        expired = [b for b in self.all() if b.expires_at <= now]
        for binding in expired:
            self.remove(binding.extension, binding.key)
        return expired

    def __len__(self) -> int:
        return sum(len(table) for table in self._bindings.values())


__all__ = ["Binding", "Location", "binding_key", "uri_address"]
