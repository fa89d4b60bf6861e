"""kill -9 right after create() returned: a fresh store still sees the job."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap

import pytest

from boomerang.store import JobState, open_store

CHILD_TIMEOUT_S = 30.0

# The child creates one job, says its id, and SIGKILLs itself at once: no
# close(), no atexit, no interpreter shutdown; only what create() made durable.
CHILD = textwrap.dedent("""
    import asyncio, os, signal, sys
    from datetime import UTC, datetime
    from boomerang.store import CallbackMethod, NewCallbackJob, open_store

    async def main(url):
        store = await open_store(url)
        job = await store.jobs.create(NewCallbackJob(
            correlation_id="crash-story", owner_extension="101",
            target_number="+48600100200", method=CallbackMethod.CALLER,
            due_at=datetime(2030, 1, 15, 12, 0, tzinfo=UTC), flow="roaming",
            component_id="cb"))
        os.write(1, f"{job.id}\\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main(sys.argv[1]))
""")


async def test_a_job_created_just_before_sigkill_is_there_after_restart(
    database_url: str,
) -> None:
    # Migrate first so the child's only write is the job itself.
    await (await open_store(database_url)).close()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, database_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(child.communicate(), CHILD_TIMEOUT_S)
    finally:
        if child.returncode is None:
            os.kill(child.pid, signal.SIGKILL)
            await child.wait()
    assert child.returncode == -signal.SIGKILL, stderr.decode(errors="replace")
    if not stdout.strip():
        pytest.fail(f"child printed no job id: {stderr.decode(errors='replace')}")
    job_id = int(stdout.split()[0])

    store = await open_store(database_url)
    try:
        job = await store.jobs.get(job_id)
        assert job is not None and job.state is JobState.PENDING
        assert job.correlation_id == "crash-story"
        assert [found.id for found in await store.jobs.load_unfinished()] == [job_id]
    finally:
        await store.close()
