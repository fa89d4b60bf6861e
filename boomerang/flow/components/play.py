"""``play``: a tone of the tone plan or a WAV prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from ...config_base import problem
from ..component import Component, ComponentParams


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

    async def run(self, context: Any, params: Any) -> str:
        raise NotImplementedError


__all__ = ["Play", "PlayParams"]
