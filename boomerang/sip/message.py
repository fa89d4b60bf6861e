"""SIP requests and responses (RFC 3261 §7).

Header values are kept as the raw text received and parsed only when read
(``via``, ``cseq``, ``from_``...); what is never read is never parsed.
Unknown headers keep the name spelling they arrived with and are
serialised back unchanged, so a message can be forwarded intact.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import TypeVar

from .errors import ParseError
from .grammar import get_param, is_token, parse_params, parse_uint
from .headers import (
    CANONICAL_NAMES,
    UNSPLITTABLE,
    CSeq,
    NameAddr,
    Reason,
    Via,
    canonical_name,
    parse_cseq,
    parse_name_addr,
    parse_privacy,
    parse_reason,
    parse_via,
    split_list,
)
from .uri import SipUri, Uri, parse_uri

_T = TypeVar("_T")

# canonical lower-case key of a header name, compact forms expanded
_KEYS: dict[str, str] = {name: full.lower() for name, full in CANONICAL_NAMES.items()}

# URI schemes the core serves; a Request-URI with another scheme gets 416.
SUPPORTED_URI_SCHEMES = frozenset({"sip", "sips", "tel"})

# Headers that may appear at most once (RFC 3261 §7.3.1, §20).
_SINGLETONS = ("call-id", "cseq", "from", "to", "max-forwards", "content-length",
               "content-type", "expires")

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
    names. Values are the raw text (one header line each, folding undone).
    Known names are written in their canonical spelling; unknown names keep
    the spelling they arrived with.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # [key (canonical lower), name as it should be written, raw value]
        self._items: list[tuple[str, str, str]] = []
        for name, value in items:
            self.add(name, value)

    @staticmethod
    def _key(name: str) -> str:
        lname = name.lower()
        return _KEYS.get(lname, lname)

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
                parts = split_list(value) if "," in value else [value.strip()]
                if len(parts) <= 1:
                    del self._items[i]
                else:
                    self._items[i] = (k, spelled, ", ".join(parts[1:]))
                return parts[0] if parts else None
        return None

    def replace_first_value(self, name: str, value: str) -> bool:
        """Replace the first list element of ``name`` (a request's top Via, for
        received/rport); False when there is no such header."""
        key = self._key(name)
        for i, (k, spelled, old) in enumerate(self._items):
            if k == key:
                if "," in old:
                    parts = split_list(old)
                    parts[0] = value
                    value = ", ".join(parts)
                self._items[i] = (k, spelled, value)
                return True
        return False

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first line's raw value."""
        lname = name.lower()
        key = _KEYS.get(lname, lname)
        for k, _, value in self._items:
            if k == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every line's raw value, in order, not split on commas."""
        key = self._key(name)
        return [value for k, _, value in self._items if k == key]

    def count(self, name: str) -> int:
        """How many header lines of ``name`` there are."""
        key = self._key(name)
        return sum(1 for k, _, _ in self._items if k == key)

    def values(self, name: str) -> list[str]:
        """The list elements of ``name`` across all its lines (comma-split)."""
        key = self._key(name)
        if key in UNSPLITTABLE:
            return self.get_all(name)
        out: list[str] = []
        for k, _, value in self._items:
            if k == key:
                if "," in value:
                    out.extend(split_list(value))
                else:
                    value = value.strip()
                    if value:
                        out.append(value)
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

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"


