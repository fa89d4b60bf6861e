"""Bytes to messages: datagram parsing and stream (TCP/TLS) framing.

``parse_message`` checks the framing, the start line, the presence of the
headers every request or response needs, the top Via and the CSeq; other
header values are parsed when read (see message.py), and
``Message.validate()`` parses all the ones the core understands.
``StreamFramer`` cuts a byte stream into messages by Content-Length
(RFC 3261 §18.3).

Errors: everything raised is a ParseError (status 400), a MessageTooLarge
(513) or a ParseError with status 505 (bad version). How the transport
answers one: a broken *request* is answered statelessly with the error's
status when the headers that address a response can be salvaged
(``boomerang.sip.uas_checks.reply_to_broken_head(data, error)`` does that
from the raw bytes, also for a head over the size limit); a broken
*response* is dropped. On a stream transport a MessageTooLarge or a bad
Content-Length from ``StreamFramer.feed`` means the framing is lost: answer
if possible, then close the connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import MessageTooLarge, ParseError
from .grammar import is_digits, parse_uint
from .headers import CANONICAL_NAMES
from .message import Headers, Message, Request, Response


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits applied while parsing (bytes and counts)."""

    max_message_bytes: int = 65_535
    max_header_bytes: int = 16_384
    max_headers: int = 256
    max_body_bytes: int = 65_535


DEFAULT_LIMITS = Limits()

_MANDATORY_REQUEST = ("Via", "From", "To", "Call-ID", "CSeq")
_MANDATORY_KEYS = ("via", "from", "to", "call-id", "cseq")

# lower-case header name -> (canonical lower-case key, spelling to write)
_NAME_INFO: dict[str, tuple[str, str]] = {
    lname: (full.lower(), full) for lname, full in CANONICAL_NAMES.items()
}
# exact spelling -> the same, for the names peers usually send (skips the checks)
_NAME_INFO_EXACT: dict[str, tuple[str, str]] = {
    **{full: (full.lower(), full) for full in CANONICAL_NAMES.values()},
    **{short: (full.lower(), full) for short, full in CANONICAL_NAMES.items() if len(short) == 1},
}
_HEADER_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_METHOD_RE = _HEADER_NAME_RE
_URI_START_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:\S")


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    # tolerate bare LF line ends (seen from broken peers)
    end = data.find(b"\n\n")
    if end >= 0:
        return data[:end], data[end + 2 :]
    # a message with no body and no blank line (truncated, or a datagram
    # ending right after the last header)
    return data.rstrip(b"\r\n"), b""


def parse_headers_block(head: str, limits: Limits) -> tuple[str, Headers]:
    """Split the head (start line and header lines) and unfold continuations.

    A folded value keeps one SP where each line break was (RFC 3261 §7.3.1).
    """
    if "\r" in head:
        head = head.replace("\r\n", "\n")
    lines = head.split("\n")
    if len(lines) > limits.max_headers + 1:
        count = sum(1 for line in lines if line[:1] not in (" ", "\t", ""))
        if count > limits.max_headers + 1:
            raise MessageTooLarge(f"more than {limits.max_headers} header lines")
    headers = Headers()
    items = headers._items
    append = items.append
    name_info = _NAME_INFO
    exact = _NAME_INFO_EXACT
    key = ""
    spelled = ""
    value: str | None = None
    for line in lines[1:]:
        if not line:
            continue
        first = line[0]
        if first == " " or first == "\t":
            if value is None:
                raise ParseError("continuation line before any header")
            more = line.strip(" \t")
            value = f"{value} {more}" if value else more
            continue
        if value is not None:
            append((key, spelled, value))
        colon = line.find(":")
        if colon <= 0:
            raise ParseError(f"header line without ':': {line[:60]!r}")
        name = line[:colon]
        info = exact.get(name)
        if info is None:
            if name[-1] == " " or name[-1] == "\t":
                name = name.rstrip(" \t")
            if _HEADER_NAME_RE.match(name) is None:
                raise ParseError(f"bad header name {name[:60]!r}")
            lname = name.lower()
            info = name_info.get(lname)
            if info is None:
                info = (lname, name)
        key, spelled = info
        value = line[colon + 1 :].strip(" \t")
    if value is not None:
        append((key, spelled, value))
    return lines[0], headers


def parse_start_line(start: str) -> tuple[str, str, str] | tuple[int, str, str]:
    """``(method, uri, version)`` of a request line or ``(status, reason, version)``."""
    if start[:4].upper() == "SIP/":
        version, _, rest = start.partition(" ")
        if version.upper() != "SIP/2.0":
            raise ParseError(f"unsupported version {version[:20]!r}", status=505,
                             reason="Version Not Supported")
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not is_digits(code) or not "1" <= code[0] <= "6":
            raise ParseError(f"bad status code {code[:20]!r}")
        return int(code), reason, version
    parts = start.split(" ")
    if len(parts) != 3:
        raise ParseError(f"bad request line {start[:80]!r}")
    method, uri, version = parts
    if _METHOD_RE.match(method) is None:
        raise ParseError(f"bad method {method[:40]!r}")
    if version.upper() != "SIP/2.0":
        if version[:4].upper() == "SIP/":
            raise ParseError(f"unsupported version {version[:20]!r}", status=505,
                             reason="Version Not Supported")
        raise ParseError(f"bad version in request line {start[:80]!r}")
    if _URI_START_RE.match(uri) is None:
        raise ParseError(f"bad Request-URI {uri[:80]!r}")
    return method, uri, version


