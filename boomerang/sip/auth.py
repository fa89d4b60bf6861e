"""Digest authentication both ways (RFC 3261 §22, RFC 7616, RFC 8760).

- ``parse_challenge`` / ``parse_credentials`` read WWW-Authenticate /
  Proxy-Authenticate and Authorization / Proxy-Authorization values;
  ``str()`` of the result writes the value back.
- ``DigestServer`` challenges and verifies requests. Its nonces are
  stateless: a nonce carries its issue time, a serial number and an HMAC
  over both and the realm, keyed by the server's secret, so a nonce we did
  not issue (or one that was altered) is recognised without any table. The
  only state is the highest nonce-count seen per nonce (bounded), for
  replay protection.
- ``DigestClient`` answers challenges (MD5, SHA-256, SHA-512-256 and their
  -sess variants; qop auth, auth-int, or none for RFC 2069 peers).

Sans-I/O: no clock and no randomness here. The caller passes ``now`` and,
for the client, the cnonce.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from .errors import AuthError, ParseError
from .grammar import quote
from .message import Request
from .uri import SipUri, TelUri, parse_uri

# -- hash functions ------------------------------------------------------------

HashHex = Callable[[bytes], str]


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha512_256_hex(data: bytes) -> str:
    return hashlib.new("sha512_256", data).hexdigest()


def _sha512_256_available() -> bool:
    try:
        _sha512_256_hex(b"")
    except ValueError:
        return False
    return True


# Upper-case algorithm name -> (hash, strength rank). RFC 8760 §2.
_BASE_ALGORITHMS: dict[str, tuple[HashHex, int]] = {
    "MD5": (_md5_hex, 1),
    "SHA-256": (_sha256_hex, 2),
}
if _sha512_256_available():
    _BASE_ALGORITHMS["SHA-512-256"] = (_sha512_256_hex, 3)

# Every algorithm name we implement, with its -sess variant.
SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(
    [*_BASE_ALGORITHMS, *(name + "-SESS" for name in _BASE_ALGORITHMS)]
)


def _algorithm(name: str) -> tuple[HashHex, bool, int] | None:
    """(hash, is_sess, strength) for an algorithm name, None when unknown."""
    upper = name.upper()
    sess = upper.endswith("-SESS")
    base = upper[:-5] if sess else upper
    entry = _BASE_ALGORITHMS.get(base)
    if entry is None:
        return None
    return entry[0], sess, entry[1]


def _bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def digest_response(
    hash_hex: HashHex,
    *,
    sess: bool,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    cnonce: str | None,
    nc: str | None,
    qop: str | None,
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (RFC 2617 §3.2.2.1 without qop)."""
    ha1 = hash_hex(_bytes(f"{username}:{realm}:{password}"))
    if sess:
        ha1 = hash_hex(_bytes(f"{ha1}:{nonce}:{cnonce or ''}"))
    if qop == "auth-int":
        ha2 = hash_hex(_bytes(f"{method}:{uri}:") + hash_hex(body).encode("ascii"))
    else:
        ha2 = hash_hex(_bytes(f"{method}:{uri}"))
    if qop is None:
        return hash_hex(_bytes(f"{ha1}:{nonce}:{ha2}"))
    return hash_hex(_bytes(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))


# -- header values: auth-scheme and auth-params (RFC 7235 §2.1) --------------

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_SCHEME_RE = re.compile(r"[ \t]*(" + _TOKEN + r")(?:[ \t]+|\Z)")
_PARAM_RE = re.compile(
    r"[ \t]*(" + _TOKEN + r')[ \t]*=[ \t]*(?:"((?:[^"\\\r\n]|\\[^\r\n])*)"|(' + _TOKEN + r"))[ \t]*"
)
_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_SEPARATOR_RE = re.compile(r"[ \t]*(?:,[ \t]*)*")
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}")


