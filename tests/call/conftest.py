"""tests/call reuses tests/sip/simnet.py (tests/sip is not a package)."""

from __future__ import annotations

import sys
from pathlib import Path

_SIP_TESTS = str(Path(__file__).resolve().parent.parent / "sip")
if _SIP_TESTS not in sys.path:
    sys.path.insert(0, _SIP_TESTS)
