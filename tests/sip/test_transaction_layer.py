"""The transaction layer (RFC 3261 §17, §18.2, §9, RFC 3581, RFC 6026), in simulated time."""

from __future__ import annotations

import pytest

from boomerang.sip.address import Address
from boomerang.sip.errors import ProtocolError
from boomerang.sip.message import Request, Response, make_response
from boomerang.sip.parser import parse_message
from boomerang.sip.transaction.events import (
    CancelReceived,
    MalformedMessageReceived,
    Outgoing,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from boomerang.sip.transaction.layer import TimerSettings, TransactionLayer

PEER = Address("udp", "192.0.2.10", 5060)
PEER_TCP = Address("tcp", "192.0.2.10", 40123)
NAT = Address("udp", "198.51.100.7", 31000)


def request_bytes(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bK-1",
    via_host: str = "192.0.2.10:5060",
    via_params: str = "",
    transport: str = "UDP",
    cseq: int = 1,
    cseq_method: str | None = None,
    to_tag: str | None = None,
    extra: str = "",
) -> bytes:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {via_host};branch={branch}{via_params}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=from1\r\n"
        f"To: {to}\r\n"
        "Call-ID: call-1@example.com\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def outgoing_request(
    method: str = "INVITE", branch: str = "z9hG4bK-c1", route: bool = False
) -> Request:
    extra = "Route: <sip:proxy.example.com;lr>\r\n" if route else ""
    message = parse_message(request_bytes(method, branch=branch, via_host="203.0.113.1:5070",
                                          extra=extra))
    assert isinstance(message, Request)
    return message


def response_bytes(request: Request, status: int, *, to_tag: str | None = "uas1") -> bytes:
    return make_response(request, status, to_tag=to_tag).serialize()


def parsed(out: Outgoing) -> Request | Response:
    message = parse_message(out.data)
    assert isinstance(message, (Request, Response))
    return message


def statuses(outgoing: list[Outgoing]) -> list[int | str]:
    out: list[int | str] = []
    for item in outgoing:
        message = parsed(item)
        out.append(message.status if isinstance(message, Response) else message.method)
    return out


def run_timers(layer: TransactionLayer, until: float) -> list[tuple[float, list[Outgoing]]]:
    """Fire timers one deadline at a time; what was sent at each."""
    fired = []
    for _ in range(1000):
        deadline = layer.get_timer()
        if deadline is None or deadline > until:
            break
        layer.handle_timer(deadline)
        fired.append((deadline, layer.datagrams_to_send()))
    return fired


def receive_invite(layer: TransactionLayer, source: Address = PEER, **kw: object) -> Request:
    layer.receive(request_bytes("INVITE", **kw), source, 0.0)  # type: ignore[arg-type]
    events = layer.events()
    assert len(events) == 1 and isinstance(events[0], RequestReceived)
    return events[0].request


# -- server side ------------------------------------------------------------------


def test_new_invite_is_passed_up_and_answered_100_at_once() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer)
    assert request.method == "INVITE"
    assert statuses(layer.datagrams_to_send()) == [100]
    assert len(layer) == 1


def test_auto_trying_off_sends_nothing() -> None:
    layer = TransactionLayer(auto_trying=False)
    receive_invite(layer)
    assert layer.datagrams_to_send() == []


def test_invite_retransmission_is_absorbed_and_last_response_resent() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer)
    layer.datagrams_to_send()
    layer.send_response(make_response(request, 180, to_tag="t"), 0.1)
    layer.datagrams_to_send()
    layer.receive(request_bytes("INVITE"), PEER, 0.5)
    assert layer.events() == []
    assert statuses(layer.datagrams_to_send()) == [180]


def test_non_invite_retransmission_in_trying_is_absorbed_silently() -> None:
    layer = TransactionLayer()
    layer.receive(request_bytes("OPTIONS"), PEER, 0.0)
    assert len(layer.events()) == 1
    layer.receive(request_bytes("OPTIONS"), PEER, 0.1)
    assert layer.events() == [] and layer.datagrams_to_send() == []


