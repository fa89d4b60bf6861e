"""The flow runner: places callback legs and walks flows on answered calls.

``FlowRunner(manager, config, observer=...)`` has three entry points:

- ``await place_callback(job, flow=flow)`` is one attempt of a due
  callback job (the scheduler's ``place`` via the callback service). It
  originates the callback leg per the job's method (``caller`` and
  ``number``: ``TrunkTarget(job.trunk, job.target_number)``, the trunk the
  trigger side resolved; ``extension``: ``ExtensionTarget``), presenting
  ``job.caller_id``, ringing up to the node's ``answer_timeout``, in the
  story of ``job.correlation_id``, billed to ``job.owner_extension``. Only
  a 200 answers it: 180 and 183 (even with early media) are ringing. With
  ``confirm`` the answered leg hears the ``call_waiting`` tone and must
  press the key within ``confirm_timeout``. The result is an
  ``AttemptResult``:

  | what happened                                   | outcome         |
  |-------------------------------------------------|-----------------|
  | 200, (confirmed)                                | ANSWERED, story |
  | 486/600 or Q.850 17, or the owner's call cap    | BUSY            |
  | ``answer_timeout``, 408, 480, not registered    | NO_ANSWER       |
  | answered, no confirm key (or hung up before it) | NOT_CONFIRMED   |
  | ``CallRefused`` 403/404/484 (no such trunk, a   | REFUSED         |
  | number the trunk cannot dial), no such node     |                 |
  | anything else (5xx, trunk down, no media port)  | FAILED          |

  ANSWERED carries ``story``: the task running the rest of the flow from
  the callback node's ``answered`` branch on a ``FlowContext`` of the
  callback leg (the job's owner, trunk and DID; ``values`` holds the
  node's ``timeout`` as ``inter_digit_timeout_s`` for the dial tone).
  The caller does not await it; cancelling it hangs the call up.

- ``await run_inbound(call, flow, did=..., owner=...)``: a DID whose flow
  does not start with ``callback``: the call is answered (the
  administrator chose to charge that caller) and the flow runs from its
  entry.

- ``await run(context, node_id)`` walks nodes: ``observer.node_entered``,
  the component's ``run`` as a task, ``observer.node_left`` with the
  outcome, then ``node.next_for(outcome)``. No next node (or the empty
  outcome of ``hangup``) ends the flow and the call is hung up. When the
  call ends, the running component is cancelled and the flow stops. A
  component that raises is logged with the call and node and the call is
  hung up: one broken node never leaves a caller in silence.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..call.calls import AnyCall, CallEndedError, InboundCall, OutboundCall
from ..call.events import EndCause, Outcome
from ..call.manager import CallManager, CallRefused, ExtensionTarget, Target, TrunkTarget
from ..call.media_session import MediaSession, MediaSessionError, PromptCache
from ..callback.attempt import AttemptOutcome, AttemptResult
from ..config import Config, ExtensionSettings
from ..media.relay import RelayError
from ..store import CallbackJob, CallbackMethod, LegKind
from ..transport.rtp_socket import PortsExhausted
from .component import Component
from .components import COMPONENTS
from .components.callback import CallbackParams
from .context import FlowContext, FlowObserver, NullObserver
from .model import Flow

if TYPE_CHECKING:
    from ..config_flows import DidSettings

log = logging.getLogger(__name__)

CONFIRM_TONE = "call_waiting"
# How long a cancelled component may take to clean up (CANCEL, tones) before
# the runner stops waiting for it.
CANCEL_GRACE_S = 2.0

_REFUSED_STATUSES = frozenset((403, 404, 484))
_NO_ANSWER_STATUSES = frozenset((408, 480))


def attempt_of(cause: EndCause) -> AttemptResult:
    """The attempt result of a callback leg that was not answered."""
    status, q850 = cause.sip_status, cause.q850_cause
    if cause.outcome is Outcome.BUSY:
        outcome = AttemptOutcome.BUSY
    elif cause.outcome is Outcome.NO_ANSWER or status in _NO_ANSWER_STATUSES:
        outcome = AttemptOutcome.NO_ANSWER
    else:
        outcome = AttemptOutcome.FAILED
    detail = " ".join(str(part) for part in (outcome.value, status, cause.outcome.value)
                      if part is not None)
    return AttemptResult(outcome=outcome, detail=detail, sip_status=status, q850_cause=q850)


def attempt_refused(error: CallRefused) -> AttemptResult:
    """The attempt result of an ``originate`` that could not even start."""
    status = error.status
    if status in _REFUSED_STATUSES:
        outcome = AttemptOutcome.REFUSED
    elif status == 486:
        outcome = AttemptOutcome.BUSY
    elif status in _NO_ANSWER_STATUSES:
        outcome = AttemptOutcome.NO_ANSWER
    else:
        outcome = AttemptOutcome.FAILED
    return AttemptResult(outcome=outcome, detail=f"{outcome.value} {status}: {error.detail}",
                         sip_status=status)


class FlowRunner:
    """Callback legs and flows (see the module doc)."""

    def __init__(self, manager: CallManager, config: Config, *,
                 observer: FlowObserver | None = None,
                 prompts: PromptCache | None = None) -> None:
        self.manager = manager
        self.config = config
        self.observer: FlowObserver = observer if observer is not None else NullObserver()
        self.prompts = prompts if prompts is not None else PromptCache()
        # One instance per component type for the runner's life: what a
        # component keeps across calls (disa's PIN lockout) lives there.
        self._components: dict[str, Component] = {}

    def _component(self, node_type: str) -> Component:
        component = self._components.get(node_type)
        if component is None:
            component = self._components[node_type] = COMPONENTS[node_type]()
        return component

    # -- callback legs ---------------------------------------------------------------

    async def place_callback(self, job: CallbackJob, *, flow: Flow) -> AttemptResult:
        """One attempt of ``job`` (see the module doc)."""
        try:
            node = flow.node(job.component_id)
        except KeyError:
            return AttemptResult(outcome=AttemptOutcome.REFUSED,
                                 detail=f"flow {flow.name} has no node {job.component_id}")
        params = node.params
        if not isinstance(params, CallbackParams):
            return AttemptResult(outcome=AttemptOutcome.REFUSED,
                                 detail=f"node {node.id} is a {node.type}, not a callback")
        target: Target
        if job.method is CallbackMethod.EXTENSION:
            target = ExtensionTarget(job.target_number)
        elif job.trunk is None:
            return AttemptResult(outcome=AttemptOutcome.REFUSED,
                                 detail="no trunk for the callback")
        else:
            target = TrunkTarget(job.trunk, job.target_number)
        did_number = job.context.get("did")
        caller_id = job.caller_id or did_number or self.config.numbers.company_number \
            or "anonymous"
        try:
            call = await self.manager.originate(
                target, caller_id=caller_id, ring_timeout_s=params.answer_timeout,
                correlation_id=job.correlation_id, owner_extension=job.owner_extension,
                leg_kind=LegKind.CALLBACK,
                record_fields={"callback_target": job.target_number,
                               "attempts": job.attempts,
                               **({"trigger_did": did_number} if did_number else {})})
        except CallRefused as error:
            log.info("job_id=%d correlation_id=%s callback to %s refused: %d %s", job.id,
                     job.correlation_id, job.target_number, error.status, error.detail)
            return attempt_refused(error)
        except (PortsExhausted, RelayError) as error:
            log.warning("job_id=%d correlation_id=%s no media port: %s", job.id,
                        job.correlation_id, error)
            return AttemptResult(outcome=AttemptOutcome.FAILED, detail=f"no media port: {error}")
        log.info("call_id=%s job_id=%d callback to %s (attempt %d)", call.call_id, job.id,
                 job.target_number, job.attempts)
        cause = await call.outcome()  # cancelled: CANCEL goes out
        if cause.outcome is not Outcome.ANSWERED:
            result = attempt_of(cause)
            log.info("call_id=%s job_id=%d callback %s", call.call_id, job.id, result.detail)
            return result
        confirm_digit = params.confirm_digit
        if confirm_digit is not None:
            try:
                confirmed = await self._confirm(call, confirm_digit, params.confirm_timeout)
            except BaseException:  # cancelled (the service stops) or broken: no orphan leg
                call.hangup()
                raise
            if confirmed is not None:
                call.hangup()
                log.info("call_id=%s job_id=%d callback not confirmed: %s", call.call_id,
                         job.id, confirmed.detail)
                return confirmed
        did = self.config.did(did_number) if did_number else None
        context = FlowContext(
            manager=self.manager, config=self.config, flow=flow,
            correlation_id=job.correlation_id,
            owner=self.config.extension(job.owner_extension), call=call, did=did,
            trunk_name=job.trunk or (did.trunk if did is not None else None),
            job=job, values={"inter_digit_timeout_s": params.timeout},
            observer=self.observer, prompts=self.prompts)
        story = asyncio.get_running_loop().create_task(
            self.run(context, node.next_for("answered")),
            name=f"story {job.correlation_id}")
        return AttemptResult(outcome=AttemptOutcome.ANSWERED, detail="answered",
                             sip_status=200, story=story)

    async def _confirm(self, call: OutboundCall, digit: str, timeout_s: float
                       ) -> AttemptResult | None:
        """None when ``digit`` was pressed in time, else the NOT_CONFIRMED
        (or FAILED: no media) result."""
        try:
            session = await call.attach_media_session()
        except MediaSessionError as error:
            return AttemptResult(outcome=AttemptOutcome.FAILED,
                                 detail=f"confirm needs a media session: {error}")
        session.prompts = self.prompts
        session.clear_digits()
        session.play_tone(CONFIRM_TONE, interruptible=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        waiting = asyncio.ensure_future(self._wait_key(session, digit, deadline))
        racing: set[asyncio.Future[Any]] = {waiting, call.ended}
        try:
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            if not session.closed:
                session.stop_tone(reason="confirm")
        if waiting.done() and not waiting.cancelled() and waiting.result():
            log.info("call_id=%s confirmed with %s", call.call_id, digit)
            return None
        why = "hung up" if call.ended.done() else f"no {digit} in {timeout_s:g} s"
        return AttemptResult(outcome=AttemptOutcome.NOT_CONFIRMED,
                             detail=f"not_confirmed: {why}", sip_status=200)

    async def _wait_key(self, session: MediaSession, digit: str, deadline: float
                        ) -> bool:
        loop = asyncio.get_running_loop()
        while True:
            pressed = await session.next_digit(max(0.0, deadline - loop.time()))
            if pressed is None:
                return False
            if pressed.digit == digit:
                return True

    # -- inbound calls on a DID ----------------------------------------------------------

    async def run_inbound(self, call: InboundCall, flow: Flow, *, did: DidSettings | None,
                          owner: ExtensionSettings | None) -> None:
        """Answer ``call`` and run ``flow`` from its entry (see the module doc)."""
        context = FlowContext(
            manager=self.manager, config=self.config, flow=flow,
            correlation_id=call.correlation_id, owner=owner, call=call, did=did,
            trunk_name=did.trunk if did is not None else None, observer=self.observer,
            prompts=self.prompts)
        try:
            await call.answer()
        except CallEndedError:
            log.info("call_id=%s ended before the answer", call.call_id)
            return
        log.info("call_id=%s answered for flow %s", call.call_id, flow.name)
        await self.run(context, flow.entry.id)

    # -- walking a flow ----------------------------------------------------------------

    async def run(self, context: FlowContext, start_node_id: str | None) -> None:
        """Walk the flow from ``start_node_id`` until it ends (see the module doc)."""
        call = context.active_call()
        node_id = start_node_id
        try:
            while node_id is not None and not call.ended.done():
                node = context.flow.node(node_id)
                outcome = await self._run_node(context, call, node.id, node.type, node.params)
                if outcome is None:
                    return  # the call ended under the node
                node_id = node.next_for(outcome) if outcome else None
        except asyncio.CancelledError:
            log.info("call_id=%s flow %s cancelled", call.call_id, context.flow.name)
            raise
        except Exception:
            if call.ended.done():
                log.debug("call_id=%s node %s failed after the call ended", call.call_id,
                          node_id, exc_info=True)
            else:
                log.exception("call_id=%s node %s of flow %s failed: hanging up",
                              call.call_id, node_id, context.flow.name)
        finally:
            if not call.ended.done():
                call.hangup()
        log.info("call_id=%s flow %s ended", call.call_id, context.flow.name)

    async def _run_node(self, context: FlowContext, call: AnyCall, node_id: str,
                        node_type: str, params: Any) -> str | None:
        """The node's outcome, or None when the call ended while it ran."""
        component = self._component(node_type)
        context.observer.node_entered(context, node_id, node_type)
        task = asyncio.ensure_future(component.run(context, params))
        racing: set[asyncio.Future[Any]] = {task, call.ended}
        try:
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _stop(task)
            raise
        if not task.done():
            await _stop(task)
            context.observer.node_left(context, node_id, "ended")
            return None
        outcome = task.result()
        context.observer.node_left(context, node_id, outcome)
        log.info("call_id=%s node %s (%s): %s", call.call_id, node_id, node_type,
                 outcome or "end")
        return outcome


async def _stop(task: asyncio.Future[Any]) -> None:
    """Cancel a component and give it a moment to clean up (CANCEL a leg,
    stop a tone); what it raises then is of no interest any more."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
    for finished in done:
        if not finished.cancelled() and finished.exception() is not None:
            log.debug("component raised while cancelled", exc_info=finished.exception())


__all__ = ["CONFIRM_TONE", "FlowRunner", "attempt_of", "attempt_refused"]
