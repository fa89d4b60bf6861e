"""Typed header values: Via (with RFC 3581 stamping), name-addr, CSeq, Reason, Privacy."""

from __future__ import annotations

import pytest

from boomerang.sip.errors import ParseError
from boomerang.sip.headers import (
    canonical_name,
    parse_cseq,
    parse_name_addr,
    parse_privacy,
    parse_reason,
    parse_via,
    split_list,
)
from boomerang.sip.uri import SipUri


def test_via_parts_and_params() -> None:
    via = parse_via("SIP/2.0/udp 192.0.2.1:5070;branch=z9hG4bK776;rport;received=10.0.0.1")
    assert (via.protocol, via.transport) == ("SIP/2.0", "UDP")
    assert (via.host, via.port) == ("192.0.2.1", 5070)
    assert via.branch == "z9hG4bK776" and via.wants_rport and via.rport is None
    assert via.received == "10.0.0.1"
    assert str(via) == "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK776;rport;received=10.0.0.1"


def test_via_with_lws_around_separators() -> None:
    via = parse_via(" SIP / 2.0 / TCP  host.example.com : 5060 ; branch = z9hG4bKx ")
    assert (via.transport, via.host, via.port, via.branch) == (
        "TCP", "host.example.com", 5060, "z9hG4bKx")


@pytest.mark.parametrize("text", [
    "SIP/2.0/UDP", "SIP/2.0 host", "SIP/2.0/UDP host;;", "SIP/2.0/UDP host;branch",
    "SIP/2.0/UDP host;rport=x", "SIP/2.0/UDP host;ttl=300", "SIP/2.0/UDP host:port",
    "SIP/2.0/UDP [2001:db8::1;branch=z9hG4bK1",
])
def test_bad_vias_raise(text: str) -> None:
    with pytest.raises(ParseError):
        parse_via(text)


def test_with_received_adds_received_when_the_source_differs() -> None:
    via = parse_via("SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1")
    stamped = via.with_received("192.0.2.9", 5062)
    assert stamped.received == "192.0.2.9"
    assert not stamped.wants_rport


def test_with_received_leaves_a_matching_sent_by_alone() -> None:
    via = parse_via("SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK1")
    assert via.with_received("192.0.2.9", 5062) is via
    v6 = parse_via("SIP/2.0/UDP [2001:DB8::1];branch=z9hG4bK1")
    assert v6.with_received("2001:db8:0::1", 5060) is v6


def test_with_received_fills_rport_and_always_sets_received() -> None:
    via = parse_via("SIP/2.0/UDP 192.0.2.9:5060;rport;branch=z9hG4bK1")
    stamped = via.with_received("192.0.2.9", 40000)
    assert stamped.rport == 40000 and stamped.received == "192.0.2.9"
    assert str(stamped) == (
        "SIP/2.0/UDP 192.0.2.9:5060;rport=40000;branch=z9hG4bK1;received=192.0.2.9")
    v6 = parse_via("SIP/2.0/UDP [2001:db8::1];rport").with_received("[2001:db8::2]", 1)
    assert v6.received == "2001:db8::2"


def test_name_addr_forms() -> None:
    quoted = parse_name_addr('"A \\"B\\"" <sip:a@h>;tag=1')
    assert quoted.display_name == 'A "B"' and quoted.tag == "1"
    tokens = parse_name_addr("Anna  Nowak <sip:101@pbx>")
    assert tokens.display_name == "Anna Nowak"
    spec = parse_name_addr("sip:a@h;tag=9")
    assert isinstance(spec.uri, SipUri) and spec.uri.params == [] and spec.tag == "9"
    assert str(quoted) == '"A \\"B\\"" <sip:a@h>;tag=1'


def test_contact_expires_and_q() -> None:
    contact = parse_name_addr("<sip:a@h>;expires=3600;q=0.7")
    assert contact.expires == 3600 and contact.q == 0.7
    assert parse_name_addr("<sip:a@h>;expires=99999999999").expires == 2**32 - 1
    assert parse_name_addr("<sip:a@h>").expires is None
    with pytest.raises(ParseError):
        parse_name_addr("<sip:a@h>;q=1.5").q  # noqa: B018
    with pytest.raises(ParseError):
        parse_name_addr("<sip:a@h>;expires=-1").expires  # noqa: B018


@pytest.mark.parametrize("text", [
    "", '"unterminated <sip:a@h>', '"name" sip:a@h', "Bell, A <sip:a@h>", "<sip:a@h",
    "<sip:a@h> junk", "< sip:a@h >", "sip:a@h?x=y", "<sip:a@h>;;",
])
def test_bad_name_addrs_raise(text: str) -> None:
    with pytest.raises(ParseError):
        parse_name_addr(text)


def test_cseq_range_and_leading_zeros() -> None:
    assert parse_cseq("0009  INVITE").number == 9
    assert parse_cseq(f"{2**31 - 1} ACK").number == 2**31 - 1
    for bad in (f"{2**31} ACK", "1", "x INVITE", "1 IN VITE", "²3 INVITE", "-1 BYE"):
        with pytest.raises(ParseError):
            parse_cseq(bad)


def test_reason_q850() -> None:
    reason = parse_reason('Q.850 ;cause=16 ;text="Normal call clearing"')
    assert (reason.protocol, reason.cause, reason.text) == ("Q.850", 16, "Normal call clearing")
    assert str(reason) == 'Q.850;cause=16;text="Normal call clearing"'
    with pytest.raises(ParseError):
        parse_reason("Q.850;cause=x")


def test_privacy_tokens() -> None:
    assert parse_privacy("id; Header") == ["id", "header"]
    with pytest.raises(ParseError):
        parse_privacy("id;;")


def test_split_list_respects_quotes_and_brackets() -> None:
    assert split_list('"a, b" <sip:x@h>, <sip:y@h;p=1,2>') == [
        '"a, b" <sip:x@h>', "<sip:y@h;p=1,2>"]


def test_canonical_names() -> None:
    assert canonical_name("v") == "Via"
    assert canonical_name("CALL-ID") == "Call-ID"
    assert canonical_name("X-Custom") == "X-Custom"
