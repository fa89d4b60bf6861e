"""SDP (RFC 4566): parse and build session descriptions.

``SessionDescription.parse`` accepts every line type of RFC 4566 (v, o, s,
i, u, e, p, c, b, t, r, z, k, a, m) at session and media level. Lines of a
type it does not know (``y=``, ``f=``...) are kept where they were and
written back; attributes are kept in order whatever their name. A clean SDP
(CRLF line ends, RFC order) serialises back byte for byte.

The RFC 3264 offer/answer rules for audio built on this model are in
``offer_answer.py``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

from .errors import ParseError


class SdpError(ParseError):
    """A malformed session description (400), or no usable media (488)."""

    status = 400
    reason = "Bad Request"


def not_acceptable(detail: str) -> SdpError:
    """The error for an offer or answer we cannot use: 488 Not Acceptable Here."""
    return SdpError(detail, status=488, reason="Not Acceptable Here")


# ---------------------------------------------------------------------------
# Line values
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>``"""

    username: str
    session_id: str
    session_version: int
    address: str
    network_type: str = "IN"
    address_type: str = "IP4"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.network_type} {self.address_type} {self.address}"
        )


@dataclass(slots=True)
class Connection:
    """``c=<nettype> <addrtype> <address>[/<ttl>][/<number of addresses>]``"""

    address: str
    network_type: str = "IN"
    address_type: str = "IP4"
    ttl: int | None = None
    address_count: int | None = None

    @property
    def is_null(self) -> bool:
        """``0.0.0.0`` (or ``::``): the RFC 2543 way of putting a call on hold."""
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        out = f"{self.network_type} {self.address_type} {self.address}"
        if self.ttl is not None:
            out += f"/{self.ttl}"
        if self.address_count is not None:
            out += f"/{self.address_count}"
        return out


