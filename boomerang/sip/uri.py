"""SIP, SIPS (RFC 3261 §19.1) and tel (RFC 3966) URIs.

``parse_uri`` checks the character classes of every part (RFC 3261 §25.1):
a URI that parses here is one we can forward. Parts are kept as sent
(escapes included); ``user_unescaped`` and ``uri_equal`` (RFC 3261
§19.1.4) undo the escapes. IPv6 references keep their brackets in
``host`` (``[2001:db8::1]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import unquote_to_bytes

from .errors import ParseError
from .grammar import Params, format_params, get_param, parse_params

_ESC = r"%[0-9A-Fa-f]{2}"
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
# RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved )
_USER_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESC})+\Z")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_ESC})*\Z")
# uri-parameters: paramchar = param-unreserved / unreserved / escaped
_PARAMCHAR = rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESC})"
_URI_PARAMS_RE = re.compile(rf"(?:;{_PARAMCHAR}+(?:={_PARAMCHAR}+)?)*\Z")
# headers: hname "=" hvalue *( "&" hname "=" hvalue ), hnv-unreserved = [ ] / ? : + $
_HNVCHAR = rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESC})"
_HEADERS_RE = re.compile(rf"{_HNVCHAR}+={_HNVCHAR}*(?:&{_HNVCHAR}+={_HNVCHAR}*)*\Z")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-.]*)\Z")
# Liberal on purpose: RFC 5118 §4.10 asks to accept "2001:db8:::192.0.2.1".
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]\Z")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
_TEL_RE = re.compile(r"\+?[0-9A-Fa-f*#\-.()pPwW]+\Z")
_TEL_VISUAL = str.maketrans("", "", "-.()")
_ABSOLUTE_REST_RE = re.compile(r"[^\s<>\"]+\Z")
_PORT_RE = re.compile(r"[0-9]{1,5}\Z")


def check_host(host: str, text: str) -> str:
    """Validate a host (hostname, IPv4 address or IPv6 reference in brackets)."""
    if host[:1] == "[":
        if _IPV6_RE.match(host) is None:
            raise ParseError(f"bad IPv6 reference in {text[:80]!r}")
        return host
    if not host or _HOSTNAME_RE.match(host) is None:
        raise ParseError(f"bad host {host[:60]!r} in {text[:80]!r}")
    return host


# Kept for callers of the old name.
_check_host = check_host


def split_hostport(text: str, whole: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 references in brackets) into host and port."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"unterminated IPv6 reference in {whole[:80]!r}")
        host = text[: end + 1]
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ParseError(f"junk after IPv6 reference in {whole[:80]!r}")
        port_text: str | None = rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.partition(":")
        port_text = port_text_ if colon else None
    port: int | None = None
    if port_text is not None:
        if _PORT_RE.match(port_text) is None or int(port_text) > 65535:
            raise ParseError(f"bad port {port_text[:20]!r} in {whole[:80]!r}")
        port = int(port_text)
    return check_host(host, whole), port


def unescape(text: str) -> str:
    """Undo %HH escapes (RFC 3261 §19.1.2); bytes that are not UTF-8 are kept as surrogates."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class SipUri:
    """``sip:user:password@host:port;params?headers``; ``scheme`` is sip or sips."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: Params = field(default_factory=list)
    headers: str | None = None

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    @property
    def transport(self) -> str:
        """The transport parameter folded to lower case, default udp (tls for sips)."""
        value = get_param(self.params, "transport")
        if value:
            return value.lower()
        return "tls" if self.scheme == "sips" else "udp"

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else unescape(self.user)

    @property
    def host_address(self) -> str:
        """The host without the brackets of an IPv6 reference."""
        return self.host[1:-1] if self.host.startswith("[") else self.host

    def with_params(self, params: Params) -> SipUri:
        return replace(self, params=params)

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + self.headers)
        return "".join(out)


@dataclass(frozen=True, slots=True)
class TelUri:
    """``tel:+48221234567;phone-context=...`` (RFC 3966)."""

    number: str
    params: Params = field(default_factory=list)
    scheme: str = "tel"

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other scheme (``mailto:``, ``urn:``...), kept as text and forwarded intact."""

    text: str

    @property
    def scheme(self) -> str:
        return self.text.partition(":")[0].lower()

    def __str__(self) -> str:
        return self.text


