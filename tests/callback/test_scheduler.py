"""The callback scheduler on a real SQLite store: on time, retries, outcomes,
cancel, stop and restart, the lease kept while an attempt runs, and a
backlog held to ``max_concurrent``.

``place`` is a fake that records when it was called (loop and wall time)
and answers from a script. The wall clock is the real one shifted to 2030,
so a scheduler that read ``time.time()`` instead of its injected clock would
miss every due time by years.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from boomerang.callback.attempt import AttemptOutcome, AttemptResult
from boomerang.callback.scheduler import CallbackScheduler, SchedulerObserver
from boomerang.store import (
    CallbackJob,
    CallbackMethod,
    JobAlreadyActiveError,
    JobState,
    NewCallbackJob,
    Store,
    open_store,
)

SHIFT_S = datetime(2030, 1, 15, 12, 0, tzinfo=UTC).timestamp() - time.time()
START_TOLERANCE_S = 0.050   # SPEC: a due job starts within 50 ms of due_at
WAIT_LIMIT_S = 10.0


def wall_clock() -> float:
    return time.time() + SHIFT_S


def utc_now() -> datetime:
    return datetime.fromtimestamp(wall_clock(), UTC)


def new_job(due_in_s: float, index: int = 0, **changes: object) -> NewCallbackJob:
    fields: dict[str, object] = {
        "correlation_id": f"story-{index}", "owner_extension": "101",
        "target_number": f"+48600{index:06d}", "method": CallbackMethod.CALLER,
        "due_at": utc_now() + timedelta(seconds=due_in_s), "flow": "roaming",
        "component_id": "cb", "trunk": "carrier", "caller_id": "+48221234567",
        "max_attempts": 3, "retry_interval_s": 0.2,
    }
    fields.update(changes)
    return NewCallbackJob(**fields)  # type: ignore[arg-type]


Answer = AttemptOutcome | type[BaseException] | BaseException


@dataclass
class Call:
    job: CallbackJob
    loop_time: float
    wall_time: float
    ended_loop_time: float | None = None
    cancelled: bool = False


@dataclass
class FakePlace:
    """``place`` that answers from ``script`` (per call, last one repeats),
    optionally taking ``hold_s`` to do it."""

    script: Sequence[Answer] = (AttemptOutcome.ANSWERED,)
    hold_s: float = 0.0
    calls: list[Call] = field(default_factory=list)
    running: int = 0
    most_running: int = 0

    async def __call__(self, job: CallbackJob) -> AttemptResult:
        loop = asyncio.get_running_loop()
        call = Call(job=job, loop_time=loop.time(), wall_time=wall_clock())
        answer = self.script[min(len(self.calls), len(self.script) - 1)]
        self.calls.append(call)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.hold_s:
                await asyncio.sleep(self.hold_s)
            if not isinstance(answer, AttemptOutcome):
                raise answer
            return AttemptResult(outcome=answer, detail="486" if answer.value == "busy" else "")
        except asyncio.CancelledError:
            call.cancelled = True
            raise
        finally:
            self.running -= 1
            call.ended_loop_time = loop.time()

    def of(self, job_id: int) -> list[Call]:
        return [call for call in self.calls if call.job.id == job_id]


@dataclass
class Recorder(SchedulerObserver):
    events: list[tuple[str, int, object]] = field(default_factory=list)

    def job_scheduled(self, job: CallbackJob) -> None:
        self.events.append(("scheduled", job.id, None))

    def attempt_started(self, job: CallbackJob, delay_s: float) -> None:
        self.events.append(("started", job.id, delay_s))

    def attempt_finished(self, job: CallbackJob, result: AttemptResult) -> None:
        self.events.append(("attempt", job.id, result.outcome))

    def job_finished(self, job: CallbackJob, state: JobState) -> None:
        self.events.append(("finished", job.id, state))


async def wait_until(condition: Callable[[], bool], limit_s: float = WAIT_LIMIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {limit_s} s")
        await asyncio.sleep(0.005)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'boomerang.db'}"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await open_store(database_url, utc_now=utc_now)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def make_scheduler(store: Store) -> AsyncIterator[Callable[..., CallbackScheduler]]:
    """``make_scheduler(place, **options)``: a scheduler on ``store`` (or
    ``jobs=``), stopped at teardown."""
    made: list[CallbackScheduler] = []

    def make(place: FakePlace, **options: object) -> CallbackScheduler:
        settings: dict[str, object] = {"node_id": "node-a", "poll_interval_s": 0.05,
                                       "wall_clock": wall_clock, "jobs": store.jobs}
        settings.update(options)
        scheduler = CallbackScheduler(place=place, **settings)  # type: ignore[arg-type]
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        await scheduler.stop(0.0)


async def state_of(store: Store, job_id: int) -> CallbackJob:
    job = await store.jobs.get(job_id)
    assert job is not None
    return job


async def test_due_jobs_start_within_50_ms_of_due_at(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    place, observer = FakePlace(), Recorder()
    scheduler = make_scheduler(place, observer=observer)
    await scheduler.start()
    loop = asyncio.get_running_loop()
    loop_then, wall_then = loop.time(), wall_clock()
    jobs = [await scheduler.schedule(new_job(due_in_s, index))
            for index, due_in_s in enumerate((0.85, 0.6, 1.0, 0.7, 1.15))]
    assert [job.id for job in scheduler.pending()] == [jobs[i].id for i in (1, 3, 0, 2, 4)]

    await wait_until(lambda: len(place.calls) == len(jobs))

    errors_s = {}
    for job in jobs:
        (call,) = place.of(job.id)
        expected_loop_time = loop_then + (job.due_at.timestamp() - wall_then)
        errors_s[job.id] = call.loop_time - expected_loop_time
        assert call.wall_time >= job.due_at.timestamp() - 0.002, "started before due"
    assert all(-0.005 < error < START_TOLERANCE_S for error in errors_s.values()), errors_s
    assert [call.job.id for call in place.calls] == [jobs[i].id for i in (1, 3, 0, 2, 4)]
    delays = {job_id: delay for kind, job_id, delay in observer.events if kind == "started"}
    assert all(0 <= float(delay) < START_TOLERANCE_S for delay in delays.values()), delays  # type: ignore[arg-type]
    await wait_until(lambda: not scheduler.active())
    for job in jobs:
        done = await state_of(store, job.id)
        assert (done.state, done.attempts, done.last_result) == (JobState.DONE, 1, "answered")


async def test_busy_is_retried_after_retry_interval_then_answered_is_done(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    place = FakePlace(script=(AttemptOutcome.BUSY, AttemptOutcome.ANSWERED), hold_s=0.05)
    observer = Recorder()
    scheduler = make_scheduler(place, observer=observer)
    await scheduler.start()
    job = await scheduler.schedule(new_job(0.05, retry_interval_s=0.3))

    await wait_until(lambda: len(place.calls) == 2)
    first, second = place.calls
    assert first.ended_loop_time is not None
    gap_s = second.loop_time - first.ended_loop_time
    assert 0.3 - 0.005 <= gap_s < 0.3 + START_TOLERANCE_S, gap_s
    assert (first.job.attempts, second.job.attempts) == (1, 2)
    await wait_until(lambda: ("finished", job.id, JobState.DONE) in observer.events)
    done = await state_of(store, job.id)
    assert (done.state, done.attempts, done.last_result) == (JobState.DONE, 2, "answered")
    assert [e for e in observer.events if e[0] != "started"] == [
        ("scheduled", job.id, None), ("attempt", job.id, AttemptOutcome.BUSY),
        ("attempt", job.id, AttemptOutcome.ANSWERED), ("finished", job.id, JobState.DONE)]


async def test_a_job_fails_when_its_attempts_are_used_up(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    place, observer = FakePlace(script=(AttemptOutcome.NO_ANSWER,)), Recorder()
    scheduler = make_scheduler(place, observer=observer)
    await scheduler.start()
    job = await scheduler.schedule(new_job(0.0, max_attempts=3, retry_interval_s=0.05))

    await wait_until(lambda: ("finished", job.id, JobState.FAILED) in observer.events)
    await asyncio.sleep(0.2)  # three retry intervals: no fourth attempt comes
    assert [call.job.attempts for call in place.calls] == [1, 2, 3]
    failed = await state_of(store, job.id)
    assert (failed.state, failed.attempts, failed.last_result) == (
        JobState.FAILED, 3, "no_answer")
    assert scheduler.pending() == [] and scheduler.active() == []


async def test_refused_fails_at_once_without_retry(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    place, observer = FakePlace(script=(AttemptOutcome.REFUSED,)), Recorder()
    scheduler = make_scheduler(place, observer=observer)
    await scheduler.start()
    job = await scheduler.schedule(new_job(0.0, retry_interval_s=0.01))

    await wait_until(lambda: ("finished", job.id, JobState.FAILED) in observer.events)
    await asyncio.sleep(0.1)
    assert len(place.calls) == 1
    failed = await state_of(store, job.id)
    assert (failed.state, failed.attempts, failed.last_result) == (
        JobState.FAILED, 1, "refused")


async def test_an_exception_in_place_counts_as_failed_and_is_retried(
    store: Store, make_scheduler: Callable[..., CallbackScheduler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    place = FakePlace(script=(RuntimeError("trunk exploded"), AttemptOutcome.ANSWERED))
    observer = Recorder()
    scheduler = make_scheduler(place, observer=observer)
    await scheduler.start()
    with caplog.at_level(logging.ERROR, logger="boomerang.callback.scheduler"):
        job = await scheduler.schedule(new_job(0.0, retry_interval_s=0.05))
        await wait_until(lambda: ("finished", job.id, JobState.DONE) in observer.events)

    assert ("attempt", job.id, AttemptOutcome.FAILED) in observer.events
    assert [call.job.attempts for call in place.calls] == [1, 2]
    assert any(f"job_id={job.id}" in record.getMessage() and record.exc_info
               for record in caplog.records)
    done = await state_of(store, job.id)
    assert (done.state, done.attempts) == (JobState.DONE, 2)
    # The scheduler is still alive for the next job.
    other = await scheduler.schedule(new_job(0.0, index=1))
    await wait_until(lambda: len(place.of(other.id)) == 1)


async def test_a_second_job_for_the_same_deduplication_key_is_refused(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    place = FakePlace()
    scheduler = make_scheduler(place)
    await scheduler.start()
    first = await scheduler.schedule(new_job(0.3, deduplication_key="+48600100200"))
    with pytest.raises(JobAlreadyActiveError):
        await scheduler.schedule(new_job(0.1, index=1, deduplication_key="+48600100200"))
    assert [job.id for job in scheduler.pending()] == [first.id]
    assert [job.id for job in await store.jobs.load_unfinished()] == [first.id]
    await wait_until(lambda: len(place.calls) == 1)
    await asyncio.sleep(0.1)
    assert [call.job.id for call in place.calls] == [first.id]


async def test_stop_leaves_pending_jobs_for_the_next_start_which_places_each_once(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    first_place = FakePlace()
    first = make_scheduler(first_place)
    await first.start()
    jobs = [await first.schedule(new_job(0.3 + 0.02 * index, index)) for index in range(3)]
    # Due within 2 * claim_lead_s: claimed ahead at once, waiting for due_at.
    await wait_until(lambda: len(first.active()) == 3)
    assert [job.id for job in first.active()] == [job.id for job in jobs]
    claimed = [await state_of(store, job.id) for job in jobs]
    assert [(job.state, job.attempts) for job in claimed] == [(JobState.CLAIMED, 1)] * 3
    await first.stop(1.0)
    assert first.pending() == [] and first.active() == []
    await asyncio.sleep(0.4)  # past due: a stopped scheduler places nothing
    assert first_place.calls == []
    # Handed back uncounted: they were never started.
    assert [(j.id, j.state, j.attempts) for j in await store.jobs.load_unfinished()] == [
        (job.id, JobState.PENDING, 0) for job in jobs]
    late = await first.schedule(new_job(0.0, index=9))  # stored, not armed
    assert first.pending() == []

    second_place = FakePlace()
    second = make_scheduler(second_place)
    await second.start()
    await wait_until(lambda: len(second_place.calls) == 4)
    await asyncio.sleep(0.2)  # polls and timers: nothing is placed twice
    assert sorted(call.job.id for call in second_place.calls) == sorted(
        [job.id for job in jobs] + [late.id])
    assert await store.jobs.load_unfinished() == []


async def test_stop_waits_for_an_attempt_within_the_grace_period(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    place = FakePlace(hold_s=0.2)
    scheduler = make_scheduler(place)
    await scheduler.start()
    job = await scheduler.schedule(new_job(0.0))
    await wait_until(lambda: len(place.calls) == 1)
    await scheduler.stop(2.0)
    assert not place.calls[0].cancelled
    assert (await state_of(store, job.id)).state is JobState.DONE


async def test_stop_cancels_attempts_past_the_grace_and_requeues_them(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    place = FakePlace(hold_s=30.0)
    scheduler = make_scheduler(place)
    await scheduler.start()
    job = await scheduler.schedule(new_job(0.0))
    await wait_until(lambda: len(place.calls) == 1)
    loop = asyncio.get_running_loop()
    stop_started = loop.time()
    await scheduler.stop(0.1)
    assert loop.time() - stop_started < 2.0
    assert place.calls[0].cancelled
    requeued = await state_of(store, job.id)
    assert (requeued.state, requeued.attempts, requeued.last_result) == (
        JobState.PENDING, 1, "interrupted")
    assert requeued.claimed_by is None


async def test_cancel_drops_a_pending_job_but_not_one_being_placed(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    place, observer = FakePlace(hold_s=0.3), Recorder()
    scheduler = make_scheduler(place, observer=observer)
    await scheduler.start()
    later = await scheduler.schedule(new_job(0.8, index=1))
    now = await scheduler.schedule(new_job(0.0, index=2))
    await wait_until(lambda: len(place.calls) == 1)

    assert await scheduler.cancel(later.id)
    assert not await scheduler.cancel(now.id)  # already being placed
    assert [job.id for job in scheduler.active()] == [now.id]
    assert scheduler.pending() == []
    await asyncio.sleep(1.0)
    assert [call.job.id for call in place.calls] == [now.id]
    assert (await state_of(store, later.id)).state is JobState.CANCELLED
    assert ("finished", later.id, JobState.CANCELLED) in observer.events


async def test_advance_brings_a_pending_job_forward(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    place = FakePlace()
    scheduler = make_scheduler(place)
    await scheduler.start()
    job = await scheduler.schedule(new_job(30.0))
    due_at = utc_now() + timedelta(seconds=0.2)
    assert await scheduler.advance(job.id, due_at)
    assert not await scheduler.advance(job.id, due_at + timedelta(seconds=5))  # never later
    await wait_until(lambda: len(place.calls) == 1)
    assert abs(place.calls[0].wall_time - due_at.timestamp()) < START_TOLERANCE_S


async def test_a_long_attempt_keeps_its_lease_so_no_other_node_takes_the_job(
    store: Store, database_url: str, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    place = FakePlace(hold_s=1.0)
    node_a = make_scheduler(place, lease_s=0.3)
    other_store = await open_store(database_url, utc_now=utc_now)
    try:
        other_place = FakePlace()
        node_b = make_scheduler(other_place, node_id="node-b", jobs=other_store.jobs,
                                poll_interval_s=0.02)
        await node_a.start()
        job = await node_a.schedule(new_job(0.0))
        await wait_until(lambda: len(place.calls) == 1)
        await node_b.start()  # polls every 20 ms for expired leases and due jobs
        leases = []
        while place.running:  # bounded by hold_s
            held = await state_of(store, job.id)
            leases.append(held.lease_expires_at)
            assert held.claimed_by == "node-a" and held.state is JobState.RUNNING
            await asyncio.sleep(0.1)
        await wait_until(lambda: not node_a.active())
        assert other_place.calls == []
        assert len(set(leases)) >= 3  # renewed every lease_s / 3
        assert (await state_of(store, job.id)).state is JobState.DONE
        await node_b.stop(0.0)
    finally:
        await other_store.close()


async def test_a_backlog_respects_max_concurrent_and_starts_in_due_order(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    jobs = [await store.jobs.create(new_job(-60.0 + index, index)) for index in range(30)]
    place = FakePlace(hold_s=0.03)
    scheduler = make_scheduler(place, max_concurrent=4)
    await scheduler.start()
    await wait_until(lambda: len(place.calls) == 30 and not scheduler.active())
    assert place.most_running == 4
    assert [call.job.id for call in place.calls] == [job.id for job in jobs]
    assert await store.jobs.load_unfinished() == []


async def test_start_requeues_this_nodes_interrupted_attempt_at_once(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    # A previous incarnation of node-a claimed and started a job, then died.
    job = await store.jobs.create(new_job(-1.0))
    assert await store.jobs.claim(job.id, "node-a", utc_now(), lease_s=600) is not None
    assert await store.jobs.mark_running(job.id, "node-a", utc_now())
    other = await store.jobs.create(new_job(-1.0, index=1))
    assert await store.jobs.claim(other.id, "node-x", utc_now(), lease_s=600) is not None

    place = FakePlace()
    scheduler = make_scheduler(place)
    await scheduler.start()
    await wait_until(lambda: len(place.calls) == 1)
    await asyncio.sleep(0.15)
    assert [(call.job.id, call.job.attempts) for call in place.calls] == [(job.id, 2)]
    held = await state_of(store, other.id)  # node-x's lease still holds
    assert (held.state, held.claimed_by) == (JobState.CLAIMED, "node-x")


@dataclass
class SteppedClock:
    """The shifted wall clock, plus a step an administrator (or NTP) made."""

    step_s: float = 0.0

    def __call__(self) -> float:
        return wall_clock() + self.step_s


async def test_a_wall_clock_stepped_back_does_not_start_a_job_early(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    clock = SteppedClock()
    place = FakePlace()
    scheduler = make_scheduler(place, wall_clock=clock)
    await scheduler.start()
    job = await scheduler.schedule(new_job(0.8))  # timers set by the clock as it was
    await asyncio.sleep(0.1)
    clock.step_s = -0.4  # the clock goes back: due_at is 0.4 s further away
    await wait_until(lambda: len(place.calls) == 1)
    started_by_clock = place.calls[0].wall_time + clock.step_s
    assert job.due_at.timestamp() - 0.002 <= started_by_clock
    assert started_by_clock < job.due_at.timestamp() + START_TOLERANCE_S


async def test_a_wall_clock_stepped_forward_is_caught_by_the_poll(
    store: Store, make_scheduler: Callable[..., CallbackScheduler]
) -> None:
    clock = SteppedClock()
    place = FakePlace()
    scheduler = make_scheduler(place, wall_clock=clock, poll_interval_s=0.1)
    await scheduler.start()
    job = await scheduler.schedule(new_job(30.0))
    loop = asyncio.get_running_loop()
    stepped_at = loop.time()
    clock.step_s = 31.0  # now past due by this node's clock; the timer is 30 s away
    await wait_until(lambda: len(place.calls) == 1, limit_s=2.0)
    assert place.calls[0].loop_time - stepped_at < 0.1 + START_TOLERANCE_S
    assert place.calls[0].job.id == job.id
