"""Typed values of the SIP headers the core reads.

Each ``parse_*`` takes the raw header value (one header line's value, or
one comma-separated element of it) and returns a frozen value object;
``str()`` of the object gives the wire form back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from ipaddress import ip_address

from .errors import ParseError
from .grammar import (
    Params,
    format_params,
    get_param,
    is_digits,
    is_token,
    parse_params,
    parse_uint,
    quote,
    quoted_string_end,
    set_param,
    split_outside_quotes,
    unquote,
)
from .uri import SipUri, Uri, parse_uri, split_hostport

# Compact forms (RFC 3261 §7.3.3 and later RFCs) to full names.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_CANONICAL = [
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
    "Identity-Info", "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version",
    "Organization", "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority",
    "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck",
    "Reason", "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Remote-Party-ID",
    "Reply-To", "Request-Disposition", "Require", "Retry-After", "Route", "RSeq",
    "Server", "Session-Expires", "Subject", "Subscription-State", "Supported", "Timestamp",
    "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
]
CANONICAL_NAMES: dict[str, str] = {name.lower(): name for name in _CANONICAL}
for _short, _full in COMPACT_FORMS.items():
    CANONICAL_NAMES[_short] = _full

# Headers whose values contain commas that do not separate list elements
# (RFC 3261 §7.3.1): never split these.
UNSPLITTABLE = frozenset(
    {
        "www-authenticate",
        "authorization",
        "proxy-authenticate",
        "proxy-authorization",
        "authentication-info",
        "date",
        "retry-after",
        "subject",
        "user-agent",
        "server",
        "organization",
        "call-id",
        "cseq",
        "from",
        "to",
        "content-type",
        "content-length",
        "max-forwards",
        "expires",
        "min-expires",
        "timestamp",
        "rseq",
        "rack",
    }
)


def canonical_name(name: str) -> str:
    """Canonical spelling of a header name; compact forms expanded.

    Unknown names keep the spelling they were received with.
    """
    return CANONICAL_NAMES.get(name.lower(), name)


def split_list(value: str) -> list[str]:
    """Split a list header value on the commas that separate elements."""
    return [part.strip() for part in split_outside_quotes(value, ",") if part.strip()]


@dataclass(frozen=True, slots=True)
class Via:
    """``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport;received=...``"""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=list)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return get_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return get_param(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The rport value filled in by a server; None when absent or empty."""
        value = get_param(self.params, "rport")
        return int(value) if value and is_digits(value) else None

    @property
    def wants_rport(self) -> bool:
        return any(k.lower() == "rport" for k, _ in self.params)

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_received(self, host: str, port: int | None) -> Via:
        """This Via as a server stamps it on receipt (RFC 3261 §18.2.1, RFC 3581 §4).

        ``host`` and ``port`` are the packet's source. ``received`` is set
        when the sent-by host differs from ``host`` (always when the request
        asked for ``rport``), and an empty ``rport`` is filled with ``port``.
        """
        params = self.params
        fill_rport = port is not None and get_param(params, "rport") == ""
        if fill_rport or not _same_host(self.host, host):
            params = set_param(params, "received", _bare_host(host))
        if fill_rport:
            params = set_param(params, "rport", str(port))
        if params is self.params:
            return self
        return replace(self, params=params)

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


def _bare_host(host: str) -> str:
    return host[1:-1] if host.startswith("[") else host


def _same_host(a: str, b: str) -> bool:
    a, b = _bare_host(a).lower(), _bare_host(b).lower()
    if a == b:
        return True
    try:
        return ip_address(a) == ip_address(b)
    except ValueError:
        return False


# via-parm = sent-protocol LWS sent-by *( SEMI via-params ); LWS allowed around
# the slashes and the colon (RFC 3261 §25.1 SLASH, COLON; RFC 4475 §3.1.1.1).
_VIA_RE = re.compile(
    r"\s*([^\s/]+)\s*/\s*([^\s/]+)\s*/\s*([^\s/;]+)\s+(\[[^\]]*\]|[^\s:;]+)"
    r"(?:\s*:\s*([^\s;]*))?\s*(?:;(.*))?\Z",
    re.DOTALL,
)


_COMMON_TRANSPORTS = frozenset(("UDP", "TCP", "TLS", "SCTP", "WS", "WSS", "udp", "tcp", "tls"))


