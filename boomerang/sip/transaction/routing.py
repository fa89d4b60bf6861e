"""Where responses go, and what the server writes into a request's top Via.

- RFC 3261 §18.2.1 and RFC 3581 §4: a server adds ``received`` (the source
  IP) to the top Via when the sent-by host differs from it, and fills an
  empty ``rport`` with the source port (adding ``received`` then always).
- RFC 3261 §18.2.2 and RFC 3581 §4: a response over a reliable transport
  goes back on the connection the request came on (the source Address);
  over UDP to the ``received`` address and the ``rport`` port when present,
  else to the sent-by port (default 5060).
"""

from __future__ import annotations

from ..address import Address
from ..grammar import Params
from ..headers import Via
from ..message import Request

DEFAULT_PORT = 5060  # RFC 3261 §18.2.2; TLS would be 5061 but is reliable


def _bare_host(host: str) -> str:
    return host[1:-1] if host.startswith("[") else host


def _wants_rport(params: Params) -> bool:
    return any(name == "rport" or name.lower() == "rport" for name, _ in params)


def stamp_via(request: Request, via: Via, source: Address) -> None:
    """Add ``received`` / fill ``rport`` in the request's top Via (§18.2.1, RFC 3581)."""
    if not _wants_rport(via.params) and _bare_host(via.host) == source.host:
        return  # the common case, decided without building anything
    stamped = via.with_received(source.host, source.port)
    if stamped is not via:
        request.replace_top_via(stamped)


def response_destination(via: Via, source: Address) -> Address:
    """Where the responses to a request with top Via ``via`` from ``source`` go.

    ``received`` is always the source IP (stamp_via adds it whenever the
    sent-by host differs), so over UDP the host is the source host.
    """
    if source.transport != "udp":
        return source
    if _wants_rport(via.params):
        return source
    port = via.port if via.port is not None else DEFAULT_PORT
    if port == source.port:
        return source
    return Address("udp", source.host, port)


__all__ = ["DEFAULT_PORT", "response_destination", "stamp_via"]