@dataclass(frozen=True, slots=True)
class AuthParam:
    """One ``name=value``; ``value`` is unquoted, ``quoted`` says how it was sent."""

    name: str
    value: str
    quoted: bool

    def __str__(self) -> str:
        return f"{self.name}={quote(self.value) if self.quoted else self.value}"


def _parse_auth_value(value: str, what: str) -> tuple[str, tuple[AuthParam, ...]]:
    match = _SCHEME_RE.match(value)
    if match is None:
        raise ParseError(f"{what}: no auth-scheme in {value!r}")
    scheme = match.group(1)
    pos = match.end()
    end = len(value)
    params: list[AuthParam] = []
    seen: set[str] = set()
    expect_separator = False
    while True:
        sep = _SEPARATOR_RE.match(value, pos)
        assert sep is not None  # the pattern matches the empty string
        if sep.end() == end:
            break
        if expect_separator and "," not in value[pos : sep.end()]:
            raise ParseError(f"{what}: missing ',' at {pos} in {value!r}")
        pos = sep.end()
        param = _PARAM_RE.match(value, pos)
        if param is None:
            raise ParseError(f"{what}: bad auth-param at {pos} in {value!r}")
        name = param.group(1)
        lname = name.lower()
        if lname in seen:
            raise ParseError(f"{what}: repeated parameter {name!r}")
        seen.add(lname)
        quoted_text = param.group(2)
        if quoted_text is None:
            params.append(AuthParam(name, param.group(3), False))
        else:
            if "\\" in quoted_text:
                quoted_text = _ESCAPE_RE.sub(lambda m: m.group(1), quoted_text)
            params.append(AuthParam(name, quoted_text, True))
        pos = param.end()
        expect_separator = True
    return scheme, tuple(params)


@dataclass(frozen=True, slots=True)
class _AuthValue:
    scheme: str
    params: tuple[AuthParam, ...]

    def param(self, name: str) -> str | None:
        """The unquoted value of ``name`` (case-insensitive), None if absent."""
        lname = name.lower()
        for p in self.params:
            if p.name.lower() == lname:
                return p.value
        return None

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"

    @property
    def realm(self) -> str:
        return self.param("realm") or ""

    @property
    def nonce(self) -> str:
        return self.param("nonce") or ""

    @property
    def opaque(self) -> str | None:
        return self.param("opaque")

    @property
    def algorithm(self) -> str:
        """The algorithm as sent; MD5 when absent (RFC 7616 §3.3)."""
        return self.param("algorithm") or "MD5"

    def __str__(self) -> str:
        if not self.params:
            return self.scheme
        return self.scheme + " " + ", ".join(str(p) for p in self.params)


@dataclass(frozen=True, slots=True)
class Challenge(_AuthValue):
    """A WWW-Authenticate / Proxy-Authenticate value."""

    @property
    def qop_options(self) -> tuple[str, ...]:
        """The offered qop values, lower case; () when the challenge has none."""
        value = self.param("qop")
        if value is None:
            return ()
        return tuple(q.strip().lower() for q in value.split(",") if q.strip())

    @property
    def stale(self) -> bool:
        return (self.param("stale") or "").lower() == "true"


@dataclass(frozen=True, slots=True)
class Credentials(_AuthValue):
    """An Authorization / Proxy-Authorization value."""

    @property
    def username(self) -> str:
        return self.param("username") or ""

    @property
    def uri(self) -> str:
        return self.param("uri") or ""

    @property
    def response(self) -> str:
        return self.param("response") or ""

    @property
    def cnonce(self) -> str | None:
        return self.param("cnonce")

    @property
    def nc(self) -> str | None:
        """The nonce-count as sent (8 hex digits), None when absent."""
        return self.param("nc")

    @property
    def qop(self) -> str | None:
        value = self.param("qop")
        return None if value is None else value.lower()


_CHALLENGE_REQUIRED = ("realm", "nonce")
_CREDENTIALS_REQUIRED = ("username", "realm", "nonce", "uri", "response")


