"""The callback service: trigger calls in, durable jobs, callbacks out.

``CallbackService`` is the call manager's ``on_trunk_call``. For an INVITE
from a trunk's sources (the manager already refused anything else):

1. The DID (trunks.did_of) must be one of ``dids``; else 404 at once.
2. A DID whose flow does not start with ``callback`` is answered and runs
   its flow (``FlowRunner.run_inbound``): the administrator chose to charge
   that caller.
3. Otherwise the trigger: 180 Ringing at once (the transaction layer sent
   100 Trying), the caller's identity and the rules of ``authorise.py``;
   when allowed, the job is written to the database (``scheduler.schedule``
   commits before it returns) due ``ring_time + delay`` from now, with the
   mobile as its deduplication key: a second trigger while a callback for
   the mobile is pending or active folds into the first.
4. After ``ring_time`` the trigger gets ``reject_code``; it is never
   answered. If the caller hangs up first (CANCEL), the callback still
   happens: the job is brought forward to ``delay`` after the CANCEL.
   Refused triggers ring and are rejected exactly the same way, so a caller
   cannot tell a refusal from an acceptance (no probing of which numbers
   are registered).

When a job is due the scheduler calls ``place(job)``: the flow runner
places the callback leg (``FlowRunner.place_callback``) and, once it
answered, runs the rest of the flow. When the story ends its records get
their cost and saving estimates (rates.py).

Draining (SIGTERM): ``begin_drain()`` refuses new triggers (503), the
scheduler stops claiming (pending jobs stay in the database for the next
start); ``drain(grace_s)`` waits for the calls in progress up to the grace
period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..call.calls import InboundCall
from ..call.trunk_shaping import did_of
from ..config import Config
from ..store import (
    CallbackJob,
    CallbackMethod,
    CallRecordFilter,
    JobAlreadyActiveError,
    LegKind,
    NewCallbackJob,
    Store,
)
from .attempt import AttemptOutcome, AttemptResult
from .authorise import TriggerDecision, authorise_trigger
from .identity import caller_identity
from .metrics import ServiceMetrics
from .rates import RateTable, estimate_story

if TYPE_CHECKING:
    from ..call.manager import CallManager
    from ..call.trunks import Trunk
    from ..flow.components.callback import CallbackParams
    from ..flow.runner import FlowRunner
    from .scheduler import CallbackScheduler

log = logging.getLogger(__name__)

DRAINING_STATUS = 503
# After a story, how long its legs' records may take to be written (50 x 0.1 s).
ESTIMATE_WAIT_STEPS = 50
ESTIMATE_WAIT_STEP_S = 0.1


class CallbackService:
    """Triggers, jobs and callbacks (see the module doc)."""

    def __init__(self, manager: CallManager, config: Config, *, store: Store,
                 runner: FlowRunner, entitled: frozenset[str],
                 metrics: ServiceMetrics | None = None, rates: RateTable | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.manager = manager
        self.config = config
        self.store = store
        self.runner = runner
        self.entitled = entitled
        self.metrics = metrics or ServiceMetrics()
        self.rates = rates
        self.wall_clock = wall_clock
        self.scheduler: CallbackScheduler | None = None
        self.draining = False
        self.stories: set[asyncio.Task[Any]] = set()
        self.timezone = ZoneInfo(config.numbers.timezone)

    def install(self, scheduler: CallbackScheduler) -> None:
        self.scheduler = scheduler
        self.manager.on_trunk_call = self.on_trunk_call

    # -- triggers ------------------------------------------------------------------

    async def on_trunk_call(self, call: InboundCall, trunk: Trunk) -> None:
        request = call.leg.invite
        if self.draining:
            self.metrics.trigger("refused", "draining")
            call.reject(DRAINING_STATUS)
            return
        number = did_of(request, trunk.settings)
        did = self.config.did(number)
        if did is None:
            log.info("call_id=%s to %r on trunk %s: no such DID: 404", call.call_id, number,
                     trunk.name)
            self.metrics.trigger("refused", "unknown_did")
            call.reject(404)
            return
        flow = self.config.flows[did.flow]
        caller = caller_identity(request, trunk.settings.country)
        if flow.entry.type != "callback":
            owner = None
            if caller.e164 is not None:
                owner = next((e for e in self.config.extensions if caller.e164 in e.mobiles),
                             None)
            self.manager.annotate(call, trigger_did=did.number, trigger_caller=caller.raw,
                                  owner_extension=owner.number if owner else None)
            await self.runner.run_inbound(call, flow, did=did, owner=owner)
            return
        params: CallbackParams = flow.entry.params  # type: ignore[assignment]
        call.ring()
        decision = await self._decide(caller, call)
        job: CallbackJob | None = None
        result = "refused"
        if decision.allowed:
            assert decision.owner is not None and decision.mobile is not None
            try:
                job = await self._schedule(call, did.number, did.trunk, flow.name, params,
                                           decision)
                result = "accepted"
            except JobAlreadyActiveError:
                result = "duplicate"
                log.info("call_id=%s trigger from %s: a callback is already pending; folded",
                         call.call_id, decision.mobile)
            except Exception:  # whatever the database said, nothing was promised
                log.exception("call_id=%s trigger from %s: the job could not be stored; "
                              "no callback promised", call.call_id, decision.mobile)
                decision = TriggerDecision(allowed=False, reason="store_error",
                                           owner=decision.owner, mobile=decision.mobile)
        else:
            log.info("call_id=%s trigger to %s from %r refused: %s (%s)", call.call_id,
                     did.number, caller.raw, decision.reason, decision.detail)
        self.metrics.trigger(result, decision.reason if result == "refused" else result)
        self.manager.annotate(
            call, trigger_did=did.number, trigger_caller=caller.e164 or caller.raw,
            owner_extension=decision.owner.number if decision.owner else None,
            callback_target=job.target_number if job else None,
            **({"result": "refused"} if result == "refused" else {}))
        await self._ring_then_reject(call, params)
        if job is not None:
            await self._bring_forward(job, params)

    async def _decide(self, caller: Any, call: InboundCall) -> TriggerDecision:
        now = datetime.fromtimestamp(self.wall_clock(), UTC)
        local_now = now.astimezone(self.timezone)
        owner = None
        if caller.e164 is not None:
            owner = next((e for e in self.config.extensions if caller.e164 in e.mobiles), None)
        minutes_today = 0.0
        in_progress = 0
        if owner is not None:
            if owner.max_minutes_per_day:
                minutes_today = await self._minutes_today(owner.number, local_now)
            in_progress = sum(1 for c in self.manager.calls
                              if c.owner_extension == owner.number and c is not call)
        return authorise_trigger(self.config, caller, entitled=self.entitled,
                                 local_now=local_now, minutes_today=minutes_today,
                                 calls_in_progress=in_progress)

    async def _minutes_today(self, extension: str, local_now: datetime) -> float:
        midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
        legs = await self.store.records.query(CallRecordFilter(
            owner_extension=extension, since=midnight.astimezone(UTC),
            leg_kind=LegKind.CALLBACK))
        return sum(leg.billable_s or 0.0 for leg in legs) / 60.0

    async def _schedule(self, call: InboundCall, did_number: str, did_trunk: str, flow: str,
                        params: CallbackParams, decision: TriggerDecision) -> CallbackJob:
        assert self.scheduler is not None and decision.owner is not None
        method = CallbackMethod(params.method)
        if method is CallbackMethod.CALLER:
            target = decision.mobile
        elif method is CallbackMethod.NUMBER:
            target = params.number
        else:
            target = params.extension
        assert target is not None
        due = datetime.fromtimestamp(self.wall_clock() + params.ring_time + params.delay, UTC)
        job = await self.scheduler.schedule(NewCallbackJob(
            correlation_id=call.correlation_id, owner_extension=decision.owner.number,
            target_number=target, method=method, due_at=due, flow=flow,
            component_id=params.id,
            trunk=None if method is CallbackMethod.EXTENSION else (params.trunk or did_trunk),
            caller_id=params.caller_id or did_number, max_attempts=1 + params.retries,
            retry_interval_s=params.retry_interval, deduplication_key=decision.mobile,
            context={"did": did_number, "trigger_call_id": call.call_id}))
        log.info("call_id=%s job_id=%d trigger from %s accepted: callback to %s due %s",
                 call.call_id, job.id, decision.mobile, target, due.isoformat())
        return job

    async def _ring_then_reject(self, call: InboundCall, params: CallbackParams) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(call.ended), params.ring_time)
        if not call.ended.done():
            call.reject(params.reject_code)

    async def _bring_forward(self, job: CallbackJob, params: CallbackParams) -> None:
        """The trigger ended now: the callback is due ``delay`` from now, which
        is earlier than planned when the caller hung up before ``ring_time``."""
        assert self.scheduler is not None
        due = datetime.fromtimestamp(self.wall_clock() + params.delay, UTC)
        if due < job.due_at - timedelta(milliseconds=1):
            await self.scheduler.advance(job.id, due)

    # -- callbacks -----------------------------------------------------------------

    async def place(self, job: CallbackJob) -> AttemptResult:
        """The scheduler's ``place``: one attempt of ``job``."""
        flow = self.config.flows.get(job.flow)
        owner = self.config.extension(job.owner_extension)
        if flow is None or owner is None or not owner.callback:
            log.warning("job_id=%d correlation_id=%s refused: flow %r or extension %s is "
                        "gone or has callback disabled", job.id, job.correlation_id, job.flow,
                        job.owner_extension)
            return AttemptResult(outcome=AttemptOutcome.REFUSED, detail="no longer configured")
        if job.deduplication_key is not None and job.deduplication_key not in self.entitled:
            return AttemptResult(outcome=AttemptOutcome.REFUSED, detail="not licensed")
        self.metrics.callbacks_placed.inc()
        result = await self.runner.place_callback(job, flow=flow)
        self.metrics.callbacks.labels(outcome=result.outcome.value).inc()
        log.info("job_id=%d correlation_id=%s attempt %d: %s %s", job.id, job.correlation_id,
                 job.attempts, result.outcome.value, result.detail)
        if result.story is not None:
            self.stories.add(result.story)
            result.story.add_done_callback(self.stories.discard)
            task = asyncio.ensure_future(self._after_story(result.story, job.correlation_id))
            self.stories.add(task)
            task.add_done_callback(self.stories.discard)
        return result

    async def _after_story(self, story: asyncio.Task[Any], correlation_id: str) -> None:
        """Once a story ended and its legs' records are written: the duration
        and bridge metrics, then the cost and saving estimates."""
        with contextlib.suppress(BaseException):
            await asyncio.shield(story)
        records = self.store.records
        legs = []
        for _ in range(ESTIMATE_WAIT_STEPS):
            legs = await records.query(CallRecordFilter(correlation_id=correlation_id))
            if legs and all(leg.ended_at is not None for leg in legs):
                break
            await asyncio.sleep(ESTIMATE_WAIT_STEP_S)
        for leg in legs:
            if leg.answered_at is None or leg.billable_s is None:
                continue
            self.metrics.durations.labels(kind=leg.leg_kind.value).observe(leg.billable_s)
            if leg.leg_kind in (LegKind.DESTINATION, LegKind.INTERNAL):
                self.metrics.bridged.inc()
        if self.rates is None:
            return
        try:
            await estimate_story(records, correlation_id, self.rates, self.config.records,
                                 self.config.numbers.country)
        except Exception:
            log.exception("correlation_id=%s cost estimate failed", correlation_id)

    # -- draining --------------------------------------------------------------------

    def begin_drain(self) -> None:
        self.draining = True

    async def drain(self, grace_s: float) -> None:
        """Wait up to ``grace_s`` for the stories and calls in progress."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while (self.stories or self.manager.calls) and loop.time() < deadline:
            await asyncio.sleep(0.1)


__all__ = ["DRAINING_STATUS", "CallbackService"]