def test_same_branch_from_another_sent_by_is_another_transaction() -> None:
    layer = TransactionLayer()
    layer.receive(request_bytes("OPTIONS"), PEER, 0.0)
    layer.receive(request_bytes("OPTIONS", via_host="192.0.2.11:5060"), PEER, 0.0)
    assert len(layer.events()) == 2 and len(layer) == 2


def test_received_added_when_sent_by_host_differs() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer, NAT, via_host="10.0.0.5:5062")
    via = request.top_via
    assert via.received == "198.51.100.7" and not via.wants_rport
    # §18.2.2: received host, sent-by port
    assert layer.datagrams_to_send()[0].destination == Address("udp", "198.51.100.7", 5062)


def test_no_received_when_sent_by_is_the_source() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer)
    assert request.top_via.received is None
    assert layer.datagrams_to_send()[0].destination == PEER


def test_empty_rport_is_filled_and_received_added_even_when_equal() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer, NAT, via_host="198.51.100.7:5062", via_params=";rport")
    via = request.top_via
    assert via.rport == 31000 and via.received == "198.51.100.7"
    assert layer.datagrams_to_send()[0].destination == NAT
    # the TU's responses carry the stamped Via and follow it
    layer.send_response(make_response(request, 486, to_tag="t"), 0.1)
    out = layer.datagrams_to_send()
    assert out[0].destination == NAT and b"rport=31000" in out[0].data


def test_sent_by_without_port_routes_to_5060() -> None:
    layer = TransactionLayer()
    receive_invite(layer, Address("udp", "192.0.2.10", 40000), via_host="pc.example.com")
    assert layer.datagrams_to_send()[0].destination == Address("udp", "192.0.2.10", 5060)


def test_reliable_transport_answers_on_the_source_connection() -> None:
    layer = TransactionLayer()
    receive_invite(layer, PEER_TCP, transport="TCP", via_host="192.0.2.10:5060")
    assert layer.datagrams_to_send()[0].destination == PEER_TCP


def test_cancel_of_pending_invite_gets_200_and_event() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer)
    layer.send_response(make_response(request, 180, to_tag="t9"), 0.1)
    layer.datagrams_to_send()
    layer.receive(request_bytes("CANCEL"), PEER, 1.0)
    events = layer.events()
    assert len(events) == 1 and isinstance(events[0], CancelReceived)
    assert events[0].transaction.method == "INVITE"
    out = layer.datagrams_to_send()
    answer = parsed(out[0])
    assert isinstance(answer, Response) and answer.status == 200
    assert answer.cseq.method == "CANCEL" and answer.to_tag == "t9"  # §9.2: same To tag
    # the TU answers the INVITE 487; a retransmitted CANCEL gets the 200 again
    layer.send_response(make_response(request, 487, to_tag="t9"), 1.1)
    assert statuses(layer.datagrams_to_send()) == [487]
    layer.receive(request_bytes("CANCEL"), PEER, 1.2)
    assert layer.events() == [] and statuses(layer.datagrams_to_send()) == [200]


def test_cancel_matching_nothing_gets_481() -> None:
    layer = TransactionLayer()
    layer.receive(request_bytes("CANCEL", branch="z9hG4bK-unknown"), PEER, 0.0)
    assert layer.events() == []
    assert statuses(layer.datagrams_to_send()) == [481]


def test_cancel_after_final_gets_200_without_event() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer)
    layer.send_response(make_response(request, 486, to_tag="t"), 0.1)
    layer.datagrams_to_send()
    layer.receive(request_bytes("CANCEL"), PEER, 0.2)
    assert layer.events() == []
    assert statuses(layer.datagrams_to_send()) == [200]


def test_ack_to_non_2xx_is_absorbed_and_timer_i_ends_transaction() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer)
    layer.send_response(make_response(request, 486, to_tag="t"), 0.0)
    layer.datagrams_to_send()
    layer.receive(request_bytes("ACK", to_tag="t"), PEER, 0.25)
    assert layer.events() == [] and layer.datagrams_to_send() == []
    assert layer.get_timer() == 0.25 + 5.0  # Timer I = T4, G and H stopped
    layer.handle_timer(5.25)
    assert [type(e) for e in layer.events()] == [TransactionTerminated]
    assert len(layer) == 0 and layer.get_timer() is None


