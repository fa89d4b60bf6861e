"""Logging for ``boomerang run``: to stderr, one logger per module.

Verbosity: 0 -> INFO, 1 (-v) -> DEBUG for boomerang, 2 (-vv) -> also the
full SIP message traces of the ``boomerang.sip.trace`` logger.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

TRACE_LOGGER = "boomerang.sip.trace"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(verbosity: int = 0, stream: TextIO | None = None) -> None:
    """Configure the ``boomerang`` logger tree (not the root logger's level)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    package = logging.getLogger("boomerang")
    for old in list(package.handlers):
        package.removeHandler(old)
    package.addHandler(handler)
    package.propagate = False
    package.setLevel(logging.DEBUG if verbosity >= 1 else logging.INFO)
    logging.getLogger(TRACE_LOGGER).setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    logging.getLogger("asyncio").setLevel(logging.WARNING)


__all__ = ["TRACE_LOGGER", "setup_logging"]
