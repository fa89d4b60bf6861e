"""The components dial, play, menu and hangup, each run by the FlowRunner on
an answered call to an RTP phone, over real SIP and RTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from flowworld import (
    EXTENSIONS,
    SIP,
    Phone,
    Recorder,
    answered_call,
    context_for,
    dominant_hz,
    flow_of,
    registrar_of,
    sine_wav,
    trunk_yaml,
    until,
    world,
)

from boomerang.call.events import Outcome
from boomerang.call.manager import ExtensionTarget, TrunkTarget
from boomerang.config import load_config_text
from boomerang.flow.components.dial import DialParams, decide_dial
from boomerang.flow.components.hangup import HangupParams
from boomerang.flow.components.menu import MenuParams
from boomerang.flow.components.play import PlayParams
from boomerang.flow.context import FlowContext
from boomerang.flow.runner import FlowRunner

BYE = HangupParams(id="bye", type="hangup")


def with_trunk(carrier: Phone) -> Callable[[], str]:
    return lambda: EXTENSIONS + trunk_yaml(carrier)


# -- dial ---------------------------------------------------------------------------


async def test_dial_an_extension_rings_with_ringback_then_bridges(
        free_port_factory: Callable[[], int]) -> None:
    mobile, desk = Phone("mobile"), Phone("desk", delay_s=0.5)
    recorder = Recorder()
    async with world(free_port_factory, mobile, desk) as manager:
        registrar_of(manager).bind("102", desk)
        call = await answered_call(manager, mobile)
        flow = flow_of("f", DialParams(id="call", type="dial", target="extension",
                                       extension="102", next="bye"), BYE)
        context = context_for(manager, flow, call, observer=recorder)
        running = asyncio.ensure_future(FlowRunner(manager, manager.config).run(
            context, "call"))
        await until(lambda: bool(desk.legs) and desk.leg.answered)
        ringing = [p for _, p in mobile.rtp.packets]
        await until(lambda: "bridged" in recorder.notes)
        await asyncio.sleep(0.2)  # the relay has both legs
        before = len(desk.rtp.packets)
        mobile.send_audio(5)  # the mobile talks: the desk hears it
        await until(lambda: len(desk.rtp.packets) >= before + 5)
        desk.hangup()
        await asyncio.wait_for(running, 3)
        await until(lambda: mobile.leg.ended)
    [invite] = desk.invites
    assert "sip:101@" in (invite.headers.get("From") or "")  # the owner's number
    assert ("ringback", True) in recorder.tones and ("ringback", False) in recorder.tones
    assert len(ringing) >= 15  # ~0.5 s of ringback (425 Hz, 1 s on) while it rang
    assert abs(dominant_hz(ringing[:15]) - 425) <= 10
    assert recorder.left == [("call", "ended")]  # both legs ended: the flow stops
    assert mobile.leg.end_cause is not None
    assert mobile.leg.end_cause.outcome is Outcome.HUNG_UP_REMOTE


async def test_dial_an_external_number_without_transit_is_refused_without_an_invite(
        free_port_factory: Callable[[], int]) -> None:
    mobile, carrier = Phone("mobile"), Phone("carrier")
    recorder = Recorder()
    async with world(free_port_factory, mobile, carrier, extra=with_trunk(carrier)) as manager:
        call = await answered_call(manager, mobile)
        flow = flow_of("f", DialParams(id="call", type="dial", target="digits",
                                       refused_tone_duration=0.4,
                                       next={"refused": "sorry", "_": "bye"}),
                       PlayParams(id="sorry", type="play", tone="busy", duration=0.1,
                                  next="bye"), BYE)
        context = context_for(manager, flow, call, owner="101", observer=recorder,
                              trunk_name="carrier", values={"digits": "0600100200"})
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(FlowRunner(manager, manager.config).run(context, "call"), 3)
        took_s = loop.time() - started
    assert carrier.invites == []
    assert recorder.left[0] == ("call", "refused")
    assert recorder.entered == ["call", "sorry", "bye"]
    assert ("special_information", True) in recorder.tones
    assert took_s >= 0.5  # the error tone, then the busy tone
    sit = [p for _, p in mobile.rtp.packets[:15]]  # 950 Hz first (E.180 §2.6)
    assert abs(dominant_hz(sit) - 950) <= 15


async def test_dial_an_external_number_with_transit_goes_through_the_trunk(
        free_port_factory: Callable[[], int]) -> None:
    mobile, carrier = Phone("mobile"), Phone("carrier")
    recorder = Recorder()
    async with world(free_port_factory, mobile, carrier, extra=with_trunk(carrier)) as manager:
        call = await answered_call(manager, mobile)
        flow = flow_of("f", DialParams(id="call", type="dial", target="digits"))
        context = context_for(manager, flow, call, owner="103", observer=recorder,
                              trunk_name="carrier", values={"digits": "0600100200#"})
        running = asyncio.ensure_future(FlowRunner(manager, manager.config).run(
            context, "call"))
        await until(lambda: bool(carrier.legs) and carrier.leg.answered)
        carrier.hangup()
        await asyncio.wait_for(running, 3)
    [invite] = carrier.invites
    assert invite.request_uri.user == "+48600100200"  # type: ignore[union-attr]
    assert "sip:+48221234567@" in (invite.headers.get("From") or "")  # the company number
    assert recorder.left == [("call", "ended")]


async def test_dial_busy_takes_the_busy_branch(free_port_factory: Callable[[], int]) -> None:
    mobile, desk = Phone("mobile"), Phone("desk", "busy")
    recorder = Recorder()
    async with world(free_port_factory, mobile, desk) as manager:
        registrar_of(manager).bind("102", desk)
        call = await answered_call(manager, mobile)
        flow = flow_of("f", DialParams(id="call", type="dial", target="digits",
                                       next={"busy": "tone", "_": "bye"}),
                       PlayParams(id="tone", type="play", tone="busy", duration=0.2), BYE)
        context = context_for(manager, flow, call, observer=recorder,
                              values={"digits": "102"})
        await asyncio.wait_for(FlowRunner(manager, manager.config).run(context, "call"), 3)
    assert recorder.left == [("call", "busy"), ("tone", "done")]
    assert mobile.leg.ended


# -- play and hangup -------------------------------------------------------------------


async def test_play_a_tone_then_hangup_with_a_tone(free_port_factory: Callable[[], int]
                                                   ) -> None:
    mobile = Phone("mobile")
    recorder = Recorder()
    async with world(free_port_factory, mobile) as manager:
        call = await answered_call(manager, mobile)
        flow = flow_of("f", PlayParams(id="tone", type="play", tone="dial", duration=0.2,
                                       repeat=2, next="bye"),
                       HangupParams(id="bye", type="hangup", tone="congestion",
                                    tone_duration=0.3))
        context = context_for(manager, flow, call, observer=recorder)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(FlowRunner(manager, manager.config).run(context, "tone"), 3)
        took_s = loop.time() - started
        await until(lambda: mobile.leg.ended)
    assert recorder.left == [("tone", "done"), ("bye", "")]
    assert recorder.tones == [("dial", True), ("dial", False), ("congestion", True),
                              ("congestion", False)]
    assert 0.7 <= took_s < 1.3  # 2 x 0.2 s of dial tone, 0.3 s of congestion
    assert 30 <= len(mobile.rtp.packets) <= 40
    assert mobile.leg.end_cause is not None
    assert mobile.leg.end_cause.outcome is Outcome.HUNG_UP_REMOTE


async def test_play_a_prompt(free_port_factory: Callable[[], int], tmp_path: Path) -> None:
    prompt = sine_wav(tmp_path / "welcome.wav", frequency_hz=800, duration_s=0.3)
    mobile = Phone("mobile")
    recorder = Recorder()
    async with world(free_port_factory, mobile) as manager:
        call = await answered_call(manager, mobile)
        flow = flow_of("f", PlayParams(id="hello", type="play", prompt=prompt, next="bye"), BYE)
        context = context_for(manager, flow, call, observer=recorder)
        await asyncio.wait_for(FlowRunner(manager, manager.config).run(context, "hello"), 3)
        await until(lambda: mobile.leg.ended)
    audible = [p for _, p in mobile.rtp.packets if max(p.payload) != min(p.payload)]
    assert 14 <= len(audible) <= 16
    assert abs(dominant_hz(audible) - 800) <= 10
    assert recorder.left == [("hello", "done"), ("bye", "")]


# -- menu ------------------------------------------------------------------------------


def menu_flow(**menu: object) -> object:
    return flow_of(
        "f",
        MenuParams(id="menu", type="menu", choices={"1": "sales", "2": "support"},
                   next={"timeout": "late", "invalid": "wrong"}, **menu),  # type: ignore[arg-type]
        PlayParams(id="sales", type="play", tone="busy", duration=0.1, next="bye"),
        PlayParams(id="support", type="play", tone="busy", duration=0.1, next="bye"),
        PlayParams(id="late", type="play", tone="busy", duration=0.1, next="bye"),
        PlayParams(id="wrong", type="play", tone="busy", duration=0.1, next="bye"),
        BYE)


async def test_menu_a_key_chooses_the_branch(free_port_factory: Callable[[], int]) -> None:
    mobile = Phone("mobile")
    recorder = Recorder()
    async with world(free_port_factory, mobile) as manager:
        call = await answered_call(manager, mobile)
        context = context_for(manager, menu_flow(tone="dial", timeout=3),  # type: ignore[arg-type]
                              call, observer=recorder)
        running = asyncio.ensure_future(FlowRunner(manager, manager.config).run(
            context, "menu"))
        await until(lambda: len(mobile.rtp.packets) >= 5)  # the menu's tone
        await mobile.send_digits("2")
        await asyncio.wait_for(running, 3)
    assert recorder.left[0] == ("menu", "2")
    assert recorder.entered == ["menu", "support", "bye"]
    assert recorder.digits == ["2"]
    assert ("dial", True) in recorder.tones


async def test_menu_times_out_after_its_attempts(free_port_factory: Callable[[], int]
                                                 ) -> None:
    mobile = Phone("mobile")
    recorder = Recorder()
    async with world(free_port_factory, mobile) as manager:
        call = await answered_call(manager, mobile)
        context = context_for(manager, menu_flow(timeout=0.2, attempts=2),  # type: ignore[arg-type]
                              call, observer=recorder)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(FlowRunner(manager, manager.config).run(context, "menu"), 3)
        took_s = loop.time() - started
    assert recorder.left[0] == ("menu", "timeout")
    assert recorder.entered == ["menu", "late", "bye"]
    assert took_s >= 0.4  # two attempts of 0.2 s


async def test_menu_an_invalid_key_on_the_last_attempt_is_invalid(
        free_port_factory: Callable[[], int], tmp_path: Path) -> None:
    prompt = sine_wav(tmp_path / "menu.wav", frequency_hz=700, duration_s=2.0)
    mobile = Phone("mobile")
    recorder = Recorder()
    async with world(free_port_factory, mobile) as manager:
        call = await answered_call(manager, mobile)
        context = context_for(manager, menu_flow(prompt=prompt, timeout=2, attempts=1),  # type: ignore[arg-type]
                              call, observer=recorder)
        running = asyncio.ensure_future(FlowRunner(manager, manager.config).run(
            context, "menu"))
        await until(lambda: len(mobile.rtp.packets) >= 5)  # the prompt plays
        await mobile.send_digits("9")  # barges in: not a choice
        await asyncio.wait_for(running, 3)
    assert recorder.left[0] == ("menu", "invalid")
    assert recorder.entered == ["menu", "wrong", "bye"]
    assert ("prompt", True) in recorder.tones


# -- who may dial what (pure) ------------------------------------------------------------

DECIDE_CONFIG = EXTENSIONS + """\
trunks:
  - {name: carrier, host: 127.0.0.1, port: 5070, outside_prefix: "0", keepalive_s: 0}