Uri = SipUri | TelUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse a URI; raises ParseError (400) when it is not well formed.

    Any well-formed scheme is accepted: whether the scheme is supported is
    the caller's decision (416 Unsupported URI Scheme, RFC 3261 §8.2.2.1).
    """
    scheme, colon, rest = text.partition(":")
    if not colon or _SCHEME_RE.match(scheme) is None:
        raise ParseError(f"not a URI: {text[:80]!r}")
    lscheme = scheme.lower()
    if lscheme == "sip" or lscheme == "sips":
        return _parse_sip(lscheme, rest, text)
    if lscheme == "tel":
        number, semi, ptext = rest.partition(";")
        if _TEL_RE.match(number) is None:
            raise ParseError(f"bad tel URI {text[:80]!r}")
        return TelUri(number=number, params=parse_params(ptext) if semi else [])
    if _ABSOLUTE_REST_RE.match(rest) is None:
        raise ParseError(f"bad URI {text[:80]!r}")
    return AbsoluteUri(text=text)


def _parse_sip(scheme: str, rest: str, text: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    # '@' can appear nowhere after the userinfo (params and headers escape it),
    # while the userinfo may hold ';' '?' '/' (RFC 4475 §3.1.1.2, §3.1.1.9).
    at = rest.rfind("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        user, colon, password_ = userinfo.partition(":")
        if _USER_RE.match(user) is None:
            raise ParseError(f"bad user part in {text[:80]!r}")
        if colon:
            if _PASSWORD_RE.match(password_) is None:
                raise ParseError(f"bad password in {text[:80]!r}")
            password = password_
    headers: str | None = None
    qmark = rest.find("?")
    if qmark >= 0:
        headers = rest[qmark + 1 :]
        rest = rest[:qmark]
        if _HEADERS_RE.match(headers) is None:
            raise ParseError(f"bad URI headers in {text[:80]!r}")
    semi = rest.find(";")
    if semi >= 0:
        ptext = rest[semi:]
        rest = rest[:semi]
        if _URI_PARAMS_RE.match(ptext) is None:
            raise ParseError(f"bad URI parameters in {text[:80]!r}")
        params = [_split_param(item) for item in ptext[1:].split(";")]
    else:
        params = []
    host, port = split_hostport(rest, text)
    return SipUri(
        host=host,
        user=user,
        password=password,
        port=port,
        scheme=scheme,
        params=params,
        headers=headers,
    )


def _split_param(item: str) -> tuple[str, str | None]:
    name, eq, value = item.partition("=")
    return (name, value if eq else None)


# uri-parameters that must match when present in either URI (RFC 3261 §19.1.4).
_MUST_MATCH_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def _param_map(params: Params) -> dict[str, str]:
    return {unescape(k).lower(): unescape(v or "").lower() for k, v in params}


def _header_set(headers: str | None) -> set[tuple[str, str]]:
    if not headers:
        return set()
    out: set[tuple[str, str]] = set()
    for item in headers.split("&"):
        name, _, value = item.partition("=")
        out.add((unescape(name).lower(), unescape(value)))
    return out


def uri_equal(a: Uri, b: Uri) -> bool:
    """URI equivalence per RFC 3261 §19.1.4 (sip/sips) and RFC 3966 §4 (tel)."""
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        if a.scheme != b.scheme or a.port != b.port:
            return False
        if a.host.lower() != b.host.lower():
            return False
        if (a.user is None) != (b.user is None) or (a.password is None) != (b.password is None):
            return False
        if a.user is not None and b.user is not None and unescape(a.user) != unescape(b.user):
            return False
        if (a.password is not None and b.password is not None
                and unescape(a.password) != unescape(b.password)):
            return False
        pa, pb = _param_map(a.params), _param_map(b.params)
        for name in _MUST_MATCH_PARAMS:
            if pa.get(name) != pb.get(name):
                return False
        for name, value in pa.items():
            if name in pb and pb[name] != value:
                return False
        return _header_set(a.headers) == _header_set(b.headers)
    if isinstance(a, TelUri) and isinstance(b, TelUri):
        if a.number.translate(_TEL_VISUAL).lower() != b.number.translate(_TEL_VISUAL).lower():
            return False
        return _param_map(a.params) == _param_map(b.params)
    if isinstance(a, AbsoluteUri) and isinstance(b, AbsoluteUri):
        return a.scheme == b.scheme and a.text.partition(":")[2] == b.text.partition(":")[2]
    return False
