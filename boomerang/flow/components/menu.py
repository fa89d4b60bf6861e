"""``menu``: a prompt (or tone) and a choice of keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from ..component import Component, ComponentParams


class MenuParams(ComponentParams):
    prompt: Path | None = None
    tone: str | None = None
    choices: dict[str, str] = {}        # key -> node id
    timeout: float = Field(default=5.0, gt=0, le=120)
    attempts: int = Field(default=3, ge=1, le=10)


class Menu(Component):
    type = "menu"
    Params = MenuParams
    outcomes = ("timeout", "invalid")   # plus one outcome per key of choices
    help = ("Play a prompt (or tone) and wait for one key; each key of choices names the "
            "next node; after attempts without a valid key: outcome timeout or invalid.")
    collects_input = True

    async def run(self, context: Any, params: Any) -> str:
        raise NotImplementedError


__all__ = ["Menu", "MenuParams"]
