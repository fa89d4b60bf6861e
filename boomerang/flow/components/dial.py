"""``dial``: call an extension, a number, or the digits collected before."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ...config_base import problem
from ..component import Component, ComponentParams


class DialParams(ComponentParams):
    target: Literal["extension", "number", "digits"] = "digits"
    extension: str | None = None
    number: str | None = None
    trunk: str | None = None
    caller_id: str | None = None
    ring_timeout: float = Field(default=60.0, gt=0, le=600)

    @model_validator(mode="after")
    def _target_needs(self) -> DialParams:
        if self.target == "extension" and not self.extension:
            raise problem("target extension needs extension, e.g. extension: \"101\"")
        if self.target == "number" and not self.number:
            raise problem("target number needs number, e.g. number: \"+48221234567\"")
        return self


class Dial(Component):
    type = "dial"
    Params = DialParams
    outcomes = ("ended", "busy", "no_answer", "failed", "refused")
    help = ("Call an extension, a number through a trunk, or the digits collected by a "
            "previous node, and bridge it with the current call; the same permission "
            "rules as disa apply to external numbers.")

    async def run(self, context: Any, params: Any) -> str:
        raise NotImplementedError


__all__ = ["Dial", "DialParams"]
