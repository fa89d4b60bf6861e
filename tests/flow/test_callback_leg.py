"""FlowRunner.place_callback over real SIP and RTP on 127.0.0.1: the callback
leg through the carrier trunk (or to an extension's phones), how each end of
it maps to an AttemptResult, confirm, and the story that runs the rest of
the flow once the leg answered. The flows come from YAML through the real
config loader."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flowworld import (
    EXTENSIONS,
    EventLog,
    Phone,
    Recorder,
    dominant_hz,
    registrar_of,
    trunk_yaml,
    until,
    world,
)

from boomerang.call.events import CallAnswered, CallRinging, Outcome
from boomerang.call.manager import CallManager
from boomerang.callback.attempt import AttemptOutcome, AttemptResult
from boomerang.flow.runner import FlowRunner
from boomerang.store import CallbackJob, CallbackMethod, JobState

DID = "+48221234567"
MOBILE = "+48600100200"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def config(carrier: Phone, callback: str = "", answer_timeout_s: float = 2
           ) -> Callable[[], str]:
    """The YAML: extensions, the carrier trunk, a DID and the flow ``roaming``:
    cb (callback, with ``callback`` added) -> tone (busy 0.3 s) -> bye."""

    def text() -> str:
        return (EXTENSIONS + trunk_yaml(carrier)
                + f'dids: [{{number: "{DID}", trunk: carrier, flow: roaming}}]\n'
                + "flows:\n  roaming:\n"
                + f'    - {{id: cb, type: callback, caller_id: "{DID}", '
                + f"answer_timeout: {answer_timeout_s}, "
                + f"timeout: 4, next: tone{callback}}}\n"
                + "    - {id: tone, type: play, tone: busy, duration: 0.3, next: bye}\n"
                + "    - {id: bye, type: hangup}\n")

    return text


def job(**fields: Any) -> CallbackJob:
    values: dict[str, Any] = dict(
        id=7, correlation_id="story-7", owner_extension="101", target_number=MOBILE,
        method=CallbackMethod.CALLER, trunk="carrier", caller_id=DID, flow="roaming",
        component_id="cb", deduplication_key=MOBILE,
        context={"did": DID, "trigger_call_id": "trigger-1"}, due_at=NOW, attempts=1,
        max_attempts=3, retry_interval_s=30.0, state=JobState.CLAIMED, claimed_by="node",
        claimed_at=NOW, lease_expires_at=None, last_result=None, created_at=NOW,
        updated_at=NOW)
    values.update(fields)
    return CallbackJob(**values)


async def place(manager: CallManager, recorder: Recorder | None = None,
                **fields: Any) -> AttemptResult:
    runner = FlowRunner(manager, manager.config, observer=recorder or Recorder())
    return await asyncio.wait_for(
        runner.place_callback(job(**fields), flow=manager.config.flows["roaming"]), 5)


def spy_originate(manager: CallManager) -> EventLog:
    """Every event of the calls ``manager.originate`` places from now on."""
    log = EventLog()
    original = manager.originate

    async def originate(*args: Any, **kwargs: Any) -> Any:
        call = await original(*args, **kwargs)
        call.listeners.append(log)
        return call

    manager.originate = originate  # type: ignore[method-assign]
    return log


async def test_an_answered_callback_runs_the_story_from_the_next_node(
        free_port_factory: Callable[[], int]) -> None:
    carrier = Phone("carrier")
    recorder = Recorder()
    async with world(free_port_factory, carrier, extra=config(carrier)) as manager:
        result = await place(manager, recorder)
        assert result.story is not None
        await asyncio.wait_for(result.story, 3)
        await until(lambda: carrier.leg.ended)
    assert (result.outcome, result.sip_status, result.retry) == (
        AttemptOutcome.ANSWERED, 200, False)
    [invite] = carrier.invites
    assert invite.request_uri.user == MOBILE  # type: ignore[union-attr]
    assert f"sip:{DID}@" in (invite.headers.get("From") or "")
    assert recorder.entered == ["tone", "bye"]
    assert recorder.left == [("tone", "done"), ("bye", "")]
    context = recorder.context
    assert context is not None and context.owner is not None and context.did is not None
    assert (context.owner.number, context.did.number, context.trunk_name) == (
        "101", DID, "carrier")
    assert context.values["inter_digit_timeout_s"] == 4
    assert context.job is not None and context.job.id == 7
    assert context.correlation_id == "story-7"
    # the play node's busy tone reached the mobile, then our BYE
    assert abs(dominant_hz([p for _, p in carrier.rtp.packets[:12]]) - 425) <= 10
    assert carrier.leg.end_cause is not None
    assert carrier.leg.end_cause.outcome is Outcome.HUNG_UP_REMOTE


async def test_busy_is_busy_with_its_status(free_port_factory: Callable[[], int]) -> None:
    carrier = Phone("carrier", "busy")
    async with world(free_port_factory, carrier, extra=config(carrier)) as manager:
        result = await place(manager)
    assert (result.outcome, result.sip_status, result.story) == (
        AttemptOutcome.BUSY, 486, None)
    assert result.retry


async def test_no_answer_within_answer_timeout(free_port_factory: Callable[[], int]) -> None:
    carrier = Phone("carrier", "ring")
    async with world(free_port_factory, carrier,
                     extra=config(carrier, answer_timeout_s=0.4)) as manager:
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await place(manager)
        waited_s = loop.time() - started
        await until(lambda: carrier.leg.ended)
    assert result.outcome is AttemptOutcome.NO_ANSWER and result.story is None
    assert 0.4 <= waited_s < 1.2
    assert carrier.leg.end_cause is not None
    assert carrier.leg.end_cause.outcome is Outcome.CANCELLED  # we gave up: CANCEL


async def test_early_media_then_486_is_busy_never_answered(
        free_port_factory: Callable[[], int]) -> None:
    carrier = Phone("carrier", "early_busy", delay_s=0.3)
    async with world(free_port_factory, carrier, extra=config(carrier)) as manager:
        events = spy_originate(manager)
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await place(manager)
        waited_s = loop.time() - started
    ringing = events.of(CallRinging)
    assert [(r.status, r.early_media) for r in ringing] == [(183, True)]
    assert not events.of(CallAnswered)
    assert (result.outcome, result.sip_status, result.story) == (
        AttemptOutcome.BUSY, 486, None)
    assert waited_s >= 0.3  # the 183 ended nothing


async def test_confirm_pressed_goes_on_and_other_keys_do_not_count(
        free_port_factory: Callable[[], int]) -> None:
    carrier = Phone("carrier")
    recorder = Recorder()
    async with world(free_port_factory, carrier,
                     extra=config(carrier, ", confirm: true, confirm_timeout: 3")) as manager:
        placing = asyncio.ensure_future(place(manager, recorder))
        await until(lambda: len(carrier.rtp.packets) >= 10)  # the confirm tone plays
        heard = [p for _, p in carrier.rtp.packets[:8]]
        await carrier.send_digits("5")
        await asyncio.sleep(0.2)
        assert not placing.done()  # 5 is not the key
        await carrier.send_digits("1")
        result = await placing
        assert result.story is not None
        await asyncio.wait_for(result.story, 3)
    assert result.outcome is AttemptOutcome.ANSWERED
    assert recorder.entered == ["tone", "bye"]
    assert abs(dominant_hz(heard) - 425) <= 10  # call_waiting: 425 Hz beeps in Poland


async def test_confirm_not_pressed_hangs_up_not_confirmed(
        free_port_factory: Callable[[], int]) -> None:
    carrier = Phone("carrier")
    recorder = Recorder()
    async with world(free_port_factory, carrier,
                     extra=config(carrier, ", confirm: '5', confirm_timeout: 0.5")) as manager:
        loop = asyncio.get_running_loop()
        started = loop.time()
        placing = asyncio.ensure_future(place(manager, recorder))
        await until(lambda: bool(carrier.legs) and carrier.leg.answered)
        await carrier.send_digits("1")  # not the key asked for
        result = await placing
        waited_s = loop.time() - started
        await until(lambda: carrier.leg.ended)
    assert (result.outcome, result.story) == (AttemptOutcome.NOT_CONFIRMED, None)
    assert result.retry
    assert 0.5 <= waited_s < 1.5
    assert recorder.entered == []  # the flow never went on
    assert carrier.leg.end_cause is not None
    assert carrier.leg.end_cause.outcome is Outcome.HUNG_UP_REMOTE


async def test_a_trunk_that_does_not_exist_is_refused_without_retry(
        free_port_factory: Callable[[], int]) -> None:
    carrier = Phone("carrier")
    async with world(free_port_factory, carrier, extra=config(carrier)) as manager:
        result = await place(manager, trunk="nosuch")
    assert (result.outcome, result.sip_status, result.retry) == (
        AttemptOutcome.REFUSED, 404, False)
    assert not carrier.invites


async def test_method_extension_rings_the_extensions_phones(
        free_port_factory: Callable[[], int]) -> None:
    carrier, desk = Phone("carrier"), Phone("desk", delay_s=0.1)
    recorder = Recorder()
    async with world(free_port_factory, carrier, desk, extra=config(carrier)) as manager:
        unregistered = await place(manager, method=CallbackMethod.EXTENSION,
                                   target_number="102", trunk=None)
        registrar_of(manager).bind("102", desk)
        result = await place(manager, recorder, method=CallbackMethod.EXTENSION,
                             target_number="102", trunk=None)
        assert result.story is not None
        await asyncio.wait_for(result.story, 3)
    assert (unregistered.outcome, unregistered.sip_status) == (AttemptOutcome.NO_ANSWER, 480)
    assert result.outcome is AttemptOutcome.ANSWERED
    assert not carrier.invites and len(desk.invites) == 1
    assert recorder.entered == ["tone", "bye"]
    context = recorder.context
    assert context is not None and context.trunk_name == "carrier"  # the DID's trunk
