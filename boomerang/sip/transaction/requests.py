"""Requests the transaction layer builds itself.

- The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same
  Request-URI, Call-ID, From and CSeq number as the INVITE, the To of the
  response (with its tag), one Via: the INVITE's top Via (same branch), and
  the INVITE's Route headers.
- CANCEL (RFC 3261 §9.1): same Request-URI, Call-ID, From, To (no tag
  added) and CSeq number as the request, method CANCEL, one Via: the
  request's top Via, and its Route headers; extra ``headers`` (a Reason,
  RFC 3326) are appended.
"""

from __future__ import annotations

from ..headers import split_list
from ..message import Headers, Request, Response


def _copy_for(request: Request, method: str, to: str) -> Request:
    source = request.headers
    headers = Headers()
    via = source.get("Via") or ""
    headers.add("Via", split_list(via)[0] if "," in via else via)
    headers.add("Max-Forwards", "70")
    for name in ("From",):
        headers.add(name, source.get(name) or "")
    headers.add("To", to)
    headers.add("Call-ID", source.get("Call-ID") or "")
    headers.add("CSeq", f"{request.cseq.number} {method}")
    for route in source.get_all("Route"):
        headers.add("Route", route)
    return Request(method, request.uri, headers)


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK to a 300-699 response to ``invite`` (§17.1.1.3)."""
    return _copy_for(invite, "ACK", response.headers.get("To") or "")


def build_cancel(request: Request, headers: tuple[tuple[str, str], ...] = ()) -> Request:
    """The CANCEL of ``request`` (§9.1), with ``headers`` added (``Reason``)."""
    cancel = _copy_for(request, "CANCEL", request.headers.get("To") or "")
    for name, value in headers:
        cancel.headers.add(name, value)
    return cancel


__all__ = ["build_ack", "build_cancel"]
