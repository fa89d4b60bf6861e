"""Numbers: E.164 normalisation, kinds, dial formats and dialled digits."""

from __future__ import annotations

import pytest

from boomerang.call.numbers import (
    NumberError,
    classify_dialled,
    format_for_dial,
    international_prefix,
    is_valid,
    normalise,
    number_kind,
    same_number,
    strip_uri,
)


@pytest.mark.parametrize("written", [
    "+48600100200", "0048600100200", "600100200", "+48 600-100-200", "(0048) 600 100 200",
    "tel:+48-600-100-200", "tel:600100200;phone-context=+48", "sip:600100200@carrier.example",
    "sip:+48600100200@192.0.2.10;user=phone", "<sips:0048600100200@carrier>",
])
def test_polish_forms_of_one_mobile_normalise_to_one_e164(written: str) -> None:
    assert normalise(written, "PL") == "+48600100200"


@pytest.mark.parametrize(("written", "country", "e164"), [
    ("030 123456", "DE", "+4930123456"),
    ("0151 23456789", "DE", "+4915123456789"),
    ("020 7946 0018", "GB", "+442079460018"),
    ("07400 123456", "GB", "+447400123456"),
    ("(201) 555-0123", "US", "+12015550123"),
    ("011 48 600 100 200", "US", "+48600100200"),
    ("0048600100200", "US", "+48600100200"),
])
def test_national_and_international_forms_of_other_countries(written: str, country: str,
                                                              e164: str) -> None:
    assert normalise(written, country) == e164


@pytest.mark.parametrize("bad", ["", "abc", "60010020x", "+4899", "12", "sip:alice@example.com",
                                 "+999123456789"])
def test_invalid_numbers_raise_number_error_with_a_fix(bad: str) -> None:
    with pytest.raises(NumberError) as caught:
        normalise(bad, "PL")
    assert "e.g. +48" in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert not is_valid(bad, "PL")


def test_a_short_number_is_484_and_a_non_number_404() -> None:
    with pytest.raises(NumberError) as short:
        normalise("600100", "PL")
    with pytest.raises(NumberError) as text:
        normalise("hello", "PL")
    assert (short.value.sip_status, text.value.sip_status) == (484, 404)


def test_an_unknown_country_is_refused() -> None:
    with pytest.raises(NumberError, match="not a known country"):
        normalise("600100200", "XX")


def test_strip_uri_leaves_plain_text_alone() -> None:
    assert strip_uri(" 600100200 ") == "600100200"
    assert strip_uri("tel:+1-201-555-0123;ext=1") == "+1-201-555-0123"


@pytest.mark.parametrize(("e164", "kind"), [
    ("+48600100200", "mobile"),
    ("+48221234567", "fixed"),
    ("+48701234567", "premium"),       # PL 70x
    ("+48800123456", "toll_free"),     # PL 800
    ("+449011234567", "premium"),      # UK 09xx
    ("+448001234567", "toll_free"),    # UK 0800
    ("+4930123456", "fixed"),
    ("+4915123456789", "mobile"),
    ("+19002345678", "premium"),       # US 900
    ("+18002345678", "toll_free"),     # US 800
    ("+12015550123", "fixed_or_mobile"),
    ("+48391234567", "voip"),          # PL 39
    ("+4899", "unknown"),
    ("not a number", "unknown"),
])
def test_number_kind(e164: str, kind: str) -> None:
    assert number_kind(e164) == kind


@pytest.mark.parametrize(("dial_format", "country", "dialled"), [
    ("e164", "PL", "+48600100200"),
    ("national", "PL", "600100200"),
    ("international", "PL", "0048600100200"),
    ("international", "US", "01148600100200"),
    ("national", "DE", "0048600100200"),  # another country's number: international
])
def test_format_for_dial(dial_format: str, country: str, dialled: str) -> None:
    assert format_for_dial("+48600100200", dial_format, country) == dialled  # type: ignore[arg-type]


def test_national_format_keeps_the_national_prefix() -> None:
    assert format_for_dial("+4930123456", "national", "DE") == "030123456"
    assert format_for_dial("+447400123456", "national", "GB") == "07400123456"
    assert format_for_dial("+12015550123", "national", "US") == "2015550123"


def test_international_prefixes() -> None:
    assert [international_prefix(c) for c in ("PL", "DE", "US", "RU")] == [
        "00", "00", "011", "810"]


def test_same_number_across_formats_and_not_across_numbers() -> None:
    assert same_number("0048600100200", "sip:600100200@carrier", "PL")
    assert same_number("+48 600 100 200", "600100200", "PL")
    assert not same_number("600100200", "600100201", "PL")
    assert not same_number("600100200", "+48600100200", "DE")  # read as +49600100200
    assert not same_number("garbage", "garbage", "PL")


EXTENSIONS = ("101", "102", "2000")


@pytest.mark.parametrize(("digits", "outside_prefix", "kind", "e164"), [
    ("101", "0", "extension", None),
    ("101#", None, "extension", None),
    ("10", "0", "incomplete", None),
    ("", "0", "incomplete", None),
    ("0", "0", "incomplete", None),
    ("0600100200", "0", "external", "+48600100200"),
    ("0600100200#", "0", "external", "+48600100200"),
    ("00048600100200", "0", "external", "+48600100200"),
    ("060010", "0", "incomplete", None),
    ("600100200", "0", "invalid", None),      # no outside prefix dialled
    ("600100200", None, "external", "+48600100200"),
    ("0048600100200", "0", "external", "+48600100200"),
    ("0044207946001", "9", "incomplete", None),
    ("00442079460018", "9", "external", "+442079460018"),
    ("9020 7946 0018".replace(" ", ""), "9", "external", "+442079460018"),
    ("+12015550123", None, "external", "+12015550123"),
    ("5", "0", "invalid", None),
    ("1*1", None, "invalid", None),
    ("0999999999999999999", "0", "invalid", None),
])
def test_classify_dialled(digits: str, outside_prefix: str | None, kind: str,
                          e164: str | None) -> None:
    country = "GB" if outside_prefix == "9" else "PL"
    result = classify_dialled(digits, outside_prefix=outside_prefix, country=country,
                              extensions=EXTENSIONS)
    assert (result.kind, result.e164) == (kind, e164)
    if kind == "extension":
        assert result.number == digits.removesuffix("#")
