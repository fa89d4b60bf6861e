"""The scheduler's promises across crashes and nodes, on SQLite and PostgreSQL:

- a node SIGKILLed after ``schedule()`` returned and before the job was due:
  a restart of that node, or another node, places the job exactly once;
- a node SIGKILLed while ``place()`` runs: the job is placed once more (the
  documented at-least-once), by the restarted node at once or by another
  node once the lease has expired, and only once;
- two nodes on one database, both timers armed for the same jobs: each job
  is placed exactly once;
- the store operations the scheduler added to CallbackJobRepository.

The PostgreSQL variants use the throw-away cluster of tests/store/conftest.py
(loaded from there, not copied) and skip cleanly without PostgreSQL.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from boomerang.callback.attempt import AttemptOutcome, AttemptResult
from boomerang.callback.scheduler import CallbackScheduler
from boomerang.store import (
    CallbackJob,
    CallbackMethod,
    JobState,
    NewCallbackJob,
    Store,
    open_store,
)
from boomerang.store.jobs import HeldJobUpdate
from boomerang.store.tables import callback_jobs

CHILD = Path(__file__).with_name("scheduler_child.py")
CHILD_READY_S = 30.0
WAIT_LIMIT_S = 15.0
START_TOLERANCE_S = 0.050


def _load_store_fixtures() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "store" / "conftest.py"
    name = "boomerang_store_test_fixtures"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


_store_fixtures = _load_store_fixtures()
postgres_cluster = _store_fixtures.postgres_cluster  # the session-wide PostgreSQL


@pytest.fixture(params=_store_fixtures.BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'boomerang.db'}"
    else:
        url = await _store_fixtures.create_postgres_database(
            request.getfixturevalue("postgres_cluster"))
    await (await open_store(url)).close()  # migrated before any node starts
    return url


@pytest.fixture
async def open_node(database_url: str) -> AsyncIterator[Callable[..., Any]]:
    """``await open_node(node_id, place, **options)``: a scheduler on its own
    Store (its own engine and connections, as a separate node would have).
    Not started; stopped and closed at teardown."""
    opened: list[tuple[CallbackScheduler, Store]] = []

    async def open_one(node_id: str, place: Recorder, **options: Any) -> CallbackScheduler:
        store = await open_store(database_url)
        settings: dict[str, Any] = {"poll_interval_s": 0.1}
        settings.update(options)
        scheduler = CallbackScheduler(store.jobs, place=place, node_id=node_id, **settings)
        opened.append((scheduler, store))
        return scheduler

    yield open_one
    for scheduler, store in opened:
        await scheduler.stop(0.0)
        await store.close()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await open_store(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@dataclass
class Recorder:
    """``place``: answers at once and records (node, job id, attempt, wall time)."""

    node_id: str
    calls: list[tuple[str, int, int, float]] = field(default_factory=list)

    async def __call__(self, job: CallbackJob) -> AttemptResult:
        self.calls.append((self.node_id, job.id, job.attempts, datetime.now(UTC).timestamp()))
        return AttemptResult(outcome=AttemptOutcome.ANSWERED)


async def wait_until(condition: Callable[[], bool], limit_s: float = WAIT_LIMIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {limit_s} s")
        await asyncio.sleep(0.01)


def new_job(due_at: datetime, index: int = 0) -> NewCallbackJob:
    return NewCallbackJob(
        correlation_id=f"story-{index}", owner_extension="101",
        target_number=f"+48600{index:06d}", method=CallbackMethod.CALLER, due_at=due_at,
        flow="roaming", component_id="cb", deduplication_key=f"+48600{index:06d}")


async def run_child_until(url: str, node_id: str, mode: str, lease_s: float,
                          marker: Path, line: str) -> int:
    """Start scheduler_child.py, wait for its ``line ID`` and SIGKILL it."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), url, node_id, mode, str(lease_s), str(marker),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert child.stdout is not None
        said = await asyncio.wait_for(child.stdout.readline(), CHILD_READY_S)
    finally:
        if child.returncode is None:
            os.kill(child.pid, signal.SIGKILL)
        _, stderr = await asyncio.wait_for(child.communicate(), CHILD_READY_S)
    assert child.returncode == -signal.SIGKILL, stderr.decode(errors="replace")
    words = said.decode().split()
    assert words[:1] == [line], f"child said {said!r}: {stderr.decode(errors='replace')}"
    return int(words[1])


