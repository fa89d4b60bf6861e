"""``dial``: call an extension, a number, or the digits collected before,
and bridge it with the current call.

What is dialled (``target``):

| target      | digits                         | who may                                   |
|-------------|--------------------------------|-------------------------------------------|
| `extension` | ``extension``                  | anyone (extensions are always allowed)    |
| `number`    | ``number`` (E.164, configured) | the owner per ``may_dial``; without an    |
|             |                                | owner the administrator's choice stands,  |
|             |                                | but blocked prefixes and premium rate     |
|             |                                | are still refused                         |
| `digits`    | ``context.values["digits"]``   | the owner per ``may_dial`` (the rules of  |
|             |                                | ``disa``); without an owner: extensions   |
|             |                                | only (nobody to bill, least privilege)    |

Digits are read by ``classify_dialled`` with the outside prefix of the
trunk used (``trunk``, else the story's trunk, else the first trunk that
is up). A refused number gets the special information tone for
``refused_tone_duration`` seconds and the outcome ``refused``; no INVITE
leaves. No trunk to dial out on, or no caller ID to present, is ``failed``
(a configuration matter, not the caller's). The destination leg presents
``caller_id``, else for an extension the owner's number, for an external
number the owner's ``caller_id`` or the company number (else the DID).

Placing and bridging is ``boomerang.flow.dialling`` (shared with
``disa``): while it rings the caller hears ringback from us (in-band, on
the call's media session: the callback leg is already answered); early
media of the destination is not passed on. Answered: the legs are bridged
and the outcome is ``ended`` once both ended (``**`` is ``disa``'s, not
listened to here). Otherwise the outcome is ``busy``, ``no_answer`` (no
answer in ``ring_timeout``, 408, 480, an unregistered extension) or
``failed``. If the node is cancelled (the caller hung up) the destination
leg gets CANCEL, or BYE if it answered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from ...call.manager import TRUNK_USABLE, ExtensionTarget, Target, TrunkTarget
from ...call.media_session import MediaSession, MediaSessionError
from ...call.numbers import DialledNumber, classify_dialled, number_kind
from ...call.permissions import may_dial
from ...config_base import problem
from ..component import Component, ComponentParams
from ..context import FlowContext
from ..dialling import bridge, place_call

log = logging.getLogger(__name__)

REFUSED_TONE = "special_information"


class DialParams(ComponentParams):
    target: Literal["extension", "number", "digits"] = "digits"
    extension: str | None = None
    number: str | None = None
    trunk: str | None = None
    caller_id: str | None = None
    ring_timeout: float = Field(default=60.0, gt=0, le=600)
    refused_tone_duration: float = Field(default=2.0, ge=0, le=30)

    @model_validator(mode="after")
    def _target_needs(self) -> DialParams:
        if self.target == "extension" and not self.extension:
            raise problem("target extension needs extension, e.g. extension: \"101\"")
        if self.target == "number" and not self.number:
            raise problem("target number needs number, e.g. number: \"+48221234567\"")
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class DialDecision:
    """What to call and as whom, or why not: ``target`` None is a refusal
    (``reason`` from ``may_dial``, or ``no_owner`` / ``no_trunk`` /
    ``no_caller_id``; ``sip_status`` 403, 404, 484 or 503)."""

    dialled: DialledNumber
    target: Target | None
    caller_id: str = ""
    display_name: str | None = None
    reason: str = "allowed"
    sip_status: int = 200


def _trunk_name(context: FlowContext, wanted: str | None) -> str | None:
    """The trunk for external numbers: the named one, the story's, or the
    first that is up."""
    if wanted or context.trunk_name:
        return wanted or context.trunk_name
    trunks = context.manager.trunks
    usable = next((t for t in trunks or () if t.state in TRUNK_USABLE), None)
    return usable.name if usable is not None else None


def decide_dial(context: FlowContext, digits: str, *, trunk: str | None = None,
                caller_id: str | None = None, configured: bool = False) -> DialDecision:
    """Whether the story may call ``digits`` and how (see the module doc);
    ``configured``: the number comes from the flow, not from the caller."""
    config = context.config
    owner = context.owner
    trunk_name = _trunk_name(context, trunk)
    trunk_settings = config.trunk(trunk_name) if trunk_name else None
    dialled = classify_dialled(
        digits, outside_prefix=trunk_settings.outside_prefix if trunk_settings else None,
        country=config.numbers.country, extensions=[e.number for e in config.extensions])
    did_number = context.did.number if context.did is not None else None
    name = (owner.name or None) if owner is not None else None
    if dialled.kind == "extension" and dialled.number is not None:
        presented = caller_id or (owner.number if owner is not None else None) \
            or did_number or config.numbers.company_number or "anonymous"
        return DialDecision(dialled=dialled, target=ExtensionTarget(dialled.number),
                            caller_id=presented, display_name=name, reason="extension")
    reason: str
    status: int
    if owner is not None:
        decision = may_dial(owner, dialled, config.numbers)
        reason, status = decision.reason, decision.sip_status
    elif dialled.kind != "external" or dialled.e164 is None:
        reason, status = "invalid", 484 if dialled.kind == "incomplete" else 404
    elif not configured:
        reason, status = "no_owner", 403
    else:
        reason, status = _configured_number(dialled.e164, context)
    if status != 200:
        return DialDecision(dialled=dialled, target=None, reason=reason, sip_status=status)
    assert dialled.e164 is not None
    if trunk_name is None:
        return DialDecision(dialled=dialled, target=None, reason="no_trunk", sip_status=503)
    external_id = caller_id or (owner.caller_id if owner is not None else None) \
        or config.numbers.company_number or did_number
    if not external_id:
        return DialDecision(dialled=dialled, target=None, reason="no_caller_id",
                            sip_status=503)
    return DialDecision(dialled=dialled, target=TrunkTarget(trunk_name, dialled.e164),
                        caller_id=external_id, display_name=name, reason=reason)


def _configured_number(e164: str, context: FlowContext) -> tuple[str, int]:
    """A number the flow names, in a story without an owner: the numbering
    rules that hold for everyone still hold."""
    numbering = context.config.numbers
    if any(e164.startswith(prefix) for prefix in numbering.blocked_prefixes):
        return "blocked_prefix", 403
    if number_kind(e164) == "premium" and numbering.premium_blocked:
        return "premium_blocked", 403
    return "allowed", 200


class Dial(Component):
    type = "dial"
    Params = DialParams
    outcomes = ("ended", "busy", "no_answer", "failed", "refused")
    help = ("Call an extension, a number through a trunk, or the digits collected by a "
            "previous node, and bridge it with the current call; the same permission "
            "rules as disa apply to external numbers.")

    async def run(self, context: FlowContext, params: Any) -> str:
        assert isinstance(params, DialParams)
        call = context.active_call()
        if params.target == "extension":
            digits = params.extension or ""
        elif params.target == "number":
            digits = params.number or ""
        else:
            digits = str(context.values.get("digits", ""))
        decision = decide_dial(context, digits, trunk=params.trunk,
                               caller_id=params.caller_id,
                               configured=params.target != "digits")
        session = await _session(context)
        if decision.target is None:
            log.info("call_id=%s dial %r refused: %s (%d)", call.call_id, digits,
                     decision.reason, decision.sip_status)
            context.observer.note(context, f"dial refused: {decision.reason}")
            if decision.sip_status == 503:
                return "failed"
            if session is not None and params.refused_tone_duration > 0:
                await _tone_for(context, session, REFUSED_TONE, params.refused_tone_duration)
            return "refused"
        placed = await place_call(context, session, decision,
                                  ring_timeout_s=params.ring_timeout)
        if placed.call is None or placed.outcome != "answered":
            return placed.outcome
        return await bridge(context, placed.call, star_star=False)


async def _session(context: FlowContext) -> MediaSession | None:
    try:
        return await context.media_session()
    except MediaSessionError as error:  # e.g. media through rtpengine: no tones
        log.info("call_id=%s no media session: %s", context.active_call().call_id, error)
        return None


async def _tone_for(context: FlowContext, session: MediaSession, name: str,
                    duration_s: float) -> None:
    call_id = context.active_call().call_id
    context.observer.tone(context, call_id, name, True)
    try:
        await session.play_tone_for(name, duration_s)
    finally:
        context.observer.tone(context, call_id, name, False)


__all__ = ["Dial", "DialDecision", "DialParams", "decide_dial"]
