"""Dialogs (RFC 3261 §12-15): creation, routing, CSeq, target refresh, forking, glare."""

from __future__ import annotations

import pytest

from boomerang.sip.dialog import (
    Dialog,
    DialogError,
    DialogId,
    DialogSet,
    DialogState,
    glare_retry_after_s,
)
from boomerang.sip.ids import CountingIds
from boomerang.sip.message import Request, Response, make_response
from boomerang.sip.parser import parse_message
from boomerang.sip.uri import SipUri, parse_uri

CALL_ID = "c1-7f3a@192.0.2.1"
ALICE_FROM = '"Alice" <sip:alice@example.com>;tag=a-tag'
BOB_TO = "<sip:bob@example.com>"
ALICE_CONTACT = "<sip:alice@192.0.2.1:5060>"
BOB_CONTACT = "<sip:bob@192.0.2.2:5062;transport=udp>"
OFFER = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n" \
        b"m=audio 4000 RTP/AVP 0\r\n"
ANSWER = OFFER.replace(b"192.0.2.1", b"192.0.2.2")


def wire_request(message: Request) -> Request:
    parsed = parse_message(message.serialize())
    assert isinstance(parsed, Request)
    return parsed


def wire_response(message: Response) -> Response:
    parsed = parse_message(message.serialize())
    assert isinstance(parsed, Response)
    return parsed


def make_invite(
    *,
    uri: str = "sip:bob@example.com",
    record_route: tuple[str, ...] = (),
    body: bytes = OFFER,
    cseq: int = 314,
) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-invite-1;rport"),
        ("Max-Forwards", "70"),
        ("From", ALICE_FROM),
        ("To", BOB_TO),
        ("Call-ID", CALL_ID),
        ("CSeq", f"{cseq} INVITE"),
        ("Contact", ALICE_CONTACT),
    ]
    headers += [("Record-Route", rr) for rr in record_route]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    return wire_request(Request("INVITE", uri, headers, body))


def answer(
    request: Request,
    status: int,
    tag: str | None = "b-tag",
    *,
    contact: str | None = BOB_CONTACT,
    body: bytes = b"",
    copy_record_route: bool = True,
) -> Response:
    extra: list[tuple[str, str]] = []
    if contact is not None:
        extra.append(("Contact", contact))
    if body:
        extra.append(("Content-Type", "application/sdp"))
    response = make_response(request, status, to_tag=tag, headers=extra, body=body)
    # make_response copies Record-Route into dialog-creating responses (§12.1.1)
    if not copy_record_route:
        response.headers.remove("Record-Route")
    return wire_response(response)


def in_dialog_request(
    method: str, cseq: int, *, contact: str | None = None, body: bytes = b"",
    from_: str = '<sip:bob@example.com>;tag=b-tag', to: str = ALICE_FROM,
) -> Request:
    """A request from Bob (the callee) to Alice's dialog."""
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.2:5062;branch=z9hG4bK-bob-9"),
        ("Max-Forwards", "70"),
        ("From", from_),
        ("To", to),
        ("Call-ID", CALL_ID),
        ("CSeq", f"{cseq} {method}"),
    ]
    if contact is not None:
        headers.append(("Contact", contact))
    return wire_request(Request(method, "sip:alice@192.0.2.1:5060", headers, body))


def caller_dialog(record_route: tuple[str, ...] = (), status: int = 200) -> Dialog:
    invite = make_invite(record_route=record_route)
    return Dialog.from_uac(invite, answer(invite, status, body=ANSWER if status >= 200 else b""))


# ---------------------------------------------------------------------------
# Creation
# ---------------------------------------------------------------------------


