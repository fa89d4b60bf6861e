"""RFC 4475 (SIP torture tests) and RFC 5118 (IPv6 torture tests).

The fixtures in tests/fixtures/sip/ are the RFC messages rebuilt from the
RFC bodies (see make_fixtures.py there for what could not be bit-exact).
Each case names its RFC section, its category and what a server does with
it. "parse" is ``parse_message`` (lazy: framing, start line, mandatory
headers, top Via, CSeq); "validate" is ``Message.validate()`` (every header
the core understands). Where the RFC's verdict is an application decision
(416, 420, 483, 501...) the message layer accepts the message and the
comment says which layer answers.
"""

from __future__ import annotations

import contextlib
import pathlib

import pytest

from boomerang.sip.errors import MessageTooLarge, ParseError, SipError
from boomerang.sip.headers import parse_name_addr
from boomerang.sip.message import Message, Request, Response
from boomerang.sip.parser import Limits, StreamFramer, parse_message
from boomerang.sip.uri import AbsoluteUri, SipUri

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "sip"


def load(name: str) -> bytes:
    return (FIXTURES / f"{name}.sip").read_bytes()


def parsed(name: str) -> Message:
    message = parse_message(load(name))
    message.validate()
    return message


# name -> (RFC section, expected: "valid" | ("parse"|"validate", status), what a server does)
CASES: dict[str, tuple[str, object, str]] = {
    # RFC 4475 §3.1.1 valid messages: parse and validate.
    "wsinv": ("4475 3.1.1.1", "valid", "process normally"),
    "intmeth": ("4475 3.1.1.2", "valid", "UAS: 501 with Allow (TU); proxy: forward or 404"),
    "esc01": ("4475 3.1.1.3", "valid", "process normally"),
    "escnull": ("4475 3.1.1.4", "valid", "registrar binds two distinct contacts"),
    "esc02": ("4475 3.1.1.5", "valid", "UAS: 501 for the unknown method RE%47IST%45R (TU)"),
    "lwsdisp": ("4475 3.1.1.6", "valid", "accept as well formed"),
    "longreq": ("4475 3.1.1.7", "valid", "process normally"),
    "dblreq": ("4475 3.1.1.8", "valid", "handle the REGISTER, ignore the trailing octets"),
    "semiuri": ("4475 3.1.1.9", "valid", "user part is 'user;par=u@example.net'"),
    "transports": ("4475 3.1.1.10", "valid", "process normally"),
    "mpart01": ("4475 3.1.1.11", "valid", "frame by Content-Length despite NULs in the body"),
    "unreason": ("4475 3.1.1.12", "valid", "accept the response"),
    "noreason": ("4475 3.1.1.13", "valid", "accept the response"),
    # RFC 4475 §3.1.2 invalid messages.
    "badinv01": ("4475 3.1.2.1", ("parse", 400), "400 Bad Request"),
    "clerr": ("4475 3.1.2.2", ("parse", 400), "UDP: 400; TCP: wait for more, then close"),
    "ncl": ("4475 3.1.2.3", ("parse", 400), "400; on TCP close the connection"),
    "scalar02": ("4475 3.1.2.4", ("parse", 400), "400 for the CSeq out of range"),
    "scalarlg": ("4475 3.1.2.5", ("parse", 400), "a response: drop it"),
    "quotbal": ("4475 3.1.2.6", ("validate", 400), "400 Bad Request"),
    "ltgtruri": ("4475 3.1.2.7", ("parse", 400), "400 Bad Request"),
    "lwsruri": ("4475 3.1.2.8", ("parse", 400), "400 Bad Request"),
    "lwsstart": ("4475 3.1.2.9", ("parse", 400), "400 (we are not liberal here)"),
    "trws": ("4475 3.1.2.10", ("parse", 400), "400 (we are not liberal here)"),
    "escruri": ("4475 3.1.2.11", ("validate", 400), "400: headers in a Request-URI"),
    # Date is not a header the core reads: the RFC allows ignoring it.
    "baddate": ("4475 3.1.2.12", "valid", "ignore the Date value (the core never reads it)"),
    "regbadct": ("4475 3.1.2.13", ("validate", 400), "400 Bad Request"),
    "badaspec": ("4475 3.1.2.14", ("validate", 400), "400 Bad Request"),
    "baddn": ("4475 3.1.2.15", ("validate", 400), "400 Bad Request"),
    "badvers": ("4475 3.1.2.16", ("parse", 505), "505 Version Not Supported"),
    "mismatch01": ("4475 3.1.2.17", ("parse", 400), "400 Bad Request"),
    # RFC prefers 501 here; 400 is allowed and is what a mismatched CSeq gets from us.
    "mismatch02": ("4475 3.1.2.18", ("parse", 400), "400 (RFC also allows 501)"),
    "bigcode": ("4475 3.1.2.19", ("parse", 400), "a response: drop it"),
    # RFC 4475 §3.2 transaction layer.
    "badbranch": ("4475 3.2.1", "valid",
                  "syntax is fine; transaction layer may 400 or fall back to 2543 matching"),
    # RFC 4475 §3.3 application layer.
    "insuf": ("4475 3.3.1", ("parse", 400), "400: From, To, Call-ID missing"),
    "unkscm": ("4475 3.3.2", ("validate", 416), "416 Unsupported URI Scheme"),
    "novelsc": ("4475 3.3.3", ("validate", 416), "416 Unsupported URI Scheme"),
    "unksm2": ("4475 3.3.4", "valid", "registrar (TU): reject the non-SIP AOR (400/416/404)"),
    "bext01": ("4475 3.3.5", "valid", "UAS (TU): 420 Bad Extension with Unsupported"),
    "invut": ("4475 3.3.6", "valid", "UAS (TU): 415 Unsupported Media Type with Accept"),
    "regaut01": ("4475 3.3.7", "valid", "registrar (TU): 401 challenge, ignore the scheme"),
    "multi01": ("4475 3.3.8", ("validate", 400), "400: repeated single-value headers"),
    "mcl01": ("4475 3.3.9", ("parse", 400), "400: conflicting Content-Length"),
    "bcast": ("4475 3.3.10", "valid", "UAC (transport): drop, the 2nd Via is not ours"),
    "zeromf": ("4475 3.3.11", "valid", "UAS answers OPTIONS; a proxy answers 483 (TU)"),
    "cparam01": ("4475 3.3.12", "valid", "unknownparam is a Contact header parameter"),
    "cparam02": ("4475 3.3.13", "valid", "unknownparam is a URI parameter"),
    "regescrt": ("4475 3.3.14", "valid", "registrar (TU): store the contact with its headers"),
    "sdp01": ("4475 3.3.15", "valid", "UAS (TU): 406/488, SDP not acceptable per Accept"),
    # RFC 4475 §3.4 backward compatibility.
    "inv2543": ("4475 3.4.1", "valid", "RFC 2543 request: process (no Max-Forwards, no branch)"),
    # RFC 5118.
    "ipv6-good": ("5118 4.1", "valid", "process normally"),
    "ipv6-bad": ("5118 4.2", ("validate", 400), "400 Bad Request"),
    "ipv6-port-ambiguous": ("5118 4.3", "valid", "well formed: address ...:10:5070, no port"),
    "ipv6-port-unambiguous": ("5118 4.4", "valid", "port 5070"),
    "ipv6-via-received-param-with-delim": ("5118 4.5", "valid", "parse the top Via anyway"),
    "ipv6-via-received-param-no-delim": ("5118 4.5", "valid", "process normally"),
    "ipv6-in-sdp": ("5118 4.6", "valid", "process normally"),
    "ipv6-mult-ip-in-header": ("5118 4.7", "valid", "process normally"),
    "ipv6-mult-ip-in-sdp": ("5118 4.8", "valid", "process normally"),
    "ipv6-ipv4-mapped-ipv6": ("5118 4.9", "valid", "process normally"),
    "ipv6-bug-abnf-3-colons": ("5118 4.10", "valid", "be robust: accept the extra colon"),
    "ipv6-correct-abnf-2-colons": ("5118 4.10", "valid", "process normally"),
}