def _body_length(headers: Headers) -> int | None:
    values = headers.get_all("Content-Length")
    if not values:
        return None
    if len(values) > 1 and len({v.strip() for v in values}) > 1:
        # RFC 4475 §3.3.9: no way to know where the body ends
        raise ParseError("conflicting Content-Length headers")
    return parse_uint(values[0], "Content-Length")


def parse_message(
    data: bytes, limits: Limits = DEFAULT_LIMITS, *, stream: bool = False
) -> Message:
    """Parse one complete message.

    For a datagram (``stream=False``) the body is what follows the blank
    line, cut to Content-Length when that is smaller; a Content-Length
    larger than what arrived is a 400. Raises ParseError (or a subclass)
    and nothing else.
    """
    if len(data) > limits.max_message_bytes:
        raise MessageTooLarge(f"message of {len(data)} bytes")
    # RFC 3261 §7.5: ignore CRLFs before the start line
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    if not data:
        raise ParseError("empty message")
    head_bytes, body = _split_head(data)
    if len(head_bytes) > limits.max_header_bytes:
        raise MessageTooLarge(f"header block of {len(head_bytes)} bytes")
    try:
        head = head_bytes.decode()
    except UnicodeDecodeError:
        # keep the bytes; non-UTF-8 values survive a round trip
        head = head_bytes.decode("utf-8", "surrogateescape")
    start, headers = parse_headers_block(head, limits)
    first = parse_start_line(start)
    length = _body_length(headers)
    if length is not None:
        if length > len(body):
            raise ParseError(f"Content-Length {length} but only {len(body)} body bytes")
        if length != len(body):
            body = body[:length]
    elif stream:
        raise ParseError("Content-Length is mandatory on stream transports")
    if len(body) > limits.max_body_bytes:
        raise MessageTooLarge(f"body of {len(body)} bytes")
    present = {item[0] for item in headers._items}
    missing = [name for name, key in zip(_MANDATORY_REQUEST, _MANDATORY_KEYS, strict=True)
               if key not in present]
    if missing:
        raise ParseError(f"missing mandatory header(s): {', '.join(missing)}")
    message: Message
    if isinstance(first[0], int):
        message = Response(first[0], first[1], headers, body, version=first[2])
    else:
        method, uri, version = first
        assert isinstance(method, str)
        message = Request(method, uri, headers, body, version=version)
    # These are needed to route an answer or match a transaction: check now.
    cseq = message.cseq
    if isinstance(message, Request) and cseq.method != message.method:
        raise ParseError(f"CSeq method {cseq.method} does not match {message.method}")
    message.top_via  # noqa: B018 - validates the top Via
    return message


_PING = b"\r\n\r\n"


class StreamFramer:
    """Cuts SIP messages out of a TCP/TLS byte stream.

    ``feed(data)`` returns the complete messages (as bytes) found so far,
    whatever way the stream was cut into chunks. RFC 5626 keep-alives
    (CRLF CRLF) are returned as ``b"\\r\\n\\r\\n"`` so the transport can
    answer them with a single CRLF; other CRLFs between messages are
    dropped. A head larger than the limit or a bad Content-Length raises
    ParseError (MessageTooLarge for sizes): the framing is then lost and
    the connection should be closed.
    """

    __slots__ = ("_buffer", "_need", "_scan", "limits")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buffer = bytearray()
        self._need = 0  # length of the message being completed, 0 while in its head
        self._scan = 0  # where the search for the end of the head resumes

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buffer
        buf += data
        out: list[bytes] = []
        limits = self.limits
        while buf:
            if self._need:
                if len(buf) < self._need:
                    break
                out.append(bytes(buf[: self._need]))
                del buf[: self._need]
                self._need = 0
                self._scan = 0
                continue
            first = buf[0]
            if first == 13 or first == 10:  # CR or LF before a start line
                if buf.startswith(_PING):
                    out.append(_PING)
                    del buf[:4]
                    continue
                if _PING.startswith(buf):
                    break  # perhaps the start of a keep-alive: wait
                skip = len(buf) - len(buf.lstrip(b"\r\n"))
                del buf[:skip]
                continue
            end = buf.find(b"\r\n\r\n", max(0, self._scan - 3))
            if end < 0:
                if len(buf) > limits.max_header_bytes:
                    raise MessageTooLarge(f"header block over {limits.max_header_bytes} bytes")
                self._scan = len(buf)
                break
            if end > limits.max_header_bytes:
                raise MessageTooLarge(f"header block of {end} bytes")
            length = content_length_from_head(bytes(buf[:end]))
            if length > limits.max_body_bytes:
                raise MessageTooLarge(f"body of {length} bytes")
            self._need = end + 4 + length
        return out

    @property
    def buffered(self) -> bytes:
        """What arrived of the message not complete yet (for an error reply)."""
        return bytes(self._buffer)


def content_length_from_head(head: bytes) -> int:
    """The Content-Length of a raw head (folded values and compact ``l`` understood)."""
    found: list[bytes] = []
    lines = head.split(b"\n")
    i = 1
    n = len(lines)
    while i < n:
        line = lines[i].rstrip(b"\r")
        i += 1
        name, colon, value = line.partition(b":")
        if not colon or name[:1] in (b" ", b"\t"):
            continue
        if name.strip().lower() in (b"content-length", b"l"):
            while i < n and lines[i][:1] in (b" ", b"\t"):
                value += b" " + lines[i].strip()
                i += 1
            found.append(value.strip())
    if not found:
        raise ParseError("Content-Length is mandatory on stream transports")
    if len(set(found)) > 1:
        raise ParseError("conflicting Content-Length headers")
    return parse_uint(found[0].decode("ascii", "replace"), "Content-Length")


# Old private name, kept for callers.
_content_length_from_head = content_length_from_head