@dataclass(slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (kbit/s for CT and AS)."""

    type: str
    value: int

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(slots=True)
class Timing:
    """``t=<start-time> <stop-time>`` and the ``r=`` lines that follow it (kept raw)."""

    start_time: int = 0
    stop_time: int = 0
    repeat_times: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.start_time} {self.stop_time}"


@dataclass(slots=True)
class Attribute:
    """``a=<name>`` (flag, ``value`` None) or ``a=<name>:<value>``."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(slots=True)
class ExtraLine:
    """A line of a type this module does not know, kept to be written back.

    It is written after the ``after_count``-th line of type ``after_type``
    of its section (where it was found), or at the section's end when that
    line no longer exists.
    """

    type: str
    value: str
    after_type: str
    after_count: int


@dataclass(slots=True)
class RtpMap:
    """``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]``"""

    payload_type: int
    encoding_name: str
    clock_rate: int
    channels: int = 1

    def __str__(self) -> str:
        out = f"{self.payload_type} {self.encoding_name}/{self.clock_rate}"
        return out + (f"/{self.channels}" if self.channels != 1 else "")


class Direction(StrEnum):
    """The direction attributes of RFC 3264 §5.1 / RFC 4566 §6."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @staticmethod
    def from_flags(sends: bool, receives: bool) -> Direction:
        if sends:
            return Direction.SENDRECV if receives else Direction.SENDONLY
        return Direction.RECVONLY if receives else Direction.INACTIVE

    def reversed(self) -> Direction:
        """The same stream seen from the other end (sendonly <-> recvonly)."""
        return Direction.from_flags(self.receives, self.sends)


_DIRECTIONS = frozenset(d.value for d in Direction)


# ---------------------------------------------------------------------------
# Attribute lists (shared by session and media level)
# ---------------------------------------------------------------------------


def _find(attributes: list[Attribute], name: str) -> str | None:
    lname = name.lower()
    for attribute in attributes:
        if attribute.name.lower() == lname:
            return "" if attribute.value is None else attribute.value
    return None


def _direction_of(attributes: list[Attribute]) -> Direction | None:
    for attribute in attributes:
        name = attribute.name.lower()
        if name in _DIRECTIONS and attribute.value is None:
            return Direction(name)
    return None


def _set_direction(attributes: list[Attribute], direction: Direction | None) -> None:
    """Replace the direction attribute in place (keeping its position); None removes it."""
    index: int | None = None
    i = 0
    while i < len(attributes):
        if attributes[i].name.lower() in _DIRECTIONS:
            if index is None:
                index = i
                i += 1
            else:
                del attributes[i]
        else:
            i += 1
    if direction is None:
        if index is not None:
            del attributes[index]
    elif index is None:
        attributes.append(Attribute(direction.value))
    else:
        attributes[index] = Attribute(direction.value)


def _int_field(text: str, what: str, line: str) -> int:
    if not text.isdigit():
        raise SdpError(f"bad {what} in {line!r}")
    return int(text)


def _is_token(text: str) -> bool:
    return bool(text) and all(c.isalnum() or c in "!#$%&'*+-.^_`{|}~" for c in text)


# ---------------------------------------------------------------------------
# Media description
# ---------------------------------------------------------------------------

# RFC 3551 static payload types: number -> (encoding name, clock rate, channels).
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1), 3: ("GSM", 8000, 1), 4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1), 6: ("DVI4", 16000, 1), 7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1), 10: ("L16", 44100, 2),
    11: ("L16", 44100, 1), 12: ("QCELP", 8000, 1), 13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1), 15: ("G728", 8000, 1), 16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1), 18: ("G729", 8000, 1),
}


@dataclass(frozen=True, slots=True)
class Codec:
    """An RTP payload format as negotiated: name, RTP clock rate and payload type.

    G722's RTP clock rate is 8000 although it samples at 16 kHz (RFC 3551 §4.5.2).
    """

    name: str
    clock_rate: int
    payload_type: int
    channels: int = 1
    fmtp: str | None = None

    def same_format(self, other: Codec) -> bool:
        """Same encoding, clock rate and channels (payload types may differ)."""
        return (
            self.name.lower() == other.name.lower()
            and self.clock_rate == other.clock_rate
            and self.channels == other.channels
        )

    @property
    def is_telephone_event(self) -> bool:
        return self.name.lower() == "telephone-event"


@dataclass(slots=True)
class MediaDescription:
    """One ``m=`` section and the lines under it."""

    media: str
    port: int
    protocol: str
    formats: list[str]
    port_count: int | None = None
    title: str | None = None
    connections: list[Connection] = field(default_factory=list)
    bandwidths: list[Bandwidth] = field(default_factory=list)
    encryption_key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    extra_lines: list[ExtraLine] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        """The first attribute ``name``'s value ('' for a flag), None when absent."""
        return _find(self.attributes, name)

    def attribute_values(self, name: str) -> list[str]:
        lname = name.lower()
        return [a.value or "" for a in self.attributes if a.name.lower() == lname]

    @property
    def direction(self) -> Direction | None:
        """The media-level direction attribute, None when absent."""
        return _direction_of(self.attributes)

    def set_direction(self, direction: Direction | str | None) -> None:
        _set_direction(self.attributes, None if direction is None else Direction(direction))

    @property
    def ptime_ms(self) -> int | None:
        return _duration_ms(self.attribute("ptime"), "ptime")

    @property
    def maxptime_ms(self) -> int | None:
        return _duration_ms(self.attribute("maxptime"), "maxptime")

    @property
    def rtcp(self) -> tuple[int, Connection | None] | None:
        """RFC 3605 ``a=rtcp:<port> [<nettype> <addrtype> <address>]``."""
        value = self.attribute("rtcp")
        if value is None:
            return None
        port_text, _, rest = value.strip().partition(" ")
        port = _int_field(port_text, "rtcp port", value)
        if port > 65535:
            raise SdpError(f"bad rtcp port in {value!r}")
        return port, (_parse_connection(rest.strip(), value) if rest.strip() else None)

    def rtpmaps(self) -> dict[int, RtpMap]:
        out: dict[int, RtpMap] = {}
        for value in self.attribute_values("rtpmap"):
            rtpmap = parse_rtpmap(value)
            out.setdefault(rtpmap.payload_type, rtpmap)
        return out

    def fmtps(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for value in self.attribute_values("fmtp"):
            pt_text, _, params = value.partition(" ")
            if pt_text.isdigit():
                out.setdefault(int(pt_text), params.strip())
        return out

    def codecs(self) -> list[Codec]:
        """The RTP payload formats of the m-line, in its order.

        Dynamic payload types without an rtpmap are skipped (they cannot be
        identified); static ones fall back to the RFC 3551 table.
        """
        rtpmaps = self.rtpmaps()
        fmtps = self.fmtps()
        out: list[Codec] = []
        for fmt in self.formats:
            if not fmt.isdigit() or int(fmt) > 127:
                continue
            pt = int(fmt)
            rtpmap = rtpmaps.get(pt)
            if rtpmap is not None:
                name = rtpmap.encoding_name
                clock_rate, channels = rtpmap.clock_rate, rtpmap.channels
            elif pt in STATIC_PAYLOAD_TYPES:
                name, clock_rate, channels = STATIC_PAYLOAD_TYPES[pt]
            else:
                continue
            out.append(Codec(name, clock_rate, pt, channels, fmtps.get(pt)))
        return out

    def copy(self) -> MediaDescription:
        return MediaDescription(
            media=self.media, port=self.port, protocol=self.protocol,
            formats=list(self.formats), port_count=self.port_count, title=self.title,
            connections=[_copy_connection(c) for c in self.connections],
            bandwidths=[Bandwidth(b.type, b.value) for b in self.bandwidths],
            encryption_key=self.encryption_key,
            attributes=[Attribute(a.name, a.value) for a in self.attributes],
            extra_lines=[ExtraLine(e.type, e.value, e.after_type, e.after_count)
                         for e in self.extra_lines],
        )

    def _take(self, kind: str, value: str) -> bool:
        """Store one media-level line; False when the type is unknown here."""
        if kind == "a":
            self.attributes.append(_parse_attribute(value))
        elif kind == "c":
            self.connections.append(_parse_connection(value, "c=" + value))
        elif kind == "b":
            self.bandwidths.append(_parse_bandwidth(value))
        elif kind == "i":
            self.title = value
        elif kind == "k":
            self.encryption_key = value
        else:
            return False
        return True

    def _lines(self, out: list[str]) -> None:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        emit = _Emitter(out, self.extra_lines)
        emit("m", " ".join([self.media, port, self.protocol, *self.formats]))
        if self.title is not None:
            emit("i", self.title)
        for connection in self.connections:
            emit("c", str(connection))
        for bandwidth in self.bandwidths:
            emit("b", str(bandwidth))
        if self.encryption_key is not None:
            emit("k", self.encryption_key)
        for attribute in self.attributes:
            emit("a", str(attribute))
        emit.finish()


def _copy_connection(c: Connection) -> Connection:
    return Connection(c.address, c.network_type, c.address_type, c.ttl, c.address_count)


def _duration_ms(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        duration = float(value.strip())
    except ValueError:
        raise SdpError(f"bad {what} {value!r}") from None
    if not 0 < duration <= 10_000:
        raise SdpError(f"bad {what} {value!r}")
    return round(duration)


def parse_rtpmap(value: str) -> RtpMap:
    pt_text, _, encoding = value.strip().partition(" ")
    parts = encoding.strip().split("/")
    if (
        not pt_text.isdigit() or int(pt_text) > 127 or len(parts) not in (2, 3)
        or not parts[0] or not parts[1].isdigit() or int(parts[1]) == 0
        or (len(parts) == 3 and not parts[2].isdigit())
    ):
        raise SdpError(f"bad rtpmap {value!r}")
    channels = int(parts[2]) if len(parts) == 3 else 1
    return RtpMap(int(pt_text), parts[0], int(parts[1]), channels)


# ---------------------------------------------------------------------------
# Session description
# ---------------------------------------------------------------------------


class _Emitter:
    """Writes ``x=value`` lines and the extra lines anchored after them."""

    __slots__ = ("_counts", "_extras", "_out", "_pending")

    def __init__(self, out: list[str], extras: list[ExtraLine]) -> None:
        self._out = out
        self._extras = extras
        self._pending = list(extras) if extras else []
        self._counts: dict[str, int] = {}

    def __call__(self, kind: str, value: str) -> None:
        self._out.append(f"{kind}={value}")
        if self._pending:
            count = self._counts.get(kind, 0) + 1
            self._counts[kind] = count
            keep: list[ExtraLine] = []
            for extra in self._pending:
                if extra.after_type == kind and extra.after_count == count:
                    self._out.append(f"{extra.type}={extra.value}")
                else:
                    keep.append(extra)
            self._pending = keep

    def finish(self) -> None:
        for extra in self._pending:
            self._out.append(f"{extra.type}={extra.value}")


def _parse_connection(value: str, line: str) -> Connection:
    parts = value.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SdpError(f"bad connection line {line!r}")
    network_type, address_type, address_text = parts
    address, *suffix = address_text.split("/")
    if len(suffix) > 2 or not all(s.isdigit() for s in suffix):
        raise SdpError(f"bad connection address {line!r}")
    upper = address_type.upper()
    if upper == "IP6":
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise SdpError(f"bad IPv6 address in {line!r}") from None
    elif upper == "IP4":
        if address.replace(".", "").isdigit():
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                raise SdpError(f"bad IPv4 address in {line!r}") from None
        elif not address or any(not (c.isalnum() or c in "-.") for c in address):
            raise SdpError(f"bad address in {line!r}")
    ttl: int | None = None
    count: int | None = None
    if upper == "IP4" and suffix:
        ttl = int(suffix[0])
        count = int(suffix[1]) if len(suffix) == 2 else None
    elif suffix:
        if len(suffix) == 2:
            raise SdpError(f"IPv6 connection address with a TTL in {line!r}")
        count = int(suffix[0])
    return Connection(address, network_type, address_type, ttl, count)


def _parse_origin(value: str) -> Origin:
    parts = value.split(" ")
    if len(parts) != 6 or not all(parts):
        raise SdpError(f"bad origin line 'o={value}'")
    username, session_id, version, network_type, address_type, address = parts
    if not session_id.isdigit():
        raise SdpError(f"bad session id in 'o={value}'")
    return Origin(
        username, session_id, _int_field(version, "session version", value), address,
        network_type, address_type,
    )


def _parse_bandwidth(value: str) -> Bandwidth:
    kind, colon, number = value.partition(":")
    if not colon or not _is_token(kind) or not number.isdigit():
        raise SdpError(f"bad bandwidth line 'b={value}'")
    return Bandwidth(kind, int(number))


def _parse_attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    if not _is_token(name):
        raise SdpError(f"bad attribute 'a={value}'")
    return Attribute(name, rest if colon else None)


def _parse_media(value: str) -> MediaDescription:
    parts = value.split(" ")
    if len(parts) < 3 or not all(parts):
        raise SdpError(f"bad media line 'm={value}'")
    media, port_text, protocol, *formats = parts
    port_part, slash, count_part = port_text.partition("/")
    port = _int_field(port_part, "media port", value)
    count = _int_field(count_part, "port count", value) if slash else None
    if port > 65535 or not _is_token(media) or not all(_is_token(p) for p in protocol.split("/")):
        raise SdpError(f"bad media line 'm={value}'")
    if not formats and port != 0:
        raise SdpError(f"media line without formats 'm={value}'")
    return MediaDescription(media, port, protocol, formats, count)


_SESSION_SINGLE = frozenset("osiukz")
_MEDIA_SINGLE = frozenset("ik")


@dataclass(slots=True)
class SessionDescription:
    """A whole SDP body. Fields are named after RFC 4566 §5."""

    origin: Origin
    session_name: str | None = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=lambda: [Timing()])
    time_zones: str | None = None
    encryption_key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    extra_lines: list[ExtraLine] = field(default_factory=list)

    # -- reading -------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse an SDP body; raises SdpError (400) when it is malformed."""
        text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
        lines = text.split("\n")
        origin: Origin | None = None
        sdp: SessionDescription | None = None
        media: MediaDescription | None = None
        counts: dict[str, int] = {}
        last_kind = "v"
        seen_version = False
        for raw in lines:
            line = raw[:-1] if raw.endswith("\r") else raw
            if not line:
                continue
            if len(line) < 2 or line[1] != "=" or not line[0].isalpha() or not line[0].isascii():
                raise SdpError(f"bad SDP line {line[:60]!r}")
            kind = line[0]
            value = line[2:]
            if not seen_version:
                if kind != "v" or value != "0":
                    raise SdpError("SDP must begin with v=0")
                seen_version = True
                continue
            if sdp is None:
                if kind != "o":
                    raise SdpError("o= must follow v=")
                origin = _parse_origin(value)
                sdp = cls(origin=origin, session_name=None, timings=[])
                counts = {"v": 1, "o": 1}
                last_kind = "o"
                continue
            if kind == "m":
                media = _parse_media(value)
                sdp.media.append(media)
                counts = {"m": 1}
                last_kind = "m"
                continue
            if kind in "vo":
                raise SdpError(f"repeated {kind}= line")
            single = _MEDIA_SINGLE if media is not None else _SESSION_SINGLE
            if kind in single and counts.get(kind):
                raise SdpError(f"repeated {kind}= line")
            known = media._take(kind, value) if media is not None else sdp._take(kind, value)
            if known:
                counts[kind] = counts.get(kind, 0) + 1
                last_kind = kind
            else:
                extra = ExtraLine(kind, value, last_kind, counts.get(last_kind, 0))
                (media.extra_lines if media is not None else sdp.extra_lines).append(extra)
        if sdp is None:
            raise SdpError("SDP without v= and o= lines")
        return sdp

    def _take(self, kind: str, value: str) -> bool:
        """Store one session-level line; False when the type is unknown here."""
        if kind == "a":
            self.attributes.append(_parse_attribute(value))
        elif kind == "c":
            if self.connection is not None:
                raise SdpError("repeated session-level c= line")
            self.connection = _parse_connection(value, "c=" + value)
        elif kind == "t":
            parts = value.split(" ")
            if len(parts) != 2:
                raise SdpError(f"bad timing line 't={value}'")
            self.timings.append(Timing(_int_field(parts[0], "start time", value),
                                       _int_field(parts[1], "stop time", value)))
        elif kind == "r":
            if not self.timings:
                raise SdpError("r= line before any t= line")
            self.timings[-1].repeat_times.append(value)
        elif kind == "b":
            self.bandwidths.append(_parse_bandwidth(value))
        elif kind == "s":
            self.session_name = value
        elif kind == "i":
            self.information = value
        elif kind == "u":
            self.uri = value
        elif kind == "e":
            self.emails.append(value)
        elif kind == "p":
            self.phones.append(value)
        elif kind == "z":
            self.time_zones = value
        elif kind == "k":
            self.encryption_key = value
        else:
            return False
        return True

    @property
    def session_direction(self) -> Direction | None:
        return _direction_of(self.attributes)

    def set_direction(self, direction: Direction | str | None) -> None:
        """Set (None: remove) the session-level direction attribute."""
        _set_direction(self.attributes, None if direction is None else Direction(direction))

    def attribute(self, name: str) -> str | None:
        return _find(self.attributes, name)

    def direction_of(self, media: MediaDescription) -> Direction:
        """The direction in force for ``media``: its own, else the session's, else sendrecv."""
        return media.direction or self.session_direction or Direction.SENDRECV

    def connection_of(self, media: MediaDescription) -> Connection | None:
        """The media's first c= line, else the session-level one."""
        return media.connections[0] if media.connections else self.connection

    # -- writing -------------------------------------------------------------

    def serialize(self) -> bytes:
        out: list[str] = []
        emit = _Emitter(out, self.extra_lines)
        emit("v", str(self.version))
        emit("o", str(self.origin))
        if self.session_name is not None:
            emit("s", self.session_name)
        if self.information is not None:
            emit("i", self.information)
        if self.uri is not None:
            emit("u", self.uri)
        for email in self.emails:
            emit("e", email)
        for phone in self.phones:
            emit("p", phone)
        if self.connection is not None:
            emit("c", str(self.connection))
        for bandwidth in self.bandwidths:
            emit("b", str(bandwidth))
        for timing in self.timings:
            emit("t", str(timing))
            for repeat in timing.repeat_times:
                emit("r", repeat)
        if self.time_zones is not None:
            emit("z", self.time_zones)
        if self.encryption_key is not None:
            emit("k", self.encryption_key)
        for attribute in self.attributes:
            emit("a", str(attribute))
        emit.finish()
        for media in self.media:
            media._lines(out)
        out.append("")
        return "\r\n".join(out).encode("utf-8", "surrogateescape")

    def __bytes__(self) -> bytes:
        return self.serialize()

    def copy(self) -> SessionDescription:
        o = self.origin
        return SessionDescription(
            origin=Origin(o.username, o.session_id, o.session_version, o.address,
                          o.network_type, o.address_type),
            session_name=self.session_name, version=self.version,
            information=self.information, uri=self.uri,
            emails=list(self.emails), phones=list(self.phones),
            connection=None if self.connection is None else _copy_connection(self.connection),
            bandwidths=[Bandwidth(b.type, b.value) for b in self.bandwidths],
            timings=[Timing(t.start_time, t.stop_time, list(t.repeat_times))
                     for t in self.timings],
            time_zones=self.time_zones, encryption_key=self.encryption_key,
            attributes=[Attribute(a.name, a.value) for a in self.attributes],
            media=[m.copy() for m in self.media],
            extra_lines=[ExtraLine(e.type, e.value, e.after_type, e.after_count)
                         for e in self.extra_lines],
        )
