"""The caller of a trigger call: PAI before From, E.164 per the trunk's
country, and every way a carrier marks a number withheld."""

from __future__ import annotations

import pytest

from boomerang.callback.identity import caller_identity
from boomerang.sip.message import Request
from boomerang.sip.parser import parse_message


def invite(from_user: str, *extra: str, from_host: str = "carrier.example") -> Request:
    lines = [
        "INVITE sip:+48221234567@boomerang.example SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1",
        f"From: <sip:{from_user}@{from_host}>;tag=a",
        "To: <sip:+48221234567@boomerang.example>",
        "Call-ID: c1", "CSeq: 1 INVITE", "Max-Forwards: 70", *extra, "Content-Length: 0",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


@pytest.mark.parametrize("user", ["+48600100200", "0048600100200", "600100200",
                                  "+48 600-100-200"])
def test_one_number_in_every_format_of_a_polish_trunk(user: str) -> None:
    identity = caller_identity(invite(user.replace(" ", "")), "PL")
    assert identity.e164 == "+48600100200"
    assert not identity.withheld


def test_p_asserted_identity_wins_over_from() -> None:
    identity = caller_identity(invite("+48600999999",
                                      "P-Asserted-Identity: <sip:+48600100200@carrier>"), "PL")
    assert identity.e164 == "+48600100200"


@pytest.mark.parametrize(("user", "extra", "host"), [
    ("anonymous", (), "anonymous.invalid"),
    ("Anonymous", (), "carrier.example"),
    ("unknown", (), "carrier.example"),
    ("restricted", (), "carrier.example"),
    ("+48600100200", ("Privacy: id",), "carrier.example"),
    ("+48600100200", ("Privacy: header;id",), "carrier.example"),
    ("+48600100200", (), "anonymous.invalid"),
])
def test_withheld_numbers(user: str, extra: tuple[str, ...], host: str) -> None:
    identity = caller_identity(invite(user, *extra, from_host=host), "PL")
    assert identity.withheld
    assert identity.e164 is None


def test_a_word_that_is_no_number_is_not_withheld_but_has_no_e164() -> None:
    identity = caller_identity(invite("alice"), "PL")
    assert not identity.withheld
    assert identity.e164 is None
    assert identity.raw == "alice"