def test_ack_to_2xx_is_passed_up_without_transaction() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer)
    layer.send_response(make_response(request, 200, to_tag="t"), 0.0)
    layer.receive(request_bytes("ACK", branch="z9hG4bK-ack", to_tag="t"), NAT, 0.1)
    events = layer.events()
    assert len(events) == 1 and isinstance(events[0], RequestReceived)
    assert events[0].transaction is None and events[0].request.method == "ACK"
    assert events[0].request.top_via.received == "198.51.100.7"


def test_server_invite_2xx_goes_accepted_and_timer_l() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer)
    layer.send_response(make_response(request, 200, to_tag="t"), 0.0)
    layer.datagrams_to_send()
    layer.receive(request_bytes("INVITE"), PEER, 0.5)  # absorbed in Accepted
    assert layer.datagrams_to_send() == [] and layer.events() == []
    layer.send_response(make_response(request, 200, to_tag="t"), 0.5)  # TU retransmits
    assert statuses(layer.datagrams_to_send()) == [200]
    assert layer.get_timer() == 32.0  # Timer L = 64*T1
    with pytest.raises(ProtocolError):
        layer.send_response(make_response(request, 486, to_tag="t"), 1.0)
    layer.handle_timer(32.0)
    assert len(layer) == 0


def test_timer_g_retransmits_capped_at_t2_and_timer_h_times_out() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer)
    layer.send_response(make_response(request, 486, to_tag="t"), 0.0)
    layer.datagrams_to_send()
    layer.events()
    fired = run_timers(layer, 100.0)
    resends = [t for t, out in fired if statuses(out) == [486]]
    assert resends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert fired[-1][0] == 32.0
    events = layer.events()
    assert isinstance(events[0], TransactionTimedOut) and events[0].timer == "H"
    assert len(layer) == 0


def test_server_invite_over_tcp_has_no_timer_g_and_zero_timer_i() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer, PEER_TCP, transport="TCP")
    layer.send_response(make_response(request, 486, to_tag="t"), 0.0)
    assert layer.get_timer() == 32.0  # only H
    layer.receive(request_bytes("ACK", to_tag="t", transport="TCP"), PEER_TCP, 0.1)
    assert len(layer) == 0 and layer.get_timer() is None


def test_timer_j_is_64_t1_on_udp_and_zero_on_tcp() -> None:
    layer = TransactionLayer()
    layer.receive(request_bytes("OPTIONS"), PEER, 0.0)
    request = layer.events()[0].request  # type: ignore[union-attr]
    layer.send_response(make_response(request, 200, to_tag="t"), 1.0)
    assert layer.get_timer() == 33.0
    layer.receive(request_bytes("OPTIONS"), PEER, 2.0)
    assert statuses(layer.datagrams_to_send()) == [200, 200]
    layer.receive(request_bytes("OPTIONS", transport="TCP", branch="z9hG4bK-2"), PEER_TCP, 0.0)
    request = layer.events()[0].request  # type: ignore[union-attr]
    layer.send_response(make_response(request, 200, to_tag="t"), 1.0)
    assert len(layer) == 1  # the TCP one ended at once


def test_send_response_without_transaction_raises() -> None:
    layer = TransactionLayer()
    with pytest.raises(ProtocolError):
        layer.send_response(make_response(outgoing_request(), 200), 0.0)


# -- malformed input --------------------------------------------------------------


def test_malformed_request_with_readable_via_gets_400() -> None:
    layer = TransactionLayer()
    data = request_bytes("INVITE").replace(b"Content-Length: 0", b"Content-Length: 99")
    layer.receive(data, PEER, 0.0)
    (event,) = layer.events()
    assert isinstance(event, MalformedMessageReceived) and event.answered
    (out,) = layer.datagrams_to_send()
    assert statuses([out]) == [400] and out.destination == PEER
    assert len(layer) == 0


def test_wrong_version_gets_505() -> None:
    layer = TransactionLayer()
    data = request_bytes("OPTIONS").replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    layer.receive(data, PEER, 0.0)
    (event,) = layer.events()
    assert isinstance(event, MalformedMessageReceived) and event.answered
    out = layer.datagrams_to_send()
    assert out[0].data.startswith(b"SIP/2.0 505 ")


