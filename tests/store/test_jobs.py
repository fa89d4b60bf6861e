"""Callback jobs: durable create, load, claim, lease, finish, retry, cancel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from boomerang.store import (
    JobAlreadyActiveError,
    JobState,
    NewCallbackJob,
    Store,
    open_store,
)

JobFactory = Callable[..., NewCallbackJob]


async def test_create_returns_a_pending_job_with_every_field(
    store: Store, job_factory: JobFactory, now: datetime
) -> None:
    job = await store.jobs.create(job_factory(context={"trigger_did": "+48221234567"},
                                              max_attempts=4, retry_interval_s=12.5))
    assert job.state is JobState.PENDING
    assert (job.attempts, job.max_attempts, job.retry_interval_s) == (0, 4, 12.5)
    assert job.due_at == now and job.due_at.utcoffset() == timedelta(0)
    assert job.context == {"trigger_did": "+48221234567"}
    assert job.claimed_by is None and job.lease_expires_at is None
    assert await store.jobs.get(job.id) == job


async def test_a_created_job_survives_closing_and_reopening_the_store(
    database_url: str, job_factory: JobFactory
) -> None:
    first = await open_store(database_url)
    job = await first.jobs.create(job_factory())
    await first.close()
    second = await open_store(database_url)
    try:
        assert await second.jobs.get(job.id) == job
        assert [found.id for found in await second.jobs.load_unfinished()] == [job.id]
    finally:
        await second.close()


async def test_load_unfinished_returns_pending_claimed_and_running_earliest_first(
    store: Store, job_factory: JobFactory, now: datetime
) -> None:
    late = await store.jobs.create(job_factory(due_at=now + timedelta(seconds=30)))
    early = await store.jobs.create(job_factory(due_at=now - timedelta(seconds=30)))
    claimed = await store.jobs.create(job_factory(due_at=now))
    running = await store.jobs.create(job_factory(due_at=now + timedelta(seconds=1)))
    done = await store.jobs.create(job_factory(due_at=now))
    cancelled = await store.jobs.create(job_factory(due_at=now))
    for job_id in (claimed.id, running.id, done.id):
        assert await store.jobs.claim(job_id, "node-a", now) is not None
    assert await store.jobs.mark_running(running.id, "node-a", now)
    assert await store.jobs.finish(done.id, "answered", node_id="node-a")
    assert await store.jobs.cancel(cancelled.id)

    unfinished = await store.jobs.load_unfinished()
    assert [job.id for job in unfinished] == [early.id, claimed.id, running.id, late.id]
    assert [job.state for job in unfinished] == [
        JobState.PENDING, JobState.CLAIMED, JobState.RUNNING, JobState.PENDING]


async def test_claim_due_takes_only_due_pending_jobs_and_sets_the_lease(
    store: Store, job_factory: JobFactory, now: datetime
) -> None:
    due = await store.jobs.create(job_factory(due_at=now))
    future = await store.jobs.create(job_factory(due_at=now + timedelta(seconds=5)))
    claimed = await store.jobs.claim_due("node-a", now, limit=10, lease_s=60)
    assert [job.id for job in claimed] == [due.id]
    job = claimed[0]
    assert job.state is JobState.CLAIMED and job.claimed_by == "node-a"
    assert job.claimed_at == now and job.lease_expires_at == now + timedelta(seconds=60)
    assert job.attempts == 1
    assert await store.jobs.claim_due("node-b", now, limit=10) == []
    assert (await store.jobs.get(future.id)).state is JobState.PENDING  # type: ignore[union-attr]


async def test_claim_due_respects_the_limit_in_due_order(
    store: Store, job_factory: JobFactory, now: datetime
) -> None:
    ids = [(await store.jobs.create(job_factory(due_at=now - timedelta(seconds=s)))).id
           for s in range(5)]
    claimed = await store.jobs.claim_due("node-a", now, limit=2)
    assert [job.id for job in claimed] == [ids[4], ids[3]]


async def test_claim_of_one_job_succeeds_once(
    store: Store, job_factory: JobFactory, now: datetime
) -> None:
    job = await store.jobs.create(job_factory())
    assert (await store.jobs.claim(job.id, "node-a", now)) is not None
    assert await store.jobs.claim(job.id, "node-b", now) is None
    assert await store.jobs.claim(job.id + 1000, "node-b", now) is None


async def test_a_finished_job_is_never_claimed_again(
    store: Store, job_factory: JobFactory, now: datetime
) -> None:
    job = await store.jobs.create(job_factory())
    await store.jobs.claim_due("node-a", now, limit=1)
    assert await store.jobs.finish(job.id, "answered", node_id="node-a")
    later = now + timedelta(days=1)
    assert await store.jobs.release_expired_leases(later) == []
    assert await store.jobs.claim_due("node-b", later, limit=10) == []
    assert await store.jobs.claim(job.id, "node-b", later) is None
    assert not await store.jobs.reschedule(job.id, later, "busy")
    finished = await store.jobs.get(job.id)
    assert finished is not None and finished.state is JobState.DONE
    assert finished.last_result == "answered" and finished.finished


async def test_an_expired_lease_returns_the_job_to_pending_for_another_node(
    store: Store, job_factory: JobFactory, now: datetime
) -> None:
    job = await store.jobs.create(job_factory())
    await store.jobs.claim_due("node-a", now, limit=1, lease_s=60)
    # While the lease holds nobody else gets the job.
    assert await store.jobs.release_expired_leases(now + timedelta(seconds=59)) == []
    assert await store.jobs.claim_due("node-b", now + timedelta(seconds=59), limit=1) == []

    released = await store.jobs.release_expired_leases(now + timedelta(seconds=60))
    assert [(j.id, j.state, j.last_result) for j in released] == [
        (job.id, JobState.PENDING, "lease_expired")]
    assert released[0].claimed_by is None
    again = await store.jobs.claim_due("node-b", now + timedelta(seconds=61), limit=1)
    assert [(j.id, j.claimed_by, j.attempts) for j in again] == [(job.id, "node-b", 2)]
    # node-a wakes up late: it no longer holds the job and changes nothing.
    assert not await store.jobs.finish(job.id, "answered", node_id="node-a")
    assert not await store.jobs.renew_lease(job.id, "node-a", now, 60)
    assert (await store.jobs.get(job.id)).claimed_by == "node-b"  # type: ignore[union-attr]


async def test_an_expired_lease_with_attempts_used_up_fails_the_job(
    store: Store, job_factory: JobFactory, now: datetime
) -> None:
    job = await store.jobs.create(job_factory(max_attempts=1))
    await store.jobs.claim_due("node-a", now, limit=1, lease_s=10)
    await store.jobs.mark_running(job.id, "node-a", now)
    released = await store.jobs.release_expired_leases(now + timedelta(seconds=10))
    assert [(j.id, j.state) for j in released] == [(job.id, JobState.FAILED)]
    assert await store.jobs.load_unfinished() == []


async def test_renew_lease_keeps_a_long_attempt_from_being_released(
    store: Store, job_factory: JobFactory, now: datetime
) -> None:
    job = await store.jobs.create(job_factory())
    await store.jobs.claim_due("node-a", now, limit=1, lease_s=30)
    assert await store.jobs.mark_running(job.id, "node-a", now + timedelta(seconds=1))
    assert await store.jobs.renew_lease(job.id, "node-a", now + timedelta(seconds=20), 30)
    assert await store.jobs.release_expired_leases(now + timedelta(seconds=45)) == []
    assert len(await store.jobs.release_expired_leases(now + timedelta(seconds=50))) == 1


async def test_reschedule_puts_a_held_job_back_for_a_retry(
    store: Store, job_factory: JobFactory, now: datetime
) -> None:
    job = await store.jobs.create(job_factory())
    await store.jobs.claim_due("node-a", now, limit=1)
    retry_at = now + timedelta(seconds=30)
    assert await store.jobs.reschedule(job.id, retry_at, "busy", node_id="node-a")
    pending = await store.jobs.get(job.id)
    assert pending is not None
    assert (pending.state, pending.due_at, pending.last_result, pending.attempts) == (
        JobState.PENDING, retry_at, "busy", 1)
    assert pending.claimed_by is None and pending.lease_expires_at is None
    assert await store.jobs.claim_due("node-a", now + timedelta(seconds=29), limit=1) == []
    retried = await store.jobs.claim_due("node-b", retry_at, limit=1)
    assert [(j.id, j.attempts) for j in retried] == [(job.id, 2)]
    assert await store.jobs.finish(job.id, "no_answer", state=JobState.FAILED, node_id="node-b")
    assert (await store.jobs.get(job.id)).state is JobState.FAILED  # type: ignore[union-attr]


async def test_cancel_only_touches_a_pending_job(
    store: Store, job_factory: JobFactory, now: datetime
) -> None:
    pending = await store.jobs.create(job_factory())
    claimed = await store.jobs.create(job_factory())
    await store.jobs.claim(claimed.id, "node-a", now)
    assert await store.jobs.cancel(pending.id)
    assert not await store.jobs.cancel(claimed.id)
    assert (await store.jobs.get(pending.id)).state is JobState.CANCELLED  # type: ignore[union-attr]
    assert await store.jobs.claim_due("node-a", now, limit=5) == []


async def test_one_unfinished_job_per_deduplication_key(
    store: Store, job_factory: JobFactory, now: datetime
) -> None:
    first = await store.jobs.create(job_factory(deduplication_key="+48600100200"))
    with pytest.raises(JobAlreadyActiveError, match="48600100200"):
        await store.jobs.create(job_factory(deduplication_key="+48600100200"))
    other = await store.jobs.create(job_factory(deduplication_key="+48600999999"))
    await store.jobs.claim(first.id, "node-a", now)
    with pytest.raises(JobAlreadyActiveError):  # claimed still counts as active
        await store.jobs.create(job_factory(deduplication_key="+48600100200"))
    await store.jobs.finish(first.id, "answered", node_id="node-a")
    again = await store.jobs.create(job_factory(deduplication_key="+48600100200"))
    assert len({first.id, other.id, again.id}) == 3


async def test_finish_refuses_states_other_than_done_or_failed(
    store: Store, job_factory: JobFactory
) -> None:
    job = await store.jobs.create(job_factory())
    with pytest.raises(ValueError, match="done or failed"):
        await store.jobs.finish(job.id, "x", state=JobState.PENDING)
