"""A Boomerang node that dies: test_scheduler_durability.py runs it and
SIGKILLs it. Not a test module (pytest does not collect it).

    python scheduler_child.py URL NODE_ID MODE LEASE_S MARKER

- MODE ``before_due``: schedules a job due in 1.5 s, prints ``scheduled ID``.
- MODE ``while_placing``: schedules a job due now; its ``place`` appends
  ``ID ATTEMPT`` to the MARKER file, prints ``placing ID`` and sleeps.

Either way it then waits (at most 60 s) for the SIGKILL. Every placement
is appended to MARKER, so the test can tell what the dead node did.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

from boomerang.callback.attempt import AttemptOutcome, AttemptResult
from boomerang.callback.scheduler import CallbackScheduler
from boomerang.store import CallbackJob, CallbackMethod, NewCallbackJob, open_store

DUE_IN_S = {"before_due": 1.5, "while_placing": 0.0}
WAIT_FOR_KILL_S = 60.0


async def main(url: str, node_id: str, mode: str, lease_s: float, marker: str) -> None:
    store = await open_store(url)

    async def place(job: CallbackJob) -> AttemptResult:
        with open(marker, "a") as placed:  # a few bytes, fsynced: the test reads them
            placed.write(f"{job.id} {job.attempts}\n")
            placed.flush()
            os.fsync(placed.fileno())
        print(f"placing {job.id}", flush=True)
        await asyncio.sleep(WAIT_FOR_KILL_S)
        return AttemptResult(outcome=AttemptOutcome.ANSWERED)

    scheduler = CallbackScheduler(store.jobs, place=place, node_id=node_id, lease_s=lease_s,
                                  poll_interval_s=0.1)
    await scheduler.start()
    job = await scheduler.schedule(NewCallbackJob(
        correlation_id=f"crash-{mode}", owner_extension="101",
        target_number="+48600100200", method=CallbackMethod.CALLER,
        due_at=datetime.now(UTC) + timedelta(seconds=DUE_IN_S[mode]), flow="roaming",
        component_id="cb", deduplication_key="+48600100200"))
    if mode == "before_due":
        print(f"scheduled {job.id}", flush=True)
    await asyncio.sleep(WAIT_FOR_KILL_S)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]))
