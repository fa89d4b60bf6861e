"""SIP INFO DTMF bodies: application/dtmf-relay and application/dtmf."""

from __future__ import annotations

import pytest

from boomerang.media.digits import DigitSource
from boomerang.media.dtmf_info import (
    DtmfBodyError,
    DtmfInfo,
    UnsupportedDtmfType,
    build_dtmf,
    build_dtmf_relay,
    parse_dtmf_info,
)
from boomerang.sip.errors import SipError

RELAY = "application/dtmf-relay"


@pytest.mark.parametrize(
    ("body", "digit", "duration_ms"),
    [
        (b"Signal=5\r\nDuration=160\r\n", "5", 160),
        (b"Signal=5\r\nDuration=160", "5", 160),
        (b"Signal= *\r\nDuration= 250\r\n", "*", 250),
        (b"signal=#\nduration=100\n", "#", 100),
        (b"Signal=10\r\nDuration=160\r\n", "*", 160),
        (b"Signal=11\r\n", "#", None),
        (b"Signal=12\r\nDuration=80\r\n", "A", 80),
        (b"Signal=d\r\n", "D", None),
        (b"Signal = 0 \r\nDuration = 40\r\nVolume=10\r\n", "0", 40),
    ],
)
def test_dtmf_relay_variants_seen_in_the_wild(
    body: bytes, digit: str, duration_ms: int | None
) -> None:
    assert parse_dtmf_info(RELAY, body) == DtmfInfo(digit=digit, duration_ms=duration_ms)


@pytest.mark.parametrize(("body", "digit"), [(b"5", "5"), (b"#\r\n", "#"), (b" 11\n", "#")])
def test_application_dtmf_is_the_digit_alone(body: bytes, digit: str) -> None:
    assert parse_dtmf_info("Application/DTMF", body).digit == digit


def test_content_type_parameters_are_ignored() -> None:
    assert parse_dtmf_info("application/dtmf-relay; charset=utf-8", b"Signal=1").digit == "1"


@pytest.mark.parametrize(
    "body",
    [b"", b"Duration=160\r\n", b"Signal=\r\n", b"Signal=E\r\n", b"Signal=16\r\n",
     b"Signal=55\r\n", b"Signal=1\r\nSignal=2\r\n", b"Signal=1\r\nDuration=abc\r\n",
     b"Signal=1\r\nDuration=-5\r\n", b"garbage", b"Signal=\xff\r\n", b"Signal=1\r\n" * 100],
)
def test_malformed_dtmf_relay_bodies_raise_400(body: bytes) -> None:
    with pytest.raises(DtmfBodyError) as caught:
        parse_dtmf_info(RELAY, body)
    assert caught.value.status == 400
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, SipError)


@pytest.mark.parametrize("body", [b"", b"55", b"x", b"5 5"])
def test_malformed_application_dtmf_raises_400(body: bytes) -> None:
    with pytest.raises(DtmfBodyError):
        parse_dtmf_info("application/dtmf", body)


def test_other_content_type_raises_415() -> None:
    with pytest.raises(UnsupportedDtmfType) as caught:
        parse_dtmf_info("application/sdp", b"v=0")
    assert caught.value.status == 415


def test_built_bodies_parse_back() -> None:
    assert build_dtmf_relay("#", 250) == b"Signal=#\r\nDuration=250\r\n"
    assert build_dtmf("a") == b"A"
    for digit in "0123456789*#ABCD":
        assert parse_dtmf_info(RELAY, build_dtmf_relay(digit)) == DtmfInfo(
            digit=digit, duration_ms=160)
        assert parse_dtmf_info("application/dtmf", build_dtmf(digit)).digit == digit


def test_build_refuses_non_digits() -> None:
    with pytest.raises(ValueError):
        build_dtmf("E")
    with pytest.raises(ValueError):
        build_dtmf_relay("1", 0)


def test_info_digit_becomes_a_digit_received_from_info() -> None:
    received = DtmfInfo(digit="7", duration_ms=100).received(12.5)
    assert (received.digit, received.source, received.time, received.duration_ms) == (
        "7", DigitSource.INFO, 12.5, 100)
