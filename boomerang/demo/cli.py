"""``boomerang demo``: a complete callback on this machine, nothing else needed.

Runs the Boomerang under test (``app.serve``) and the simulated carrier,
mobile and desk phone in this one process, on 127.0.0.1, plays the story
of story.py, prints the timeline as it happens (ladder.py), the call
records (records.py) and a step-by-step result.

Exit status: 0 when every step was observed; 1 when one was not (the
output ends with ``FAILED at step N (what): reason``); 130 on Ctrl-C.
``--quiet`` prints only the result (and the timeline too when a step
fails). Boomerang's own warnings are kept and shown when a step fails;
``-v`` shows its logs as they come (``-vv`` with SIP traces).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..logging_setup import setup_logging

if TYPE_CHECKING:  # the story imports the whole server: only when the demo runs
    from .story import Demo, StepFailed

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
KEPT_LOG_LINES = 30
# --fail-at: the step a simulated peer breaks on purpose (story.py)
FAIL_AT = ("register", "callback", "answer")


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true",
                        help="print only the result (and the timeline when a step fails)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="also print Boomerang's logs (-vv: with full SIP messages)")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="write the generated config, rate table and database into DIR "
                             "and keep them (default: a temporary folder, removed)")
    # Breaks one step at a simulated peer, to test the failure path.
    parser.add_argument("--fail-at", choices=FAIL_AT, default=None, help=argparse.SUPPRESS)


class Output:
    """Prints lines at once, or keeps them (``--quiet``) for a failure."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.kept: list[str] = []

    def line(self, text: str = "") -> None:
        if self.quiet:
            self.kept.append(text)
        else:
            print(text, flush=True)

    def always(self, text: str = "") -> None:
        print(text, flush=True)

    def flush_kept(self) -> None:
        for text in self.kept:
            print(text)
        self.kept.clear()


class _KeptLogs(logging.Handler):
    """Boomerang's warnings and errors, kept to explain a failure."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record).splitlines()[0])
        del self.lines[:-KEPT_LOG_LINES]


@contextlib.contextmanager
def _logs(verbosity: int) -> Iterator[_KeptLogs]:
    kept = _KeptLogs()
    package = logging.getLogger("boomerang")
    if verbosity:
        setup_logging(verbosity)
        package.addHandler(kept)
        try:
            yield kept
        finally:
            package.removeHandler(kept)
        return
    saved = (list(package.handlers), package.level, package.propagate)
    for handler in saved[0]:
        package.removeHandler(handler)
    package.addHandler(kept)
    package.setLevel(logging.WARNING)
    package.propagate = False
    try:
        yield kept
    finally:
        package.removeHandler(kept)
        for handler in saved[0]:
            package.addHandler(handler)
        package.setLevel(saved[1])
        package.propagate = saved[2]


def _intro(demo: Demo, out: Output) -> None:
    plan = demo.plan
    out.line("Boomerang demo: one whole callback on this machine, real SIP and RTP over "
             "127.0.0.1.")
    out.line(f"  {plan.owner_name} (extension {plan.owner}) is abroad. Her mobile "
             f"{plan.mobile} rings the company number {plan.did};")
    out.line("  Boomerang rejects the call unanswered, calls her back, gives her a dial tone;")
    out.line(f"  she dials {plan.callee} ({plan.callee_name}'s desk phone), they talk, she "
             "hangs up.")
    out.line("  Simulated in this process: the carrier with her mobile, and "
             f"{plan.callee_name}'s phone.")
    out.line()


def _result(demo: Demo, failure: StepFailed | None, elapsed_s: float, out: Output) -> None:
    from .story import STEPS

    passed = dict(demo.passed)
    if failure is None:
        out.always(f"PASSED: all {len(STEPS)} steps observed on the wire in {elapsed_s:.1f} s")
    for number, what in enumerate(STEPS, start=1):
        if number in passed:
            out.line(f"  {number:>2} ok      {what}: {passed[number]}")
        elif failure is not None and number == failure.step:
            out.line(f"  {number:>2} FAILED  {what}: {failure.reason}")
        else:
            out.line(f"  {number:>2} -       {what}: not reached")


async def _play(demo: Demo) -> StepFailed | None:
    """Run the story; Ctrl-C (once Boomerang runs) cancels it cleanly."""
    from .story import StepFailed

    loop = asyncio.get_running_loop()
    story = asyncio.ensure_future(demo.run())
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        story.cancel()

    def take_ctrl_c() -> None:  # serve() installed its own handler: ours wins for the demo
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, interrupt)

    demo.on_started = take_ctrl_c
    try:
        await story
    except StepFailed as failure:
        return failure
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    except Exception as error:  # a bug: still a loud failure of the step under way
        traceback.print_exc()
        return StepFailed(demo.step, f"unexpected error {error!r} (traceback above)")
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
    return None


def run_demo(args: argparse.Namespace) -> int:
    from .story import Demo, DemoOptions, describe_step

    out = Output(quiet=args.quiet)
    options = DemoOptions(fail_at=args.fail_at,
                          keep_folder=Path(args.keep).resolve() if args.keep else None)
    demo = Demo(options, out.line)
    _intro(demo, out)
    with _logs(args.verbose) as kept:
        loop_time = 0.0
        try:
            with asyncio.Runner() as runner:
                loop_time = runner.get_loop().time()
                failure = runner.run(_play(demo))
                elapsed_s = runner.get_loop().time() - loop_time
        except KeyboardInterrupt:
            out.always(f"interrupted at step {demo.step} ({describe_step(demo.step)}); "
                       "everything was shut down")
            return EXIT_INTERRUPTED
    if failure is None:
        out.line()
        demo.print_records()
        out.line()
        _result(demo, None, elapsed_s, out)
        if options.keep_folder is not None:
            out.line(f"Config, rate table and database kept in {options.keep_folder}")
        return EXIT_PASSED
    out.flush_kept()
    print()
    _result(demo, failure, elapsed_s, Output(quiet=False))
    if kept.lines:
        print("Boomerang's last warnings and errors:")
        for text in kept.lines:
            print(f"  {text}")
    print(f"FAILED at step {failure.step} ({describe_step(failure.step)}): {failure.reason}",
          file=sys.stdout, flush=True)
    return EXIT_FAILED
