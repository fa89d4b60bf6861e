"""Telephone numbers: E.164 normalisation, kinds, dial formats, dialled digits.

Everything here is pure (the ``phonenumbers`` metadata, no I/O). Numbers are
compared and stored in E.164 (``+48600100200``); a trunk's own format is an
input (``normalise``) and an output (``format_for_dial``) only.

- ``normalise("0048600100200", "PL")``, ``normalise("600100200", "PL")``,
  ``normalise("tel:+48-600-100-200", "PL")`` and
  ``normalise("sip:600100200@carrier;user=phone", "PL")`` all give
  ``"+48600100200"``; an invalid number raises ``NumberError`` (a ValueError
  carrying SIP status 484 Address Incomplete or 404 Not Found).
- ``classify_dialled`` tells what digits dialled on a dial tone mean:
  an extension, an external number (needs the trunk's outside prefix, ``+``
  or ``00``), a number still being dialled, or nothing valid.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, PhoneNumberType

NumberKind = Literal["mobile", "fixed", "fixed_or_mobile", "premium", "toll_free",
                     "shared_cost", "voip", "personal", "pager", "uan", "voicemail",
                     "unknown"]
DialFormat = Literal["e164", "national", "international"]
DialledKind = Literal["extension", "external", "invalid", "incomplete"]

DIAL_FORMATS: tuple[DialFormat, ...] = ("e164", "national", "international")

_KINDS: dict[int, NumberKind] = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_or_mobile",
    PhoneNumberType.PREMIUM_RATE: "premium",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
}
# Visual separators allowed in written numbers (RFC 3966 visual-separator).
_SEPARATORS = re.compile(r"[\s\-.()/]")
_DIALLED = re.compile(r"\+?[0-9]*")


class NumberError(ValueError):
    """A number that cannot be used; ``sip_status`` is what to answer a call to it."""

    def __init__(self, message: str, *, sip_status: int = 484) -> None:
        super().__init__(message)
        self.sip_status = sip_status


@dataclass(frozen=True, slots=True, kw_only=True)
class DialledNumber:
    """What the digits dialled on a dial tone mean.

    ``kind`` is ``extension`` (``number`` is the extension), ``external``
    (``e164`` is set), ``incomplete`` (a prefix of something valid: wait for
    more digits) or ``invalid`` (no more digits can make it valid).
    """

    kind: DialledKind
    digits: str
    number: str | None = None
    e164: str | None = None


def is_region(country: str) -> bool:
    """True for an ISO 3166 region that the numbering metadata knows (``PL``)."""
    return country.upper() in phonenumbers.SUPPORTED_REGIONS


def strip_uri(text: str) -> str:
    """The number part of ``tel:``/``sip:``/``sips:`` forms; other text unchanged.

    ``tel:+48-600-100-200;phone-context=x`` -> ``+48-600-100-200``;
    ``sip:600100200@carrier;user=phone`` -> ``600100200``; ``<sip:...>`` too.
    """
    value = text.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    scheme, colon, rest = value.partition(":")
    if colon and scheme.lower() in ("tel", "sip", "sips"):
        value = rest
        if scheme.lower() != "tel":
            value = value.partition("@")[0]
        value = value.partition(";")[0]
    return value.strip()


def _parse(number: str, country: str) -> PhoneNumber:
    raw = strip_uri(number)
    cleaned = _SEPARATORS.sub("", raw)
    if not cleaned:
        raise NumberError("an empty number is not a telephone number; write digits, "
                          f"e.g. {example_number(country)}")
    if not _DIALLED.fullmatch(cleaned):
        raise NumberError(f"{number!r} is not a telephone number; write digits, "
                          f"e.g. {example_number(country)}", sip_status=404)
    if not is_region(country):
        raise NumberError(f"{country!r} is not a known country code (ISO 3166), e.g. PL")
    if cleaned.startswith("00"):  # "00" always means international (SPEC §3)
        cleaned = "+" + cleaned[2:]
    try:
        return phonenumbers.parse(cleaned, country.upper())
    except NumberParseException as error:
        # Digits only, so NOT_A_NUMBER and TOO_SHORT_* mean "too few digits yet".
        final = error.error_type in (NumberParseException.INVALID_COUNTRY_CODE,
                                     NumberParseException.TOO_LONG)
        raise NumberError(f"{number!r} is not a telephone number for {country.upper()} "
                          f"({error._msg.rstrip('.')}); write it in E.164, "
                          f"e.g. {example_number(country)}",
                          sip_status=404 if final else 484) from None


def _e164(parsed: PhoneNumber) -> str:
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def normalise(number: str, country: str) -> str:
    """The E.164 form of ``number`` as written or received in ``country``.

    Raises NumberError when it is not a valid number (status 484 when it is
    too short, 404 otherwise).
    """
    parsed = _parse(number, country)
    if not phonenumbers.is_valid_number(parsed):
        reason = phonenumbers.is_possible_number_with_reason(parsed)
        too_short = reason == phonenumbers.ValidationResult.TOO_SHORT
        what = "is too short to be" if too_short else "is not"
        international = _SEPARATORS.sub("", strip_uri(number)).startswith(("+", "00"))
        region = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
        where = "" if international else f" for {country.upper()}"
        raise NumberError(f"{number!r} {what} a valid number{where} "
                          f"(read as {_e164(parsed)}); write it in E.164, "
                          f"e.g. {example_number(region if international else country)}",
                          sip_status=484 if _could_grow(parsed) else 404)
    return _e164(parsed)


def _could_grow(parsed: PhoneNumber) -> bool:
    """True when more digits might still make ``parsed`` a valid number."""
    country_code = parsed.country_code or 0
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, region)
    if metadata is None or metadata.general_desc is None:
        return False
    lengths = metadata.general_desc.possible_length or (0,)
    return len(phonenumbers.national_significant_number(parsed)) < max(lengths)


def is_valid(number: str, country: str) -> bool:
    try:
        normalise(number, country)
    except NumberError:
        return False
    return True


def same_number(a: str, b: str, country: str) -> bool:
    """True when ``a`` and ``b`` are one valid number once normalised for ``country``."""
    try:
        return normalise(a, country) == normalise(b, country)
    except NumberError:
        return False


def number_kind(e164: str) -> NumberKind:
    """The kind of a number (``premium`` for premium-rate); ``unknown`` if invalid."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except NumberParseException:
        return "unknown"
    if not phonenumbers.is_valid_number(parsed):
        return "unknown"
    return _KINDS.get(phonenumbers.number_type(parsed), "unknown")