def parse_challenge(value: str) -> Challenge:
    """Parse a WWW-Authenticate / Proxy-Authenticate value; ParseError (400) if malformed."""
    scheme, params = _parse_auth_value(value, "challenge")
    challenge = Challenge(scheme, params)
    if challenge.is_digest:
        for name in _CHALLENGE_REQUIRED:
            if challenge.param(name) is None:
                raise ParseError(f"Digest challenge without {name}: {value!r}")
    return challenge


def parse_credentials(value: str) -> Credentials:
    """Parse an Authorization / Proxy-Authorization value; ParseError (400) if malformed."""
    scheme, params = _parse_auth_value(value, "credentials")
    credentials = Credentials(scheme, params)
    if credentials.is_digest:
        for name in _CREDENTIALS_REQUIRED:
            if credentials.param(name) is None:
                raise ParseError(f"Digest credentials without {name}: {value!r}")
        nc = credentials.nc
        if nc is not None and _NC_RE.fullmatch(nc) is None:
            raise ParseError(f"bad nonce-count {nc!r}")
    return credentials


# -- digest-uri comparison (RFC 7616 §3.4.6, RFC 3261 §19.1.4) --------------

_ALWAYS_COMPARED_PARAMS = ("user", "ttl", "method", "maddr")


def _same_sip_uri(a: SipUri, b: SipUri) -> bool:
    if a.scheme != b.scheme or a.user_unescaped != b.user_unescaped:
        return False
    if a.password != b.password or a.port != b.port or a.host.lower() != b.host.lower():
        return False
    a_params = {k.lower(): (v or "").lower() for k, v in a.params}
    b_params = {k.lower(): (v or "").lower() for k, v in b.params}
    for name in a_params.keys() & b_params.keys():
        if a_params[name] != b_params[name]:
            return False
    for name in _ALWAYS_COMPARED_PARAMS:
        if (name in a_params) != (name in b_params):
            return False
    return (a.headers or "") == (b.headers or "")


def _telephone_digits(uri: TelUri) -> str:
    return "".join(c for c in uri.number if c not in "-.()").lower()


def uri_matches(digest_uri: str, request_uri: str) -> bool:
    """True when the credentials' digest-uri names the Request-URI (as URIs, not text)."""
    if digest_uri == request_uri:
        return True
    try:
        a = parse_uri(digest_uri)
        b = parse_uri(request_uri)
    except (ParseError, ValueError):
        return False
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        return _same_sip_uri(a, b)
    if isinstance(a, TelUri) and isinstance(b, TelUri):
        return _telephone_digits(a) == _telephone_digits(b) and {
            (k.lower(), (v or "").lower()) for k, v in a.params
        } == {(k.lower(), (v or "").lower()) for k, v in b.params}
    return str(a).lower() == str(b).lower()


# -- server --------------------------------------------------------------------

AUTH_REASONS = frozenset(
    {
        "ok",
        "missing",
        "malformed",
        "unknown_user",
        "bad_response",
        "stale_nonce",
        "bad_nonce",
        "replay",
        "realm_mismatch",
        "uri_mismatch",
        "algorithm",
    }
)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """What ``DigestServer.verify`` found.

    ``username`` is the name the credentials claim (also when ``ok`` is
    False, for logs); only ``ok`` means it was proven. When not ok, answer
    ``respond_status`` with ``DigestServer.challenge(now, stale=stale)`` in
    the ``challenge_header`` header. An unknown user and a wrong password
    lead to the same answer; only ``reason`` (for logs) tells them apart.
    """

    ok: bool
    username: str | None
    stale: bool
    reason: str
    header: str = "Authorization"

    @property
    def is_proxy(self) -> bool:
        return self.header.lower() == "proxy-authorization"

    @property
    def respond_status(self) -> int:
        """401 for Authorization, 407 for Proxy-Authorization; never 403."""
        return 407 if self.is_proxy else 401

    @property
    def challenge_header(self) -> str:
        """The header to carry the new challenge: WWW- or Proxy-Authenticate."""
        return "Proxy-Authenticate" if self.is_proxy else "WWW-Authenticate"


