"""parse_message, Message accessors, validate(), make_response, StreamFramer."""

from __future__ import annotations

import pytest

from boomerang.sip.errors import MessageTooLarge, ParseError
from boomerang.sip.message import Headers, Request, Response, make_response
from boomerang.sip.parser import Limits, StreamFramer, parse_message

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>;expires=60\r\n"
    b"x-Unknown-HEADER:  odd ,, value ;;\r\n"
    b"P-Asserted-Identity: \"Alice\" <sip:+48221234567@atlanta.example.com>, <tel:+48221234567>\r\n"
    b"Privacy: id\r\n"
    b"Reason: Q.850;cause=16\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\r\n"
)


def invite() -> Request:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    return message


def test_request_accessors() -> None:
    message = invite()
    assert message.method == "INVITE" and message.uri == "sip:bob@biloxi.example.com"
    assert message.branch == "z9hG4bK776asdhds"
    assert message.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert (message.cseq.number, message.cseq.method) == (314159, "INVITE")
    assert message.from_tag == "1928301774" and message.to_tag is None
    assert message.contacts[0].expires == 60
    assert message.body == b"v=0\r"
    assert [str(n.uri) for n in message.name_addrs("P-Asserted-Identity")] == [
        "sip:+48221234567@atlanta.example.com", "tel:+48221234567"]
    assert message.privacy == ["id"]
    assert message.reasons[0].cause == 16
    assert [str(r.uri) for r in message.name_addrs("Route")] == [
        "sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    message.validate()


def test_serialize_keeps_unknown_headers_and_canonical_known_names() -> None:
    wire = (b"OPTIONS sip:a@h SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:b@h>;tag=1\r\n"
            b"t: <sip:a@h>\r\ni: c1\r\nCSEQ: 1 OPTIONS\r\nX-Odd-Name: a;;b,,c\r\nl: 0\r\n\r\n")
    out = parse_message(wire).serialize()
    assert out == (b"OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                   b"From: <sip:b@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
                   b"X-Odd-Name: a;;b,,c\r\nContent-Length: 0\r\n\r\n")


def test_leading_crlf_and_bare_lf_are_tolerated() -> None:
    message = parse_message(b"\r\n\r\n" + INVITE.replace(b"\r\n", b"\n"))
    assert message.call_id == "a84b4c76e66710@pc33.atlanta.example.com"


def test_datagram_body_is_cut_to_content_length_and_short_body_is_400() -> None:
    assert parse_message(INVITE + b"garbage").body == b"v=0\r"
    with pytest.raises(ParseError) as caught:
        parse_message(INVITE.replace(b"Content-Length: 4", b"Content-Length: 40"))
    assert caught.value.status == 400


def test_stream_mode_requires_content_length() -> None:
    with pytest.raises(ParseError):
        parse_message(INVITE.replace(b"Content-Length: 4\r\n", b""), stream=True)
    assert parse_message(INVITE.replace(b"Content-Length: 4\r\n", b"")).body == b"v=0\r\n"


@pytest.mark.parametrize(("limits", "data"), [
    (Limits(max_message_bytes=100), INVITE),
    (Limits(max_header_bytes=100), INVITE),
    (Limits(max_headers=5), INVITE),
    (Limits(max_body_bytes=2), INVITE),
])
def test_limits_raise_513(limits: Limits, data: bytes) -> None:
    with pytest.raises(MessageTooLarge) as caught:
        parse_message(data, limits)
    assert caught.value.status == 513


@pytest.mark.parametrize(("old", "new"), [
    (b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"),
    (b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b""),
    (b"INVITE sip:bob@biloxi.example.com SIP/2.0", b"INVITE sip:bob@biloxi.example.com"),
    (b"INVITE sip:bob", b"IN VITE sip:bob"),
    (b"Max-Forwards: 70", b"Max Forwards: 70"),
    (b"Max-Forwards: 70", b"Max-Forwards 70"),
    (b"Via: SIP/2.0/UDP pc33", b"Via: SIP/2.0/UDP pc33;;"),
    (b"Content-Length: 4", b"Content-Length: 4\r\nl: 5"),
])
def test_broken_requests_raise_400(old: bytes, new: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse_message(INVITE.replace(old, new, 1))
    assert caught.value.status == 400


@pytest.mark.parametrize(("old", "new"), [
    (b"Max-Forwards: 70", b"Max-Forwards: 256"),
    (b"Contact: <sip:alice@pc33.atlanta.example.com>;expires=60",
     b"Contact: <sip:alice@pc33.atlanta.example.com>;q=2"),
    (b"Privacy: id", b"Privacy: i d"),
    (b"Route: <sip:p1.example.com;lr>", b"Route: sip:p1.example.com"),
    (b"P-Asserted-Identity: \"Alice\"", b"P-Asserted-Identity: Alice,"),
    (b"Reason: Q.850;cause=16", b"Reason: Q.850;cause=x"),
    (b"Content-Type: application/sdp", b"Content-Type: a\r\nContent-Type: b"),
    (b"Max-Forwards: 70", b"Max-Forwards: 70\r\nRequire: 100rel, a b"),
])
def test_validate_rejects_bad_known_headers(old: bytes, new: bytes) -> None:
    message = parse_message(INVITE.replace(old, new, 1))
    with pytest.raises(ParseError) as caught:
        message.validate()
    assert caught.value.status == 400


def test_status_line_and_version_errors() -> None:
    response = parse_message(b"SIP/2.0 180 Ringing\r\n" + INVITE.split(b"\r\n", 1)[1])
    assert isinstance(response, Response) and (response.status, response.reason) == (180, "Ringing")
    for start in (b"SIP/2.0 099 Low", b"SIP/2.0 700 High", b"SIP/2.0 1800 Long"):
        with pytest.raises(ParseError):
            parse_message(start + b"\r\n" + INVITE.split(b"\r\n", 1)[1])
    with pytest.raises(ParseError) as caught:
        parse_message(b"SIP/3.0 200 OK\r\n" + INVITE.split(b"\r\n", 1)[1])
    assert caught.value.status == 505


def test_make_response_copies_headers_and_adds_to_tag() -> None:
    request = invite()
    ringing = make_response(request, 180, to_tag="t1", headers=[("Contact", "<sip:b@h>")])
    assert ringing.to_tag == "t1" and ringing.from_tag == "1928301774"
    assert ringing.headers.get_all("Via") == request.headers.get_all("Via")
    assert ringing.headers.get("Contact") == "<sip:b@h>"
    assert make_response(request, 100, to_tag="t1").to_tag is None
    wire = make_response(request, 486).serialize()
    assert wire.startswith(b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP pc33")
    assert wire.endswith(b"Content-Length: 0\r\n\r\n")
    tagged = parse_message(INVITE.replace(b'"Bob" <sip:bob@biloxi.example.com>',
                                          b'"Bob" <sip:bob@biloxi.example.com>;tag=old'))
    assert isinstance(tagged, Request)
    assert make_response(tagged, 200, to_tag="new").to_tag == "old"


def test_replace_top_via_with_received_and_rport() -> None:
    request = invite()
    request.replace_top_via(request.top_via.with_received("198.51.100.7", 40123))
    assert request.top_via.received == "198.51.100.7" and request.top_via.rport == 40123
    assert request.headers.get("Via") == (
        "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport=40123;"
        "received=198.51.100.7")
    two = Request("OPTIONS", "sip:a@h", [("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b"),
                                         ("CSeq", "1 OPTIONS")])
    two.replace_top_via(two.top_via.with_received("192.0.2.1", None))
    assert [v.host for v in two.vias] == ["a", "b"] and two.vias[0].received == "192.0.2.1"


def test_accessor_cache_follows_header_edits() -> None:
    request = invite()
    assert request.from_tag == "1928301774"
    request.headers.set("From", "<sip:x@h>;tag=other")
    assert request.from_tag == "other"


def test_headers_api() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b"), ("v", "SIP/2.0/UDP c"),
                       ("X-A", "1")])
    assert headers.values("via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b", "SIP/2.0/UDP c"]
    headers.prepend("Via", "SIP/2.0/UDP z")
    assert headers.get("VIA") == "SIP/2.0/UDP z"
    assert headers.remove_first_value("Via") == "SIP/2.0/UDP z"
    assert headers.remove_first_value("Via") == "SIP/2.0/UDP a"
    assert headers.get_all("Via") == ["SIP/2.0/UDP b", "SIP/2.0/UDP c"]
    headers.set("Via", "SIP/2.0/UDP only")
    assert headers.get_all("Via") == ["SIP/2.0/UDP only"] and headers.count("via") == 1
    copy = headers.copy()
    headers.remove("X-A")
    assert "x-a" in copy and "X-A" not in headers and len(copy) == 2


FIRST = INVITE.replace(b"Content-Length: 4", b"Content-Length: 5")
SECOND = INVITE.replace(b"Content-Length: 4", b"Content-Length: 0")[: -len(b"v=0\r\n")]
FRAMED = FIRST + b"\r\n\r\n" + SECOND


def test_stream_framer_cuts_messages_and_keepalives() -> None:
    framer = StreamFramer()
    out = framer.feed(FRAMED[:50]) + framer.feed(FRAMED[50:])
    assert out == [FIRST, b"\r\n\r\n", SECOND]


def test_stream_framer_byte_by_byte_gives_the_same_messages() -> None:
    whole = StreamFramer().feed(FRAMED)
    framer = StreamFramer()
    pieces: list[bytes] = []
    for i in range(len(FRAMED)):
        pieces += framer.feed(FRAMED[i : i + 1])
    assert pieces == whole and len(whole) == 3


def test_stream_framer_limits() -> None:
    with pytest.raises(MessageTooLarge):
        StreamFramer(Limits(max_header_bytes=64)).feed(
            b"INVITE sip:a@h SIP/2.0\r\n" + b"X: y\r\n" * 20)
    with pytest.raises(MessageTooLarge):
        StreamFramer(Limits(max_body_bytes=2)).feed(INVITE)
    with pytest.raises(ParseError):
        StreamFramer().feed(INVITE.replace(b"Content-Length: 4\r\n", b""))
