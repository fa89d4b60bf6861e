"""URIs: parsing of sip/sips/tel/other schemes and RFC 3261 §19.1.4 comparison."""

from __future__ import annotations

import pytest

from boomerang.sip.errors import ParseError
from boomerang.sip.uri import AbsoluteUri, SipUri, TelUri, parse_uri, uri_equal


def test_full_sip_uri_parts() -> None:
    uri = parse_uri("sips:alice:secret@Example.COM:5061;transport=tcp;lr?subject=hi&x=y")
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips", "alice", "secret", "Example.COM", 5061)
    assert uri.params == [("transport", "tcp"), ("lr", None)]
    assert uri.headers == "subject=hi&x=y"
    assert uri.transport == "tcp"
    assert str(uri) == "sips:alice:secret@Example.COM:5061;transport=tcp;lr?subject=hi&x=y"


def test_default_transport_depends_on_scheme() -> None:
    sip = parse_uri("sip:a@h")
    sips = parse_uri("sips:a@h")
    assert isinstance(sip, SipUri) and isinstance(sips, SipUri)
    assert (sip.transport, sips.transport) == ("udp", "tls")


def test_ipv6_host_with_and_without_port() -> None:
    uri = parse_uri("sip:bob@[2001:db8::1]:5070;maddr=[2001:db8::2]")
    assert isinstance(uri, SipUri)
    assert (uri.host, uri.host_address, uri.port) == ("[2001:db8::1]", "2001:db8::1", 5070)
    assert uri.param("maddr") == "[2001:db8::2]"


def test_tel_and_other_schemes() -> None:
    tel = parse_uri("tel:+48-22-123-45-67;phone-context=example.com")
    assert isinstance(tel, TelUri) and tel.is_global and tel.param("phone-context")
    other = parse_uri("urn:service:sos")
    assert isinstance(other, AbsoluteUri) and other.scheme == "urn"
    assert str(other) == "urn:service:sos"


@pytest.mark.parametrize("text", [
    "sip:", "sip:@host", "sip:user@", "sip:host:99999", "sip:host:5x", "sip:us er@host",
    "sip:user@host;", "sip:user@host;a=b c", "sip:user@[2001:db8::1", "sip:u%zz@host",
    "<sip:user@host>", "nocolon", "1sip:host", "sip:user@host?novalue", "tel:", "tel:12 34",
    "mailto:a b",
])
def test_malformed_uris_raise_400(text: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_uri(text)
    assert caught.value.status == 400


@pytest.mark.parametrize(("a", "b"), [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;newparam=5"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("tel:+1-201-555-0123", "tel:+12015550123"),
])
def test_rfc3261_equivalent_uris(a: str, b: str) -> None:
    assert uri_equal(parse_uri(a), parse_uri(b))
    assert uri_equal(parse_uri(b), parse_uri(a))


@pytest.mark.parametrize(("a", "b"), [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com", "tel:+12015550123"),
])
def test_rfc3261_non_equivalent_uris(a: str, b: str) -> None:
    assert not uri_equal(parse_uri(a), parse_uri(b))
