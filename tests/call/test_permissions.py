"""The least-privilege dialling rules of SPEC §3, one test per branch."""

from __future__ import annotations

import pytest

from boomerang.call.numbers import DialledNumber, classify_dialled
from boomerang.call.permissions import may_dial
from boomerang.config import ExtensionSettings, NumberingSettings

EXTENSIONS = ("101", "102")
PREMIUM_PL = "+48701234567"
MOBILE_PL = "+48600100200"


def dialled(digits: str) -> DialledNumber:
    return classify_dialled(digits, outside_prefix="0", country="PL", extensions=EXTENSIONS)


def external(e164: str) -> DialledNumber:
    return DialledNumber(kind="external", digits=e164, e164=e164)


def test_an_extension_is_allowed_even_without_transit() -> None:
    decision = may_dial(ExtensionSettings(number="101"), dialled("102"), NumberingSettings())
    assert (decision.allowed, decision.reason, decision.sip_status) == (True, "extension", 200)


def test_an_external_number_without_transit_is_refused_403() -> None:
    decision = may_dial(ExtensionSettings(number="101"), dialled("0600100200"),
                        NumberingSettings())
    assert (decision.allowed, decision.reason, decision.sip_status) == (
        False, "no_transit", 403)


def test_an_external_number_with_transit_is_allowed() -> None:
    decision = may_dial(ExtensionSettings(number="101", transit=True), dialled("0600100200"),
                        NumberingSettings())
    assert (decision.allowed, decision.reason, decision.sip_status) == (True, "allowed", 200)


@pytest.mark.parametrize("allow_premium", [False, True])
def test_a_blocked_prefix_blocks_whatever_the_extension_may_do(allow_premium: bool) -> None:
    extension = ExtensionSettings(number="101", transit=True, allow_premium=allow_premium)
    numbering = NumberingSettings(blocked_prefixes=["+48600"], premium_blocked=False)
    decision = may_dial(extension, external(MOBILE_PL), numbering)
    assert (decision.allowed, decision.reason, decision.sip_status) == (
        False, "blocked_prefix", 403)


def test_a_blocked_prefix_does_not_block_other_numbers() -> None:
    extension = ExtensionSettings(number="101", transit=True)
    numbering = NumberingSettings(blocked_prefixes=["+48601"])
    assert may_dial(extension, external(MOBILE_PL), numbering).allowed


def test_premium_is_blocked_by_default() -> None:
    extension = ExtensionSettings(number="101", transit=True)
    decision = may_dial(extension, dialled("0701234567"), NumberingSettings())
    assert (decision.allowed, decision.reason, decision.sip_status) == (
        False, "premium_blocked", 403)


def test_premium_is_allowed_for_an_extension_with_allow_premium() -> None:
    extension = ExtensionSettings(number="101", transit=True, allow_premium=True)
    decision = may_dial(extension, external(PREMIUM_PL), NumberingSettings())
    assert (decision.allowed, decision.reason) == (True, "allowed")


def test_premium_is_allowed_to_transit_extensions_when_not_blocked_globally() -> None:
    extension = ExtensionSettings(number="101", transit=True)
    decision = may_dial(extension, external("+449011234567"),
                        NumberingSettings(premium_blocked=False))
    assert (decision.allowed, decision.reason) == (True, "allowed")


def test_allow_premium_does_not_replace_transit() -> None:
    extension = ExtensionSettings(number="101", allow_premium=True)
    decision = may_dial(extension, external(PREMIUM_PL), NumberingSettings())
    assert (decision.allowed, decision.reason) == (False, "no_transit")


def test_invalid_digits_are_refused_404() -> None:
    extension = ExtensionSettings(number="101", transit=True)
    decision = may_dial(extension, dialled("5"), NumberingSettings())
    assert dialled("5").kind == "invalid"
    assert (decision.allowed, decision.reason, decision.sip_status) == (False, "invalid", 404)


def test_incomplete_digits_are_refused_484() -> None:
    extension = ExtensionSettings(number="101", transit=True)
    decision = may_dial(extension, dialled("10"), NumberingSettings())
    assert (decision.allowed, decision.reason, decision.sip_status) == (False, "invalid", 484)
