"""``boomerang demo`` (being built)."""

from __future__ import annotations

import argparse
import sys


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print only the result")


def run_demo(args: argparse.Namespace) -> int:
    print("boomerang demo: not available yet in this build", file=sys.stderr)
    return 2
