"""Figures for the durable callback scheduler (boomerang/callback/scheduler.py).

    python bench/bench_scheduler.py                              # SQLite file in a temp dir
    python bench/bench_scheduler.py --postgres postgresql://u@127.0.0.1:5432/db  (also PostgreSQL)

Prints, for each database:

(a) start-time error: ``--jobs`` (default 1000) jobs scheduled through
    ``schedule()`` with due times spread evenly over ``--spread-s`` (10 s);
    for each, when ``place()`` was called minus ``due_at`` (the observer's
    ``delay_s``): p50 / p99 / max. ``place`` does nothing and answers at once,
    so every job costs its writes (a share of a batched claim, its running
    mark and its outcome, both group-committed). ``--claim-lead-s 0`` claims
    at the due time instead of ahead, for comparison; ``--gc-freeze`` calls
    ``gc.freeze()`` once the scheduler started, which removes the 35-40 ms
    pauses of the cyclic collector's generation 2 from the figures.
(b) restart recovery: ``--recovery-jobs`` (10,000) pending jobs already due
    in the database (bulk-inserted, as a crashed node would leave them); a
    new scheduler's ``start()`` is timed, then the time until every job has
    been placed and until every job is done in the database, and jobs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from boomerang.callback.attempt import AttemptOutcome, AttemptResult
from boomerang.callback.scheduler import CLAIM_LEAD_S, CallbackScheduler, SchedulerObserver
from boomerang.store import CallbackJob, CallbackMethod, NewCallbackJob, Store, open_store
from boomerang.store.tables import callback_jobs

ANSWERED = AttemptResult(outcome=AttemptOutcome.ANSWERED)


class Delays(SchedulerObserver):
    def __init__(self) -> None:
        self.delays_s: list[float] = []

    def attempt_started(self, job: CallbackJob, delay_s: float) -> None:
        self.delays_s.append(delay_s)


class Placed:
    """The no-op ``place``: counts calls and notes when the last one came."""

    def __init__(self, expected: int) -> None:
        self.count = 0
        self.expected = expected
        self.all_placed = asyncio.Event()

    async def __call__(self, job: CallbackJob) -> AttemptResult:
        self.count += 1
        if self.count >= self.expected:
            self.all_placed.set()
        return ANSWERED


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


async def _clear(store: Store) -> None:
    async with store.database.write() as connection:
        await connection.execute(callback_jobs.delete())


async def _start_time_error(url: str, count: int, spread_s: float, max_concurrent: int,
                            claim_lead_s: float, gc_freeze: bool) -> None:
    store = await open_store(url)
    await _clear(store)
    observer = Delays()
    placed = Placed(count)
    scheduler = CallbackScheduler(store.jobs, place=placed, node_id="bench-a",
                                  observer=observer, max_concurrent=max_concurrent,
                                  claim_lead_s=claim_lead_s)
    await scheduler.start()
    if gc_freeze:  # what DESIGN.md suggests for the server once it has started
        gc.freeze()
    # Leave time to create every job (each create is a durable commit).
    first_due = datetime.now(UTC) + timedelta(seconds=2.0 + count * 0.004)
    created_at = time.perf_counter()
    for index in range(count):
        await scheduler.schedule(NewCallbackJob(
            correlation_id=f"bench-{index}", owner_extension="101",
            target_number=f"+48600{index:06d}", method=CallbackMethod.CALLER,
            due_at=first_due + timedelta(seconds=spread_s * index / count), flow="roaming",
            component_id="cb", deduplication_key=f"+48600{index:06d}"))
    created_s = time.perf_counter() - created_at
    late = datetime.now(UTC) > first_due
    await asyncio.wait_for(placed.all_placed.wait(),
                           (first_due - datetime.now(UTC)).total_seconds() + spread_s + 60)
    await scheduler.stop(10.0)
    await store.close()
    delays_ms = sorted(delay * 1000 for delay in observer.delays_s)
    print(f"(a) start-time error, {count} jobs due over {spread_s:.0f} s "
          f"({count / spread_s:.0f}/s), claim_lead_s={claim_lead_s}"
          f"{', gc.freeze()' if gc_freeze else ''}, no-op place: "
          f"min {delays_ms[0]:.2f} ms, "
          f"p50 {statistics.median(delays_ms):.2f} ms, p99 {_percentile(delays_ms, 0.99):.2f} "
          f"ms, max {delays_ms[-1]:.2f} ms, over 50 ms: "
          f"{sum(delay > 50 for delay in delays_ms)}"
          + (" (WARNING: creating the jobs overran the first due time)" if late else "")
          + f" [created in {created_s:.1f} s]")


async def _recovery(url: str, count: int, max_concurrent: int) -> None:
    store = await open_store(url)
    await _clear(store)
    past = datetime.now(UTC) - timedelta(seconds=60)
    async with store.database.write() as connection:  # bulk load: not what we measure
        await connection.execute(callback_jobs.insert(), [
            {"correlation_id": f"bench-{i}", "owner_extension": "101",
             "target_number": f"+48700{i:06d}", "method": "caller", "trunk": "carrier",
             "caller_id": "+48221234567", "flow": "roaming", "component_id": "cb",
             "deduplication_key": f"+48700{i:06d}", "context": {},
             "due_at": past + timedelta(milliseconds=i), "attempts": 0, "max_attempts": 3,
             "retry_interval_s": 30.0, "state": "pending", "created_at": past,
             "updated_at": past}
            for i in range(count)])
    await store.close()

    placed = Placed(count)
    started = time.perf_counter()
    store = await open_store(url)
    scheduler = CallbackScheduler(store.jobs, place=placed, node_id="bench-b",
                                  max_concurrent=max_concurrent)
    await scheduler.start()
    start_s = time.perf_counter() - started
    await asyncio.wait_for(placed.all_placed.wait(), 600)
    all_placed_s = time.perf_counter() - started
    while scheduler.active():  # bounded: every attempt settles after one write
        await asyncio.sleep(0.01)
    settled_s = time.perf_counter() - started
    await scheduler.stop(10.0)
    left = len(await store.jobs.load_unfinished())
    await store.close()
    print(f"(b) restart recovery, {count} due jobs, max_concurrent={max_concurrent}: "
          f"open + start() {start_s * 1000:.0f} ms, all placed after {all_placed_s:.2f} s "
          f"({count / all_placed_s:.0f} jobs/s), all done in the database after "
          f"{settled_s:.2f} s; unfinished left: {left}; place() calls: {placed.count}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", help="also run on this (empty) PostgreSQL database")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--spread-s", type=float, default=10.0)
    parser.add_argument("--recovery-jobs", type=int, default=10_000)
    parser.add_argument("--max-concurrent", type=int, default=200)
    parser.add_argument("--claim-lead-s", type=float, default=CLAIM_LEAD_S,
                        help="0: claim at the due time (for comparison)")
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() once the scheduler started (no gen-2 pauses)")
    arguments = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{platform.processor() or platform.platform()}")
    with tempfile.TemporaryDirectory(prefix="boomerang-bench-") as directory:
        urls = [f"sqlite:///{Path(directory) / 'bench.db'}"]
        if arguments.postgres:
            urls.append(arguments.postgres)
        for url in urls:
            print(f"database: {url.split('@')[-1]}")
            await _start_time_error(url, arguments.jobs, arguments.spread_s,
                                    arguments.max_concurrent, arguments.claim_lead_s,
                                    arguments.gc_freeze)
            if not arguments.skip_recovery:
                await _recovery(url, arguments.recovery_jobs, arguments.max_concurrent)


if __name__ == "__main__":
    asyncio.run(main())