_NONCE_HEAD = struct.Struct(">qI")  # issue time in ms, serial
_NONCE_MAC_BYTES = 16
_NONCE_HEX_LENGTH = 2 * (_NONCE_HEAD.size + _NONCE_MAC_BYTES)
_FUTURE_SLACK_MS = 1000
_SERIAL_MODULUS = 2**32


class DigestServer:
    """Challenges requests and verifies their digest credentials.

    ``secret`` keys the nonce HMAC: nodes sharing it accept each other's
    nonces. ``algorithms`` are offered in the given order (RFC 8760 §2.4:
    the preferred one first). Nonces older than ``nonce_lifetime_s`` are
    stale. At most ``max_tracked_nonces`` nonce-counts are remembered; a
    nonce whose count was forgotten and that is no newer than the newest
    forgotten one is treated as stale, so a replay never slips through
    eviction.
    """

    __slots__ = (
        "_algorithms",
        "_dummy_password",
        "_evicted_issued_ms",
        "_nonce_counts",
        "_realm_bytes",
        "_secret",
        "_serial",
        "algorithms",
        "allow_legacy_no_qop",
        "max_tracked_nonces",
        "nonce_lifetime_s",
        "realm",
    )

    def __init__(
        self,
        *,
        realm: str,
        secret: bytes,
        nonce_lifetime_s: float = 300.0,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        max_tracked_nonces: int = 10_000,
        allow_legacy_no_qop: bool = False,
    ) -> None:
        if not algorithms:
            raise ValueError("at least one digest algorithm is needed")
        for name in algorithms:
            if _algorithm(name) is None:
                raise ValueError(f"unsupported digest algorithm {name!r}")
        if not secret:
            raise ValueError("an empty nonce secret would let anyone forge nonces")
        if max_tracked_nonces < 1:
            raise ValueError("max_tracked_nonces must be at least 1")
        self.realm = realm
        self._realm_bytes = _bytes(realm)
        self._secret = secret
        self.nonce_lifetime_s = nonce_lifetime_s
        self.algorithms = algorithms
        self._algorithms = frozenset(name.upper() for name in algorithms)
        self.max_tracked_nonces = max_tracked_nonces
        self.allow_legacy_no_qop = allow_legacy_no_qop
        self._serial = 0
        # nonce -> highest nc accepted, least recently used first.
        self._nonce_counts: dict[str, int] = {}
        self._evicted_issued_ms: int | None = None
        self._dummy_password = hmac.new(secret, b"dummy password", hashlib.sha256).hexdigest()

    # -- nonces ------------------------------------------------------------

    def _nonce_mac(self, head: bytes) -> bytes:
        mac = hmac.new(self._secret, head + self._realm_bytes, hashlib.sha256).digest()
        return mac[:_NONCE_MAC_BYTES]

    def make_nonce(self, now: float) -> str:
        """A fresh nonce carrying ``now`` (its issue time) and a serial number."""
        self._serial = (self._serial + 1) % _SERIAL_MODULUS
        head = _NONCE_HEAD.pack(round(now * 1000), self._serial)
        return (head + self._nonce_mac(head)).hex()

    def nonce_issued_ms(self, nonce: str) -> int | None:
        """The issue time (ms) of a nonce we issued; None for a forged or altered one."""
        if len(nonce) != _NONCE_HEX_LENGTH:
            return None
        try:
            raw = bytes.fromhex(nonce)
        except ValueError:
            return None
        head = raw[: _NONCE_HEAD.size]
        if not hmac.compare_digest(raw[_NONCE_HEAD.size :], self._nonce_mac(head)):
            return None
        issued_ms: int = _NONCE_HEAD.unpack(head)[0]
        return issued_ms

    # -- challenge ---------------------------------------------------------

    def challenge(self, now: float, *, stale: bool = False) -> list[str]:
        """WWW-/Proxy-Authenticate values, one per algorithm, preferred first."""
        nonce = self.make_nonce(now)
        tail = ", stale=true" if stale else ""
        realm = quote(self.realm)
        return [
            f'Digest realm={realm}, nonce="{nonce}", algorithm={name}, qop="auth"{tail}'
            for name in self.algorithms
        ]

    # -- verification ------------------------------------------------------

    def _find_credentials(self, values: list[str]) -> tuple[Credentials | None, str]:
        other_realm = False
        malformed = False
        for value in values:
            try:
                credentials = parse_credentials(value)
            except ParseError:
                malformed = True
                continue
            if not credentials.is_digest:
                continue
            if credentials.realm == self.realm:
                return credentials, "ok"
            other_realm = True
        if other_realm:
            return None, "realm_mismatch"
        return None, "malformed" if malformed else "missing"

    def verify(
        self,
        request: Request,
        password_for: Callable[[str], str | None],
        now: float,
        *,
        header: str = "Authorization",
    ) -> AuthResult:
        """Check the request's ``header`` credentials against ``password_for(username)``."""
        values = request.headers.get_all(header)
        if not values:
            return AuthResult(False, None, False, "missing", header)
        credentials, why = self._find_credentials(values)
        if credentials is None:
            return AuthResult(False, None, False, why, header)
        username = credentials.username

        def fail(reason: str, stale: bool = False) -> AuthResult:
            return AuthResult(False, username, stale, reason, header)

        algorithm = credentials.algorithm
        found = _algorithm(algorithm)
        if found is None or algorithm.upper() not in self._algorithms:
            return fail("algorithm")
        hash_hex, sess, _ = found
        nonce = credentials.nonce
        issued_ms = self.nonce_issued_ms(nonce)
        if issued_ms is None:
            return fail("bad_nonce")
        if not uri_matches(credentials.uri, request.uri):
            return fail("uri_mismatch")
        qop = credentials.qop
        cnonce = credentials.cnonce
        nc = credentials.nc
        if qop is None:
            if not self.allow_legacy_no_qop or (sess and not cnonce):
                return fail("malformed")
            nc = None
        elif qop != "auth" or not cnonce or nc is None:
            return fail("malformed")

        password = password_for(username)
        expected = digest_response(
            hash_hex,
            sess=sess,
            username=username,
            realm=self.realm,
            password=self._dummy_password if password is None else password,
            method=request.method,
            uri=credentials.uri,
            nonce=nonce,
            cnonce=cnonce,
            nc=nc,
            qop=qop,
        )
        sent = _bytes(credentials.response.lower())
        matched = hmac.compare_digest(expected.encode("ascii"), sent)
        if password is None:
            return fail("unknown_user")
        if not matched:
            return fail("bad_response")

        now_ms = round(now * 1000)
        age_ms = now_ms - issued_ms
        if age_ms > self.nonce_lifetime_s * 1000 or age_ms < -_FUTURE_SLACK_MS:
            return fail("stale_nonce", stale=True)
        if nc is not None:
            count = int(nc, 16)
            last = self._nonce_counts.pop(nonce, None)
            if last is None:
                if self._evicted_issued_ms is not None and issued_ms <= self._evicted_issued_ms:
                    # Its count may have been forgotten: refuse it, the client retries.
                    return fail("stale_nonce", stale=True)
                last = 0
            if count <= last:
                self._nonce_counts[nonce] = last
                return fail("replay")
            self._remember(nonce, count)
        return AuthResult(True, username, False, "ok", header)

    def _remember(self, nonce: str, count: int) -> None:
        counts = self._nonce_counts
        while len(counts) >= self.max_tracked_nonces:
            oldest = next(iter(counts))
            del counts[oldest]
            # Only verified nonces are stored, so their head can be trusted.
            evicted_ms: int = _NONCE_HEAD.unpack(bytes.fromhex(oldest[: 2 * _NONCE_HEAD.size]))[0]
            if self._evicted_issued_ms is None or evicted_ms > self._evicted_issued_ms:
                self._evicted_issued_ms = evicted_ms
        counts[nonce] = count

    @property
    def tracked_nonces(self) -> int:
        """How many nonce-counts are remembered (for metrics and tests)."""
        return len(self._nonce_counts)


