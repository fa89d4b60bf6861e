"""``play``: a tone of the tone plan for a while, or a WAV prompt, then next.

A tone plays ``duration`` seconds ``repeat`` times over (one stretch of
``duration * repeat`` seconds); a prompt plays ``repeat`` times, encoded in
the negotiated codec (once per process, ``FlowContext.prompts``). Keys do
not cut it short: ``play`` is an announcement (a ``menu`` is the prompt
that listens). The outcome is always ``done``; when the call ends meanwhile
the runner cancels the node and the flow stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from ...config_base import problem
from ..component import Component, ComponentParams
from ..context import FlowContext


class PlayParams(ComponentParams):
    tone: str | None = None             # dial, busy, congestion, special_information...
    prompt: Path | None = None          # a WAV file
    duration: float = Field(default=3.0, gt=0, le=600)  # for a tone
    repeat: int = Field(default=1, ge=1, le=100)

    @model_validator(mode="after")
    def _one_source(self) -> PlayParams:
        if (self.tone is None) == (self.prompt is None):
            raise problem("give exactly one of tone (e.g. tone: busy) or prompt (a WAV file)")
        return self


class Play(Component):
    type = "play"
    Params = PlayParams
    outcomes = ("done",)
    help = "Play a tone of the tone plan for duration seconds, or a WAV prompt, then next."

    async def run(self, context: FlowContext, params: Any) -> str:
        assert isinstance(params, PlayParams)
        call = context.active_call()
        session = await context.media_session()
        name = params.tone or "prompt"
        context.observer.tone(context, call.call_id, name, True)
        try:
            if params.tone is not None:
                await session.play_tone_for(params.tone, params.duration * params.repeat)
            else:
                assert params.prompt is not None
                await session.play_prompt(params.prompt, repeat=params.repeat,
                                          interruptible=False)
        finally:
            context.observer.tone(context, call.call_id, name, False)
        return "done"


__all__ = ["Play", "PlayParams"]
