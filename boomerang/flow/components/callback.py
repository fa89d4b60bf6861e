"""``callback``: the component of SPEC §2.

At the DID (trigger side, handled by ``boomerang.callback``): 100 and 180
for ``ring_time``, then ``reject_code``; never answered; the job stored
before the reject. When the job is due (callback side,
``boomerang.flow.runner.FlowRunner.place_callback``, not ``run``): call
back per ``method``, ring up to ``answer_timeout`` (183 early media is not
an answer), ask for ``confirm`` when set (the ``call_waiting`` tone, then
up to ``confirm_timeout`` seconds for the key), then go on to ``next``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ...config_base import problem
from ..component import Component, ComponentParams

Seconds = float


class CallbackParams(ComponentParams):
    method: Literal["caller", "number", "extension"] = "caller"
    trunk: str | None = None            # default: the DID's trunk
    number: str | None = None           # method number (E.164 after loading)
    extension: str | None = None        # method extension
    caller_id: str | None = None        # default: the DID
    delay: Seconds = Field(default=5.0, ge=0, le=3600)
    timeout: Seconds = Field(default=5.0, gt=0, le=120)  # inter-digit, for the dial tone
    ring_time: Seconds = Field(default=6.0, ge=0, le=120)
    reject_code: int = Field(default=486, ge=400, le=699)
    answer_timeout: Seconds = Field(default=45.0, gt=0, le=600)
    retries: int = Field(default=2, ge=0, le=20)
    retry_interval: Seconds = Field(default=30.0, ge=1, le=86400)
    confirm: bool | str = False         # true = press 1; or the digit to press
    confirm_timeout: Seconds = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _method_needs(self) -> CallbackParams:
        if self.method == "number" and not self.number:
            raise problem("method number needs number: the number to call back, "
                          "e.g. number: \"+48600100200\"")
        if self.method == "extension" and not self.extension:
            raise problem("method extension needs extension: the extension to ring, "
                          "e.g. extension: \"101\"")
        if isinstance(self.confirm, str) and (len(self.confirm) != 1
                                               or self.confirm not in "0123456789*#"):
            raise problem(f"confirm {self.confirm!r} is not one key; write true (press 1), "
                          "false, or one key such as \"5\"")
        return self

    @property
    def confirm_digit(self) -> str | None:
        if self.confirm is True:
            return "1"
        return self.confirm or None


class Callback(Component):
    type = "callback"
    Params = CallbackParams
    outcomes = ("answered", "busy", "no_answer", "failed", "not_confirmed")
    help = ("Ring the trigger call for ring_time, reject it with reject_code (never "
            "answered, so it costs the caller nothing), then after delay seconds call "
            "back the caller's registered mobile (method caller), a fixed number or an "
            "extension, presenting caller_id; retries on busy, no answer or failure; "
            "with confirm the answered leg must press a key; then goes to next.")

    async def run(self, context: Any, params: Any) -> str:
        raise NotImplementedError("the callback leg is placed by the flow runner")


__all__ = ["Callback", "CallbackParams"]
