"""Several nodes racing to claim the same due jobs: each job goes to exactly one.

Every claimer is a separate Store (its own engine and connections), as two
Boomerang nodes would be; on SQLite they share one database file.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from boomerang.store import JobState, NewCallbackJob, Store, open_store

JOB_COUNT = 200
NODE_COUNT = 4
BATCH = 7


async def _create_due_jobs(store: Store, job_factory: Callable[..., NewCallbackJob],
                           now: datetime) -> set[int]:
    return {(await store.jobs.create(job_factory(due_at=now - timedelta(milliseconds=i)))).id
            for i in range(JOB_COUNT)}


async def _claim_in_rounds(nodes: list[Store], now: datetime) -> list[list[int]]:
    """Every round all nodes call claim_due at the same moment, until all come
    back empty. 200 jobs > NODE_COUNT * BATCH, so in round one every node must
    get a batch while the others race it for the same rows."""
    claimed: list[list[int]] = [[] for _ in nodes]
    for _ in range(JOB_COUNT):  # bound: each non-final round claims at least one job
        batches = await asyncio.wait_for(asyncio.gather(*(
            node.jobs.claim_due(f"node-{index}", now, limit=BATCH)
            for index, node in enumerate(nodes))), timeout=30)
        if not any(batches):
            return claimed
        for index, batch in enumerate(batches):
            assert all(job.claimed_by == f"node-{index}" and job.attempts == 1
                       for job in batch)
            claimed[index].extend(job.id for job in batch)
    raise AssertionError("claiming did not finish")


async def test_concurrent_claim_due_hands_each_job_to_exactly_one_node(
    database_url: str, job_factory: Callable[..., NewCallbackJob], now: datetime
) -> None:
    nodes = [await open_store(database_url) for _ in range(NODE_COUNT)]
    try:
        created = await _create_due_jobs(nodes[0], job_factory, now)
        results = await _claim_in_rounds(nodes, now)

        every_claim = [job_id for claimed in results for job_id in claimed]
        duplicates = [job_id for job_id, count in Counter(every_claim).items() if count > 1]
        assert duplicates == []
        assert set(every_claim) == created
        # Every node took part, so the race really happened.
        assert all(len(claimed) >= BATCH for claimed in results), [len(c) for c in results]
        # The database agrees with what each node was told.
        owner_of = {job_id: f"node-{index}" for index, claimed in enumerate(results)
                    for job_id in claimed}
        for job in await nodes[0].jobs.load_unfinished():
            assert job.state is JobState.CLAIMED and job.claimed_by == owner_of[job.id]
    finally:
        for node in nodes:
            await node.close()


async def test_concurrent_single_claims_of_one_job_succeed_once(
    database_url: str, job_factory: Callable[..., NewCallbackJob], now: datetime
) -> None:
    nodes = [await open_store(database_url) for _ in range(NODE_COUNT)]
    try:
        jobs = [await nodes[0].jobs.create(job_factory()) for _ in range(20)]
        for job in jobs:
            results = await asyncio.wait_for(asyncio.gather(*(
                node.jobs.claim(job.id, f"node-{index}", now)
                for index, node in enumerate(nodes))), timeout=30)
            winners = [result for result in results if result is not None]
            assert len(winners) == 1
    finally:
        for node in nodes:
            await node.close()
