"""SIP requests and responses (RFC 3261 §7).

Header values are kept as the raw text received and parsed only when read
(``via``, ``cseq``, ``from_``...); what is never read is never parsed.
Unknown headers keep the name spelling they arrived with and are
serialised back unchanged, so a message can be forwarded intact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .errors import ParseError
from .headers import (
    UNSPLITTABLE,
    CSeq,
    NameAddr,
    Reason,
    Via,
    canonical_name,
    parse_cseq,
    parse_name_addr,
    parse_reason,
    parse_via,
    split_list,
)
from .uri import Uri, parse_uri

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def reason_phrase(status: int) -> str:
    return REASON_PHRASES.get(status, "Unknown")


class Headers:
    """Ordered header fields: ``(name, value)`` pairs, repeated names kept.

    Lookups are case-insensitive and compact forms are equivalent to full
    names. Values are the raw text (one header line each).
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # [key (canonical lower), name as it should be written, raw value]
        self._items: list[tuple[str, str, str]] = []
        for name, value in items:
            self.add(name, value)

    @staticmethod
    def _key(name: str) -> str:
        return canonical_name(name).lower()

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        spelled = canonical_name(name)
        self._items.append((spelled.lower(), spelled, value))

    def prepend(self, name: str, value: str) -> None:
        """Insert a header line before all others of that name (e.g. a new Via)."""
        spelled = canonical_name(name)
        key = spelled.lower()
        for i, item in enumerate(self._items):
            if item[0] == key:
                self._items.insert(i, (key, spelled, value))
                return
        self._items.append((key, spelled, value))

    def set(self, name: str, value: str) -> None:
        """Replace every line of ``name`` with one line, at the first one's place."""
        spelled = canonical_name(name)
        key = spelled.lower()
        for i, item in enumerate(self._items):
            if item[0] == key:
                self._items[i] = (key, spelled, value)
                self._items[i + 1 :] = [it for it in self._items[i + 1 :] if it[0] != key]
                return
        self._items.append((key, spelled, value))

    def remove(self, name: str) -> None:
        key = self._key(name)
        self._items = [it for it in self._items if it[0] != key]

    def remove_first_value(self, name: str) -> str | None:
        """Remove the first list element of ``name`` (the top Via of a response)."""
        key = self._key(name)
        for i, (k, spelled, value) in enumerate(self._items):
            if k == key:
                parts = split_list(value)
                if len(parts) <= 1:
                    del self._items[i]
                else:
                    self._items[i] = (k, spelled, ", ".join(parts[1:]))
                return parts[0] if parts else None
        return None

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first line's raw value."""
        key = self._key(name)
        for k, _, value in self._items:
            if k == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every line's raw value, in order, not split on commas."""
        key = self._key(name)
        return [value for k, _, value in self._items if k == key]

    def values(self, name: str) -> list[str]:
        """The list elements of ``name`` across all its lines (comma-split)."""
        key = self._key(name)
        if key in UNSPLITTABLE:
            return self.get_all(name)
        out: list[str] = []
        for k, _, value in self._items:
            if k == key:
                out.extend(split_list(value))
        return out

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = self._key(name)
        return any(k == key for k, _, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for _, spelled, value in self._items:
            yield spelled, value

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Headers:
        new = Headers()
        new._items = list(self._items)
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"


class Message:
    """What requests and responses share: headers, body and typed accessors."""

    __slots__ = ("_vias", "body", "headers")

    headers: Headers
    body: bytes
    _vias: list[Via] | None

    def __init__(self, headers: Headers | Iterable[tuple[str, str]] | None, body: bytes) -> None:
        if headers is None:
            headers = Headers()
        elif not isinstance(headers, Headers):
            headers = Headers(headers)
        self.headers = headers
        self.body = body
        self._vias = None

    # -- typed accessors (parsed on read) -----------------------------------

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise ParseError(f"missing {name} header")
        return value

    @property
    def vias(self) -> list[Via]:
        if self._vias is None:
            self._vias = [parse_via(v) for v in self.headers.values("Via")]
        return self._vias

    @property
    def top_via(self) -> Via:
        value = self.headers.get("Via")
        if value is None:
            raise ParseError("missing Via header")
        if self._vias is not None:
            return self._vias[0]
        first = split_list(value)
        if not first:
            raise ParseError("empty Via header")
        return parse_via(first[0])

    def invalidate_vias(self) -> None:
        """Forget the cached Via list after editing the Via headers."""
        self._vias = None

    @property
    def branch(self) -> str | None:
        return self.top_via.branch

    @property
    def call_id(self) -> str:
        value = self._required("Call-ID").strip()
        if not value or any(c in value for c in " \t"):
            raise ParseError(f"bad Call-ID {value!r}")
        return value

    @property
    def cseq(self) -> CSeq:
        return parse_cseq(self._required("CSeq"))

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self._required("From"))

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self._required("To"))

    @property
    def from_tag(self) -> str | None:
        return self.from_.tag

    @property
    def to_tag(self) -> str | None:
        return self.to.tag

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact elements; ``*`` is returned by ``contact_star`` instead."""
        return [parse_name_addr(v) for v in self.headers.values("Contact") if v.strip() != "*"]

    @property
    def contact_star(self) -> bool:
        return any(v.strip() == "*" for v in self.headers.values("Contact"))

    def name_addrs(self, name: str) -> list[NameAddr]:
        """The elements of a list header of name-addrs (Route, Record-Route, PAI...)."""
        return [parse_name_addr(v) for v in self.headers.values(name)]

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit():
            raise ParseError(f"bad Max-Forwards {value!r}")
        return int(value)

    @property
    def expires(self) -> int | None:
        value = self.headers.get("Expires")
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit():
            raise ParseError(f"bad Expires {value!r}")
        return min(int(value), 2**32 - 1)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip().lower()

    @property
    def reasons(self) -> list[Reason]:
        return [parse_reason(v) for v in self.headers.values("Reason")]

    def header_tokens(self, name: str) -> list[str]:
        """Comma-separated tokens (Require, Supported, Allow...), lower case."""
        return [v.lower() for v in self.headers.values(name)]

    # -- serialisation ------------------------------------------------------

    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Wire bytes; Content-Length is always written from the body."""
        lines = [self.start_line()]
        for key, spelled, value in self.headers._items:
            if key != "content-length":
                lines.append(f"{spelled}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append("")
        lines.append("")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.serialize()


class Request(Message):
    """A SIP request; ``uri`` is the Request-URI text, ``request_uri`` its parse."""

    __slots__ = ("_request_uri", "method", "uri", "version")

    def __init__(
        self,
        method: str,
        uri: str | Uri,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = str(uri)
        self._request_uri: Uri | None = None if isinstance(uri, str) else uri
        self.version = version

    @property
    def request_uri(self) -> Uri:
        if self._request_uri is None:
            self._request_uri = parse_uri(self.uri)
        return self._request_uri

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    __slots__ = ("reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason_phrase(status) if reason is None else reason
        self.version = version

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


# Headers a response copies from its request (RFC 3261 §8.2.6.2).
_COPIED_TO_RESPONSE = ("Via", "From", "To", "Call-ID", "CSeq")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """Build a response to ``request`` per RFC 3261 §8.2.6.2.

    Via, From, To, Call-ID and CSeq are copied; ``to_tag`` is added to To
    when the request's To has none (never for 100 Trying).
    """
    out = Headers()
    for key, spelled, value in request.headers._items:
        if key in ("via", "from", "to", "call-id", "cseq"):
            if key == "to" and to_tag is not None and status != 100 and ";tag=" not in value.lower()\
                    and request.to_tag is None:
                value = f"{value};tag={to_tag}"
            out._items.append((key, spelled, value))
    if status == 100 and "Timestamp" in request.headers:
        out.add("Timestamp", request.headers.get("Timestamp") or "")
    for name, value in headers:
        out.add(name, value)
    return Response(status, reason, out, body)
