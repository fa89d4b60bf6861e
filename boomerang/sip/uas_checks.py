"""The generic checks a UAS makes before looking at what a request asks for.

RFC 3261 §8.2 in order: Max-Forwards (a B2BUA that may forward refuses 0
with 483, §16.3), Request-URI scheme (416, §8.2.2.1), method (501 with
Allow for a method we do not know, §8.2.1) and Require (420 with
Unsupported, §8.2.2.3). Pure functions: they return what to answer and the
caller builds and sends the response.

``reply_to_broken_head`` builds the error response for a stream whose
framing broke (a header block over the limit): it salvages the headers
needed to address a response from what arrived.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ParseError, SipError
from .message import Headers, Request, Response, make_response
from .parser import Limits, parse_headers_block, parse_start_line

URI_SCHEMES = frozenset(("sip", "sips", "tel"))


@dataclass(frozen=True, slots=True, kw_only=True)
class UasPolicy:
    """What this UAS implements, as advertised in Allow and Supported."""

    allowed_methods: tuple[str, ...]
    supported_options: tuple[str, ...] = ()
    uri_schemes: frozenset[str] = URI_SCHEMES

    @property
    def allow_header(self) -> str:
        return ", ".join(self.allowed_methods)

    @property
    def supported_header(self) -> str:
        return ", ".join(self.supported_options)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A final response the request gets before any method-specific handling."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    detail: str = ""


def screen_request(request: Request, policy: UasPolicy) -> Rejection | None:
    """Return the rejection a request gets from the generic checks, or None.

    ACK and CANCEL are never screened here (ACK gets no response; CANCEL is
    answered by the transaction layer).
    """
    if request.method in ("ACK", "CANCEL"):
        return None
    try:
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards == 0:
            return Rejection(status=483, detail="Max-Forwards is 0")
        scheme = request.uri.partition(":")[0].lower()
        if scheme not in policy.uri_schemes:
            return Rejection(status=416, detail=f"Request-URI scheme {scheme!r}")
        request.request_uri  # noqa: B018 - a malformed URI is a 400 (ParseError)
    except SipError as error:
        return Rejection(status=error.status, detail=error.detail)
    if request.method not in policy.allowed_methods:
        return Rejection(
            status=501,
            headers=(("Allow", policy.allow_header),),
            detail=f"method {request.method}",
        )
    supported = {option.lower() for option in policy.supported_options}
    unknown = [tag for tag in request.headers.values("Require") if tag.lower() not in supported]
    if unknown:
        return Rejection(
            status=420,
            headers=(("Unsupported", ", ".join(unknown)),),
            detail=f"Require {', '.join(unknown)}",
        )
    return None


_ADDRESSING = frozenset(("via", "from", "to", "call-id", "cseq"))


def reply_to_broken_head(
    buffered: bytes, error: SipError, *, extra_headers: tuple[tuple[str, str], ...] = ()
) -> Response | None:
    """The error response for a request whose head could not be framed.

    ``buffered`` is what arrived of the message (possibly cut mid-line). The
    complete header lines that address a response (Via, From, To, Call-ID,
    CSeq) are salvaged; a response is returned only when all of them are
    there and the start line is a request line. Responses get no answer.
    """
    head = buffered.lstrip(b"\r\n")
    end = head.find(b"\r\n\r\n")
    if end >= 0:
        head = head[:end]
    else:
        cut = head.rfind(b"\n")
        if cut < 0:
            return None
        head = head[:cut]
    lines = head.split(b"\n")
    kept = [lines[0]]
    for line in lines[1:]:
        if len(line) > 4096:
            continue
        field = line.partition(b":")[0].strip().lower()
        if field in (b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq"):
            kept.append(line)
    text = b"\n".join(kept).decode("utf-8", "surrogateescape")
    try:
        start, headers = parse_headers_block(text, Limits())
        first = parse_start_line(start)
        if isinstance(first[0], int):
            return None
        method, uri, _ = first
        assert isinstance(method, str)
        salvaged = Headers()
        for header, value in headers:
            if header.lower() in _ADDRESSING:
                salvaged.add(header, value)
        request = Request(method, uri, salvaged)
        if any(header not in salvaged for header in ("Via", "From", "To", "Call-ID", "CSeq")):
            return None
        request.top_via  # noqa: B018 - the response must be routable
        if method == "ACK":
            return None
    except ParseError:
        return None
    status = error.status if 400 <= error.status < 700 else 400
    return make_response(request, status, error.reason, headers=extra_headers)


__all__ = ["URI_SCHEMES", "Rejection", "UasPolicy", "reply_to_broken_head", "screen_request"]
