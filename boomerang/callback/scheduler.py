"""The durable callback scheduler: each due job placed once, on time, on one node.

The database is the truth (store/jobs.py); this object is a timing cache in
front of it. ``schedule()`` commits the job before it returns (the service
calls it before it rejects the trigger call), then keeps it in memory, in a
heap ordered by ``due_at`` with one ``loop.call_at`` armed for the head. The
life of a job here:

1. ``claim_lead_s`` (0.25 s) before ``due_at`` the timer fires and the jobs
   due within the next ``2 * claim_lead_s`` are claimed in one write (one
   atomic update: whichever node's claim lands first owns a job).
2. Each claimed job waits, on its own timer, for the exact ``due_at``;
   then it is marked running and ``place(job)`` is called: the flow runner
   places the callback leg and returns an ``AttemptResult`` once the leg
   answered or failed (the rest of the flow goes on in ``result.story``,
   which the scheduler does not wait for). While ``place`` runs the lease is
   renewed every ``lease_s / 3``.
3. The outcome is committed before the slot is freed:

    ANSWERED                              -> done
    BUSY/NO_ANSWER/FAILED/NOT_CONFIRMED   -> pending again, due now + retry_interval_s,
                                             while attempts < max_attempts; else failed
    REFUSED                               -> failed at once
    place() raised                        -> counted as FAILED (logged), retried as such

   ``last_result`` is the outcome and its detail ("busy 486").

Why claim ahead, and why the "running" mark and the outcomes go through one
writer. Every database write costs 1.5-2 ms of this process's CPU on SQLite
(SQLAlchemy, the driver's thread hop, the fsync) and writes queue on one
lock. Claiming at the due time and marking running before ``place`` puts two
queued writes between the timer and the INVITE; at 100 jobs/s that missed
the 50 ms target for 3.5-14 % of jobs (docs/PERFORMANCE.md). So the claim is
taken early, in batches, and at ``due_at`` nothing stands between the timer
and ``place`` but the loop: the running mark is queued just before
``place`` is called and committed, with the outcomes of other attempts, by
one writer task (group commit) a few milliseconds later. Recovery treats
claimed and running jobs alike, so a mark still in flight changes nothing.

Timing. Due times are UTC instants; the loop runs on its monotonic clock.
Timers are set at ``loop.time() + (instant - wall_clock())``, computed when
set; when one fires the wall clock is asked again and a timer that fired
early (the wall clock was stepped back) waits for the rest, so a job never
starts before its ``due_at`` by this node's clock. A wall clock stepped
forward makes jobs due before their timers fire; the poll below claims them
within ``poll_interval_s``. Without clock steps a job starts within a
millisecond or two of ``due_at`` (the loop's timer resolution plus whatever
callback is running), as long as its claim, taken ``claim_lead_s`` ahead,
did not take longer than that; the other tail is the cyclic garbage
collector, whose generation-2 pass stalls the whole loop for 35-40 ms unless
the server calls ``gc.freeze()`` once started. At most ``max_concurrent`` jobs are held at
once (claimed or being placed); jobs due beyond that wait in due order and
are claimed, at most ``CLAIM_BATCH`` per write, as slots free up, so a
backlog (10,000 jobs due after an outage) starts at the pace the attempts
end, never all in the same millisecond.

Several nodes on one database. Every node polls every ``poll_interval_s``:
it requeues jobs whose lease expired (their node died or hung) and claims
due pending jobs it has no timer for (created by another node, or left by
a dead one). Any number of nodes may race for a job: the claim is atomic
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), the loser's claim comes back
without it and the loser forgets the job. Node clocks must be
NTP-synchronised: due times and leases written by one node are judged by
another's clock, so a skew of ``x`` seconds moves due times by ``x`` and
shortens or lengthens leases by ``x`` (keep it far below ``lease_s / 3``).

Recovery (``start()``). Jobs this ``node_id`` still holds (claimed or
running) belong to a previous incarnation that died (``kill -9``, power
cut): nothing of this process is placing them, so they go back to pending at
once, without waiting for their lease, counting the interrupted attempt
(failed if that was the last one). Expired leases of other nodes are
released too. Then every unfinished job is loaded and armed; past-due ones
are claimed at once, as the concurrency limit allows, earliest first.

The guarantee, exactly. Without crashes each job is placed exactly once per
attempt and finished once: one claim wins, the winner alone may write the
outcome, and a finished job is never claimed again. A scheduled job is never
lost: it is durable before ``schedule()`` returns, and any state a crash can
leave it in (pending, claimed, running) is picked up again by a restart of
the same node at once, or by any other node after the lease. The one
duplicate a crash can cause: if the node dies after ``place`` was called
(the INVITE may be out) and before the attempt's outcome commits (a few
milliseconds after the final response to that INVITE), the database cannot
know whether the user was reached, and the job is placed once more after
the restart, or after the lease on another node. So the user can get a
second callback for an attempt that was ringing, or had been answered, when
the node died. That is the right side to err on: the alternative, finishing
the job before dialing, turns every crash during ringing into a callback
silently lost, and a user abroad who hung up on the company number has no
other way to get the call; an answered call carried by a dead process is
dead air anyway (its signalling and media died with it), so the second
callback is the one that serves. Every placement counts against
``max_attempts``, so crashes never make a job ring more often than that; if
the interrupted attempt was the last one allowed, the job ends failed
(``interrupted``, or ``lease_expired`` on another node) instead of ringing
again. Jobs claimed ahead but not yet started when the node dies are placed
after the restart too, their claim counted as an attempt (the database
cannot tell them from started ones).

``stop(grace_s)``: no more claims; timers are dropped (pending jobs stay in
the database for the next start or another node); jobs claimed ahead but not
started are handed back uncounted; attempts being placed get ``grace_s`` to
finish; those still placing are then cancelled (the runner sends CANCEL) and
their jobs go back to pending at once (the attempt counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Protocol

from ..store import CallbackJob, CallbackJobRepository, JobState, NewCallbackJob
from ..store.jobs import HeldJobUpdate
from .attempt import AttemptOutcome, AttemptResult

log = logging.getLogger(__name__)

CLAIM_LEAD_S = 0.25              # claims are taken this long (to twice as long) before due
CLAIM_BATCH = 50                 # most jobs claimed in one write
UPDATE_BATCH = 500               # most running marks and outcomes in one write
EARLY_TOLERANCE_S = 0.001        # a timer this close to its instant counts as there
CLAIM_RETRY_S = 1.0              # after a failed claim (database unreachable)
OUTCOME_RETRY_DELAYS_S = (0.05, 0.25, 1.0, 2.0)  # an outcome write that failed is retried
CANCEL_WAIT_S = 5.0              # how long stop() lets cancelled attempts unwind
LAST_RESULT_CHARS = 64           # callback_jobs.last_result is VARCHAR(64)

Place = Callable[[CallbackJob], Awaitable[AttemptResult]]


class SchedulerObserver(Protocol):
    """What the scheduler reports (metrics, tests). Every method defaults to
    doing nothing; subclass and override the ones you need."""

    def job_scheduled(self, job: CallbackJob) -> None:
        """``schedule()`` stored a new job."""
        return None

    def attempt_started(self, job: CallbackJob, delay_s: float) -> None:
        """``place(job)`` is being called ``delay_s`` after ``job.due_at``."""
        return None

    def attempt_finished(self, job: CallbackJob, result: AttemptResult) -> None:
        return None

    def job_finished(self, job: CallbackJob, state: JobState) -> None:
        """The job ended done, failed or cancelled (by this node)."""
        return None


class NullSchedulerObserver(SchedulerObserver):
    """Reports nowhere."""


class _Phase(Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


def _ids(jobs: Iterable[CallbackJob]) -> str:
    return ",".join(str(job.id) for job in jobs)


def result_text(result: AttemptResult) -> str:
    """What goes into ``last_result``: the outcome and its detail."""
    text = f"{result.outcome.value} {result.detail}".strip()
    return text[:LAST_RESULT_CHARS]


class CallbackScheduler:
    """Arms, claims, places and settles callback jobs (see the module doc)."""

    def __init__(
        self,
        jobs: CallbackJobRepository,
        *,
        place: Place,
        node_id: str,
        lease_s: float = 120.0,
        poll_interval_s: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
        max_concurrent: int = 200,
        observer: SchedulerObserver | None = None,
        claim_lead_s: float = CLAIM_LEAD_S,
    ) -> None:
        if lease_s <= 0 or poll_interval_s <= 0:
            raise ValueError("lease_s and poll_interval_s must be positive")
        if claim_lead_s < 0:
            raise ValueError("claim_lead_s must not be negative")
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.node_id = node_id
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        self.max_concurrent = max_concurrent
        # A claim waits up to 2 * claim_lead_s for its due time, unrenewed.
        self.claim_lead_s = min(claim_lead_s, lease_s / 6)
        self._jobs = jobs
        self._place = place
        self._wall_clock = wall_clock
        self._observer: SchedulerObserver = observer or NullSchedulerObserver()
        self._phase = _Phase.NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        # Armed jobs, and a heap of (due timestamp, id) over them; an entry
        # whose job was disarmed or re-armed at another time is stale and
        # skipped. One timer, for the head.
        self._pending: dict[int, CallbackJob] = {}
        self._heap: list[tuple[float, int]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")                # wall time the timer is set for
        # Jobs this node holds (claimed or being placed), each with its task;
        # ``_waiting``: claimed ahead, waiting for due_at, not started.
        self._active: dict[int, CallbackJob] = {}
        self._attempts: dict[int, asyncio.Task[None]] = {}
        self._waiting: set[int] = set()
        self._claiming = asyncio.Lock()              # one claim at a time: slots add up
        self._wakeup = asyncio.Event()               # time to claim, or a slot freed
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stop_deadline = float("inf")           # loop time
        self._deadline_moved = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        # Running marks and outcomes waiting for the writer (group commit);
        # a None future: nobody waits for that one (running marks).
        self._updates: list[tuple[HeldJobUpdate, asyncio.Future[bool] | None]] = []
        self._updates_queued = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._writing = False

    # -- public ----------------------------------------------------------------------

    async def start(self) -> None:
        """Recover what a previous incarnation left, arm every unfinished job,
        then start claiming and polling."""
        if self._phase is not _Phase.NEW:
            raise RuntimeError(f"scheduler already {self._phase.value}")
        self._phase = _Phase.STARTING
        self._loop = asyncio.get_running_loop()
        now = self._utc_now()
        interrupted = await self._jobs.release_node(self.node_id, now, "interrupted")
        expired = await self._jobs.release_expired_leases(now)
        for job in (*interrupted, *expired):
            if job.state is JobState.FAILED:
                self._notify_finished(job)
        unfinished = await self._jobs.load_unfinished()
        if self._phase is not _Phase.STARTING:
            return  # stop() came while recovering: every job stays in the database
        self._phase = _Phase.RUNNING
        armed = past_due = 0
        for job in unfinished:
            if job.state is JobState.PENDING:
                armed += 1
                past_due += job.due_at <= now
                self._arm(job)
        log.info("node_id=%s scheduler started: %d interrupted attempts of this node "
                 "requeued, %d expired leases released, %d jobs armed (%d past due)",
                 self.node_id, len(interrupted), len(expired), armed, past_due)
        self._writer = asyncio.create_task(self._write_updates(), name="scheduler-writer")
        self._loops = [asyncio.create_task(self._claim_loop(), name="scheduler-claim"),
                       asyncio.create_task(self._poll_loop(), name="scheduler-poll")]
        self._wakeup.set()

    async def schedule(self, job: NewCallbackJob) -> CallbackJob:
        """Store ``job`` (committed when this returns), then arm it.

        JobAlreadyActiveError passes through (an unfinished job holds the
        same deduplication key). After ``stop()`` the job is stored but not
        armed: the next start, or another node, places it.
        """
        created = await self._jobs.create(job)
        log.info("job_id=%d correlation_id=%s scheduled: callback to %s due %s", created.id,
                 created.correlation_id, created.target_number, created.due_at.isoformat())
        self._notify("job_scheduled", created)
        if self._phase in (_Phase.STARTING, _Phase.RUNNING):
            self._arm(created)
        return created

    async def cancel(self, job_id: int) -> bool:
        """Cancel a pending job; False once it is claimed (from
        ``claim_lead_s`` before it is due), being placed or finished."""
        if not await self._jobs.cancel(job_id):
            return False
        job = self._disarm(job_id) or await self._jobs.get(job_id)
        if job is not None:
            job = replace(job, state=JobState.CANCELLED, last_result="cancelled")
            log.info("job_id=%d correlation_id=%s cancelled", job.id, job.correlation_id)
            self._notify_finished(job)
        return True

    async def advance(self, job_id: int, due_at: datetime) -> bool:
        """Bring a pending job forward to ``due_at`` (never later); False when
        it is not pending (or claimed already) or already due by then."""
        if not await self._jobs.advance(job_id, due_at):
            return False
        job = self._pending.get(job_id)
        if job is not None and self._phase is _Phase.RUNNING:
            log.info("job_id=%d correlation_id=%s brought forward to %s", job_id,
                     job.correlation_id, due_at.isoformat())
            self._arm(replace(job, due_at=due_at))
        return True

    def pending(self) -> list[CallbackJob]:
        """Jobs armed on this node, not claimed yet."""
        return sorted(self._pending.values(), key=lambda job: (job.due_at, job.id))

    def active(self) -> list[CallbackJob]:
        """Jobs this node holds: claimed (waiting for due_at) or being placed."""
        return sorted(self._active.values(), key=lambda job: (job.due_at, job.id))

    async def stop(self, grace_s: float) -> None:
        """No new claims; wait up to ``grace_s`` for attempts being placed,
        then cancel the rest and requeue their jobs. Pending jobs stay in the
        database. A second call while stopping only shortens the grace."""
        loop = asyncio.get_running_loop()
        self._stop_deadline = min(self._stop_deadline, loop.time() + max(0.0, grace_s))
        self._deadline_moved.set()
        if self._phase is _Phase.NEW:
            self._phase = _Phase.STOPPED
            self._stopped.set()
            return
        if self._phase in (_Phase.STOPPING, _Phase.STOPPED):
            await self._stopped.wait()
            return
        self._phase = _Phase.STOPPING
        try:
            await self._stop()
        finally:
            self._phase = _Phase.STOPPED
            self._stopped.set()

    # -- arming ----------------------------------------------------------------------

    def _utc_now(self) -> datetime:
        return datetime.fromtimestamp(self._wall_clock(), UTC)

    def _arm(self, job: CallbackJob) -> None:
        """Keep ``job`` in memory until it is time to claim it."""
        if job.id in self._active:
            return
        self._pending[job.id] = job
        due = job.due_at.timestamp()
        heapq.heappush(self._heap, (due, job.id))
        if due - self.claim_lead_s < self._timer_at:
            self._set_timer()

    def _disarm(self, job_id: int) -> CallbackJob | None:
        return self._pending.pop(job_id, None)  # its heap entry goes stale

    def _head(self) -> tuple[float, int] | None:
        while self._heap:
            due, job_id = self._heap[0]
            job = self._pending.get(job_id)
            if job is not None and job.due_at.timestamp() == due:
                return due, job_id
            heapq.heappop(self._heap)
        return None

    def _set_timer(self) -> None:
        """One timer, ``claim_lead_s`` before the earliest armed job is due;
        none while every slot is taken (a slot freed wakes the claimer)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, float("inf")
        head = self._head()
        if head is None or self._phase not in (_Phase.STARTING, _Phase.RUNNING) \
                or self._free_slots() < 1:
            return
        assert self._loop is not None
        self._timer_at = head[0] - self.claim_lead_s
        delay_s = self._timer_at - self._wall_clock()
        if delay_s <= EARLY_TOLERANCE_S:
            self._wakeup.set()
        else:
            self._timer = self._loop.call_at(self._loop.time() + delay_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        self._wakeup.set()

    def _take_due(self, count: int) -> list[CallbackJob]:
        """Armed jobs due within ``2 * claim_lead_s``, earliest first."""
        horizon = self._wall_clock() + 2 * self.claim_lead_s + EARLY_TOLERANCE_S
        taken: list[CallbackJob] = []
        while len(taken) < count:
            head = self._head()
            if head is None or head[0] > horizon:
                break
            heapq.heappop(self._heap)
            taken.append(self._pending.pop(head[1]))
        return taken

    def _free_slots(self) -> int:
        return self.max_concurrent - len(self._active)

    # -- claiming --------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while self._phase is _Phase.RUNNING:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                claimed = await self._claim_due_now()
            except Exception:  # a bug must not stop every callback of the node
                log.exception("node_id=%s claiming failed unexpectedly", self.node_id)
                claimed = False
            if not claimed:
                await self._sleep_unless_stopping(CLAIM_RETRY_S)
            if self._phase is _Phase.RUNNING:
                self._set_timer()

    async def _claim_due_now(self) -> bool:
        """Claim the armed jobs whose time has come, while slots are free.
        False when the database failed (the jobs stay armed)."""
        async with self._claiming:
            while self._phase is _Phase.RUNNING:
                batch = self._take_due(min(self._free_slots(), CLAIM_BATCH))
                if not batch:
                    return True
                try:
                    claimed = await self._jobs.claim_ids([job.id for job in batch],
                                                         self.node_id, self._utc_now(),
                                                         lease_s=self.lease_s)
                except Exception:
                    log.exception("node_id=%s claiming %d jobs failed (job_id=%s); retrying "
                                  "in %.1f s", self.node_id, len(batch), _ids(batch),
                                  CLAIM_RETRY_S)
                    for job in batch:
                        if self._phase is _Phase.RUNNING and job.id not in self._pending:
                            self._arm(job)
                    return False
                mine = {job.id for job in claimed}
                for job in batch:
                    if job.id not in mine:
                        log.info("job_id=%d correlation_id=%s not claimed: another node has "
                                 "it, or it is no longer pending", job.id, job.correlation_id)
                self._start_attempts(claimed)
        return True

    async def _poll_loop(self) -> None:
        while self._phase is _Phase.RUNNING:
            await self._sleep_unless_stopping(self.poll_interval_s)
            if self._phase is not _Phase.RUNNING:
                return
            try:
                await self._poll()
            except Exception:
                log.exception("node_id=%s polling the job table failed; next poll in %.1f s",
                              self.node_id, self.poll_interval_s)

    async def _poll(self) -> None:
        """Requeue expired leases; claim due jobs this node has no timer for."""
        now = self._utc_now()
        for job in await self._jobs.release_expired_leases(now):
            if job.state is JobState.PENDING and self._phase is _Phase.RUNNING:
                self._arm(job)
            elif job.state is JobState.FAILED:
                self._notify_finished(job)
        async with self._claiming:
            limit = min(self._free_slots(), CLAIM_BATCH)
            if self._phase is not _Phase.RUNNING or limit < 1:
                return
            claimed = await self._jobs.claim_due(self.node_id, now, limit,
                                                 lease_s=self.lease_s)
            if claimed:
                log.info("node_id=%s claimed %d due jobs by polling (job_id=%s)",
                         self.node_id, len(claimed), _ids(claimed))
                self._start_attempts(claimed)

    def _start_attempts(self, claimed: list[CallbackJob]) -> None:
        """One task per claimed job: it waits for due_at, then places it."""
        assert self._loop is not None
        for job in claimed:
            self._disarm(job.id)  # a job claimed by polling may be armed here too
            self._active[job.id] = job
            self._waiting.add(job.id)
            self._attempts[job.id] = self._loop.create_task(
                self._attempt(job), name=f"callback-job-{job.id}")

    # -- one attempt -----------------------------------------------------------------

    async def _attempt(self, job: CallbackJob) -> None:
        try:
            await self._until_due(job)
            if self._phase is not _Phase.RUNNING:
                return  # stop() hands the claim back
            self._waiting.discard(job.id)
            now = self._wall_clock()
            job = replace(job, state=JobState.RUNNING)
            self._active[job.id] = job
            self._queue_update(HeldJobUpdate(
                job_id=job.id, state=JobState.RUNNING,
                lease_expires_at=datetime.fromtimestamp(now + self.lease_s, UTC)))
            delay_s = now - job.due_at.timestamp()
            log.info("job_id=%d correlation_id=%s attempt %d of %d: placing the callback to "
                     "%s, %.1f ms after due", job.id, job.correlation_id, job.attempts,
                     job.max_attempts, job.target_number, delay_s * 1000)
            self._notify("attempt_started", job, delay_s)
            result = await self._place_keeping_lease(job)
            self._notify("attempt_finished", job, result)
            await self._settle(job, result)
        finally:
            self._active.pop(job.id, None)
            self._attempts.pop(job.id, None)
            self._wakeup.set()  # a slot is free

    async def _until_due(self, job: CallbackJob) -> None:
        while True:  # ends: each pass sleeps what is left by the wall clock
            remaining_s = job.due_at.timestamp() - self._wall_clock()
            if remaining_s <= EARLY_TOLERANCE_S:
                return
            await asyncio.sleep(remaining_s)

    async def _place_keeping_lease(self, job: CallbackJob) -> AttemptResult:
        placing = asyncio.ensure_future(self._place_safely(job))
        try:
            while True:
                done, _ = await asyncio.wait({placing}, timeout=self.lease_s / 3)
                if done:
                    return placing.result()
                await self._renew(job)
        except asyncio.CancelledError:
            placing.cancel()  # the runner sends CANCEL on the callback leg
            await asyncio.wait({placing}, timeout=CANCEL_WAIT_S)
            raise

    async def _place_safely(self, job: CallbackJob) -> AttemptResult:
        try:
            return await self._place(job)
        except Exception as error:
            log.exception("job_id=%d correlation_id=%s place() raised; counted as a failed "
                          "attempt", job.id, job.correlation_id)
            return AttemptResult(outcome=AttemptOutcome.FAILED,
                                 detail=f"exception {type(error).__name__}")

    async def _renew(self, job: CallbackJob) -> None:
        try:
            held = await self._jobs.renew_lease(job.id, self.node_id, self._utc_now(),
                                                self.lease_s)
        except Exception:
            log.exception("job_id=%d correlation_id=%s renewing the lease failed; trying "
                          "again in %.1f s", job.id, job.correlation_id, self.lease_s / 3)
            return
        if not held:
            # The node stalled past its lease and the job may be running
            # elsewhere; the leg already rings, so it is not torn down, but
            # this node will not be allowed to write the outcome.
            log.error("job_id=%d correlation_id=%s lease lost while placing: another node "
                      "may place it too", job.id, job.correlation_id)

    async def _settle(self, job: CallbackJob, result: AttemptResult) -> None:
        """Store the attempt's outcome: done, retry later, or failed."""
        text = result_text(result)
        if result.retry and job.attempts < job.max_attempts:
            retry_at = self._utc_now() + timedelta(seconds=job.retry_interval_s)
            if await self._store_outcome(job, HeldJobUpdate(
                    job_id=job.id, state=JobState.PENDING, result=text, retry_at=retry_at)):
                log.info("job_id=%d correlation_id=%s attempt %d: %s; retry at %s", job.id,
                         job.correlation_id, job.attempts, text, retry_at.isoformat())
                self._active.pop(job.id, None)
                if self._phase is _Phase.RUNNING:
                    self._arm(replace(job, state=JobState.PENDING, due_at=retry_at,
                                      claimed_by=None, claimed_at=None,
                                      lease_expires_at=None, last_result=text))
            return
        state = JobState.DONE if result.outcome is AttemptOutcome.ANSWERED else JobState.FAILED
        if await self._store_outcome(job, HeldJobUpdate(job_id=job.id, state=state,
                                                        result=text)):
            log.info("job_id=%d correlation_id=%s %s after %d attempt(s): %s", job.id,
                     job.correlation_id, state.value, job.attempts, text)
            self._notify_finished(replace(job, state=state, last_result=text,
                                          lease_expires_at=None))

    # -- the writer (group commit) ---------------------------------------------------

    def _queue_update(self, update: HeldJobUpdate) -> asyncio.Future[bool] | None:
        """Queue ``update`` for the writer; a future for outcomes, which the
        caller awaits, none for running marks, which nobody waits for."""
        stored: asyncio.Future[bool] | None = None
        if update.state is not JobState.RUNNING:
            assert self._loop is not None
            stored = self._loop.create_future()
        self._updates.append((update, stored))
        self._updates_queued.set()
        return stored

    async def _store_outcome(self, job: CallbackJob, outcome: HeldJobUpdate) -> bool:
        """Queue ``outcome`` and wait until it is committed; retried a few
        times if the database fails."""
        for delay_s in (*OUTCOME_RETRY_DELAYS_S, None):
            stored = self._queue_update(outcome)
            assert stored is not None
            try:
                changed = await stored
            except Exception:
                if delay_s is None:
                    log.exception("job_id=%d correlation_id=%s outcome (%s) could not be "
                                  "stored; the job stays held and is placed again when its "
                                  "lease expires", job.id, job.correlation_id,
                                  outcome.state.value)
                    return False
                log.warning("job_id=%d correlation_id=%s storing the outcome (%s) failed; "
                            "retrying in %.2f s", job.id, job.correlation_id,
                            outcome.state.value, delay_s, exc_info=True)
                await asyncio.sleep(delay_s)
                continue
            if not changed:
                log.error("job_id=%d correlation_id=%s outcome (%s) not stored: this node "
                          "no longer holds the job (lease lost)", job.id, job.correlation_id,
                          outcome.state.value)
            return changed
        return False  # not reached: the last pass returns

    async def _write_updates(self) -> None:
        """Every update queued while a write is in flight goes into the next
        write: a burst of attempts starting or ending costs a few commits, not
        one each, and claims do not queue behind a train of small writes."""
        while True:
            await self._updates_queued.wait()
            self._updates_queued.clear()
            while self._updates:
                batch = self._updates[:UPDATE_BATCH]
                del self._updates[:UPDATE_BATCH]
                batch = [(update, stored) for update, stored in batch
                         if stored is None or not stored.done()]
                if not batch:
                    continue
                self._writing = True
                try:
                    applied = await self._jobs.update_held_many(
                        [update for update, _ in batch], self.node_id)
                except Exception as error:
                    log.exception("node_id=%s storing %d job updates failed", self.node_id,
                                  len(batch))
                    for _, stored in batch:
                        if stored is not None and not stored.done():
                            stored.set_exception(error)
                    continue
                finally:
                    self._writing = False
                for (_, stored), changed in zip(batch, applied, strict=True):
                    if stored is not None and not stored.done():
                        stored.set_result(changed)

    # -- stopping --------------------------------------------------------------------

    async def _stop(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopping.set()
        self._wakeup.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, float("inf")
        self._pending.clear()
        self._heap.clear()
        # The loops end after the database call in flight; claims that land
        # meanwhile start attempts, which are handed back or waited for below.
        await self._wait_until_deadline(set(self._loops))
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self._hand_back_unstarted()
        placing = set(self._attempts.values())
        if placing:
            log.info("node_id=%s stopping: waiting up to %.1f s for %d attempts being placed",
                     self.node_id, max(0.0, self._stop_deadline - loop.time()), len(placing))
        await self._wait_until_deadline(placing)
        late = [task for task in self._attempts.values() if not task.done()]
        if late:
            log.warning("node_id=%s stopping: cancelling %d attempts still being placed "
                        "(job_id=%s); their jobs go back to pending", self.node_id, len(late),
                        ",".join(map(str, sorted(self._attempts))))
            for task in late:
                task.cancel()
            await asyncio.wait(late, timeout=CANCEL_WAIT_S)
        await self._stop_writer()
        if late:
            await self._requeue_interrupted()
        log.info("node_id=%s scheduler stopped", self.node_id)

    async def _hand_back_unstarted(self) -> None:
        """Jobs claimed ahead of their due time and not started: back to
        pending, uncounted, for the next start or another node."""
        waiting = [self._attempts[job_id] for job_id in self._waiting
                   if job_id in self._attempts]
        for task in waiting:
            task.cancel()
        if waiting:
            await asyncio.wait(waiting, timeout=CANCEL_WAIT_S)
        unstarted = sorted(self._waiting)
        self._waiting.clear()
        if not unstarted:
            return
        try:
            released = await self._jobs.release_unstarted(unstarted, self.node_id,
                                                          self._utc_now())
        except Exception:
            log.exception("node_id=%s handing back %d claimed jobs failed (job_id=%s); they "
                          "are requeued at the next start or after their lease",
                          self.node_id, len(unstarted), ",".join(map(str, unstarted)))
            return
        log.info("node_id=%s stopping: %d claimed jobs not started handed back (job_id=%s)",
                 self.node_id, len(released), _ids(released))

    async def _stop_writer(self) -> None:
        """Let the writer store what is queued (bounded), then end it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CANCEL_WAIT_S
        while (self._updates or self._writing) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _requeue_interrupted(self) -> None:
        try:
            for job in await self._jobs.release_node(self.node_id, self._utc_now(),
                                                     "interrupted"):
                if job.state is JobState.FAILED:
                    self._notify_finished(job)
        except Exception:
            log.exception("node_id=%s requeueing the cancelled attempts failed; the next "
                          "start (or another node after the lease) requeues them",
                          self.node_id)

    async def _wait_until_deadline(self, tasks: set[asyncio.Task[None]]) -> None:
        loop = asyncio.get_running_loop()
        while tasks:
            remaining_s = self._stop_deadline - loop.time()
            if remaining_s <= 0:
                return
            self._deadline_moved.clear()
            moved = asyncio.ensure_future(self._deadline_moved.wait())
            try:
                await asyncio.wait({*tasks, moved}, timeout=remaining_s,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                moved.cancel()
            tasks = {task for task in tasks if not task.done()}

    async def _sleep_unless_stopping(self, delay_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay_s)

    # -- reporting -------------------------------------------------------------------

    def _notify(self, event: str, *args: object) -> None:
        try:
            getattr(self._observer, event)(*args)
        except Exception:
            log.exception("scheduler observer failed on %s", event)

    def _notify_finished(self, job: CallbackJob) -> None:
        self._notify("job_finished", job, job.state)


__all__ = [
    "CLAIM_BATCH",
    "CLAIM_LEAD_S",
    "CallbackScheduler",
    "NullSchedulerObserver",
    "SchedulerObserver",
    "result_text",
]