def test_every_fixture_has_a_case_and_every_case_a_fixture() -> None:
    on_disk = {p.stem for p in FIXTURES.glob("*.sip")}
    assert on_disk == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_torture_message_gets_the_expected_verdict(name: str) -> None:
    _section, expected, _action = CASES[name]
    data = load(name)
    if expected == "valid":
        parse_message(data).validate()
        return
    stage, status = expected  # type: ignore[misc]
    with pytest.raises(ParseError) as caught:
        message = parse_message(data)
        assert stage == "validate", f"{name} should already fail in parse_message"
        message.validate()
    assert caught.value.status == status


@pytest.mark.parametrize("name", sorted(CASES))
def test_torture_message_raises_only_sip_errors_on_every_accessor(name: str) -> None:
    try:
        message = parse_message(load(name))
    except SipError:
        return
    for attribute in ("vias", "from_", "to", "call_id", "cseq", "contacts", "max_forwards",
                      "expires", "reasons", "privacy", "content_type", "contact_star"):
        with contextlib.suppress(SipError):
            getattr(message, attribute)
    if isinstance(message, Request):
        with contextlib.suppress(SipError):
            message.request_uri  # noqa: B018
    message.serialize()


def test_wsinv_folded_and_spaced_headers_have_the_right_values() -> None:
    message = parsed("wsinv")
    assert isinstance(message, Request)
    assert message.method == "INVITE"
    uri = message.request_uri
    assert isinstance(uri, SipUri) and uri.param("unknownparam") == ""
    assert message.to.tag == "1918181833n"
    assert message.to.uri == SipUri(host="chair-dnrc.example.com", user="vivekg")
    assert message.from_.display_name == 'J Rosenberg \\"'
    assert message.from_tag == "98asjd8"
    assert message.max_forwards == 68
    assert message.cseq.number == 9 and message.cseq.method == "INVITE"
    assert [(v.transport, v.host, v.branch) for v in message.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert message.headers.get("Subject") == ""
    assert message.headers.get("NewFangledHeader") == (
        "newfangled value continued newfangled value")
    assert message.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = message.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.param("newparam") == "newvalue"
    assert contact.param("secondparam") == ""
    assert contact.q == 0.33
    (route,) = message.name_addrs("Route")
    assert isinstance(route.uri, SipUri) and route.uri.param("unknown-no-value") == ""
    assert len(message.body) == 150 and message.body.startswith(b"v=0\r\n")


def test_intmeth_keeps_unusual_characters() -> None:
    message = parsed("intmeth")
    assert isinstance(message, Request)
    assert message.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = message.request_uri
    assert isinstance(uri, SipUri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert message.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert message.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert message.from_.param("fromParam''~+*_!.-%") == '"работающий"'
    assert message.from_tag == "_token~1'+`*%!-."
    assert message.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert message.branch == "z9hG4bK-.!%66*_+`'~"
    assert message.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_escapes_are_kept_and_undone_on_demand() -> None:
    message = parsed("esc01")
    assert isinstance(message, Request)
    uri = message.request_uri
    assert isinstance(uri, SipUri)
    assert uri.user == "sips%3Auser%40example.com"
    assert uri.user_unescaped == "sips:user@example.com"
    assert isinstance(message.to.uri, SipUri) and message.to.uri.user_unescaped == "user"
    assert isinstance(message.from_.uri, SipUri)
    assert message.from_.uri.user_unescaped == "I have spaces"
    (contact,) = message.contacts
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.params == [("%6C%72", None), ("n%61me", "v%61lue%25%34%31")]
    assert message.content_type == "application/sdp"


def test_escnull_registers_two_distinct_contacts() -> None:
    message = parsed("escnull")
    users = [c.uri.user_unescaped for c in message.contacts if isinstance(c.uri, SipUri)]
    assert users == ["\x00", "\x00\x00"]
    assert isinstance(message.to.uri, SipUri)
    assert message.to.uri.user_unescaped == "null-\x00-null"


def test_esc02_percent_is_not_an_escape_outside_uris() -> None:
    message = parsed("esc02")
    assert isinstance(message, Request)
    assert message.method == "RE%47IST%45R"
    assert message.to.display_name == "%Z%45"
    assert len(message.contacts) == 2
    assert message.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_and_longreq() -> None:
    assert parsed("lwsdisp").from_.display_name == "caller"
    message = parsed("longreq")
    assert len(message.vias) == 34
    assert message.vias[0].host == "sip33.example.com"
    assert message.vias[-1].received == "192.0.2.5"
    assert message.to.uri == parse_name_addr(
        "<" + str(message.to.uri) + ">").uri
    assert isinstance(message.to.uri, SipUri) and message.to.uri.port == 6000
    assert message.from_tag is not None and message.from_tag.endswith("982424")


def test_dblreq_ignores_the_octets_after_the_body() -> None:
    message = parsed("dblreq")
    assert isinstance(message, Request)
    assert message.method == "REGISTER"
    assert message.body == b""


def test_semiuri_user_part_contains_the_semicolon() -> None:
    message = parsed("semiuri")
    assert isinstance(message, Request)
    uri = message.request_uri
    assert isinstance(uri, SipUri)
    assert uri.user_unescaped == "user;par=u@example.net"
    assert uri.params == [] and uri.host == "example.com"
    assert message.headers.values("Accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed", "multipart/signed",
        "message/sip", "message/sipfrag"]


def test_transports_keeps_unknown_transport() -> None:
    message = parsed("transports")
    assert [v.transport for v in message.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert message.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_body_with_nuls_is_framed_by_content_length() -> None:
    message = parsed("mpart01")
    assert len(message.body) == 553
    assert b"\x00" in message.body
    assert message.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert message.top_via.wants_rport and message.top_via.rport is None
    assert message.top_via.port == 5070


def test_unreason_and_noreason_reason_phrases() -> None:
    message = parsed("unreason")
    assert isinstance(message, Response)
    assert message.status == 200
    assert message.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    empty = parsed("noreason")
    assert isinstance(empty, Response)
    assert (empty.status, empty.reason) == (100, "")


def test_application_layer_cases_expose_what_the_tu_decides_on() -> None:
    assert parsed("bext01").header_tokens("Require") == [
        "nothingsupportsthis", "nothingsupportsthiseither"]
    assert parsed("invut").content_type == "application/unknownformat"
    assert parsed("zeromf").max_forwards == 0
    assert parsed("badbranch").branch == "z9hG4bK"
    unksm2 = parsed("unksm2")
    assert isinstance(unksm2.to.uri, AbsoluteUri) and unksm2.to.uri.scheme == "isbn"
    cparam01 = parsed("cparam01").contacts[0]
    assert cparam01.param("unknownparam") == ""
    assert isinstance(cparam01.uri, SipUri) and cparam01.uri.params == []
    cparam02 = parsed("cparam02").contacts[0]
    assert cparam02.param("unknownparam") is None
    assert isinstance(cparam02.uri, SipUri) and cparam02.uri.param("unknownparam") == ""
    (regescrt,) = parsed("regescrt").contacts
    assert isinstance(regescrt.uri, SipUri)
    assert regescrt.uri.headers == "Route=%3Csip:sip.example.com%3E"
    inv2543 = parsed("inv2543")
    assert inv2543.max_forwards is None and inv2543.branch is None
    assert len(inv2543.body) > 0
    assert [v.host for v in parsed("bcast").vias] == ["192.0.2.198", "255.255.255.255"]


def test_unknown_scheme_is_accepted_when_the_caller_allows_any_scheme() -> None:
    message = parse_message(load("novelsc"))
    message.validate(uri_schemes=None)
    assert isinstance(message, Request) and message.request_uri.scheme == "soap.beep"


def test_ipv6_references_in_uris_and_vias() -> None:
    good = parsed("ipv6-good")
    assert isinstance(good, Request)
    uri = good.request_uri
    assert isinstance(uri, SipUri) and uri.host == "[2001:db8::10]" and uri.port is None
    assert good.top_via.host == "[2001:db8::9:1]"
    assert isinstance(good.contacts[0].uri, SipUri)
    assert good.contacts[0].uri.host_address == "2001:db8::1"
    ambiguous = parsed("ipv6-port-ambiguous")
    assert isinstance(ambiguous, Request)
    assert isinstance(ambiguous.request_uri, SipUri)
    assert ambiguous.request_uri.host == "[2001:db8::10:5070]"
    assert ambiguous.request_uri.port is None
    unambiguous = parsed("ipv6-port-unambiguous")
    assert isinstance(unambiguous, Request) and isinstance(unambiguous.request_uri, SipUri)
    assert unambiguous.request_uri.port == 5070
    assert parsed("ipv6-via-received-param-with-delim").top_via.received == "[2001:db8::9:255]"
    assert parsed("ipv6-via-received-param-no-delim").top_via.received == "2001:db8::9:255"
    vias = parsed("ipv6-mult-ip-in-header").vias
    assert [(v.host, v.port, v.transport) for v in vias] == [
        ("[2001:db8::9:1]", 6050, "UDP"), ("192.0.2.1", None, "UDP"),
        ("[2001:db8::9:255]", None, "TCP")]
    mapped = parsed("ipv6-ipv4-mapped-ipv6")
    assert (mapped.top_via.host, mapped.top_via.port) == ("[::ffff:192.0.2.10]", 19823)
    assert b"c=IN IP6 2001:db8::20" in parsed("ipv6-in-sdp").body
    three = parsed("ipv6-bug-abnf-3-colons")
    assert isinstance(three, Request) and isinstance(three.request_uri, SipUri)
    assert three.request_uri.host == "[2001:db8:::192.0.2.1]"


def test_clerr_over_a_stream_waits_for_more_bytes() -> None:
    framer = StreamFramer()
    assert framer.feed(load("clerr")) == []


def test_ncl_over_a_stream_breaks_the_framing() -> None:
    with pytest.raises(ParseError) as caught:
        StreamFramer().feed(load("ncl"))
    assert caught.value.status == 400


def test_valid_torture_messages_survive_a_round_trip() -> None:
    for name, (_section, expected, _action) in CASES.items():
        if expected != "valid":
            continue
        first = parse_message(load(name))
        again = parse_message(first.serialize())
        assert again.start_line() == first.start_line(), name
        assert [(k, v) for k, v in again.headers if k != "Content-Length"] == [
            (k, v) for k, v in first.headers if k != "Content-Length"], name
        assert again.body == first.body, name


def test_longreq_is_refused_with_513_under_a_small_header_limit() -> None:
    with pytest.raises(MessageTooLarge) as caught:
        parse_message(load("longreq"), Limits(max_header_bytes=1024))
    assert caught.value.status == 513