class Message:
    """What requests and responses share: headers, body and typed accessors.

    Accessors parse on read and remember the parse of the raw value they
    read; editing ``headers`` makes them parse again (the cache is keyed
    by the raw value object).
    """

    __slots__ = ("_cache", "_vias", "body", "headers")

    headers: Headers
    body: bytes
    _vias: list[Via] | None
    _cache: dict[str, tuple[str, object]]

    def __init__(self, headers: Headers | Iterable[tuple[str, str]] | None, body: bytes) -> None:
        if headers is None:
            headers = Headers()
        elif not isinstance(headers, Headers):
            headers = Headers(headers)
        self.headers = headers
        self.body = body
        self._vias = None
        self._cache = {}

    # -- typed accessors (parsed on read) -----------------------------------

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise ParseError(f"missing {name} header")
        return value

    def _parsed(self, key: str, raw: str, parser: Callable[[str], _T]) -> _T:
        hit = self._cache.get(key)
        if hit is not None and hit[0] is raw:
            return hit[1]  # type: ignore[return-value]
        value = parser(raw)
        self._cache[key] = (raw, value)
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
        if self._vias is not None and self._vias:
            return self._vias[0]
        return self._parsed("via", value, _parse_top_via)

    def invalidate_vias(self) -> None:
        """Forget the cached Via list after editing the Via headers."""
        self._vias = None

    def replace_top_via(self, via: Via) -> None:
        """Put ``via`` in place of the topmost Via element (e.g. ``Via.with_received``)."""
        if not self.headers.replace_first_value("Via", str(via)):
            raise ParseError("missing Via header")
        self._vias = None
        # the new value is known already parsed: seed the cache (Via is immutable)
        raw = self.headers.get("Via")
        if raw is not None:
            self._cache["via"] = (raw, via)

    @property
    def branch(self) -> str | None:
        return self.top_via.branch

    @property
    def call_id(self) -> str:
        return self._parsed("call-id", self._required("Call-ID"), _parse_call_id)

    @property
    def cseq(self) -> CSeq:
        return self._parsed("cseq", self._required("CSeq"), parse_cseq)

    @property
    def from_(self) -> NameAddr:
        return self._parsed("from", self._required("From"), parse_name_addr)

    @property
    def to(self) -> NameAddr:
        return self._parsed("to", self._required("To"), parse_name_addr)

    @property
    def from_tag(self) -> str | None:
        """The From tag; reads only the header parameters (``validate`` checks the rest)."""
        return self._parsed("from-tag", self._required("From"), _tag_of)

    @property
    def to_tag(self) -> str | None:
        """The To tag; reads only the header parameters (``validate`` checks the rest)."""
        return self._parsed("to-tag", self._required("To"), _tag_of)

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
        return parse_uint(value, "Max-Forwards", maximum=255)

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds; values above 2**32-1 are capped (RFC 3261 §20.19)."""
        value = self.headers.get("Expires")
        if value is None:
            return None
        text = value.strip()
        if len(text) > 10 and text.isascii() and text.isdigit():
            return 2**32 - 1
        return min(parse_uint(text, "Expires"), 2**32 - 1)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip().lower()

    @property
    def reasons(self) -> list[Reason]:
        return [parse_reason(v) for v in self.headers.values("Reason")]

    @property
    def privacy(self) -> list[str]:
        """RFC 3323 privacy values (``id``, ``header``, ``none``...), lower case."""
        out: list[str] = []
        for value in self.headers.get_all("Privacy"):
            out.extend(parse_privacy(value))
        return out

    def header_tokens(self, name: str) -> list[str]:
        """Comma-separated tokens (Require, Supported, Allow...), lower case."""
        out: list[str] = []
        for value in self.headers.values(name):
            if not is_token(value):
                raise ParseError(f"bad token {value[:40]!r} in {name}")
            out.append(value.lower())
        return out

    # -- full validation ----------------------------------------------------

    def validate(self, *, uri_schemes: Collection[str] | None = SUPPORTED_URI_SCHEMES) -> None:
        """Parse every header the core understands; raise on the first bad one.

        ``parse_message`` checks only what routing an answer needs; a UAS or
        proxy calls this before acting on a request. Raises ParseError (400),
        or for a request whose Request-URI scheme is not in ``uri_schemes``,
        ParseError with status 416 (RFC 3261 §8.2.2.1); None accepts any.
        """
        headers = self.headers
        for key in _SINGLETONS:
            if headers.count(key) > 1:
                raise ParseError(f"more than one {canonical_name(key)} header")
        self._vias = None
        if not self.vias:
            raise ParseError("missing Via header")
        self.from_  # noqa: B018
        self.to  # noqa: B018
        self.call_id  # noqa: B018
        self.cseq  # noqa: B018
        self.max_forwards  # noqa: B018
        self.expires  # noqa: B018
        length = headers.get("Content-Length")
        if length is not None:
            parse_uint(length, "Content-Length")
        contacts = self.contacts
        for contact in contacts:
            contact.expires  # noqa: B018
            contact.q  # noqa: B018
        if self.contact_star and (contacts or headers.count("Contact") > 1):
            raise ParseError("Contact '*' mixed with addresses")
        for name in ("Route", "Record-Route"):
            for value in headers.values(name):
                if not value.lstrip().startswith(("<", '"')) and "<" not in value:
                    raise ParseError(f"{name} element without <>: {value[:80]!r}")
                parse_name_addr(value)
        self.name_addrs("P-Asserted-Identity")
        self.reasons  # noqa: B018
        self.privacy  # noqa: B018
        for name in ("Require", "Supported", "Proxy-Require", "Unsupported"):
            self.header_tokens(name)
        self._validate_start(uri_schemes)

    def _validate_start(self, uri_schemes: Collection[str] | None) -> None:
        """Start-line checks of the concrete message kind."""

    # -- serialisation ------------------------------------------------------

    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Wire bytes; Content-Length is always written from the body."""
        lines = [self.start_line()]
        lines.extend([f"{spelled}: {value}" for key, spelled, value in self.headers._items
                      if key != "content-length"])
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        head = "\r\n".join(lines)
        try:
            data = head.encode()
        except UnicodeEncodeError:
            # undecodable bytes received are kept as surrogates: give them back
            data = head.encode("utf-8", "surrogateescape")
        return data + self.body if self.body else data

    def __bytes__(self) -> bytes:
        return self.serialize()