def placements_by(marker: Path) -> list[tuple[int, int]]:
    if not marker.exists():
        return []
    return [(int(job_id), int(attempt)) for job_id, attempt in
            (text.split() for text in marker.read_text().splitlines())]


# -- kill -9 ----------------------------------------------------------------------------


@pytest.mark.parametrize("restart_as", ["node-a", "node-b"])
async def test_a_job_scheduled_before_sigkill_is_placed_once_after_it(
    database_url: str, store: Store, open_node: Callable[..., Any], tmp_path: Path,
    restart_as: str,
) -> None:
    marker = tmp_path / "placed-by-child"
    place = Recorder(restart_as)
    survivor = None
    if restart_as == "node-b":  # already running: it can only learn of the job by polling
        survivor = await open_node("node-b", place, poll_interval_s=0.2)
        await survivor.start()
    job_id = await run_child_until(database_url, "node-a", "before_due", 120.0, marker,
                                   "scheduled")
    job = await store.jobs.get(job_id)
    assert job is not None and job.state is JobState.PENDING
    assert placements_by(marker) == []

    if survivor is None:
        restarted = await open_node(restart_as, place)
        await restarted.start()
        assert [pending.id for pending in restarted.pending()] == [job_id]
    await wait_until(lambda: len(place.calls) >= 1)
    await asyncio.sleep(0.5)  # several polls: nothing places it again

    assert [(node, placed_id, attempt) for node, placed_id, attempt, _ in place.calls] == [
        (restart_as, job_id, 1)]
    delay_s = place.calls[0][3] - job.due_at.timestamp()
    # The restarted node arms it (on time); the running one polls (within a poll).
    assert -0.005 < delay_s < (START_TOLERANCE_S if survivor is None else 0.2 + 0.1)
    done = await store.jobs.get(job_id)
    assert done is not None and (done.state, done.attempts) == (JobState.DONE, 1)


@pytest.mark.parametrize("restart_as", ["node-a", "node-b"])
async def test_a_job_being_placed_at_sigkill_is_placed_once_more(
    database_url: str, store: Store, open_node: Callable[..., Any], tmp_path: Path,
    restart_as: str,
) -> None:
    marker = tmp_path / "placed-by-child"
    lease_s = 30.0 if restart_as == "node-a" else 1.5
    job_id = await run_child_until(database_url, "node-a", "while_placing", lease_s, marker,
                                   "placing")
    assert placements_by(marker) == [(job_id, 1)]
    held = await store.jobs.get(job_id)
    assert held is not None and held.state in (JobState.CLAIMED, JobState.RUNNING)
    assert held.lease_expires_at is not None

    place = Recorder(restart_as)
    restarted = await open_node(restart_as, place)
    started_at = datetime.now(UTC)
    await restarted.start()
    await wait_until(lambda: len(place.calls) >= 1)
    await asyncio.sleep(0.5)

    assert [(node, placed_id, attempt) for node, placed_id, attempt, _ in place.calls] == [
        (restart_as, job_id, 2)]
    placed_at = place.calls[0][3]
    if restart_as == "node-a":
        # Its own previous incarnation: requeued at once, not after the 30 s lease.
        assert placed_at - started_at.timestamp() < 2.0
    else:
        # Another node must respect the dead node's lease.
        assert placed_at >= held.lease_expires_at.timestamp()
    done = await store.jobs.get(job_id)
    assert done is not None and (done.state, done.attempts) == (JobState.DONE, 2)


# -- several nodes ----------------------------------------------------------------------


