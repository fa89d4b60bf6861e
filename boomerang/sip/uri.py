"""SIP, SIPS (RFC 3261 §19.1) and tel (RFC 3966) URIs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import unquote as pct_unquote

from .errors import ParseError
from .grammar import Params, format_params, get_param, parse_params

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")


def _check_host(host: str, text: str) -> str:
    if not host:
        raise ParseError(f"URI without host: {text!r}")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 4:
            raise ParseError(f"bad IPv6 reference in {text!r}")
        inner = host[1:-1]
        if any(c not in "0123456789abcdefABCDEF:." for c in inner) or ":" not in inner:
            raise ParseError(f"bad IPv6 reference in {text!r}")
        return host
    if any(c not in _HOST_CHARS for c in host):
        raise ParseError(f"bad host {host!r} in {text!r}")
    return host


def split_hostport(text: str, whole: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 references in brackets) into host and port."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"unterminated IPv6 reference in {whole!r}")
        host = text[: end + 1]
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ParseError(f"junk after IPv6 reference in {whole!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.partition(":")
        port_text = port_text_ if colon else None
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
            raise ParseError(f"bad port {port_text!r} in {whole!r}")
        port = int(port_text)
    return _check_host(host, whole), port


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
        return None if self.user is None else pct_unquote(self.user)

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

_TEL_CHARS = frozenset("0123456789ABCDEFabcdef*#+-.()pPwW")


def parse_uri(text: str) -> Uri:
    """Parse a URI; raises ParseError with status 400 (416 for a bad scheme)."""
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme:
        raise ParseError(f"not a URI: {text!r}")
    lscheme = scheme.lower()
    if not scheme[0].isalpha() or not all(c.isalnum() or c in "+-." for c in scheme):
        raise ParseError(f"bad URI scheme in {text!r}", status=416, reason="Unsupported URI Scheme")
    if any(c in " \t\r\n" for c in text):
        raise ParseError(f"whitespace inside URI {text!r}")
    if lscheme in ("sip", "sips"):
        return _parse_sip(lscheme, rest, text)
    if lscheme == "tel":
        number, _, ptext = rest.partition(";")
        if not number or any(c not in _TEL_CHARS for c in number):
            raise ParseError(f"bad tel URI {text!r}")
        return TelUri(number=number, params=parse_params(ptext))
    return AbsoluteUri(text=text)


def _parse_sip(scheme: str, rest: str, text: str) -> SipUri:
    headers: str | None = None
    if "?" in rest:
        rest, _, headers = rest.partition("?")
    user: str | None = None
    password: str | None = None
    at = rest.rfind("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        if ":" in userinfo:
            user, _, password = userinfo.partition(":")
        else:
            user = userinfo
        if not user:
            raise ParseError(f"empty user part in {text!r}")
    hostport, semi, ptext = rest.partition(";")
    host, port = split_hostport(hostport, text)
    params = parse_params(ptext) if semi else []
    return SipUri(
        host=host,
        user=user,
        password=password,
        port=port,
        scheme=scheme,
        params=params,
        headers=headers,
    )
