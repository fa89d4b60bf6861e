"""Durable callback jobs: the database is the truth, the scheduler's memory a cache.

States and who moves a job between them::

    create()            -> pending
    claim_due()/claim()/claim_ids()
                        pending -> claimed        (attempts + 1, lease set)
    mark_running()      claimed -> running        (lease optionally extended)
    release_unstarted() claimed -> pending        (attempts - 1: never started)
    renew_lease()       claimed|running, same node: lease extended
    finish()            claimed|running -> done | failed
    reschedule()        claimed|running -> pending  (retry at due_at)
    update_held_many()  mark_running()/finish()/reschedule() of many held jobs,
                        one commit for the lot (the scheduler's group commit)
    cancel()            pending -> cancelled
    advance()           pending: due_at moved earlier
    release_expired_leases()
                        claimed|running with lease_expires_at <= now
                        -> pending (or failed when attempts are used up)
    release_node()      claimed|running by one node, lease or not (that node
                        restarted: its attempts died with it)
                        -> pending (or failed when attempts are used up)

The guarantee, exactly:

1. ``create()`` returns only after the transaction committed (SQLite
   ``synchronous=FULL``: the WAL is fsynced; PostgreSQL: the default
   ``synchronous_commit=on``). A ``kill -9`` or a power cut after it returns
   cannot lose the job.
2. Claiming is one atomic conditional update from ``pending``: however many
   nodes race, each claim hands a job to exactly one of them (SQLite: a single
   ``UPDATE ... WHERE state = 'pending' ... RETURNING`` under the database's
   write lock; PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` then the
   update, in one transaction).
3. While its lease holds (``now < lease_expires_at``) a claimed job belongs
   to its node alone: nothing else can claim, requeue or finish it (when the
   node passes its ``node_id``, ``finish``/``reschedule`` of a job it no
   longer holds returns False and changes nothing).
4. A finished job (done, failed, cancelled) never changes state again and is
   never claimed again.
5. A node that dies leaves its jobs claimed until the lease expires; then
   ``release_expired_leases`` puts them back to pending (or failed if their
   attempts are used up) and any node runs them. So a crash never loses a
   job; a job whose node died after placing the call but before ``finish``
   can be placed once more after the lease: at-least-once across crashes,
   exactly once otherwise. Keep the lease longer than one attempt (ring
   time plus margin) or renew it, and keep node clocks NTP-synchronised:
   ``now`` comes from each node, so clock skew shortens or lengthens leases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.exc import IntegrityError

from .engine import POSTGRESQL, Database
from .errors import JobAlreadyActiveError
from .models import (
    UNFINISHED_JOB_STATES,
    CallbackJob,
    CallbackMethod,
    JobState,
    NewCallbackJob,
)
from .tables import callback_jobs

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 120.0
_HELD_STATES = (JobState.CLAIMED, JobState.RUNNING)


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldJobUpdate:
    """One change to a job the node holds, for ``update_held_many``:

    - ``state`` RUNNING: ``mark_running`` (lease extended to ``lease_expires_at``)
    - DONE or FAILED: ``finish`` with ``result`` as ``last_result``
    - PENDING: ``reschedule`` for another attempt at ``retry_at``
    """

    job_id: int
    state: JobState
    result: str | None = None
    retry_at: datetime | None = None
    lease_expires_at: datetime | None = None


def job_from_row(row: RowMapping) -> CallbackJob:
    return CallbackJob(
        id=row["id"],
        correlation_id=row["correlation_id"],
        owner_extension=row["owner_extension"],
        target_number=row["target_number"],
        method=CallbackMethod(row["method"]),
        trunk=row["trunk"],
        caller_id=row["caller_id"],
        flow=row["flow"],
        component_id=row["component_id"],
        deduplication_key=row["deduplication_key"],
        context=dict(row["context"] or {}),
        due_at=row["due_at"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        retry_interval_s=float(row["retry_interval_s"]),
        state=JobState(row["state"]),
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
        lease_expires_at=row["lease_expires_at"],
        last_result=row["last_result"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class CallbackJobRepository:
    __slots__ = ("_database", "_utc_now")

    def __init__(self, database: Database, utc_now: Callable[[], datetime]) -> None:
        self._database = database
        self._utc_now = utc_now

    async def create(self, job: NewCallbackJob) -> CallbackJob:
        """Store a pending job; returns once it is committed to disk.

        Raises JobAlreadyActiveError when ``job.deduplication_key`` is set and
        an unfinished job holds the same key.
        """
        if job.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        now = self._utc_now()
        statement = (
            sa.insert(callback_jobs)
            .values(
                correlation_id=job.correlation_id,
                owner_extension=job.owner_extension,
                target_number=job.target_number,
                method=CallbackMethod(job.method).value,
                trunk=job.trunk,
                caller_id=job.caller_id,
                flow=job.flow,
                component_id=job.component_id,
                deduplication_key=job.deduplication_key,
                context=dict(job.context),
                due_at=job.due_at,
                attempts=0,
                max_attempts=job.max_attempts,
                retry_interval_s=job.retry_interval_s,
                state=JobState.PENDING.value,
                created_at=now,
                updated_at=now,
            )
            .returning(*callback_jobs.c)
        )
        try:
            async with self._database.write() as connection:
                row = (await connection.execute(statement)).mappings().one()
        except IntegrityError as error:
            if job.deduplication_key is not None:
                raise JobAlreadyActiveError(job.deduplication_key) from error
            raise
        created = job_from_row(row)
        log.info("callback job %d created for extension %s, due %s (correlation %s)",
                 created.id, created.owner_extension, created.due_at.isoformat(),
                 created.correlation_id)
        return created

    async def get(self, job_id: int) -> CallbackJob | None:
        statement = sa.select(callback_jobs).where(callback_jobs.c.id == job_id)
        async with self._database.read() as connection:
            row = (await connection.execute(statement)).mappings().one_or_none()
        return None if row is None else job_from_row(row)

    async def load_unfinished(self) -> list[CallbackJob]:
        """Every pending, claimed or running job, earliest due first."""
        statement = (
            sa.select(callback_jobs)
            .where(callback_jobs.c.state.in_([state.value for state in UNFINISHED_JOB_STATES]))
            .order_by(callback_jobs.c.due_at, callback_jobs.c.id)
        )
        async with self._database.read() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [job_from_row(row) for row in rows]

    async def claim_due(
        self, node_id: str, now: datetime, limit: int, *, lease_s: float = DEFAULT_LEASE_S
    ) -> list[CallbackJob]:
        """Atomically claim up to ``limit`` pending jobs due at ``now``."""
        if limit < 1:
            return []
        due = (
            sa.select(callback_jobs.c.id)
            .where(callback_jobs.c.state == JobState.PENDING.value,
                   callback_jobs.c.due_at <= now)
            .order_by(callback_jobs.c.due_at, callback_jobs.c.id)
            .limit(limit)
        )
        async with self._database.write() as connection:
            if self._database.dialect_name == POSTGRESQL:
                # Rows another node is claiming right now are skipped, not
                # waited for; the ones returned stay locked until commit.
                locked = await connection.execute(due.with_for_update(skip_locked=True))
                ids: Sequence[int] | sa.Select[Any] = [row[0] for row in locked]
                if not ids:
                    return []
            else:
                # One statement under the write lock (BEGIN IMMEDIATE).
                ids = due
            statement = self._claim_statement(node_id, now, lease_s).where(
                callback_jobs.c.id.in_(ids)
            )
            rows = (await connection.execute(statement)).mappings().all()
        claimed = sorted((job_from_row(row) for row in rows), key=lambda j: (j.due_at, j.id))
        if claimed:
            log.debug("node %s claimed %d due jobs", node_id, len(claimed))
        return claimed

    async def claim(
        self, job_id: int, node_id: str, now: datetime, *, lease_s: float = DEFAULT_LEASE_S
    ) -> CallbackJob | None:
        """Claim one pending job (due or not); None if it is not pending."""
        statement = self._claim_statement(node_id, now, lease_s).where(
            callback_jobs.c.id == job_id
        )
        async with self._database.write() as connection:
            row = (await connection.execute(statement)).mappings().one_or_none()
        return None if row is None else job_from_row(row)

    async def claim_ids(
        self, job_ids: Sequence[int], node_id: str, now: datetime, *,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> list[CallbackJob]:
        """Claim those of ``job_ids`` still pending (due or not), in one
        transaction: the scheduler's batched ``claim()``.

        The others (held by another node, finished, cancelled, unknown) are
        left out of the result. Same atomicity as ``claim_due``: on
        PostgreSQL the rows are locked with ``FOR UPDATE SKIP LOCKED`` first,
        so two nodes claiming overlapping batches never wait on or deadlock
        with each other; a row another node is claiming is simply not ours.
        """
        if not job_ids:
            return []
        ids: Sequence[int] = list(job_ids)
        async with self._database.write() as connection:
            if self._database.dialect_name == POSTGRESQL:
                locked = await connection.execute(
                    sa.select(callback_jobs.c.id)
                    .where(callback_jobs.c.id.in_(ids),
                           callback_jobs.c.state == JobState.PENDING.value)
                    .order_by(callback_jobs.c.id)
                    .with_for_update(skip_locked=True))
                ids = [row[0] for row in locked]
                if not ids:
                    return []
            statement = self._claim_statement(node_id, now, lease_s).where(
                callback_jobs.c.id.in_(ids))
            rows = (await connection.execute(statement)).mappings().all()
        return sorted((job_from_row(row) for row in rows), key=lambda j: (j.due_at, j.id))

    def _claim_statement(self, node_id: str, now: datetime, lease_s: float) -> sa.Update:
        return (
            sa.update(callback_jobs)
            .where(callback_jobs.c.state == JobState.PENDING.value)
            .values(
                state=JobState.CLAIMED.value,
                claimed_by=node_id,
                claimed_at=now,
                lease_expires_at=now + timedelta(seconds=lease_s),
                attempts=callback_jobs.c.attempts + 1,
                updated_at=now,
            )
            .returning(*callback_jobs.c)
        )

    async def mark_running(
        self, job_id: int, node_id: str, now: datetime, *, lease_s: float | None = None
    ) -> bool:
        """The node started the attempt (dialing the callback leg)."""
        values: dict[str, Any] = {"state": JobState.RUNNING.value, "updated_at": now}
        if lease_s is not None:
            values["lease_expires_at"] = now + timedelta(seconds=lease_s)
        return await self._update_held(job_id, node_id, values,
                                       from_states=(JobState.CLAIMED,))

    async def release_unstarted(
        self, job_ids: Sequence[int], node_id: str, now: datetime
    ) -> list[CallbackJob]:
        """Hand back jobs ``node_id`` claimed but never started (still
        ``claimed``, not ``running``): pending again, and the claim's attempt
        is not counted. Returns the jobs changed."""
        if not job_ids:
            return []
        statement = (
            sa.update(callback_jobs)
            .where(callback_jobs.c.id.in_(list(job_ids)),
                   callback_jobs.c.state == JobState.CLAIMED.value,
                   callback_jobs.c.claimed_by == node_id)
            .values(state=JobState.PENDING.value, attempts=callback_jobs.c.attempts - 1,
                    claimed_by=None, claimed_at=None, lease_expires_at=None, updated_at=now)
            .returning(*callback_jobs.c)
        )
        async with self._database.write() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [job_from_row(row) for row in rows]

    async def renew_lease(self, job_id: int, node_id: str, now: datetime, lease_s: float) -> bool:
        """Extend the lease of a job this node holds; False if it lost it."""
        values = {"lease_expires_at": now + timedelta(seconds=lease_s), "updated_at": now}
        return await self._update_held(job_id, node_id, values, from_states=_HELD_STATES,
                                       lease_valid_at=now)

    async def finish(
        self,
        job_id: int,
        result: str,
        *,
        state: JobState = JobState.DONE,
        node_id: str | None = None,
    ) -> bool:
        """End a claimed or running job as done (or failed).

        With ``node_id`` only the node holding the job may finish it. Returns
        False (and changes nothing) when the job is not held (by that node).
        """
        if state not in (JobState.DONE, JobState.FAILED):
            raise ValueError(f"finish() ends a job as done or failed, not {state}")
        values = {"state": state.value, "last_result": result, "lease_expires_at": None,
                  "updated_at": self._utc_now()}
        return await self._update_held(job_id, node_id, values, from_states=_HELD_STATES)

    async def reschedule(
        self, job_id: int, due_at: datetime, result: str, *, node_id: str | None = None
    ) -> bool:
        """Put a held job back to pending for a retry at ``due_at``."""
        values = {"state": JobState.PENDING.value, "due_at": due_at, "last_result": result,
                  "claimed_by": None, "claimed_at": None, "lease_expires_at": None,
                  "updated_at": self._utc_now()}
        return await self._update_held(job_id, node_id, values, from_states=_HELD_STATES)

    async def update_held_many(
        self, updates: Sequence[HeldJobUpdate], node_id: str
    ) -> list[bool]:
        """Apply many ``HeldJobUpdate`` to jobs ``node_id`` holds in one
        transaction: one commit (one fsync) and at most four statements
        however many updates. Returns, per update, whether it was applied
        (False: the node does not hold that job, as with ``finish``). All or
        nothing if the transaction fails. A job may appear twice (running,
        then its outcome): running marks are applied first.
        """
        if not updates:
            return []
        for update in updates:
            if update.state is JobState.PENDING and update.retry_at is None:
                raise ValueError(f"job {update.job_id}: a retry needs retry_at")
            if update.state is JobState.RUNNING and update.lease_expires_at is None:
                raise ValueError(f"job {update.job_id}: running needs lease_expires_at")
            if update.state in (JobState.DONE, JobState.FAILED, JobState.PENDING) \
                    and update.result is None:
                raise ValueError(f"job {update.job_id}: an outcome needs a result")
            if update.state in (JobState.CLAIMED, JobState.CANCELLED):
                raise ValueError(f"job {update.job_id}: cannot update to {update.state}")
        now = self._utc_now()
        held = (
            sa.select(callback_jobs.c.id, callback_jobs.c.state)
            .where(callback_jobs.c.id.in_({update.job_id for update in updates}),
                   callback_jobs.c.state.in_([state.value for state in _HELD_STATES]),
                   callback_jobs.c.claimed_by == node_id)
        )
        if self._database.dialect_name == POSTGRESQL:  # SQLite: BEGIN IMMEDIATE locks
            held = held.order_by(callback_jobs.c.id).with_for_update()
        by_id = callback_jobs.c.id == sa.bindparam("b_id")
        async with self._database.write() as connection:
            state_of = {row[0]: row[1] for row in await connection.execute(held)}
            running = [{"b_id": u.job_id, "b_lease": u.lease_expires_at, "b_now": now}
                       for u in updates
                       if u.state is JobState.RUNNING
                       and state_of.get(u.job_id) == JobState.CLAIMED.value]
            finished = [{"b_id": u.job_id, "b_state": u.state.value, "b_result": u.result,
                         "b_now": now}
                        for u in updates
                        if u.state in (JobState.DONE, JobState.FAILED) and u.job_id in state_of]
            retried = [{"b_id": u.job_id, "b_result": u.result, "b_due_at": u.retry_at,
                        "b_now": now}
                       for u in updates if u.state is JobState.PENDING and u.job_id in state_of]
            # executemany: one round trip per kind of update
            if running:
                await connection.execute(
                    sa.update(callback_jobs).where(by_id).values(
                        state=JobState.RUNNING.value, lease_expires_at=sa.bindparam("b_lease"),
                        updated_at=sa.bindparam("b_now")),
                    running)
            if finished:
                await connection.execute(
                    sa.update(callback_jobs).where(by_id).values(
                        state=sa.bindparam("b_state"), last_result=sa.bindparam("b_result"),
                        lease_expires_at=None, updated_at=sa.bindparam("b_now")),
                    finished)
            if retried:
                await connection.execute(
                    sa.update(callback_jobs).where(by_id).values(
                        state=JobState.PENDING.value, due_at=sa.bindparam("b_due_at"),
                        last_result=sa.bindparam("b_result"), claimed_by=None,
                        claimed_at=None, lease_expires_at=None,
                        updated_at=sa.bindparam("b_now")),
                    retried)
        applied = [update.job_id in state_of and (
                       update.state is not JobState.RUNNING
                       or state_of[update.job_id] == JobState.CLAIMED.value)
                   for update in updates]
        for update, changed in zip(updates, applied, strict=True):
            if not changed:
                log.warning("job_id=%d update to %s not applied: not held by %s%s",
                            update.job_id, update.state, node_id,
                            " (or already running)" if update.state is JobState.RUNNING
                            else "")
        return applied

    async def cancel(self, job_id: int, result: str = "cancelled") -> bool:
        """Cancel a job nobody holds yet; False if it is not pending."""
        statement = (
            sa.update(callback_jobs)
            .where(callback_jobs.c.id == job_id,
                   callback_jobs.c.state == JobState.PENDING.value)
            .values(state=JobState.CANCELLED.value, last_result=result,
                    updated_at=self._utc_now())
        )
        async with self._database.write() as connection:
            return (await connection.execute(statement)).rowcount == 1

    async def advance(self, job_id: int, due_at: datetime) -> bool:
        """Bring a pending job forward to ``due_at``; False (nothing changed)
        when it is not pending or already due at or before ``due_at``."""
        statement = (
            sa.update(callback_jobs)
            .where(callback_jobs.c.id == job_id,
                   callback_jobs.c.state == JobState.PENDING.value,
                   callback_jobs.c.due_at > due_at)
            .values(due_at=due_at, updated_at=self._utc_now())
        )
        async with self._database.write() as connection:
            return (await connection.execute(statement)).rowcount == 1

    async def release_expired_leases(self, now: datetime) -> list[CallbackJob]:
        """Requeue jobs whose node let the lease run out (it died, or hung).

        Returns the jobs changed: back to pending, or failed when their
        attempts are used up (``last_result`` = ``lease_expired``).
        """
        return await self._release(callback_jobs.c.lease_expires_at <= now, now,
                                   "lease_expired")

    async def release_node(
        self, node_id: str, now: datetime, result: str = "interrupted"
    ) -> list[CallbackJob]:
        """Requeue every job ``node_id`` holds, whatever its lease says.

        For a node that knows its own attempts are gone: it restarted after
        a crash (the previous incarnation died holding them), or it stopped
        and cancelled them. The interrupted attempt counts: back to pending,
        or failed when the attempts are used up (``last_result`` = ``result``).
        """
        return await self._release(callback_jobs.c.claimed_by == node_id, now, result)

    async def _release(
        self, which: sa.ColumnElement[bool], now: datetime, result: str
    ) -> list[CallbackJob]:
        held = sa.and_(
            callback_jobs.c.state.in_([state.value for state in _HELD_STATES]), which)
        exhausted = callback_jobs.c.attempts >= callback_jobs.c.max_attempts
        common = {"claimed_by": None, "claimed_at": None, "lease_expires_at": None,
                  "last_result": result, "updated_at": now}
        async with self._database.write() as connection:
            failed = await connection.execute(
                sa.update(callback_jobs).where(held, exhausted)
                .values(state=JobState.FAILED.value, **common).returning(*callback_jobs.c)
            )
            failed_rows = failed.mappings().all()
            requeued = await connection.execute(
                sa.update(callback_jobs).where(held, sa.not_(exhausted))
                .values(state=JobState.PENDING.value, **common).returning(*callback_jobs.c)
            )
            requeued_rows = requeued.mappings().all()
        released = [job_from_row(row) for row in (*requeued_rows, *failed_rows)]
        for job in released:
            log.warning("job_id=%d correlation_id=%s released (%s): now %s (attempt %d of %d)",
                        job.id, job.correlation_id, result, job.state, job.attempts,
                        job.max_attempts)
        return released

    async def _update_held(
        self,
        job_id: int,
        node_id: str | None,
        values: Mapping[str, Any],
        *,
        from_states: Sequence[JobState],
        lease_valid_at: datetime | None = None,
    ) -> bool:
        conditions = [callback_jobs.c.id == job_id,
                      callback_jobs.c.state.in_([state.value for state in from_states])]
        if node_id is not None:
            conditions.append(callback_jobs.c.claimed_by == node_id)
        if lease_valid_at is not None:
            conditions.append(callback_jobs.c.lease_expires_at > lease_valid_at)
        statement = sa.update(callback_jobs).where(*conditions).values(**values)
        async with self._database.write() as connection:
            changed = (await connection.execute(statement)).rowcount == 1
        if not changed:
            log.warning("callback job %d not changed: not held%s in states %s", job_id,
                        f" by {node_id}" if node_id else "",
                        ",".join(state.value for state in from_states))
        return changed

