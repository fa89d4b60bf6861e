"""Who may dial what from a dial tone: the "least privilege" rules of SPEC §3.

Pure functions of the settings and the classified digits, no I/O. The rules,
checked in this order (the first that matches decides):

1. digits that are not a number (``invalid``) or not yet one
   (``incomplete``) are refused: reason ``invalid``, 404 (484 incomplete);
2. an extension number is always allowed: reason ``extension``;
3. an external number needs the extension's ``transit`` permission:
   reason ``no_transit``;
4. a number under one of ``numbers.blocked_prefixes`` is refused whatever
   the extension may do: reason ``blocked_prefix``;
5. a premium-rate number is refused while ``numbers.premium_blocked`` is
   true (the default), unless the extension has ``allow_premium``; with
   ``premium_blocked: false`` premium numbers are like any other external
   number: reason ``premium_blocked``;
6. otherwise: reason ``allowed``.

Refusals carry SIP status 403 Forbidden, so a caller of the dial component
can answer or log without parsing text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import ExtensionSettings, NumberingSettings
from .numbers import DialledNumber, number_kind

Reason = Literal["extension", "no_transit", "premium_blocked", "blocked_prefix", "invalid",
                 "allowed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """May the call go on; ``sip_status`` is 200 when allowed, else what to answer."""

    allowed: bool
    reason: Reason
    sip_status: int


def _refused(reason: Reason, sip_status: int = 403) -> Decision:
    return Decision(allowed=False, reason=reason, sip_status=sip_status)


def may_dial(extension: ExtensionSettings, dialled: DialledNumber,
             numbering: NumberingSettings) -> Decision:
    """Whether ``extension`` may dial ``dialled`` (rules in the module docstring)."""
    if dialled.kind == "extension":
        return Decision(allowed=True, reason="extension", sip_status=200)
    if dialled.kind != "external" or dialled.e164 is None:
        return _refused("invalid", 484 if dialled.kind == "incomplete" else 404)
    if not extension.transit:
        return _refused("no_transit")
    if any(dialled.e164.startswith(prefix) for prefix in numbering.blocked_prefixes):
        return _refused("blocked_prefix")
    if (number_kind(dialled.e164) == "premium" and numbering.premium_blocked
            and not extension.allow_premium):
        return _refused("premium_blocked")
    return Decision(allowed=True, reason="allowed", sip_status=200)


__all__ = ["Decision", "Reason", "may_dial"]