def international_prefix(country: str) -> str:
    """The digits dialled before a country code from ``country`` (``00``, US ``011``)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(country.upper())
    if metadata is None:
        return "00"
    for candidate in (metadata.preferred_international_prefix, metadata.international_prefix):
        digits = (candidate or "").replace("~", "")
        if digits.isdigit():
            return digits
    return "00"


def format_for_dial(e164: str, dial_format: DialFormat, country: str) -> str:
    """``e164`` written the way a trunk in ``country`` expects it.

    ``e164``: ``+48600100200``; ``national``: ``600100200`` (with the
    national prefix where the country has one, DE ``030123456``);
    ``international``: ``0048600100200`` (US trunk: ``01148600100200``).
    A number of another country is dialled internationally on a
    ``national`` trunk.
    """
    parsed = _parse(e164, country)
    if dial_format == "e164":
        return _e164(parsed)
    if dial_format == "national":
        if phonenumbers.region_code_for_number(parsed) == country.upper() or (
                parsed.country_code == phonenumbers.country_code_for_region(country.upper())):
            national = phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL)
            return "".join(c for c in national if c.isdigit())
        dial_format = "international"
    if dial_format == "international":
        return f"{international_prefix(country)}{_e164(parsed)[1:]}"
    raise ValueError(f"{dial_format!r} is not a dial format; use one of "
                     f"{', '.join(DIAL_FORMATS)}")


def example_number(country: str, kind: int = PhoneNumberType.MOBILE) -> str:
    """An example E.164 number of ``country`` (for messages)."""
    if not is_region(country):
        return "+48600100200"
    example = phonenumbers.example_number_for_type(country.upper(), kind)
    if example is None:
        example = phonenumbers.example_number(country.upper())
    return _e164(example) if example is not None else "+48600100200"


def _external(number: str, country: str) -> tuple[str | None, bool]:
    """(E.164, could_grow) of ``number`` dialled as an external number."""
    try:
        return normalise(number, country), False
    except NumberError as error:
        return None, error.sip_status == 484


def classify_dialled(digits: str, *, outside_prefix: str | None, country: str,
                     extensions: Collection[str]) -> DialledNumber:
    """What ``digits`` (from a dial tone; a final ``#`` ends dialling) mean.

    An exact extension number wins. External numbers start with ``+`` or
    ``00`` (international) or, when the trunk has one, ``outside_prefix``
    followed by a national or international number; without an outside
    prefix any other number is read as national. Digits that are a proper
    prefix of an extension or of a valid number are ``incomplete``.
    """
    dialled = digits.removesuffix("#")
    if not dialled:
        return DialledNumber(kind="incomplete", digits=dialled)
    if not _DIALLED.fullmatch(dialled):
        return DialledNumber(kind="invalid", digits=dialled)
    if dialled in extensions:
        return DialledNumber(kind="extension", digits=dialled, number=dialled)
    prefix_of_extension = any(e.startswith(dialled) for e in extensions)
    candidates: list[str] = []
    if dialled.startswith(("+", "00")):
        candidates.append(dialled)
    if outside_prefix:
        if dialled.startswith(outside_prefix):
            candidates.append(dialled[len(outside_prefix):])
        elif outside_prefix.startswith(dialled):
            prefix_of_extension = True  # still dialling the outside prefix
    elif not dialled.startswith(("+", "00")):
        candidates.append(dialled)
    could_grow = prefix_of_extension
    for candidate in candidates:
        e164, grows = _external(candidate, country)
        if e164 is not None:
            return DialledNumber(kind="external", digits=dialled, e164=e164)
        could_grow = could_grow or grows
    return DialledNumber(kind="incomplete" if could_grow else "invalid", digits=dialled)


__all__ = [
    "DIAL_FORMATS",
    "DialFormat",
    "DialledKind",
    "DialledNumber",
    "NumberError",
    "NumberKind",
    "classify_dialled",
    "example_number",
    "format_for_dial",
    "international_prefix",
    "is_region",
    "is_valid",
    "normalise",
    "number_kind",
    "same_number",
    "strip_uri",
]
