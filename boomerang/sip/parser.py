"""Bytes to messages: datagram parsing and stream (TCP/TLS) framing.

``parse_message`` checks the framing, the start line and the presence of the
headers every request or response needs; header values are parsed later,
when read (see message.py). ``StreamFramer`` cuts a byte stream into
messages by Content-Length (RFC 3261 §18.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import MessageTooLarge, ParseError
from .grammar import TOKEN_CHARS
from .headers import canonical_name
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
    """Split the head (start line and header lines) and unfold continuations."""
    lines = head.split("\n")
    start = lines[0].rstrip("\r")
    headers = Headers()
    items = headers._items
    name: str | None = None
    value = ""
    count = 0
    for raw in lines[1:]:
        line = raw[:-1] if raw.endswith("\r") else raw
        if line[:1] in (" ", "\t"):
            if name is None:
                raise ParseError("continuation line before any header")
            value = value + " " + line.strip()
            continue
        if name is not None:
            spelled = canonical_name(name)
            items.append((spelled.lower(), spelled, value))
        if not line:
            name = None
            continue
        colon = line.find(":")
        if colon <= 0:
            raise ParseError(f"header line without ':': {line[:60]!r}")
        name = line[:colon].rstrip(" \t")
        for c in name:
            if c not in TOKEN_CHARS:
                raise ParseError(f"bad header name {name[:60]!r}")
        value = line[colon + 1 :].strip(" \t")
        count += 1
        if count > limits.max_headers:
            raise MessageTooLarge(f"more than {limits.max_headers} header lines")
    if name is not None:
        spelled = canonical_name(name)
        items.append((spelled.lower(), spelled, value))
    return start, headers


def parse_start_line(start: str) -> tuple[str, str, str] | tuple[int, str, str]:
    if start.startswith("SIP/"):
        parts = start.split(" ", 2)
        if len(parts) < 2:
            raise ParseError(f"bad status line {start[:80]!r}")
        version = parts[0]
        if version.upper() != "SIP/2.0":
            raise ParseError(f"unsupported version {version!r}", status=505,
                             reason="Version Not Supported")
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or code[0] == "0":
            raise ParseError(f"bad status code {code!r}")
        return int(code), parts[2] if len(parts) > 2 else "", version
    parts = start.split(" ")
    if len(parts) != 3:
        raise ParseError(f"bad request line {start[:80]!r}")
    method, uri, version = parts
    if not method or any(c not in TOKEN_CHARS for c in method):
        raise ParseError(f"bad method {method[:40]!r}")
    if not version.upper().startswith("SIP/"):
        raise ParseError(f"bad version in request line {start[:80]!r}")
    if version.upper() != "SIP/2.0":
        raise ParseError(f"unsupported version {version!r}", status=505,
                         reason="Version Not Supported")
    if ":" not in uri:
        raise ParseError(f"bad Request-URI {uri[:80]!r}")
    return method, uri, version


def _body_length(headers: Headers) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit():
        raise ParseError(f"bad Content-Length {value!r}")
    return int(value)


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
    data = data.lstrip(b"\r\n")
    if not data:
        raise ParseError("empty message")
    head_bytes, body = _split_head(data)
    if len(head_bytes) > limits.max_header_bytes:
        raise MessageTooLarge(f"header block of {len(head_bytes)} bytes")
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError:
        # keep the bytes; non-UTF-8 values survive a round trip
        head = head_bytes.decode("utf-8", "surrogateescape")
    if "\x00" in head:
        raise ParseError("NUL byte in header block")
    start, headers = parse_headers_block(head, limits)
    length = _body_length(headers)
    if length is not None:
        if length > len(body):
            raise ParseError(f"Content-Length {length} but only {len(body)} body bytes")
        body = body[:length]
    elif stream:
        raise ParseError("Content-Length is mandatory on stream transports")
    if len(body) > limits.max_body_bytes:
        raise MessageTooLarge(f"body of {len(body)} bytes")
    first = parse_start_line(start)
    message: Message
    if isinstance(first[0], int):
        status, reason, version = first
        assert isinstance(status, int)
        message = Response(status, reason, headers, body, version=version)
        missing = [n for n in _MANDATORY_REQUEST if n not in headers]
    else:
        method, uri, version = first
        assert isinstance(method, str)
        message = Request(method, uri, headers, body, version=version)
        missing = [n for n in _MANDATORY_REQUEST if n not in headers]
    if missing:
        raise ParseError(f"missing mandatory header(s): {', '.join(missing)}")
    # These are needed to route an answer or match a transaction: check now.
    cseq = message.cseq
    if isinstance(message, Request) and cseq.method != message.method:
        raise ParseError(f"CSeq method {cseq.method} does not match {message.method}")
    message.top_via  # noqa: B018 - validates the top Via
    return message


class StreamFramer:
    """Cuts SIP messages out of a TCP/TLS byte stream.

    ``feed(data)`` returns the complete messages (as bytes) found so far.
    RFC 5626 keep-alives (CRLF CRLF) are returned as ``b"\\r\\n\\r\\n"`` so the
    transport can answer them with a single CRLF. A head larger than the
    limit or a bad Content-Length raises ParseError: the connection should
    then be closed, as the framing is lost.
    """

    __slots__ = ("_buffer", "limits")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        while True:
            buf = self._buffer
            if buf.startswith(b"\r\n\r\n"):
                out.append(b"\r\n\r\n")
                self._buffer = buf[4:]
                continue
            stripped = buf.lstrip(b"\r\n")
            if len(stripped) != len(buf):
                if not stripped:
                    # a lone CRLF (pong) or the start of a ping: wait for more
                    if buf == b"\r\n":
                        self._buffer = b""
                    return out
                self._buffer = buf = stripped
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.limits.max_header_bytes:
                    raise MessageTooLarge(f"header block over {self.limits.max_header_bytes} bytes")
                return out
            if end > self.limits.max_header_bytes:
                raise MessageTooLarge(f"header block of {end} bytes")
            length = _content_length_from_head(buf[:end])
            if length > self.limits.max_body_bytes:
                raise MessageTooLarge(f"body of {length} bytes")
            total = end + 4 + length
            if len(buf) < total:
                return out
            out.append(buf[:total])
            self._buffer = buf[total:]


def _content_length_from_head(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        key = name.strip().lower()
        if key in (b"content-length", b"l"):
            text = value.strip()
            if not text.isdigit():
                raise ParseError(f"bad Content-Length {text[:20]!r}")
            return int(text)
    raise ParseError("Content-Length is mandatory on stream transports")
