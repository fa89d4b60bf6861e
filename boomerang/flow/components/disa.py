"""``disa``: dial tone, digits, then the call (SPEC §3)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..component import Component, ComponentParams


class DisaParams(ComponentParams):
    tone_plan: str | None = None        # default: media.tone_plan
    first_digit_timeout: float = Field(default=10.0, gt=0, le=120)
    timeout: float | None = Field(default=None, gt=0, le=120)  # default: callback's, else 5
    max_digits: int = Field(default=20, ge=1, le=32)
    pin: str | None = None              # digits; never logged
    pin_attempts: int = Field(default=3, ge=1, le=10)
    star_star: bool = True              # ** in a bridged call: back to dial tone
    trunk: str | None = None            # external calls; default: the DID's trunk
    caller_id: str | None = None        # default: the owner's caller_id, else company
    ring_timeout: float = Field(default=60.0, gt=0, le=600)


class Disa(Component):
    type = "disa"
    Params = DisaParams
    outcomes = ("ended", "timeout", "refused", "failed", "pin_failed")
    help = ("Dial tone of the tone plan until the first digit; collects digits with the "
            "first-digit and inter-digit timeouts, ends on #, an exact extension or the "
            "timeout after a valid number; optional PIN first; then dials: extensions "
            "freely, external numbers only with transit permission and never premium-rate "
            "or blocked prefixes (error tone otherwise); ** in the call gives dial tone "
            "again.")
    collects_input = True
    needs_next = False

    async def run(self, context: Any, params: Any) -> str:
        raise NotImplementedError


__all__ = ["Disa", "DisaParams"]
