"""``hangup``: end the call."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..component import Component, ComponentParams


class HangupParams(ComponentParams):
    tone: str | None = None             # e.g. congestion before the hang-up
    tone_duration: float = Field(default=0.0, ge=0, le=60)


class Hangup(Component):
    type = "hangup"
    Params = HangupParams
    outcomes = ()
    help = "End the call (BYE), optionally after a tone."
    needs_next = False

    async def run(self, context: Any, params: Any) -> str:
        raise NotImplementedError


__all__ = ["Hangup", "HangupParams"]