def parse_via(value: str) -> Via:
    """One via-parm (a single element of a Via header)."""
    match = _VIA_RE.match(value)
    if match is None:
        raise ParseError(f"bad Via {value[:80]!r}")
    name, version, transport, host, port_text, ptext = match.groups()
    if not ((name == "SIP" and version == "2.0" and transport in _COMMON_TRANSPORTS)
            or (is_token(name) and is_token(version) and is_token(transport))):
        raise ParseError(f"bad Via protocol in {value[:80]!r}")
    host, port = split_hostport(host if port_text is None else f"{host}:{port_text}", value)
    params = parse_params(ptext) if ptext is not None else []
    for key, param_value in params:
        lkey = key.lower()
        if lkey == "branch" and (param_value is None or not is_token(param_value)):
            raise ParseError(f"bad Via branch in {value[:80]!r}")
        if lkey == "rport" and param_value is not None and not is_digits(param_value):
            raise ParseError(f"bad Via rport in {value[:80]!r}")
        if lkey == "ttl":
            parse_uint(param_value or "", "Via ttl", maximum=255)
        if lkey in ("received", "maddr") and not param_value:
            raise ParseError(f"empty Via {lkey} in {value[:80]!r}")
    return Via(
        transport=transport.upper(),
        host=host,
        port=port,
        params=params,
        protocol=f"{name}/{version}",
    )


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``"Display" <uri>;params`` as in From, To, Contact, Route, P-Asserted-Identity."""

    uri: Uri
    display_name: str | None = None
    params: Params = field(default_factory=list)

    @property
    def tag(self) -> str | None:
        return get_param(self.params, "tag")

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    @property
    def expires(self) -> int | None:
        """The Contact ``expires`` parameter in seconds, capped at 2**32-1 (RFC 3261 §20.10)."""
        value = get_param(self.params, "expires")
        if value is None:
            return None
        return min(parse_uint(value, "expires parameter"), 2**32 - 1)

    @property
    def q(self) -> float | None:
        """The Contact ``q`` parameter (0 to 1, up to three decimals)."""
        value = get_param(self.params, "q")
        if value is None:
            return None
        if _QVALUE_RE.match(value) is None:
            raise ParseError(f"bad q value {value[:20]!r}")
        return float(value)

    def __str__(self) -> str:
        name = ""
        if self.display_name is not None:
            name = (self.display_name if is_token_list(self.display_name)
                    else quote(self.display_name)) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"


_QVALUE_RE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")


def is_token_list(text: str) -> bool:
    return bool(text) and all(is_token(word) for word in text.split(" "))


def parse_name_addr(value: str) -> NameAddr:
    """name-addr or addr-spec followed by parameters (RFC 3261 §20.10, §20.20)."""
    text = value.strip()
    if not text:
        raise ParseError("empty address")
    display: str | None = None
    if text[0] == '"':
        end = quoted_string_end(text, 0)
        display = unquote(text[:end])
        text = text[end:].lstrip()
        if not text.startswith("<"):
            raise ParseError(f"display name without <uri> in {value[:80]!r}")
    lt = text.find("<")
    if lt >= 0:
        if display is None and lt > 0:
            words = text[:lt].split()
            if not all(is_token(word) for word in words):
                raise ParseError(f"bad display name in {value[:80]!r}")
            display = " ".join(words)
        gt = text.find(">", lt)
        if gt < 0:
            raise ParseError(f"unterminated <uri> in {value[:80]!r}")
        uri = parse_uri(text[lt + 1 : gt])
        rest = text[gt + 1 :].lstrip()
        if rest and rest[0] != ";":
            raise ParseError(f"junk after <uri> in {value[:80]!r}")
        params = parse_params(rest[1:]) if rest else []
        return NameAddr(uri=uri, display_name=display, params=params)
    # addr-spec: parameters after the URI belong to the header (RFC 3261 §20)
    uri_text, semi, ptext = text.partition(";")
    uri_text = uri_text.rstrip()
    if "?" in uri_text or "," in uri_text:
        raise ParseError(f"addr-spec with '?' or ',' must be in <>: {value[:80]!r}")
    return NameAddr(uri=parse_uri(uri_text), params=parse_params(ptext) if semi else [])


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """``CSeq: 4711 INVITE``; the number must be below 2**31 (RFC 3261 §8.1.1.5)."""
    parts = value.split()
    if len(parts) != 2 or not is_token(parts[1]):
        raise ParseError(f"bad CSeq {value[:80]!r}")
    return CSeq(number=parse_uint(parts[0], "CSeq number", maximum=2**31 - 1), method=parts[1])


@dataclass(frozen=True, slots=True)
class Reason:
    """RFC 3326 ``Q.850;cause=16;text="Normal call clearing"``."""

    protocol: str
    cause: int | None = None
    text: str | None = None
    params: Params = field(default_factory=list)

    def __str__(self) -> str:
        out = self.protocol
        if self.cause is not None:
            out += f";cause={self.cause}"
        if self.text is not None:
            out += f";text={quote(self.text)}"
        return out + format_params(
            [(k, v) for k, v in self.params if k.lower() not in ("cause", "text")]
        )


def parse_reason(value: str) -> Reason:
    proto, semi, ptext = value.strip().partition(";")
    proto = proto.strip()
    if not is_token(proto):
        raise ParseError(f"bad Reason protocol in {value[:80]!r}")
    params = parse_params(ptext) if semi else []
    cause_text = get_param(params, "cause")
    cause = None if cause_text is None else parse_uint(cause_text, "Reason cause")
    text = get_param(params, "text")
    if text is not None and text.startswith('"'):
        text = unquote(text)
    return Reason(protocol=proto, cause=cause, text=text, params=params)


def parse_privacy(value: str) -> list[str]:
    """RFC 3323 ``Privacy: id;header`` as lower-case tokens (commas tolerated)."""
    out: list[str] = []
    for item in value.replace(",", ";").split(";"):
        token = item.strip()
        if not is_token(token):
            raise ParseError(f"bad Privacy value {value[:80]!r}")
        out.append(token.lower())
    return out


def parse_uri_in_brackets(value: str) -> SipUri:
    """A Route / Record-Route element's URI; must be a SIP URI."""
    addr = parse_name_addr(value)
    if not isinstance(addr.uri, SipUri):
        raise ParseError(f"route is not a SIP URI: {value!r}")
    return addr.uri


__all__ = [
    "COMPACT_FORMS",
    "CSeq",
    "NameAddr",
    "Reason",
    "Via",
    "canonical_name",
    "parse_cseq",
    "parse_name_addr",
    "parse_privacy",
    "parse_reason",
    "parse_uri",
    "parse_via",
    "split_list",
]
