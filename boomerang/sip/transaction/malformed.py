"""Answering what could not be parsed (RFC 3261 §8.2, §16.3, §18.3).

A request that failed to parse still gets an answer (400, or the error's
own status: 505, 513, 416...) when the headers that address a response can
be read from its head: the top Via (to route it), CSeq and Call-ID (From
and To are copied when present). Responses and ACKs are never answered;
anything else too broken is dropped by the caller.
"""

from __future__ import annotations

from ..errors import SipError
from ..headers import Via, canonical_name, parse_cseq, parse_via, split_list
from ..message import Headers, Response

_ADDRESSING = ("Via", "From", "To", "Call-ID", "CSeq")
_MAX_HEAD_BYTES = 65_536


def _head_lines(data: bytes) -> list[str]:
    head = data.lstrip(b"\r\n")[:_MAX_HEAD_BYTES]
    end = head.find(b"\r\n\r\n")
    if end < 0:
        end = head.find(b"\n\n")
    if end >= 0:
        head = head[:end]
    return head.decode("utf-8", "surrogateescape").split("\n")


def salvage_answer(data: bytes, error: SipError) -> tuple[Response, Via] | None:
    """The error response for the unparsable request ``data`` and the top Via
    to route it by, or None when no answer can (or may) be sent."""
    lines = _head_lines(data)
    start = lines[0].rstrip("\r").strip()
    if not start or start.upper().startswith("SIP/"):
        return None  # a response, or nothing: never answered
    method = start.split(" ", 1)[0]
    if method.upper() == "ACK":
        return None
    fields: list[tuple[str, str]] = []
    for raw in lines[1:]:
        line = raw.rstrip("\r")
        if line[:1] in (" ", "\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, value + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue
        fields.append((canonical_name(name.strip()), value.strip()))
    headers = Headers((name, value) for name, value in fields if name in _ADDRESSING)
    try:
        via_value = headers.get("Via")
        cseq_value = headers.get("CSeq")
        call_id = headers.get("Call-ID")
        if via_value is None or cseq_value is None or not call_id:
            return None
        via = parse_via(split_list(via_value)[0])
        if parse_cseq(cseq_value).method.upper() == "ACK":
            return None
    except (SipError, ValueError, IndexError):
        return None
    status = error.status if 400 <= error.status < 700 else 400
    return Response(status, error.reason, headers), via


__all__ = ["salvage_answer"]
