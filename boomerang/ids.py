"""Production identifier generator (the SIP core itself holds no randomness)."""

from __future__ import annotations

import secrets

from .sip.ids import BRANCH_MAGIC


class RandomIds:
    """Unpredictable tags, branches and Call-IDs from the OS CSPRNG."""

    __slots__ = ("_domain",)

    def __init__(self, domain: str = "boomerang") -> None:
        self._domain = domain

    def branch(self) -> str:
        return BRANCH_MAGIC + secrets.token_hex(8)

    def tag(self) -> str:
        return secrets.token_hex(6)

    def call_id(self) -> str:
        return f"{secrets.token_hex(12)}@{self._domain}"
