"""How tests start the ``boomerang`` command (imported by name: the tests
folder is on sys.path, and ``conftest`` is ambiguous across folders)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def boomerang_command() -> list[str]:
    """The ``boomerang`` console script of the Python running the tests."""
    beside = Path(sys.executable).with_name("boomerang")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("boomerang")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from boomerang.cli import main; sys.exit(main())"]
