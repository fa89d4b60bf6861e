"""Typed values of the SIP headers the core reads.

Each ``parse_*`` takes the raw header value (one header line's value, or
one comma-separated element of it) and returns a frozen value object;
``str()`` of the object gives the wire form back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ParseError
from .grammar import (
    Params,
    format_params,
    get_param,
    is_token,
    parse_params,
    quote,
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
        return int(value) if value else None

    @property
    def wants_rport(self) -> bool:
        return any(k.lower() == "rport" for k, _ in self.params)

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


def parse_via(value: str) -> Via:
    """One via-parm (a single element of a Via header)."""
    text = value.strip()
    proto, sep, rest = text.partition(" ")
    if not sep:
        # tolerate LWS around the slashes: "SIP / 2.0 / UDP host"
        raise ParseError(f"bad Via {value!r}")
    parts = [p.strip() for p in proto.split("/")]
    rest = rest.strip()
    while len(parts) < 3 and rest:
        # "SIP / 2.0 / UDP" spread over whitespace
        token, _, rest = rest.partition(" ")
        rest = rest.strip()
        parts = [p.strip() for p in ("/".join(parts) + token).split("/") if p.strip() != ""]
    if len(parts) != 3 or not all(is_token(p) for p in parts):
        raise ParseError(f"bad Via protocol in {value!r}")
    sent_by, semi, ptext = rest.partition(";")
    sent_by = sent_by.strip()
    # a comment-free sent-by may carry LWS around ':'
    sent_by = sent_by.replace(" ", "").replace("\t", "")
    host, port = split_hostport(sent_by, value)
    params = parse_params(ptext) if semi else []
    return Via(
        transport=parts[2].upper(),
        host=host,
        port=port,
        params=params,
        protocol=f"{parts[0]}/{parts[1]}",
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

    def __str__(self) -> str:
        name = ""
        if self.display_name is not None:
            name = (self.display_name if is_token_list(self.display_name)
                    else quote(self.display_name)) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"


def is_token_list(text: str) -> bool:
    return bool(text) and all(is_token(word) for word in text.split(" "))


def parse_name_addr(value: str) -> NameAddr:
    """name-addr or addr-spec followed by parameters."""
    text = value.strip()
    if not text:
        raise ParseError("empty address")
    display: str | None = None
    if text.startswith('"'):
        i = 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                break
            i += 1
        else:
            raise ParseError(f"unterminated display name in {value!r}")
        display = unquote(text[: i + 1])
        text = text[i + 1 :].lstrip()
        if not text.startswith("<"):
            raise ParseError(f"display name without <uri> in {value!r}")
    if "<" in text and (text.startswith("<") or display is None):
        lt = text.find("<")
        if display is None:
            words = text[:lt].strip()
            if words:
                if not is_token_list(" ".join(words.split())):
                    raise ParseError(f"bad display name in {value!r}")
                display = " ".join(words.split())
        gt = text.find(">", lt)
        if gt < 0:
            raise ParseError(f"unterminated <uri> in {value!r}")
        uri = parse_uri(text[lt + 1 : gt])
        rest = text[gt + 1 :].strip()
        if rest and not rest.startswith(";"):
            raise ParseError(f"junk after <uri> in {value!r}")
        params = parse_params(rest[1:]) if rest else []
        return NameAddr(uri=uri, display_name=display, params=params)
    # addr-spec: parameters after the URI belong to the header (RFC 3261 §20)
    if "?" in text or "," in text:
        raise ParseError(f"addr-spec with '?' or ',' must be in <>: {value!r}")
    uri_text, semi, ptext = text.partition(";")
    return NameAddr(uri=parse_uri(uri_text.strip()), params=parse_params(ptext) if semi else [])


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or not is_token(parts[1]):
        raise ParseError(f"bad CSeq {value!r}")
    number = int(parts[0])
    if number >= 2**31:
        raise ParseError(f"CSeq number too large in {value!r}")
    return CSeq(number=number, method=parts[1])


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
        raise ParseError(f"bad Reason protocol in {value!r}")
    params = parse_params(ptext) if semi else []
    cause_text = get_param(params, "cause")
    cause: int | None = None
    if cause_text is not None:
        if not cause_text.isdigit():
            raise ParseError(f"bad Reason cause in {value!r}")
        cause = int(cause_text)
    text = get_param(params, "text")
    if text is not None and text.startswith('"'):
        text = unquote(text)
    return Reason(protocol=proto, cause=cause, text=text, params=params)


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
    "parse_reason",
    "parse_uri",
    "parse_via",
    "split_list",
]
