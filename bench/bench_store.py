"""Store figures for the durable callback scheduler.

    python bench/bench_store.py                          # SQLite file DB in a temp dir
    python bench/bench_store.py --synchronous NORMAL     # compare the durability setting
    python bench/bench_store.py --url postgresql://u@127.0.0.1:5432/db   (an empty DB)

Prints: job create latency (p50/p99/max, each create committed durably),
claim_due throughput (one node, batches of 1 and 100) and the time to load
10,000 unfinished jobs (restart recovery) plus open_store on that database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from boomerang.store import CallbackMethod, NewCallbackJob, Store, open_store
from boomerang.store.tables import callback_jobs

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


def _job(index: int, due_at: datetime) -> NewCallbackJob:
    return NewCallbackJob(
        correlation_id=f"bench-{index}", owner_extension="101",
        target_number=f"+48600{index:06d}", method=CallbackMethod.CALLER, due_at=due_at,
        flow="roaming", component_id="cb", trunk="carrier", caller_id="+48221234567",
        deduplication_key=f"+48600{index:06d}")


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


async def _create_latency(store: Store, count: int) -> None:
    latencies_ms: list[float] = []
    for index in range(count):
        started = time.perf_counter()
        await store.jobs.create(_job(index, NOW + timedelta(days=1)))
        latencies_ms.append((time.perf_counter() - started) * 1000)
    latencies_ms.sort()
    print(f"create (durable commit each): n={count} p50={statistics.median(latencies_ms):.2f} ms "
          f"p99={_percentile(latencies_ms, 0.99):.2f} ms max={latencies_ms[-1]:.2f} ms "
          f"-> {count / (sum(latencies_ms) / 1000):.0f} creates/s sequential")


async def _claim_throughput(store: Store, base: int, count: int, batch: int) -> None:
    for index in range(count):
        await store.jobs.create(_job(base + index, NOW - timedelta(seconds=1)))
    claimed = 0
    started = time.perf_counter()
    while claimed < count:
        got = await store.jobs.claim_due("bench-node", NOW, limit=batch)
        if not got:
            break
        claimed += len(got)
    elapsed_s = time.perf_counter() - started
    print(f"claim_due limit={batch}: {claimed} jobs in {elapsed_s * 1000:.0f} ms "
          f"-> {claimed / elapsed_s:.0f} jobs/s")
    for job in await store.jobs.load_unfinished():
        if job.claimed_by == "bench-node":
            await store.jobs.finish(job.id, "bench", node_id="bench-node")


async def _recovery(url: str, store: Store, base: int, count: int, sync: str) -> None:
    async with store.database.write() as connection:  # bulk load: not what we measure
        await connection.execute(callback_jobs.update().values(state="cancelled"))
        await connection.execute(callback_jobs.insert(), [
            {"correlation_id": f"bench-{base + i}", "owner_extension": "101",
             "target_number": f"+48700{i:06d}", "method": "caller", "trunk": "carrier",
             "caller_id": "+48221234567", "flow": "roaming", "component_id": "cb",
             "deduplication_key": f"+48700{i:06d}", "context": {},
             "due_at": NOW + timedelta(seconds=i % 600), "attempts": 0, "max_attempts": 3,
             "retry_interval_s": 30.0, "state": "pending", "created_at": NOW,
             "updated_at": NOW}
            for i in range(count)])
    total = len(await store.jobs.load_unfinished())
    await store.close()
    started = time.perf_counter()
    reopened = await open_store(url, sqlite_synchronous=sync)
    opened_s = time.perf_counter() - started
    started = time.perf_counter()
    jobs = await reopened.jobs.load_unfinished()
    loaded_s = time.perf_counter() - started
    await reopened.close()
    print(f"restart recovery: open_store {opened_s * 1000:.0f} ms + load_unfinished of "
          f"{len(jobs)} jobs ({total} unfinished) {loaded_s * 1000:.0f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="database URL (default: a temp SQLite file)")
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--recovery-jobs", type=int, default=10_000)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="boomerang-bench-") as directory:
        url = arguments.url or f"sqlite:///{Path(directory) / 'bench.db'}"
        store = await open_store(url, sqlite_synchronous=arguments.synchronous)
        print(f"database: {store.display_url} ({store.dialect_name}"
              + (f", synchronous={arguments.synchronous}" if store.dialect_name == "sqlite"
                 else "") + ")")
        await _create_latency(store, arguments.creates)
        await _claim_throughput(store, 100_000, 2000, batch=1)
        await _claim_throughput(store, 200_000, 5000, batch=100)
        await _recovery(url, store, 300_000, arguments.recovery_jobs, arguments.synchronous)


if __name__ == "__main__":
    asyncio.run(main())