async def due_from_now(store: Store, job_ids: list[int], first_in_s: float,
                       step_s: float = 0.0) -> None:
    """Set the due times in one statement, so creating the jobs (slow under
    load) does not eat into the time before they are claimed."""
    first_due = datetime.now(UTC) + timedelta(seconds=first_in_s)
    async with store.database.write() as connection:
        for index, job_id in enumerate(job_ids):
            await connection.execute(
                callback_jobs.update().where(callback_jobs.c.id == job_id)
                .values(due_at=first_due + timedelta(seconds=step_s * index)))


async def test_two_nodes_place_one_due_job_once(
    store: Store, open_node: Callable[..., Any]
) -> None:
    job = await store.jobs.create(new_job(datetime.now(UTC) + timedelta(hours=1)))
    places = [Recorder("node-a"), Recorder("node-b")]
    nodes = [await open_node(place.node_id, place, poll_interval_s=0.05) for place in places]
    # Claimed from 0.5 s before due: both nodes are armed long before that.
    await due_from_now(store, [job.id], 1.5)
    for node in nodes:
        await node.start()
        assert [pending.id for pending in node.pending()] == [job.id]  # both timers armed

    await wait_until(lambda: sum(len(place.calls) for place in places) >= 1)
    await asyncio.sleep(0.5)
    calls = [call for place in places for call in place.calls]
    assert [(job_id, attempt) for _, job_id, attempt, _ in calls] == [(job.id, 1)]
    done = await store.jobs.get(job.id)
    assert done is not None and (done.state, done.attempts) == (JobState.DONE, 1)


