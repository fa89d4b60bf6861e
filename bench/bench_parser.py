"""Micro-benchmark of the SIP message layer.

    python bench/bench_parser.py

Prints microseconds per operation for a realistic ~700-byte INVITE with SDP:
parse_message; the essential accessors a transaction/dialog layer reads
(top_via, cseq, call_id, from_tag, to_tag) on a fresh parse; and building
plus serialising a 180 and a 486.
"""

from __future__ import annotations

import sys
import timeit

from boomerang.sip.message import Request, make_response
from boomerang.sip.parser import parse_message

SDP = (
    b"v=0\r\n"
    b"o=- 3912345678 3912345678 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 40000 RTP/AVP 8 0 9 101\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
)

INVITE = (
    "INVITE sip:+48221234567@pbx.example.com;user=phone SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---a2c7f1d0e3b4;rport\r\n"
    "Max-Forwards: 70\r\n"
    "Contact: <sip:+48600100200@192.0.2.10:5060;transport=udp>\r\n"
    "To: <sip:+48221234567@pbx.example.com;user=phone>\r\n"
    'From: "Anna" <sip:+48600100200@carrier.example.net;user=phone>;tag=8f2d9a61\r\n'
    "Call-ID: 7f3c2b1a-9e8d-4c5b-a6f7-0123456789ab@192.0.2.10\r\n"
    "CSeq: 102 INVITE\r\n"
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n"
    "Content-Type: application/sdp\r\n"
    "Supported: replaces, timer\r\n"
    f"Content-Length: {len(SDP)}\r\n"
    "\r\n"
).encode() + SDP


def per_call_us(statement: object, number: int) -> float:
    timer = timeit.Timer(statement)  # type: ignore[arg-type]
    best = min(timer.repeat(repeat=5, number=number))
    return best / number * 1e6


def main() -> int:
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    n = 20_000

    def parse() -> None:
        parse_message(INVITE)

    def parse_and_read() -> None:
        message = parse_message(INVITE)
        message.top_via  # noqa: B018
        message.cseq  # noqa: B018
        message.call_id  # noqa: B018
        message.from_tag  # noqa: B018
        message.to_tag  # noqa: B018

    def respond_180() -> None:
        make_response(request, 180, to_tag="a1b2c3").serialize()

    def respond_486() -> None:
        make_response(request, 486, to_tag="a1b2c3").serialize()

    parse_us = per_call_us(parse, n)
    read_us = per_call_us(parse_and_read, n)
    print(f"message size:                          {len(INVITE)} bytes")
    print(f"parse_message:                         {parse_us:6.1f} us")
    print(f"parse + top_via/cseq/call_id/tags:     {read_us:6.1f} us"
          f"  (accessors alone {read_us - parse_us:.1f} us)")
    print(f"make_response(180) + serialize:        {per_call_us(respond_180, n):6.1f} us")
    print(f"make_response(486) + serialize:        {per_call_us(respond_486, n):6.1f} us")
    print(f"serialize of the parsed INVITE:        {per_call_us(request.serialize, n):6.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
