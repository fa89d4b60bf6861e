"""May this trigger call get a callback? The rules of SPEC §2 and §3 as one
pure function of the settings and the facts, no I/O.

Checked in this order, the first that fails decides (the reason is the
label of the ``boomerang_triggers_total{result="refused"}`` metric):

| reason             | refused when                                                  |
|--------------------|---------------------------------------------------------------|
| ``withheld``       | the caller hid the number (identity.py)                       |
| ``unknown_caller`` | the number is no extension's mobile                           |
| ``no_callback``    | the owner extension does not have ``callback: true``          |
| ``not_licensed``   | the mobile is beyond what the licence grants (DEMO: one)      |
| ``outside_hours``  | now (``numbers.timezone``) is outside ``callback_hours``      |
| ``daily_minutes``  | the owner used ``max_minutes_per_day`` already today          |
| ``concurrent``     | the owner has ``max_concurrent_calls`` calls already          |

Every method (``caller``, ``number``, ``extension``) needs the trigger to
come from a registered mobile: the DID is public, so a fixed-number or
extension callback must not be something any caller can set off. The
number dialled back for method ``caller`` is the mobile as configured, never
the caller ID as received. A duplicate (a callback already pending or active
for the mobile) is folded by the store's unique key, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..config import Config, ExtensionSettings
from .identity import CallerIdentity


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerDecision:
    allowed: bool
    reason: str                           # "accepted" or the refusal reason
    owner: ExtensionSettings | None = None
    mobile: str | None = None             # the configured mobile (E.164)
    detail: str = ""


def owner_of(config: Config, mobile_e164: str) -> ExtensionSettings | None:
    return next((e for e in config.extensions if mobile_e164 in e.mobiles), None)


def authorise_trigger(config: Config, caller: CallerIdentity, *, entitled: frozenset[str],
                      local_now: datetime, minutes_today: float,
                      calls_in_progress: int) -> TriggerDecision:
    """The decision for one trigger (rules in the module doc).

    ``entitled``: the mobiles the licence allows; ``local_now``: now in the
    configured time zone; ``minutes_today``: the owner's billed minutes since
    local midnight; ``calls_in_progress``: the owner's live calls and active
    callbacks."""
    if caller.withheld:
        return TriggerDecision(allowed=False, reason="withheld", detail="number withheld")
    owner = owner_of(config, caller.e164) if caller.e164 else None
    if owner is None or caller.e164 is None:
        return TriggerDecision(allowed=False, reason="unknown_caller",
                               detail=f"{caller.raw or '(empty)'} is no extension's mobile")
    mobile = caller.e164
    refused = _limits(owner, mobile, entitled, local_now, minutes_today, calls_in_progress)
    if refused is not None:
        reason, detail = refused
        return TriggerDecision(allowed=False, reason=reason, owner=owner, mobile=mobile,
                               detail=detail)
    return TriggerDecision(allowed=True, reason="accepted", owner=owner, mobile=mobile)


def _limits(owner: ExtensionSettings, mobile: str, entitled: frozenset[str],
            local_now: datetime, minutes_today: float,
            calls_in_progress: int) -> tuple[str, str] | None:
    if not owner.callback:
        return "no_callback", f"extension {owner.number} has callback disabled"
    if mobile not in entitled:
        return "not_licensed", f"{mobile} is beyond what the licence grants"
    hours = owner.callback_hours
    if hours is not None and not hours.contains(local_now.time()):
        return "outside_hours", f"{local_now:%H:%M} is outside callback hours {hours}"
    if owner.max_minutes_per_day and minutes_today >= owner.max_minutes_per_day:
        return "daily_minutes", (f"extension {owner.number} used {minutes_today:.1f} of "
                                 f"{owner.max_minutes_per_day} minutes today")
    if owner.max_concurrent_calls and calls_in_progress >= owner.max_concurrent_calls:
        return "concurrent", (f"extension {owner.number} has {calls_in_progress} calls "
                              f"(max {owner.max_concurrent_calls})")
    return None


__all__ = ["TriggerDecision", "authorise_trigger", "owner_of"]
