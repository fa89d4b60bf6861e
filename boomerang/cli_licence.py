"""``boomerang licence`` (being built)."""

from __future__ import annotations

import argparse
import sys


def add_licence_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs=argparse.REMAINDER)


def run_licence(args: argparse.Namespace) -> int:
    print("boomerang licence: not available yet in this build", file=sys.stderr)
    return 2
