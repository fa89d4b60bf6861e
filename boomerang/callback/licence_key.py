"""The Boomerang project's licence public key (Ed25519, SubjectPublicKeyInfo PEM).

Licences the project issues are signed with the matching private key, which
is kept offline and never enters this repository. A deployment that issues
its own licences points ``licence_public_key`` in the config at its own
public key instead (see docs/LICENCE.md); this constant is then not used.
"""

from __future__ import annotations

PROJECT_PUBLIC_KEY_PEM = """\
-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA0XOo/57wLT8ea9mGE/WiZB1mIUr119Y30RZQ690A+u4=
-----END PUBLIC KEY-----
"""

__all__ = ["PROJECT_PUBLIC_KEY_PEM"]