def test_request_without_from_still_gets_400() -> None:
    layer = TransactionLayer()
    data = request_bytes("OPTIONS").replace(b"From: <sip:alice@example.com>;tag=from1\r\n", b"")
    layer.receive(data, PEER, 0.0)
    (out,) = layer.datagrams_to_send()
    assert out.data.startswith(b"SIP/2.0 400 ") and b"CSeq: 1 OPTIONS" in out.data


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01garbage",
        b"",
        request_bytes("OPTIONS").replace(b"Via: ", b"Xia: "),
        request_bytes("ACK").replace(b"Content-Length: 0", b"Content-Length: 9"),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: x\r\n\r\n",
    ],
    ids=["garbage", "empty", "no-via", "broken-ack", "broken-response"],
)
def test_unanswerable_input_is_dropped(data: bytes) -> None:
    layer = TransactionLayer()
    layer.receive(data, PEER, 0.0)
    (event,) = layer.events()
    assert isinstance(event, MalformedMessageReceived) and not event.answered
    assert layer.datagrams_to_send() == []


# -- client side ------------------------------------------------------------------


def test_invite_retransmissions_and_timer_b_exact_deadlines() -> None:
    layer = TransactionLayer()
    key = layer.send_request(outgoing_request(), PEER, 0.0)
    assert statuses(layer.datagrams_to_send()) == ["INVITE"]
    fired = run_timers(layer, 100.0)
    assert [t for t, out in fired if out] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert fired[-1][0] == 32.0
    events = layer.events()
    assert events[0] == TransactionTimedOut(transaction=key, timer="B", time=32.0)
    assert len(layer) == 0