"""


@pytest.mark.parametrize(("owner", "digits", "configured", "target", "reason", "status"), [
    ("101", "102", False, ExtensionTarget("102"), "extension", 200),
    ("101", "0600100200", False, None, "no_transit", 403),
    ("103", "0600100200#", False, TrunkTarget("carrier", "+48600100200"), "allowed", 200),
    ("103", "0701234567", False, None, "premium_blocked", 403),
    ("103", "10", False, None, "invalid", 484),
    (None, "102", False, ExtensionTarget("102"), "extension", 200),
    (None, "0600100200", False, None, "no_owner", 403),
    (None, "+48600100200", True, TrunkTarget("carrier", "+48600100200"), "allowed", 200),
    (None, "+48701234567", True, None, "premium_blocked", 403),
])
def test_decide_dial(owner: str | None, digits: str, configured: bool, target: object,
                     reason: str, status: int) -> None:
    config = load_config_text(SIP + DECIDE_CONFIG, "decide.yaml")
    context = FlowContext(manager=SimpleNamespace(trunks=None),  # type: ignore[arg-type]
                          config=config, flow=flow_of("f", BYE), correlation_id="s",
                          owner=config.extension(owner) if owner else None,
                          trunk_name="carrier")
    decision = decide_dial(context, digits, configured=configured)
    assert (decision.target, decision.reason, decision.sip_status) == (target, reason, status)
    if isinstance(target, ExtensionTarget):
        assert decision.caller_id == (owner or "+48221234567")
    elif target is not None:
        assert decision.caller_id == "+48221234567"  # the company number


def test_decide_dial_presents_the_caller_id_asked_for() -> None:
    config = load_config_text(SIP + DECIDE_CONFIG, "decide.yaml")
    context = FlowContext(manager=SimpleNamespace(trunks=None),  # type: ignore[arg-type]
                          config=config, flow=flow_of("f", BYE), correlation_id="s",
                          owner=config.extension("103"), trunk_name="carrier")
    decision = decide_dial(context, "0600100200", caller_id="+48221234500")
    assert decision.caller_id == "+48221234500"
    assert decision.display_name == "Cy"