# -- client --------------------------------------------------------------------


def _usable(challenge: Challenge) -> bool:
    if not challenge.is_digest or _algorithm(challenge.algorithm) is None:
        return False
    options = challenge.qop_options
    return not options or "auth" in options or "auth-int" in options


class DigestClient:
    """Answers digest challenges for one username and password.

    Keeps a nonce-count per nonce (the last ``max_tracked_nonces`` nonces)
    and increments it on every ``authorize`` with that nonce.
    """

    __slots__ = ("_nonce_counts", "_password", "max_tracked_nonces", "username")

    def __init__(self, *, username: str, password: str, max_tracked_nonces: int = 64) -> None:
        self.username = username
        self._password = password
        self.max_tracked_nonces = max(1, max_tracked_nonces)
        self._nonce_counts: dict[str, int] = {}

    @staticmethod
    def choose(challenges: list[Challenge]) -> Challenge:
        """The challenge with the strongest supported algorithm (SHA-256 over MD5).

        Unknown schemes, algorithms and qop values are skipped; among equals
        the server's order is kept. Raises AuthError when none is usable.
        """
        best: Challenge | None = None
        best_strength = 0
        for challenge in challenges:
            if not _usable(challenge):
                continue
            found = _algorithm(challenge.algorithm)
            assert found is not None
            if found[2] > best_strength:
                best, best_strength = challenge, found[2]
        if best is None:
            raise AuthError("no supported digest challenge")
        return best

    def authorize(
        self, challenge: Challenge, method: str, uri: str, *, cnonce: str, body: bytes = b""
    ) -> str:
        """The Authorization / Proxy-Authorization value answering ``challenge``.

        ``uri`` is the Request-URI of the request being authorised; ``body``
        matters only for qop=auth-int. Raises AuthError when the challenge
        cannot be answered.
        """
        if not _usable(challenge):
            raise AuthError(f"cannot answer challenge {challenge}")
        found = _algorithm(challenge.algorithm)
        assert found is not None
        hash_hex, sess, _ = found
        options = challenge.qop_options
        qop: str | None
        if not options:
            qop = None
        elif "auth" in options:
            qop = "auth"
        else:
            qop = "auth-int"
        nonce = challenge.nonce
        nc: str | None = None
        if qop is not None:
            count = self._nonce_counts.pop(nonce, 0) + 1
            while len(self._nonce_counts) >= self.max_tracked_nonces:
                del self._nonce_counts[next(iter(self._nonce_counts))]
            self._nonce_counts[nonce] = count
            nc = f"{count:08x}"
        use_cnonce = qop is not None or sess
        response = digest_response(
            hash_hex,
            sess=sess,
            username=self.username,
            realm=challenge.realm,
            password=self._password,
            method=method,
            uri=uri,
            nonce=nonce,
            cnonce=cnonce if use_cnonce else None,
            nc=nc,
            qop=qop,
            body=body,
        )
        params = [
            AuthParam("username", self.username, True),
            AuthParam("realm", challenge.realm, True),
            AuthParam("nonce", nonce, True),
            AuthParam("uri", uri, True),
            AuthParam("response", response, True),
        ]
        sent_algorithm = challenge.param("algorithm")
        if sent_algorithm is not None:
            params.append(AuthParam("algorithm", sent_algorithm, False))
        if use_cnonce:
            params.append(AuthParam("cnonce", cnonce, True))
        opaque = challenge.opaque
        if opaque is not None:
            params.append(AuthParam("opaque", opaque, True))
        if qop is not None and nc is not None:
            params.append(AuthParam("qop", qop, False))
            params.append(AuthParam("nc", nc, False))
        return str(Credentials(challenge.scheme, tuple(params)))