def _parse_top_via(value: str) -> Via:
    if "," in value:
        parts = split_list(value)
        if not parts:
            raise ParseError("empty Via header")
        value = parts[0]
    return parse_via(value)


_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE = re.compile(rf"{_WORD}(?:@{_WORD})?\Z")


def _parse_call_id(value: str) -> str:
    """callid = word [ "@" word ] (RFC 3261 §25.1)."""
    value = value.strip()
    if _CALL_ID_RE.match(value) is None:
        raise ParseError(f"bad Call-ID {value[:80]!r}")
    return value


def _tag_of(value: str) -> str | None:
    """The tag parameter of a From/To value without parsing its URI."""
    gt = value.rfind(">")
    if gt >= 0:
        rest = value[gt + 1 :]
        if '"' in rest:
            return parse_name_addr(value).tag
    elif "<" in value or '"' in value:
        return parse_name_addr(value).tag
    else:
        semi = value.find(";")
        rest = value[semi:] if semi >= 0 else ""
    rest = rest.strip()
    if not rest:
        return None
    if rest[0] != ";":
        raise ParseError(f"junk after address in {value[:80]!r}")
    return get_param(parse_params(rest[1:]), "tag")


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

    def _validate_start(self, uri_schemes: Collection[str] | None) -> None:
        if self.cseq.method != self.method:
            raise ParseError(f"CSeq method {self.cseq.method} does not match {self.method}")
        self._request_uri = None
        uri = self.request_uri
        if isinstance(uri, SipUri) and uri.headers is not None:
            # RFC 3261 §19.1.1: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11)
            raise ParseError(f"headers in Request-URI {self.uri[:80]!r}")
        if uri_schemes is not None and uri.scheme not in uri_schemes:
            raise ParseError(f"unsupported URI scheme {uri.scheme!r}", status=416,
                             reason="Unsupported URI Scheme")

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


def _to_tag_or_none(request: Request) -> str | None:
    try:
        return request.to_tag
    except ParseError:
        return None


# Headers a response copies from its request (RFC 3261 §8.2.6.2).
_COPIED_TO_RESPONSE = frozenset(("via", "from", "to", "call-id", "cseq"))
# Requests whose 101-299 responses establish a dialog (RFC 3261 §12.1.1,
# RFC 6665 for SUBSCRIBE, RFC 3515 for REFER): their Record-Route is copied.
_DIALOG_CREATING = frozenset(("INVITE", "SUBSCRIBE", "REFER", "NOTIFY"))
_COPIED_WITH_RECORD_ROUTE = _COPIED_TO_RESPONSE | {"record-route"}


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
    when the request's To has none (never for 100 Trying). A response that
    establishes a dialog (101-299 to INVITE, SUBSCRIBE...) also copies the
    request's Record-Route (§12.1.1).
    """
    out = Headers()
    items = out._items
    add_tag = to_tag is not None and status != 100
    copied = _COPIED_TO_RESPONSE
    if 100 < status < 300 and request.method in _DIALOG_CREATING:
        copied = _COPIED_WITH_RECORD_ROUTE
    for item in request.headers._items:
        key = item[0]
        if key in copied:
            if key == "to" and add_tag:
                value = item[2]
                # a "tag" substring may be a false alarm: then ask the parser
                if "tag" not in value.lower() or _to_tag_or_none(request) is None:
                    item = (key, item[1], f"{value};tag={to_tag}")
            items.append(item)
    if status == 100:
        timestamp = request.headers.get("Timestamp")
        if timestamp is not None:
            items.append(("timestamp", "Timestamp", timestamp))
    for name, value in headers:
        out.add(name, value)
    response = Response(status, reason, out, body)
    # The response carries the request's Via text (the same string object):
    # share the parsed top Via instead of parsing it again (Via is immutable).
    parsed = request._cache.get("via")
    if parsed is not None and out.get("Via") is parsed[0]:
        response._cache["via"] = parsed
    return response
