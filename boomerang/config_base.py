"""What every config section shares: the model base and the problem type.

A validator raises ``problem(text)``; ``load_config_text`` prints its text
after ``FILE:LINE: field:`` unchanged, so the text says what is wrong and
what would be right (with an example).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError


def problem(text: str) -> PydanticCustomError:
    return PydanticCustomError("boomerang_config", "{text}", {"text": text})


class Section(BaseModel):
    """A section of the file: unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


__all__ = ["Section", "problem"]