def test_non_invite_retransmissions_capped_at_t2_and_timer_f() -> None:
    layer = TransactionLayer()
    layer.send_request(outgoing_request("OPTIONS"), PEER, 0.0)
    layer.datagrams_to_send()
    fired = run_timers(layer, 100.0)
    assert [t for t, out in fired if out] == [
        0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert fired[-1][0] == 32.0
    assert isinstance(layer.events()[0], TransactionTimedOut)


def test_non_invite_proceeding_retransmits_every_t2() -> None:
    layer = TransactionLayer()
    request = outgoing_request("OPTIONS")
    layer.send_request(request, PEER, 0.0)
    layer.receive(response_bytes(request, 100, to_tag=None), PEER, 0.1)
    fired = run_timers(layer, 12.0)
    assert [t for t, out in fired if out] == [0.5, 4.5, 8.5]


def test_reliable_client_has_no_retransmissions() -> None:
    layer = TransactionLayer()
    layer.send_request(outgoing_request(), PEER_TCP, 0.0)
    assert layer.get_timer() == 32.0


def test_timer_k_is_t4_on_udp() -> None:
    layer = TransactionLayer()
    request = outgoing_request("OPTIONS")
    layer.send_request(request, PEER, 0.0)
    layer.receive(response_bytes(request, 200), PEER, 0.2)
    assert layer.get_timer() == 5.2
    layer.receive(response_bytes(request, 200), PEER, 0.3)  # absorbed in Completed
    assert [type(e) for e in layer.events()] == [ResponseReceived]


def test_response_matching_by_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    request = outgoing_request()
    layer.send_request(request, PEER, 0.0)
    layer.receive(response_bytes(request, 180), PEER, 0.1)
    other = outgoing_request(branch="z9hG4bK-other")
    layer.receive(response_bytes(other, 180), PEER, 0.1)  # stray: dropped
    wrong_method = response_bytes(request, 200).replace(b"1 INVITE", b"1 BYE")
    layer.receive(wrong_method, PEER, 0.1)  # stray too
    events = layer.events()
    assert len(events) == 1 and isinstance(events[0], ResponseReceived)
    assert events[0].response.status == 180


def test_duplicate_provisional_passed_up_once() -> None:
    layer = TransactionLayer()
    request = outgoing_request()
    layer.send_request(request, PEER, 0.0)
    for _ in range(3):
        layer.receive(response_bytes(request, 180), PEER, 0.1)
    layer.receive(response_bytes(request, 183), PEER, 0.2)
    assert [e.response.status for e in layer.events()] == [180, 183]  # type: ignore[union-attr]


def test_non_2xx_final_is_acked_by_the_layer() -> None:
    layer = TransactionLayer()
    request = outgoing_request(route=True)
    layer.send_request(request, PEER, 0.0)
    layer.datagrams_to_send()
    layer.receive(response_bytes(request, 486), PEER, 0.1)
    (out,) = layer.datagrams_to_send()
    ack = parsed(out)
    assert isinstance(ack, Request) and out.destination == PEER
    assert ack.method == "ACK" and ack.uri == request.uri
    assert ack.branch == request.branch and len(ack.vias) == 1
    assert ack.to_tag == "uas1" and ack.from_tag == request.from_tag
    assert ack.call_id == request.call_id
    assert (ack.cseq.number, ack.cseq.method) == (request.cseq.number, "ACK")
    assert ack.headers.get_all("Route") == ["<sip:proxy.example.com;lr>"]
    assert [e.response.status for e in layer.events()] == [486]  # type: ignore[union-attr]
    # a retransmitted 486 is ACKed again but not passed up; Timer D = 32 s
    layer.receive(response_bytes(request, 486), PEER, 0.6)
    assert [parsed(o).method for o in layer.datagrams_to_send()] == ["ACK"]  # type: ignore[union-attr]
    assert layer.events() == []
    assert layer.get_timer() == 32.1


def test_timer_d_is_zero_on_tcp() -> None:
    layer = TransactionLayer()
    request = outgoing_request()
    layer.send_request(request, PEER_TCP, 0.0)
    layer.receive(response_bytes(request, 486), PEER_TCP, 0.1)
    assert len(layer) == 0
    assert [type(e) for e in layer.events()] == [ResponseReceived, TransactionTerminated]


def test_2xx_retransmissions_in_accepted_are_passed_up_until_timer_m() -> None:
    layer = TransactionLayer()
    request = outgoing_request()
    layer.send_request(request, PEER, 0.0)
    layer.receive(response_bytes(request, 200), PEER, 0.1)
    layer.receive(response_bytes(request, 200), PEER, 0.6)
    layer.receive(response_bytes(request, 486), PEER, 0.7)  # not after a 2xx
    events = layer.events()
    assert [e.response.status for e in events] == [200, 200]  # type: ignore[union-attr]
    assert layer.datagrams_to_send()[1:] == []  # the layer does not ACK a 2xx
    assert layer.get_timer() == 32.1  # Timer M = 64*T1
    layer.handle_timer(32.1)
    assert len(layer) == 0


def test_cancel_after_provisional() -> None:
    layer = TransactionLayer()
    request = outgoing_request(route=True)
    key = layer.send_request(request, PEER, 0.0)
    layer.receive(response_bytes(request, 180), PEER, 0.1)
    layer.datagrams_to_send()
    cancel_key = layer.cancel(key, 0.2)
    assert cancel_key is not None and cancel_key.method == "CANCEL"
    (out,) = layer.datagrams_to_send()
    cancel = parsed(out)
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    assert cancel.branch == request.branch and cancel.uri == request.uri
    assert cancel.to_tag is None and cancel.cseq.number == request.cseq.number
    assert cancel.headers.get_all("Route") == ["<sip:proxy.example.com;lr>"]
    assert len(layer) == 2


def test_cancel_before_provisional_is_sent_on_the_first_one() -> None:
    layer = TransactionLayer()
    request = outgoing_request()
    key = layer.send_request(request, PEER, 0.0)
    layer.datagrams_to_send()
    assert layer.cancel(key, 0.1) is None
    assert layer.datagrams_to_send() == []
    layer.receive(response_bytes(request, 100, to_tag=None), PEER, 0.2)
    assert statuses(layer.datagrams_to_send()) == ["CANCEL"]


def test_cancel_after_final_does_nothing() -> None:
    layer = TransactionLayer()
    request = outgoing_request()
    key = layer.send_request(request, PEER, 0.0)
    layer.receive(response_bytes(request, 486), PEER, 0.1)
    layer.datagrams_to_send()
    assert layer.cancel(key, 0.2) is None and layer.datagrams_to_send() == []


def test_send_request_refuses_ack_and_reused_branch() -> None:
    layer = TransactionLayer()
    layer.send_request(outgoing_request(), PEER, 0.0)
    with pytest.raises(ProtocolError):
        layer.send_request(outgoing_request(), PEER, 0.0)
    with pytest.raises(ProtocolError):
        layer.send_request(outgoing_request("ACK", branch="z9hG4bK-x"), PEER, 0.0)


def test_transport_error_ends_client_transaction() -> None:
    layer = TransactionLayer()
    key = layer.send_request(outgoing_request(), PEER, 0.0)
    layer.send_request(outgoing_request("OPTIONS", branch="z9hG4bK-2"), NAT, 0.0)
    layer.transport_error(PEER, 0.01)
    events = layer.events()
    assert events[0] == TransportErrorOccurred(transaction=key, time=0.01)
    assert len(layer) == 1


def test_send_stateless_queues_bytes_in_order() -> None:
    layer = TransactionLayer()
    ack = outgoing_request("ACK", branch="z9hG4bK-ack")
    layer.send_request(outgoing_request(), PEER, 0.0)
    layer.send_stateless(ack, NAT)
    out = layer.datagrams_to_send()
    assert statuses(out) == ["INVITE", "ACK"] and out[1].destination == NAT
    assert len(layer) == 1


def test_custom_timer_settings() -> None:
    layer = TransactionLayer(timers=TimerSettings(t1=0.1, t2=0.4, t4=1.0))
    layer.send_request(outgoing_request("OPTIONS"), PEER, 0.0)
    fired = run_timers(layer, 100.0)
    assert fired[-1][0] == pytest.approx(6.4)
    assert [round(t, 6) for t, out in fired if out][:5] == [0.1, 0.3, 0.7, 1.1, 1.5]


# -- RFC 2543 requests (no magic cookie) ------------------------------------------


def test_request_without_magic_cookie_is_matched_by_call_id_from_tag_cseq() -> None:
    layer = TransactionLayer()
    layer.receive(request_bytes("INVITE", branch="old-style-1"), PEER, 0.0)
    (event,) = layer.events()
    assert isinstance(event, RequestReceived) and event.transaction is not None
    request = event.request
    layer.receive(request_bytes("INVITE", branch="old-style-1"), PEER, 0.2)
    assert layer.events() == []  # a retransmission
    layer.send_response(make_response(request, 486, to_tag="t"), 0.3)
    layer.receive(request_bytes("ACK", branch="old-style-1", to_tag="t"), PEER, 0.4)
    assert layer.events() == []  # absorbed by the INVITE transaction
    assert layer.get_timer() == pytest.approx(5.4)  # Confirmed: Timer I


# -- §13.3.1.4 2xx retransmissions by the UAS core ---------------------------------


def test_success_retransmissions_schedule_until_ack_or_64_t1() -> None:
    from boomerang.sip.transaction.reliability import AckTimedOut, SuccessRetransmissions

    invite = outgoing_request()
    ok = make_response(invite, 200, to_tag="t")
    retransmissions = SuccessRetransmissions()
    retransmissions.start(ok, PEER, 0.0)
    sent = []
    for _ in range(100):
        deadline = retransmissions.get_timer()
        if deadline is None:
            break
        if retransmissions.handle_timer(deadline):
            sent.append(deadline)
    assert sent == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert retransmissions.expired() == [
        AckTimedOut(call_id=ok.call_id, cseq_number=1, time=32.0)]
    # an ACK stops them
    retransmissions.start(ok, PEER, 100.0)
    ack = outgoing_request("ACK", branch="z9hG4bK-ack")
    assert retransmissions.acknowledged(ack) and len(retransmissions) == 0
    assert retransmissions.get_timer() is None
    assert not retransmissions.acknowledged(ack)


def test_transport_error_ends_server_transaction() -> None:
    layer = TransactionLayer()
    request = receive_invite(layer)
    layer.datagrams_to_send()
    layer.send_response(make_response(request, 486, to_tag="t"), 0.1)
    layer.transport_error(PEER, 0.2)
    assert [type(e) for e in layer.events()] == [TransportErrorOccurred, TransactionTerminated]
    assert len(layer) == 0