async def test_two_nodes_place_each_of_200_jobs_once(
    store: Store, open_node: Callable[..., Any]
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    ids = [(await store.jobs.create(new_job(later, index))).id for index in range(200)]
    created = set(ids)
    places = [Recorder("node-a"), Recorder("node-b")]
    nodes = [await open_node(place.node_id, place, poll_interval_s=0.05) for place in places]
    await due_from_now(store, ids, 1.5, step_s=0.002)
    for node in nodes:
        await node.start()
        assert {pending.id for pending in node.pending()} == created

    await wait_until(lambda: sum(len(place.calls) for place in places) >= 200)
    await asyncio.sleep(0.5)
    placed = Counter(job_id for place in places for _, job_id, _, _ in place.calls)
    assert set(placed) == created
    assert [job_id for job_id, count in placed.items() if count != 1] == []
    assert await store.jobs.load_unfinished() == []


# -- the store operations the scheduler added --------------------------------------------


async def test_claim_ids_claims_only_pending_jobs_and_each_once(store: Store) -> None:
    now = datetime.now(UTC)
    jobs = [await store.jobs.create(new_job(now + timedelta(seconds=60), index))
            for index in range(6)]
    assert await store.jobs.cancel(jobs[5].id)
    ids = [job.id for job in jobs]
    batches = await asyncio.gather(
        store.jobs.claim_ids(ids[:4], "node-a", now, lease_s=30),
        store.jobs.claim_ids([*ids[2:], ids[-1] + 100], "node-b", now, lease_s=30))
    claimed = [job.id for batch in batches for job in batch]
    assert sorted(claimed) == ids[:5]  # none twice; cancelled and unknown ids left out
    for index, batch in enumerate(batches):
        assert all(job.claimed_by == f"node-{'ab'[index]}" and job.attempts == 1
                   and job.state is JobState.CLAIMED
                   and job.lease_expires_at == now + timedelta(seconds=30) for job in batch)
    assert await store.jobs.claim_ids(ids, "node-c", now) == []


async def test_update_held_many_applies_running_and_outcomes_in_one_go(store: Store) -> None:
    now = datetime.now(UTC)
    jobs = [await store.jobs.create(new_job(now, index)) for index in range(4)]
    for job in jobs[:3]:
        await store.jobs.claim(job.id, "node-a", now)
    await store.jobs.claim(jobs[3].id, "node-b", now)
    lease = now + timedelta(seconds=99)
    retry_at = now + timedelta(seconds=30)
    applied = await store.jobs.update_held_many([
        HeldJobUpdate(job_id=jobs[0].id, state=JobState.RUNNING, lease_expires_at=lease),
        HeldJobUpdate(job_id=jobs[0].id, state=JobState.DONE, result="answered"),
        HeldJobUpdate(job_id=jobs[1].id, state=JobState.PENDING, result="busy 486",
                      retry_at=retry_at),
        HeldJobUpdate(job_id=jobs[2].id, state=JobState.RUNNING, lease_expires_at=lease),
        HeldJobUpdate(job_id=jobs[3].id, state=JobState.FAILED, result="refused"),
    ], "node-a")
    assert applied == [True, True, True, True, False]
    after = [await store.jobs.get(job.id) for job in jobs]
    assert [(job.state, job.last_result) for job in after if job] == [
        (JobState.DONE, "answered"), (JobState.PENDING, "busy 486"),
        (JobState.RUNNING, None), (JobState.CLAIMED, None)]
    assert after[1] is not None and after[1].due_at == retry_at
    assert after[1].claimed_by is None and after[1].attempts == 1
    assert after[2] is not None and after[2].lease_expires_at == lease
    # A finished job is not held any more: nothing changes it.
    assert await store.jobs.update_held_many(
        [HeldJobUpdate(job_id=jobs[0].id, state=JobState.FAILED, result="late")],
        "node-a") == [False]


async def test_release_node_requeues_that_nodes_held_jobs_counting_the_attempt(
    store: Store,
) -> None:
    now = datetime.now(UTC)
    mine = await store.jobs.create(new_job(now, 0))
    last_try = await store.jobs.create(new_job(now, 1))  # max_attempts 3
    other = await store.jobs.create(new_job(now, 2))
    await store.jobs.claim(mine.id, "node-a", now, lease_s=600)
    await store.jobs.mark_running(mine.id, "node-a", now)
    await store.jobs.claim(other.id, "node-b", now, lease_s=600)
    for _ in range(2):  # two busy attempts; the third claim is the last attempt
        await store.jobs.claim(last_try.id, "node-a", now, lease_s=600)
        await store.jobs.reschedule(last_try.id, now, "busy", node_id="node-a")
    await store.jobs.claim(last_try.id, "node-a", now, lease_s=600)

    released = await store.jobs.release_node("node-a", now, "interrupted")
    assert sorted((job.id, job.state, job.attempts, job.last_result) for job in released) == [
        (mine.id, JobState.PENDING, 1, "interrupted"),
        (last_try.id, JobState.FAILED, 3, "interrupted")]
    untouched = await store.jobs.get(other.id)
    assert untouched is not None and untouched.claimed_by == "node-b"


async def test_release_unstarted_hands_back_a_claim_without_counting_it(store: Store) -> None:
    now = datetime.now(UTC)
    waiting = await store.jobs.create(new_job(now, 0))
    started = await store.jobs.create(new_job(now, 1))
    for job in (waiting, started):
        await store.jobs.claim(job.id, "node-a", now)
    await store.jobs.mark_running(started.id, "node-a", now)
    released = await store.jobs.release_unstarted([waiting.id, started.id], "node-b", now)
    assert released == []  # not node-b's
    released = await store.jobs.release_unstarted([waiting.id, started.id], "node-a", now)
    assert [(job.id, job.state, job.attempts, job.claimed_by) for job in released] == [
        (waiting.id, JobState.PENDING, 0, None)]
    assert (await store.jobs.get(started.id)).state is JobState.RUNNING  # type: ignore[union-attr]


async def test_advance_only_brings_a_pending_job_forward(store: Store) -> None:
    now = datetime.now(UTC)
    job = await store.jobs.create(new_job(now + timedelta(seconds=60)))
    assert not await store.jobs.advance(job.id, now + timedelta(seconds=90))
    assert await store.jobs.advance(job.id, now + timedelta(seconds=5))
    assert (await store.jobs.get(job.id)).due_at == now + timedelta(seconds=5)  # type: ignore[union-attr]
    await store.jobs.claim(job.id, "node-a", now)
    assert not await store.jobs.advance(job.id, now)