def test_uas_dialog_from_invite_and_180() -> None:
    invite = make_invite(record_route=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    ringing = answer(invite, 180)
    dialog = Dialog.from_uas(invite, ringing)
    assert dialog.id == DialogId(CALL_ID, "b-tag", "a-tag")
    assert dialog.state is DialogState.EARLY
    assert dialog.remote_seq == 314
    assert dialog.local_seq is None
    assert str(dialog.remote_target) == "sip:alice@192.0.2.1:5060"
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.example.com;lr", "sip:p2.example.com;lr"]  # request order on the UAS
    assert str(dialog.local_uri) == "sip:bob@example.com"
    assert str(dialog.remote_uri) == "sip:alice@example.com"
    assert not dialog.secure
    assert not dialog.is_caller
    assert dialog.local_contact == BOB_CONTACT


def test_uas_dialog_confirmed_when_our_2xx_is_sent() -> None:
    invite = make_invite()
    dialog = Dialog.from_uas(invite, answer(invite, 180))
    dialog.response_sent(invite, answer(invite, 200, body=ANSWER))
    assert dialog.state is DialogState.CONFIRMED


def test_uas_dialog_from_2xx_is_confirmed() -> None:
    invite = make_invite()
    assert Dialog.from_uas(invite, answer(invite, 200)).state is DialogState.CONFIRMED


def test_uac_dialog_from_180_with_tag() -> None:
    invite = make_invite(record_route=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    dialog = Dialog.from_uac(invite, answer(invite, 180))
    assert dialog.id == DialogId(CALL_ID, "a-tag", "b-tag")
    assert dialog.state is DialogState.EARLY
    assert dialog.local_seq == 314
    assert dialog.remote_seq is None
    assert str(dialog.remote_target) == "sip:bob@192.0.2.2:5062;transport=udp"
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p2.example.com;lr", "sip:p1.example.com;lr"]  # reversed on the UAC
    assert dialog.is_caller
    assert dialog.local_contact == ALICE_CONTACT


@pytest.mark.parametrize(("status", "tag"), [(100, "b-tag"), (180, None), (486, "b-tag")])
def test_response_that_creates_no_dialog(status: int, tag: str | None) -> None:
    invite = make_invite()
    response = wire_response(make_response(invite, status, to_tag=tag,
                                           headers=[("Contact", BOB_CONTACT)]))
    with pytest.raises(DialogError):
        Dialog.from_uac(invite, response)
    with pytest.raises(DialogError):
        Dialog.from_uas(invite, response)


def test_secure_flag() -> None:
    invite = make_invite(uri="sips:bob@example.com")
    ok = answer(invite, 200)
    assert Dialog.from_uas(invite, ok, over_tls=True).secure
    assert not Dialog.from_uas(invite, ok, over_tls=False).secure
    assert Dialog.from_uac(invite, ok).secure
    plain = make_invite()
    assert not Dialog.from_uas(plain, answer(plain, 200), over_tls=True).secure


# ---------------------------------------------------------------------------
# Building requests: Request-URI and Route (§12.2.1.1)
# ---------------------------------------------------------------------------


def test_request_without_route_set() -> None:
    dialog = caller_dialog()
    ids = CountingIds("a")
    info = dialog.create_request("INFO", ids, sent_by="192.0.2.1:5060",
                                 body=b"Signal=5\r\nDuration=160\r\n",
                                 content_type="application/dtmf-relay")
    assert info.uri == "sip:bob@192.0.2.2:5062;transport=udp"
    assert "Route" not in info.headers
    assert info.headers.get("Via") == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-a-1;rport"
    assert info.headers.get("Max-Forwards") == "70"
    assert info.headers.get("From") == ALICE_FROM
    assert info.headers.get("To") == "<sip:bob@example.com>;tag=b-tag"
    assert info.headers.get("Call-ID") == CALL_ID
    assert info.headers.get("CSeq") == "315 INFO"
    assert info.headers.get("Content-Type") == "application/dtmf-relay"
    assert "Contact" not in info.headers  # not a target refresh request
    assert str(dialog.next_hop()) == "sip:bob@192.0.2.2:5062;transport=udp"
    assert dialog.local_seq == 315


def test_loose_route_set() -> None:
    dialog = caller_dialog(("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr;ftag=x>"))
    bye = dialog.create_request("BYE", CountingIds(), sent_by="192.0.2.1")
    assert bye.uri == "sip:bob@192.0.2.2:5062;transport=udp"
    assert bye.headers.get_all("Route") == [
        "<sip:p2.example.com;lr;ftag=x>, <sip:p1.example.com;lr>"]
    assert str(dialog.next_hop()) == "sip:p2.example.com;lr;ftag=x"


def test_strict_router_first_in_route_set() -> None:
    # the UAC reverses: the strict router p2 is the first hop
    dialog = caller_dialog(("<sip:p1.example.com;lr>", "<sip:p2.example.com;method=INVITE>"))
    bye = dialog.create_request("BYE", CountingIds(), sent_by="192.0.2.1")
    assert bye.uri == "sip:p2.example.com"  # method= is not allowed in a Request-URI
    assert bye.headers.get_all("Route") == [
        "<sip:p1.example.com;lr>, <sip:bob@192.0.2.2:5062;transport=udp>"]
    assert str(dialog.next_hop()) == "sip:p2.example.com;method=INVITE"


def test_uas_local_cseq_starts_when_empty_and_increments() -> None:
    invite = make_invite()
    dialog = Dialog.from_uas(invite, answer(invite, 200))
    ids = CountingIds("b")
    first = dialog.create_request("INFO", ids, sent_by="192.0.2.2:5062")
    second = dialog.create_request("OPTIONS", ids, sent_by="192.0.2.2:5062")
    assert first.cseq.number + 1 == second.cseq.number
    assert first.headers.get("From") == "<sip:bob@example.com>;tag=b-tag"
    assert first.headers.get("To") == ALICE_FROM
    assert first.uri == "sip:alice@192.0.2.1:5060"
    assert first.branch != second.branch


def test_reinvite_carries_contact_and_marks_offer_pending() -> None:
    dialog = caller_dialog()
    reinvite = dialog.create_request("INVITE", CountingIds(), sent_by="192.0.2.1",
                                     transport="tcp", body=OFFER,
                                     content_type="application/sdp")
    assert reinvite.headers.get("Contact") == ALICE_CONTACT
    assert reinvite.top_via.transport == "TCP"
    assert reinvite.cseq.number == 315
    assert dialog.offer_pending
    assert dialog.local_invite_pending


def test_ack_and_cancel_are_not_built_by_create_request() -> None:
    dialog = caller_dialog()
    for method in ("ACK", "CANCEL"):
        with pytest.raises(ValueError):
            dialog.create_request(method, CountingIds(), sent_by="192.0.2.1")


def test_ack_for_2xx() -> None:
    dialog = caller_dialog(("<sip:p1.example.com;lr>",))
    ids = CountingIds("a")
    ack = dialog.create_ack(314, ids, sent_by="192.0.2.1:5060")
    assert ack.method == "ACK"
    assert ack.headers.get("CSeq") == "314 ACK"
    assert ack.branch == "z9hG4bK-a-1"
    assert ack.uri == "sip:bob@192.0.2.2:5062;transport=udp"
    assert ack.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    assert "Contact" not in ack.headers
    assert dialog.local_seq == 314  # the ACK does not use a new CSeq
    second = dialog.create_ack(314, ids, sent_by="192.0.2.1:5060")
    assert second.branch != ack.branch


# ---------------------------------------------------------------------------
# Requests from the peer (§12.2.2)
# ---------------------------------------------------------------------------


def test_remote_cseq_lower_is_500_equal_and_higher_pass() -> None:
    dialog = caller_dialog()
    dialog.receive_request(in_dialog_request("INFO", 10))
    assert dialog.remote_seq == 10
    dialog.receive_request(in_dialog_request("INFO", 11))
    assert dialog.remote_seq == 11
    with pytest.raises(DialogError) as caught:
        dialog.receive_request(in_dialog_request("INFO", 9))
    assert caught.value.status == 500
    assert dialog.remote_seq == 11


def test_ack_and_cancel_skip_the_cseq_check() -> None:
    invite = make_invite()
    dialog = Dialog.from_uas(invite, answer(invite, 200))
    dialog.receive_request(in_dialog_request("INFO", 400, from_=ALICE_FROM,
                                             to="<sip:bob@example.com>;tag=b-tag"))
    dialog.receive_request(in_dialog_request("ACK", 314, from_=ALICE_FROM,
                                             to="<sip:bob@example.com>;tag=b-tag"))
    assert dialog.remote_seq == 400


@pytest.mark.parametrize(
    ("from_", "to"),
    [('<sip:bob@example.com>;tag=other', ALICE_FROM),
     ('<sip:bob@example.com>;tag=b-tag', '<sip:alice@example.com>;tag=zzz')],
)
def test_request_of_another_dialog_is_481(from_: str, to: str) -> None:
    dialog = caller_dialog()
    with pytest.raises(DialogError) as caught:
        dialog.receive_request(in_dialog_request("INFO", 1, from_=from_, to=to))
    assert caught.value.status == 481


def test_target_refresh_by_reinvite_and_update_not_by_info() -> None:
    dialog = caller_dialog()
    dialog.receive_request(in_dialog_request("INFO", 1, contact="<sip:bob@198.51.100.7>"))
    assert str(dialog.remote_target) == "sip:bob@192.0.2.2:5062;transport=udp"
    dialog.receive_request(in_dialog_request("UPDATE", 2, contact="<sip:bob@198.51.100.8>"))
    assert str(dialog.remote_target) == "sip:bob@198.51.100.8"
    dialog.receive_request(in_dialog_request("INVITE", 3, contact="<sip:bob@198.51.100.9>",
                                             body=OFFER))
    assert str(dialog.remote_target) == "sip:bob@198.51.100.9"
    assert dialog.remote_offer_pending


def test_target_refresh_on_2xx_of_our_reinvite() -> None:
    dialog = caller_dialog()
    reinvite = dialog.create_request("INVITE", CountingIds(), sent_by="192.0.2.1", body=OFFER,
                                     content_type="application/sdp")
    ok = wire_response(make_response(reinvite, 200,
                                     headers=[("Contact", "<sip:bob@198.51.100.5:5070>"),
                                              ("Content-Type", "application/sdp")],
                                     body=ANSWER))
    dialog.update_from_response(ok)
    assert str(dialog.remote_target) == "sip:bob@198.51.100.5:5070"
    assert not dialog.offer_pending
    assert not dialog.local_invite_pending


def test_failed_reinvite_keeps_target_and_dialog() -> None:
    dialog = caller_dialog()
    reinvite = dialog.create_request("INVITE", CountingIds(), sent_by="192.0.2.1", body=OFFER)
    dialog.update_from_response(wire_response(make_response(
        reinvite, 488, headers=[("Contact", "<sip:bob@198.51.100.5>")])))
    assert str(dialog.remote_target) == "sip:bob@192.0.2.2:5062;transport=udp"
    assert dialog.state is DialogState.CONFIRMED
    assert not dialog.offer_pending


# ---------------------------------------------------------------------------
# Early -> confirmed -> terminated
# ---------------------------------------------------------------------------


def test_early_to_confirmed_recomputes_route_set_and_target() -> None:
    invite = make_invite(record_route=("<sip:p1.example.com;lr>",))
    dialog = Dialog.from_uac(invite, answer(invite, 183, contact="<sip:bob@192.0.2.50>"))
    ok = answer(invite, 200, body=ANSWER)
    ok.headers.set("Record-Route", "<sip:p1.example.com;lr>, <sip:p0.example.com;lr>")
    dialog.update_from_response(ok)
    assert dialog.state is DialogState.CONFIRMED
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p0.example.com;lr", "sip:p1.example.com;lr"]
    assert str(dialog.remote_target) == "sip:bob@192.0.2.2:5062;transport=udp"
    assert not dialog.offer_pending


def test_early_dialog_without_contact_uses_request_uri() -> None:
    invite = make_invite()
    dialog = Dialog.from_uac(invite, answer(invite, 180, contact=None))
    assert str(dialog.remote_target) == "sip:bob@example.com"


def test_non_2xx_final_ends_early_dialog() -> None:
    invite = make_invite()
    dialog = Dialog.from_uac(invite, answer(invite, 180))
    dialog.update_from_response(answer(invite, 486))
    assert dialog.state is DialogState.TERMINATED


def test_uas_non_2xx_final_ends_early_dialog() -> None:
    invite = make_invite()
    dialog = Dialog.from_uas(invite, answer(invite, 180))
    dialog.response_sent(invite, answer(invite, 486))
    assert dialog.state is DialogState.TERMINATED


@pytest.mark.parametrize("status", [408, 481])
def test_408_or_481_to_in_dialog_request_ends_dialog(status: int) -> None:
    dialog = caller_dialog()
    info = dialog.create_request("INFO", CountingIds(), sent_by="192.0.2.1")
    dialog.update_from_response(wire_response(make_response(info, status)))
    assert dialog.state is DialogState.TERMINATED


def test_bye_sent_terminates_and_later_requests_fail() -> None:
    dialog = caller_dialog()
    bye = dialog.create_request("BYE", CountingIds(), sent_by="192.0.2.1")
    assert bye.headers.get("CSeq") == "315 BYE"
    assert "Contact" not in bye.headers
    assert dialog.state is DialogState.TERMINATED
    with pytest.raises(DialogError) as caught:
        dialog.create_request("INFO", CountingIds(), sent_by="192.0.2.1")
    assert caught.value.status == 481
    dialog.update_from_response(wire_response(make_response(bye, 200)))  # 200 to BYE: fine
    assert dialog.state is DialogState.TERMINATED


def test_bye_received_terminates() -> None:
    dialog = caller_dialog()
    dialog.receive_request(in_dialog_request("BYE", 1))
    assert dialog.is_terminated
    with pytest.raises(DialogError) as caught:
        dialog.receive_request(in_dialog_request("INFO", 2))
    assert caught.value.status == 481


def test_caller_may_bye_early_dialog_callee_may_not() -> None:
    invite = make_invite()
    caller = Dialog.from_uac(invite, answer(invite, 180))
    caller.create_request("BYE", CountingIds(), sent_by="192.0.2.1")
    assert caller.is_terminated
    callee = Dialog.from_uas(invite, answer(invite, 180))
    with pytest.raises(DialogError):
        callee.create_request("BYE", CountingIds(), sent_by="192.0.2.2")
    assert callee.is_early


# ---------------------------------------------------------------------------
# Forking (§13.2.2.4)
# ---------------------------------------------------------------------------


def test_forked_invite_two_early_dialogs_one_confirmed_other_surplus() -> None:
    invite = make_invite()
    forks = DialogSet(invite)
    assert forks.receive_response(answer(invite, 100, tag=None)) is None
    first = forks.receive_response(answer(invite, 180, tag="fork-1",
                                          contact="<sip:bob@192.0.2.11>"))
    second = forks.receive_response(answer(invite, 183, tag="fork-2",
                                           contact="<sip:bob@192.0.2.12>"))
    assert first is not None and second is not None and first is not second
    assert {d.id.remote_tag for d in forks.early} == {"fork-1", "fork-2"}
    assert forks.receive_response(answer(invite, 180, tag="fork-1")) is first  # same dialog

    winner = forks.receive_response(answer(invite, 200, tag="fork-2",
                                           contact="<sip:bob@192.0.2.12>", body=ANSWER))
    assert winner is second and forks.confirmed is second
    assert second.is_confirmed and first.is_early
    assert forks.surplus == []

    late = forks.receive_response(answer(invite, 200, tag="fork-1",
                                         contact="<sip:bob@192.0.2.11>", body=ANSWER))
    assert late is first and late.is_confirmed
    assert forks.surplus == [first]
    # the surplus dialog is ACKed and then ended with BYE, sent to its own target
    ids = CountingIds()
    ack = late.create_ack(314, ids, sent_by="192.0.2.1")
    bye = late.create_request("BYE", ids, sent_by="192.0.2.1")
    assert ack.uri == bye.uri == "sip:bob@192.0.2.11"
    assert bye.headers.get("To") == "<sip:bob@example.com>;tag=fork-1"
    assert late.is_terminated and second.is_confirmed


def test_forked_invite_final_failure_ends_every_early_dialog() -> None:
    invite = make_invite()
    forks = DialogSet(invite)
    forks.receive_response(answer(invite, 180, tag="fork-1"))
    forks.receive_response(answer(invite, 180, tag="fork-2"))
    forks.receive_response(answer(invite, 480, tag="proxy-tag"))
    assert forks.early == []
    assert all(d.is_terminated for d in forks.dialogs.values())
    assert forks.confirmed is None


# ---------------------------------------------------------------------------
# re-INVITE / UPDATE glare (§14, RFC 3311 §5.2)
# ---------------------------------------------------------------------------


def test_reinvite_glare_gets_491_and_clears_after_answer() -> None:
    dialog = caller_dialog()
    dialog.create_request("INVITE", CountingIds(), sent_by="192.0.2.1", body=OFFER,
                          content_type="application/sdp")
    with pytest.raises(DialogError) as caught:
        dialog.receive_request(in_dialog_request("INVITE", 5, body=OFFER))
    assert caught.value.status == 491
    assert caught.value.reason == "Request Pending"
    ok = wire_response(make_response(in_dialog_request("INVITE", 315, from_=ALICE_FROM,
                                                       to="<sip:bob@example.com>;tag=b-tag"),
                                     200, body=ANSWER))
    dialog.update_from_response(ok)
    assert not dialog.offer_pending
    dialog.receive_request(in_dialog_request("INVITE", 6, body=OFFER))  # accepted now
    assert dialog.remote_invite_pending


def test_we_cannot_reinvite_while_an_invite_is_pending() -> None:
    dialog = caller_dialog()
    dialog.receive_request(in_dialog_request("INVITE", 5, body=OFFER))
    with pytest.raises(DialogError) as caught:
        dialog.create_request("INVITE", CountingIds(), sent_by="192.0.2.1", body=OFFER)
    assert caught.value.status == 491


def test_overlapping_incoming_invite_is_500() -> None:
    dialog = caller_dialog()
    dialog.receive_request(in_dialog_request("INVITE", 5, body=OFFER))
    with pytest.raises(DialogError) as caught:
        dialog.receive_request(in_dialog_request("INVITE", 6, body=OFFER))
    assert caught.value.status == 500


def test_incoming_reinvite_answered_then_next_accepted() -> None:
    dialog = caller_dialog()
    reinvite = in_dialog_request("INVITE", 5, body=OFFER)
    dialog.receive_request(reinvite)
    dialog.response_sent(reinvite, wire_response(make_response(reinvite, 200, body=ANSWER)))
    assert not dialog.remote_invite_pending and not dialog.remote_offer_pending
    dialog.receive_request(in_dialog_request("INVITE", 6, body=OFFER))


def test_update_glare_gets_491() -> None:
    dialog = caller_dialog()
    dialog.create_request("UPDATE", CountingIds(), sent_by="192.0.2.1", body=OFFER)
    assert dialog.offer_pending
    with pytest.raises(DialogError) as caught:
        dialog.receive_request(in_dialog_request("UPDATE", 5, body=OFFER))
    assert caught.value.status == 491
    # an UPDATE without an offer (session refresh) is no glare
    dialog.receive_request(in_dialog_request("UPDATE", 6))


def test_offer_in_2xx_is_pending_until_ack() -> None:
    invite = make_invite(body=b"")
    dialog = Dialog.from_uas(invite, answer(invite, 200, body=OFFER))
    assert dialog.offer_pending
    with pytest.raises(DialogError) as caught:
        dialog.receive_request(in_dialog_request("INVITE", 315, from_=ALICE_FROM,
                                                 to="<sip:bob@example.com>;tag=b-tag",
                                                 body=OFFER))
    assert caught.value.status == 491
    dialog.receive_request(in_dialog_request("ACK", 314, from_=ALICE_FROM,
                                             to="<sip:bob@example.com>;tag=b-tag", body=ANSWER))
    assert not dialog.offer_pending


@pytest.mark.parametrize(
    ("owner", "draw", "expected_s"),
    [(True, 0.0, 2.1), (True, 0.5, 3.05), (True, 0.999999, 4.0),
     (False, 0.0, 0.0), (False, 0.5, 1.0), (False, 0.999999, 2.0)],
)
def test_glare_retry_after_intervals(owner: bool, draw: float, expected_s: float) -> None:
    assert glare_retry_after_s(owner, draw) == expected_s


def test_glare_retry_after_uses_10ms_units_and_rejects_bad_draw() -> None:
    values = {glare_retry_after_s(True, i / 1000) for i in range(1000)}
    assert min(values) == 2.1 and max(values) == 4.0
    assert all(abs(v * 100 - round(v * 100)) < 1e-9 for v in values)
    with pytest.raises(ValueError):
        glare_retry_after_s(True, 1.0)
    with pytest.raises(ValueError):
        glare_retry_after_s(False, -0.1)


def test_dialog_glare_owner_is_the_caller() -> None:
    invite = make_invite()
    caller = Dialog.from_uac(invite, answer(invite, 200))
    callee = Dialog.from_uas(invite, answer(invite, 200))
    assert caller.glare_retry_after_s(0.0) == 2.1
    assert callee.glare_retry_after_s(0.0) == 0.0


# ---------------------------------------------------------------------------
# A whole call between two Dialog objects
# ---------------------------------------------------------------------------


def test_scenario_invite_200_ack_reinvite_bye() -> None:
    alice_ids = CountingIds("alice")
    bob_ids = CountingIds("bob")
    proxy_rr = "<sip:proxy.example.com;lr>"
    invite = make_invite(record_route=(proxy_rr,))

    # Bob rings, then answers; both sides build their dialog from the wire messages
    ringing = answer(invite, 180, tag=bob_ids.tag())
    bob = Dialog.from_uas(invite, ringing)
    alice = Dialog.from_uac(invite, ringing)
    assert alice.id == DialogId(CALL_ID, "a-tag", "bob-tag-1")
    assert bob.id == DialogId(CALL_ID, "bob-tag-1", "a-tag")
    assert alice.is_early and bob.is_early

    ok = answer(invite, 200, tag="bob-tag-1", body=ANSWER)
    bob.response_sent(invite, ok)
    alice.update_from_response(ok)
    assert alice.is_confirmed and bob.is_confirmed
    assert not alice.offer_pending and not bob.offer_pending

    # ACK: every header
    ack = wire_request(alice.create_ack(314, alice_ids, sent_by="192.0.2.1:5060"))
    assert ack.start_line() == "ACK sip:bob@192.0.2.2:5062;transport=udp SIP/2.0"
    assert list(ack.headers) == [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-alice-1;rport"),
        ("Max-Forwards", "70"),
        ("Route", proxy_rr),
        ("From", ALICE_FROM),
        ("To", "<sip:bob@example.com>;tag=bob-tag-1"),
        ("Call-ID", CALL_ID),
        ("CSeq", "314 ACK"),
        ("Content-Length", "0"),
    ]
    bob.receive_request(ack)
    assert bob.is_confirmed

    # Bob puts Alice on hold with a re-INVITE; Alice accepts
    hold = wire_request(bob.create_request(
        "INVITE", bob_ids, sent_by="192.0.2.2:5062", body=OFFER,
        content_type="application/sdp"))
    assert hold.start_line() == "INVITE sip:alice@192.0.2.1:5060 SIP/2.0"
    assert list(hold.headers) == [
        ("Via", "SIP/2.0/UDP 192.0.2.2:5062;branch=z9hG4bK-bob-2;rport"),
        ("Max-Forwards", "70"),
        ("Route", proxy_rr),
        ("From", "<sip:bob@example.com>;tag=bob-tag-1"),
        ("To", ALICE_FROM),
        ("Call-ID", CALL_ID),
        ("CSeq", "1 INVITE"),
        ("Contact", BOB_CONTACT),
        ("Content-Type", "application/sdp"),
        ("Content-Length", str(len(OFFER))),
    ]
    alice.receive_request(hold)
    assert alice.remote_seq == 1
    hold_ok = wire_response(make_response(hold, 200, headers=[("Contact", ALICE_CONTACT)],
                                          body=ANSWER))
    alice.response_sent(hold, hold_ok)
    bob.update_from_response(hold_ok)
    assert not bob.offer_pending and not bob.local_invite_pending
    hold_ack = wire_request(bob.create_ack(1, bob_ids, sent_by="192.0.2.2:5062"))
    assert hold_ack.headers.get("CSeq") == "1 ACK"
    assert hold_ack.branch == "z9hG4bK-bob-3"
    alice.receive_request(hold_ack)

    # Alice hangs up
    bye = wire_request(alice.create_request("BYE", alice_ids, sent_by="192.0.2.1:5060"))
    assert alice.is_terminated
    assert bye.start_line() == "BYE sip:bob@192.0.2.2:5062;transport=udp SIP/2.0"
    assert list(bye.headers) == [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-alice-2;rport"),
        ("Max-Forwards", "70"),
        ("Route", proxy_rr),
        ("From", ALICE_FROM),
        ("To", "<sip:bob@example.com>;tag=bob-tag-1"),
        ("Call-ID", CALL_ID),
        ("CSeq", "315 BYE"),
        ("Content-Length", "0"),
    ]
    bob.receive_request(bye)
    assert bob.is_terminated
    alice.update_from_response(wire_response(make_response(bye, 200)))
    assert alice.is_terminated


def test_dialog_lifecycle_leaves_no_reference_cycles() -> None:
    import gc

    def one_call() -> None:
        invite = make_invite(record_route=("<sip:p1.example.com;lr>",))
        forks = DialogSet(invite)
        dialog = forks.receive_response(answer(invite, 200, body=ANSWER))
        assert dialog is not None
        dialog.create_ack(314, CountingIds(), sent_by="192.0.2.1")
        dialog.create_request("BYE", CountingIds(), sent_by="192.0.2.1")

    one_call()  # warm caches (regexes, enum members) before measuring
    gc.collect()
    gc.disable()
    try:
        one_call()
        assert gc.collect() == 0  # refcounting alone freed everything
    finally:
        gc.enable()


def test_request_uri_helper_keeps_sip_uri_type() -> None:
    dialog = caller_dialog(("<sip:p1.example.com;lr>", "<sip:p2.example.com;method=BYE?x=y>"))
    bye = dialog.create_request("BYE", CountingIds(), sent_by="192.0.2.1")
    uri = parse_uri(bye.uri)
    assert isinstance(uri, SipUri)
    assert uri.headers is None and uri.param("method") is None
