"""FlowRunner.run and run_inbound over real SIP and RTP on 127.0.0.1: the
walk from node to node, the end of the flow, a call that ends under a
node, a node that raises, a cancelled story, and an inbound DID call
whose flow is not a callback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from flowworld import (
    EXTENSIONS,
    T1_S,
    EventLog,
    Phone,
    Recorder,
    answered_call,
    context_for,
    flow_of,
    trunk_yaml,
    until,
    world,
)

from boomerang.call.calls import InboundCall
from boomerang.call.events import CallAnswered, Outcome
from boomerang.call.leg import LegAddressing
from boomerang.call.trunks import Trunk
from boomerang.call.uac_leg import UacLeg
from boomerang.flow.components.hangup import HangupParams
from boomerang.flow.components.play import PlayParams
from boomerang.flow.runner import FlowRunner

DID = "+48221234567"


async def test_a_node_without_next_ends_the_flow_and_hangs_up(
        free_port_factory: Callable[[], int]) -> None:
    mobile = Phone("mobile")
    recorder = Recorder()
    async with world(free_port_factory, mobile) as manager:
        call = await answered_call(manager, mobile)
        flow = flow_of("f", PlayParams(id="tone", type="play", tone="busy", duration=0.2))
        context = context_for(manager, flow, call, observer=recorder)
        await asyncio.wait_for(FlowRunner(manager, manager.config).run(context, "tone"), 3)
        cause = await asyncio.wait_for(call.ended, 2)
        await until(lambda: mobile.leg.ended)
    assert recorder.left == [("tone", "done")]
    assert cause.outcome is Outcome.HUNG_UP_LOCAL
    assert mobile.leg.end_cause is not None
    assert mobile.leg.end_cause.outcome is Outcome.HUNG_UP_REMOTE


async def test_the_far_end_hanging_up_stops_the_running_node(
        free_port_factory: Callable[[], int]) -> None:
    mobile = Phone("mobile")
    recorder = Recorder()
    async with world(free_port_factory, mobile) as manager:
        call = await answered_call(manager, mobile)
        flow = flow_of("f", PlayParams(id="long", type="play", tone="dial", duration=30,
                                       next="bye"), HangupParams(id="bye", type="hangup"))
        context = context_for(manager, flow, call, observer=recorder)
        running = asyncio.ensure_future(FlowRunner(manager, manager.config).run(
            context, "long"))
        await until(lambda: len(mobile.rtp.packets) >= 5)
        loop = asyncio.get_running_loop()
        hung_up_at = loop.time()
        mobile.hangup()
        await asyncio.wait_for(running, 2)
        stopped_after_s = loop.time() - hung_up_at
        count = len(mobile.rtp.packets)
        await asyncio.sleep(0.1)
        after = len(mobile.rtp.packets)
    assert stopped_after_s < 0.5
    assert recorder.left == [("long", "ended")]  # the bye node never ran
    assert recorder.tones == [("dial", True), ("dial", False)]
    assert after == count  # the tone stopped with the call
    assert call.ended.result().outcome is Outcome.HUNG_UP_REMOTE


async def test_a_node_that_raises_is_logged_and_the_call_hung_up(
        free_port_factory: Callable[[], int], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"this is not a RIFF file")
    mobile = Phone("mobile")
    recorder = Recorder()
    async with world(free_port_factory, mobile) as manager:
        call = await answered_call(manager, mobile)
        flow = flow_of("f", PlayParams(id="bad", type="play", prompt=broken, next="bye"),
                       HangupParams(id="bye", type="hangup"))
        context = context_for(manager, flow, call, observer=recorder)
        with caplog.at_level(logging.ERROR, logger="boomerang.flow.runner"):
            await asyncio.wait_for(FlowRunner(manager, manager.config).run(context, "bad"), 3)
        cause = await asyncio.wait_for(call.ended, 2)
        await until(lambda: mobile.leg.ended)
    assert cause.outcome is Outcome.HUNG_UP_LOCAL
    assert recorder.entered == ["bad"] and recorder.left == []
    [record] = [r for r in caplog.records if r.name == "boomerang.flow.runner"]
    assert f"call_id={call.call_id}" in record.getMessage()
    assert "node bad" in record.getMessage()
    assert record.exc_info is not None  # the traceback is in the log


async def test_cancelling_a_story_hangs_the_call_up(free_port_factory: Callable[[], int]
                                                   ) -> None:
    mobile = Phone("mobile")
    async with world(free_port_factory, mobile) as manager:
        call = await answered_call(manager, mobile)
        flow = flow_of("f", PlayParams(id="long", type="play", tone="dial", duration=30))
        context = context_for(manager, flow, call)
        story = asyncio.ensure_future(FlowRunner(manager, manager.config).run(context, "long"))
        await until(lambda: len(mobile.rtp.packets) >= 3)
        story.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(story, 2)
        await until(lambda: mobile.leg.ended)
    assert call.ended.result().outcome is Outcome.HUNG_UP_LOCAL


async def test_an_inbound_did_call_is_answered_and_runs_its_flow(
        free_port_factory: Callable[[], int]) -> None:
    caller = Phone("caller")  # calls in from the carrier's address
    recorder = Recorder()

    def config() -> str:
        return (EXTENSIONS + trunk_yaml(caller, sources="[127.0.0.1/32]")
                + f'dids: [{{number: "{DID}", trunk: carrier, flow: welcome}}]\n'
                + "flows:\n  welcome:\n"
                + "    - {id: hello, type: play, tone: ringback, duration: 0.3, next: bye}\n"
                + "    - {id: bye, type: hangup}\n")

    async with world(free_port_factory, caller, extra=config) as manager:
        runner = FlowRunner(manager, manager.config, observer=recorder)
        inbound: list[InboundCall] = []

        async def on_trunk_call(call: InboundCall, trunk: Trunk) -> None:
            inbound.append(call)
            await runner.run_inbound(call, manager.config.flows["welcome"],
                                     did=manager.config.did(DID), owner=None)

        manager.on_trunk_call = on_trunk_call
        [server] = manager.endpoint.driver.listening
        assert caller.address is not None
        sent_by = f"127.0.0.1:{caller.address.port}"
        leg = UacLeg(sip=caller.endpoint, scheduler=asyncio.get_running_loop(),
                     media=caller.media, addressing=LegAddressing(
                         sent_by=sent_by, contact=f"<sip:600100200@{sent_by}>"),
                     request_uri=f"sip:{DID}@127.0.0.1:{server.port}",
                     from_=f"<sip:600100200@{sent_by}>",
                     to=f"<sip:{DID}@127.0.0.1:{server.port}>", destination=server, t1_s=T1_S,
                     registry=caller.registry)
        events = EventLog()
        leg.add_listener(events)
        leg.start()
        await until(lambda: leg.ended)
    assert events.of(CallAnswered)  # this one is answered: the administrator's choice
    assert events.cause is not None and events.cause.outcome is Outcome.HUNG_UP_REMOTE
    assert recorder.left == [("hello", "done"), ("bye", "")]
    context = recorder.context
    assert context is not None and context.did is not None and context.owner is None
    assert (context.did.number, context.trunk_name) == (DID, "carrier")
    assert len(caller.rtp.packets) >= 10  # the flow's tone reached the caller
    assert inbound[0].correlation_id == context.correlation_id
