"""``boomerang calls`` and ``boomerang cdr`` (being built)."""

from __future__ import annotations

import argparse
import sys


def add_calls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default="boomerang.yaml", help="config file")


def run_calls(args: argparse.Namespace) -> int:
    print("boomerang calls: not available yet in this build", file=sys.stderr)
    return 2


def add_cdr_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", default="boomerang.yaml", help="config file")


def run_cdr(args: argparse.Namespace) -> int:
    print("boomerang cdr: not available yet in this build", file=sys.stderr)
    return 2
