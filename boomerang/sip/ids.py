"""Identifier generation, injected so that the core holds no randomness.

The core asks an ``IdGenerator`` for tags, branches and Call-IDs. Production
code passes ``boomerang.ids.RandomIds``; tests pass ``CountingIds`` and get
the same identifiers on every run.
"""

from __future__ import annotations

from typing import Protocol

BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7


class IdGenerator(Protocol):
    def branch(self) -> str:
        """A new Via branch, starting with the RFC 3261 magic cookie."""

    def tag(self) -> str:
        """A new From/To tag."""

    def call_id(self) -> str:
        """A new Call-ID."""


class CountingIds:
    """Deterministic ids for tests: ``z9hG4bK-<prefix>-1``, ``<prefix>-tag-2``..."""

    __slots__ = ("_n", "prefix")

    def __init__(self, prefix: str = "t") -> None:
        self.prefix = prefix
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    def branch(self) -> str:
        return f"{BRANCH_MAGIC}-{self.prefix}-{self._next()}"

    def tag(self) -> str:
        return f"{self.prefix}-tag-{self._next()}"

    def call_id(self) -> str:
        return f"{self.prefix}-call-{self._next()}"
