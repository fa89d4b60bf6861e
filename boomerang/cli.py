"""The ``boomerang`` command (SPEC §5).

Exit status: 0 success, 1 the server failed to start or run (or a
subcommand's task failed), 2 a bad command line or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .config import STARTER_CONFIG, ConfigError, load_config
from .logging_setup import setup_logging
from .sip.address import Address

DEFAULT_CONFIG = "boomerang.yaml"
# Subcommands that live in their own module: name -> (module, help). The
# module has ``add_NAME_arguments(parser)`` and ``run_NAME(args) -> int``.
SUBCOMMANDS = {
    "demo": ("boomerang.demo.cli", "run a complete callback on this machine"),
    "calls": ("boomerang.cli_records", "list live calls and pending callbacks"),
    "cdr": ("boomerang.cli_records", "show call records (table, CSV, JSON)"),
    "licence": ("boomerang.cli_licence", "verify a licence file, or create keys and licences"),
}

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="boomerang", description="Boomerang SIP callback server")
    parser.add_argument("--version", action="version", version=f"boomerang {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    init = commands.add_parser("init", help="write a commented starter config")
    init.add_argument("-o", "--output", default=DEFAULT_CONFIG, help="file to write")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    check = commands.add_parser("check", help="validate a config file")
    check.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file")

    run = commands.add_parser("run", help="run the server in the foreground")
    run.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file")
    run.add_argument("-v", "--verbose", action="count", default=0,
                     help="-v debug logs, -vv also full SIP message traces")

    for name, (module_name, what) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=what)
        getattr(importlib.import_module(module_name), f"add_{name}_arguments")(sub)
    return parser


def _init(output: str, force: bool) -> int:
    path = Path(output)
    if path.exists() and not force:
        print(f"{path}: already exists; not overwritten (use --force to replace it)",
              file=sys.stderr)
        return 2
    try:
        path.write_text(STARTER_CONFIG, encoding="utf-8")
    except OSError as error:
        print(f"{path}: cannot write ({error.strerror or error})", file=sys.stderr)
        return 1
    print(f"wrote {path}; check it with: boomerang check -c {path}")
    return 0


def _check(config: str) -> int:
    from datetime import UTC, datetime

    from .callback.licence import LicenceError, describe, entitlement, load_for_config

    try:
        loaded = load_config(config)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    from .callback.rates import RateTableError, load_rates

    try:
        licence = load_for_config(loaded, today=datetime.now(UTC).date())
    except LicenceError as error:
        print(f"{config}: licence: {error}", file=sys.stderr)
        return 2
    try:
        load_rates(loaded.records)
    except RateTableError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    print(f"{config}: OK")
    for line in describe(entitlement(loaded.extensions, licence)):
        print(line)
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (roughly doubles packet throughput), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _run(config_path: str, verbosity: int) -> int:
    from .app import StartError, serve

    try:
        config = load_config(config_path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 2
    setup_logging(verbosity)

    def ready(bound: list[Address]) -> None:
        line = "listening on " + " ".join(str(address) for address in bound)
        log.info("%s", line)
        print(line, flush=True)

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(serve(config, on_ready=ready))
    except StartError as error:
        print(f"boomerang: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "init":
        return _init(args.output, args.force)
    if args.command == "check":
        return _check(args.config)
    if args.command == "run":
        return _run(args.config, args.verbose)
    module_name, _ = SUBCOMMANDS[args.command]
    result: int = getattr(importlib.import_module(module_name), f"run_{args.command}")(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
