"""make_response per RFC 3261 §8.2.6.2 and §12.1.1."""

from __future__ import annotations

import pytest

from boomerang.sip.message import make_response
from boomerang.sip.parser import parse_message

INVITE = (
    b"INVITE sip:100@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\n"
    b"Record-Route: <sip:p2.example.com;lr>\r\n"
    b"Record-Route: <sip:p1.example.com;lr>\r\n"
    b"From: <sip:a@example.com>;tag=a1\r\n"
    b"To: <sip:100@127.0.0.1>\r\n"
    b"Call-ID: c1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Timestamp: 54\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _request(method: str = "INVITE"):
    data = INVITE.replace(b"INVITE sip", method.encode() + b" sip").replace(
        b"CSeq: 1 INVITE", b"CSeq: 1 " + method.encode())
    return parse_message(data)


@pytest.mark.parametrize("status", [180, 183, 200])
def test_dialog_creating_response_copies_record_route_in_order(status: int) -> None:
    response = make_response(_request(), status, to_tag="t1")
    assert response.headers.get_all("Record-Route") == [
        "<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert response.to_tag == "t1"


@pytest.mark.parametrize("status", [100, 486, 603])
def test_non_dialog_response_has_no_record_route(status: int) -> None:
    response = make_response(_request(), status, to_tag="t1")
    assert "Record-Route" not in response.headers


def test_options_200_has_no_record_route() -> None:
    response = make_response(_request("OPTIONS"), 200, to_tag="t1")
    assert "Record-Route" not in response.headers


def test_100_trying_has_no_to_tag_and_echoes_timestamp() -> None:
    response = make_response(_request(), 100, to_tag="t1")
    assert response.to_tag is None
    assert response.headers.get("Timestamp") == "54"


def test_response_shares_the_parsed_top_via_and_it_is_right() -> None:
    request = _request()
    request_via = request.top_via
    response = make_response(request, 180, to_tag="t1")
    assert response.top_via is request_via  # parsed once, shared
    assert str(response.top_via) == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1"


def test_replacing_the_top_via_keeps_accessors_right() -> None:
    request = _request()
    stamped = request.top_via.with_received("192.0.2.7", 5062)
    request.replace_top_via(stamped)
    assert request.top_via is stamped
    assert request.top_via.received == "192.0.2.7"
    reparsed = parse_message(request.serialize())
    assert reparsed.top_via.received == "192.0.2.7"
    response = make_response(request, 486, to_tag="t1")
    assert response.top_via.received == "192.0.2.7"
