"""``disa`` over real UDP sockets on 127.0.0.1 (see disa_world.py): a caller
calls in through the trunk, hears the dial tone (decoded from the RTP that
reaches its socket), keys RFC 4733 digits; extension phones and the carrier
are SIP peers in the process that record their INVITEs.

Timeouts are scaled down (first digit 0.6-3 s, inter-digit 0.5-2 s), and
the error and busy tones last 0.4 s."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

import pytest
from disa_world import (
    COMPANY,
    Phone,
    config_yaml,
    disa_story,
    dominant_hz,
    until,
)

from boomerang.call.events import Outcome
from boomerang.flow.components.disa import Disa, DisaParams
from boomerang.flow.pin import PinGuard

Ports = Callable[[], int]


def params(**fields: object) -> DisaParams:
    values: dict[str, object] = {"id": "tone", "type": "disa", "first_digit_timeout": 3.0,
                                 "timeout": 2.0}
    values.update(fields)
    return DisaParams.model_validate(values)


def caller_ended_by_us(story: object) -> bool:
    leg = story.caller.leg  # type: ignore[attr-defined]
    return leg is not None and leg.end_cause is not None \
        and leg.end_cause.outcome is Outcome.HUNG_UP_REMOTE


# -- extensions ------------------------------------------------------------------------


async def test_an_extension_number_rings_its_phone_and_is_bridged(free_port_factory: Ports
                                                                   ) -> None:
    desk = Phone("desk")
    loop = asyncio.get_running_loop()
    async with disa_story(free_port_factory, params(), phones={"102": desk}) as story:
        started = loop.time()
        await until(lambda: len(story.caller.rtp.audio_since(started)) >= 15)
        dial_tone_hz = dominant_hz(story.caller.rtp.audio_since(started))
        await story.digits("102")
        keyed = loop.time()
        await until(lambda: bool(desk.legs) and desk.legs[0].answered)
        invite_after_s = loop.time() - keyed
        invite = desk.legs[0].invite
        # media flows through the bridge: the caller's digits reach the desk phone
        before = len(desk.rtp.packets)  # type: ignore[union-attr]
        await story.digits("5")
        await until(lambda: any(p.payload_type == 101 for _, p in
                                desk.rtp.packets[before:]))  # type: ignore[union-attr]
        desk.hangup()
        outcome = await story.result()
    assert abs(dial_tone_hz - 425) <= 10  # the pl dial tone
    # "102" is an extension no other number starts with: no wait for the timeout (2 s)
    assert invite_after_s < 1.0
    assert invite.request_uri.user == "desk"
    assert "<sip:101@" in (invite.headers.get("From") or "")  # the owner's number
    assert outcome == "ended"
    assert story.recorder.digits.startswith("102")
    assert story.recorder.tones_on()[0] == "dial"
    assert ("tone", "dial", "off") in story.recorder.events
    assert not story.carrier.legs


async def test_hash_ends_an_ambiguous_number_early(free_port_factory: Ports) -> None:
    # 102 is also the start of 1025: only # (or the timeout) can end it
    desk = Phone("desk")
    loop = asyncio.get_running_loop()
    config = lambda carrier: config_yaml(carrier, extensions=("102", "1025"))  # noqa: E731
    async with disa_story(free_port_factory, params(timeout=3.0), phones={"102": desk},
                          config=config) as story:
        await story.digits("102")
        await asyncio.sleep(0.5)
        rang_before_hash = bool(desk.legs)
        await story.digits("#")
        keyed = loop.time()
        await until(lambda: bool(desk.legs) and desk.legs[0].answered)
        invite_after_s = loop.time() - keyed
        desk.hangup()
        outcome = await story.result()
    assert not rang_before_hash
    assert invite_after_s < 1.0  # well before the 3 s inter-digit timeout
    assert outcome == "ended"
    assert story.recorder.digits == "102#"


async def test_the_inter_digit_timeout_after_a_complete_number_dials_it(
        free_port_factory: Ports) -> None:
    desk = Phone("desk")
    loop = asyncio.get_running_loop()
    config = lambda carrier: config_yaml(carrier, extensions=("102", "1025"))  # noqa: E731
    async with disa_story(free_port_factory, params(timeout=0.8), phones={"102": desk},
                          config=config) as story:
        await story.digits("102")
        keyed = loop.time()
        await until(lambda: bool(desk.legs))
        waited_s = loop.time() - keyed
        await until(lambda: desk.legs[0].answered)
        desk.hangup()
        assert await story.result() == "ended"
    assert 0.7 <= waited_s < 1.6


async def test_the_callback_nodes_inter_digit_timeout_is_used_without_one_of_its_own(
        free_port_factory: Ports) -> None:
    loop = asyncio.get_running_loop()
    async with disa_story(free_port_factory, params(timeout=None),
                          values={"inter_digit_timeout_s": 0.5}) as story:
        await story.digits("10")
        keyed = loop.time()
        outcome = await story.result()
        waited_s = loop.time() - keyed
    assert outcome == "timeout"
    assert 0.4 <= waited_s < 1.5  # 0.5 s, not the default 5 s (plus the error tone)


async def test_busy_extension_gives_the_busy_tone_then_hangs_up(free_port_factory: Ports
                                                               ) -> None:
    desk = Phone("desk", "busy")
    async with disa_story(free_port_factory, params(), phones={"102": desk}) as story:
        await story.digits("102")
        outcome = await story.result()
        await until(lambda: caller_ended_by_us(story))
    assert outcome == "failed"
    tones = story.recorder.tones_on()
    assert (tones[0], tones[-1]) == ("dial", "busy")  # ringback between, from the 180


# -- timeouts --------------------------------------------------------------------------


async def test_no_first_digit_hangs_up_after_the_first_digit_timeout(free_port_factory: Ports
                                                                     ) -> None:
    loop = asyncio.get_running_loop()
    async with disa_story(free_port_factory, params(first_digit_timeout=0.6)) as story:
        started = loop.time()
        outcome = await story.result()
        took_s = loop.time() - started
        await until(lambda: caller_ended_by_us(story))
        heard_hz = dominant_hz(story.caller.rtp.audio_since(started))
    assert outcome == "timeout"
    assert 0.5 <= took_s < 1.2
    assert abs(heard_hz - 425) <= 10  # dial tone all along, no error tone
    assert story.recorder.tones_on() == ["dial"]


async def test_an_incomplete_number_at_the_inter_digit_timeout_gets_the_error_tone(
        free_port_factory: Ports) -> None:
    loop = asyncio.get_running_loop()
    async with disa_story(free_port_factory, params(timeout=0.5)) as story:
        await story.digits("10")
        keyed = loop.time()
        outcome = await story.result()
        await until(lambda: caller_ended_by_us(story))
        heard = story.caller.rtp.audio_since(keyed)
    assert outcome == "timeout"
    assert story.recorder.tones_on() == ["dial", "special_information"]
    assert dominant_hz(heard) >= 900  # 950 / 1400 / 1800 Hz, not the 425 Hz dial tone
    assert not story.carrier.legs


# -- external numbers --------------------------------------------------------------------


async def test_without_transit_an_external_number_is_refused_and_no_invite_leaves(
        free_port_factory: Ports) -> None:
    config = lambda carrier: config_yaml(carrier, transit=False)  # noqa: E731
    async with disa_story(free_port_factory, params(), config=config) as story:
        await story.digits("0600100200#")
        outcome = await story.result()
        await until(lambda: caller_ended_by_us(story))
        await asyncio.sleep(0.2)  # an INVITE would have reached the carrier by now
    assert outcome == "refused"
    assert story.carrier.legs == []
    assert story.recorder.tones_on() == ["dial", "special_information"]
    assert ("note", "disa refused 0600100200: no_transit") in story.recorder.events


async def test_a_premium_rate_number_is_refused_even_with_transit(free_port_factory: Ports
                                                                  ) -> None:
    async with disa_story(free_port_factory, params()) as story:
        await story.digits("0701234567#")  # +48 701 234 567: premium rate in PL
        outcome = await story.result()
        await asyncio.sleep(0.2)
    assert outcome == "refused"
    assert story.carrier.legs == []
    assert ("note", "disa refused 0701234567: premium_blocked") in story.recorder.events


async def test_with_transit_the_carrier_gets_the_number_in_the_trunks_format(
        free_port_factory: Ports, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="boomerang.flow")
    carrier = Phone("carrier", "ring")
    async with disa_story(free_port_factory, params(), carrier=carrier) as story:
        await story.digits("0600100200#")
        await until(lambda: bool(carrier.legs))
        await asyncio.sleep(0.3)  # ringing: the caller hears ringback
        ringing = story.recorder.tones_on()
        carrier.legs[0].answer()
        await until(lambda: carrier.legs[0].answered)
        await asyncio.sleep(0.1)
        carrier.hangup()
        outcome = await story.result()
    invite = carrier.legs[0].invite
    assert invite.request_uri.user == "600100200"  # the trunk's national format
    assert f"sip:{COMPANY}@" in (invite.headers.get("From") or "")
    assert f"sip:{COMPANY}@" in (invite.headers.get("P-Asserted-Identity") or "")
    assert ringing == ["dial", "ringback"]
    assert ("tone", "ringback", "off") in story.recorder.events
    assert outcome == "ended"
    assert story.call is not None
    flow_lines = [r.getMessage() for r in caplog.records if r.name.startswith("boomerang.flow")]
    assert flow_lines and all(f"call_id={story.call.call_id}" in line for line in flow_lines)


# -- PIN ---------------------------------------------------------------------------------

PIN = "73914628"


async def test_the_right_pin_gives_the_dial_tone(free_port_factory: Ports) -> None:
    loop = asyncio.get_running_loop()
    async with disa_story(free_port_factory, params(pin=PIN, first_digit_timeout=2.0)
                          ) as story:
        started = loop.time()
        await asyncio.sleep(0.3)
        silent_before_pin = dominant_hz(story.caller.rtp.audio_since(started)) == 0.0
        await story.digits(PIN + "#")
        await until(lambda: "dial" in story.recorder.tones_on())
        entered = loop.time()
        await until(lambda: len(story.caller.rtp.audio_since(entered)) >= 10)
        dial_hz = dominant_hz(story.caller.rtp.audio_since(entered))
        story.caller.leg.hangup()  # type: ignore[union-attr]
        outcome = await story.result()
    assert silent_before_pin
    assert abs(dial_hz - 425) <= 10
    assert ("note", "PIN accepted") in story.recorder.events
    assert story.recorder.digits == ""  # PIN digits never reach the observer
    assert outcome == "ended"


async def test_three_wrong_pins_end_the_call_with_the_error_tone(free_port_factory: Ports
                                                                 ) -> None:
    async with disa_story(free_port_factory, params(pin=PIN, pin_attempts=3)) as story:
        for _ in range(3):
            await story.digits("1111#")
        outcome = await story.result()
        await until(lambda: caller_ended_by_us(story))
    assert outcome == "pin_failed"
    assert [e for e in story.recorder.events if e[0] == "note"] == [
        ("note", "wrong PIN (1 of 3)"), ("note", "wrong PIN (2 of 3)"),
        ("note", "wrong PIN (3 of 3)")]
    assert story.recorder.tones_on() == ["special_information"]  # never a dial tone


async def test_a_locked_out_extension_is_refused_without_a_try(free_port_factory: Ports
                                                               ) -> None:
    now = [0.0]
    guard = PinGuard(clock=lambda: now[0], failures=2, window_s=60, lockout_s=60)
    disa = Disa(pin_guard=guard, error_tone_s=0.3)
    async with disa_story(free_port_factory, params(pin=PIN, pin_attempts=3),
                          disa=disa) as story:
        await story.digits("1111#2222#")  # the second wrong PIN locks 101 out
        first = await story.result()
    assert first == "pin_failed"
    assert guard.is_locked("extension 101")
    now[0] = 30.0
    async with disa_story(free_port_factory, params(pin=PIN), disa=disa) as story:
        await asyncio.sleep(0.2)
        await story.digits(PIN + "#")  # right, but too late: locked
        second = await story.result()
    assert second == "pin_failed"
    assert ("note", "disa locked out") in story.recorder.events
    now[0] = 61.0  # the lock has expired
    async with disa_story(free_port_factory, params(pin=PIN), disa=disa) as story:
        await story.digits(PIN + "#")
        await until(lambda: "dial" in story.recorder.tones_on())


async def test_the_pin_is_never_logged(free_port_factory: Ports,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with disa_story(free_port_factory, params(pin=PIN, first_digit_timeout=0.6)
                          ) as story:
        await story.digits("5" + PIN[1:] + "#")  # wrong first
        await story.digits(PIN + "#")
        assert await story.result() == "timeout"  # right PIN, then no digit on the dial tone
    messages = [record.getMessage() for record in caplog.records]
    text = "\n".join(messages)
    assert ("note", "PIN accepted") in story.recorder.events
    assert PIN not in text and PIN[1:] not in text
    assert not [m for m in messages if re.search(r"\bdigit [0-9#*]", m)]
    assert any("digit [hidden]" in m for m in messages)  # the lines are there, masked
    assert all(PIN not in str(record.args) for record in caplog.records)


# -- ** ----------------------------------------------------------------------------------


async def test_star_star_ends_the_destination_and_gives_dial_tone_again(
        free_port_factory: Ports) -> None:
    desk = Phone("desk")
    loop = asyncio.get_running_loop()
    async with disa_story(free_port_factory, params(first_digit_timeout=2.0),
                          phones={"102": desk}) as story:
        await story.digits("102")
        await until(lambda: bool(desk.legs) and desk.legs[0].answered)
        await asyncio.sleep(0.2)  # the bridge is up
        # the destination's ** is passed on to the caller, and does nothing
        assert desk.rtp is not None
        await desk.rtp.send_digits("**", desk.manager_port())
        await asyncio.sleep(0.4)
        destination_still_up = not desk.legs[0].ended
        tones_after_desk_keys = story.recorder.tones_on()
        heard_desk_keys = any(p.payload_type == 101 for _, p in story.caller.rtp.packets)
        # the caller's ** ends the destination leg and gives dial tone again
        await story.digits("**")
        keyed = loop.time()
        await until(lambda: desk.legs[0].ended)
        await until(lambda: story.recorder.tones_on().count("dial") == 2)
        await until(lambda: len(story.caller.rtp.audio_since(keyed + 0.2)) >= 10)
        dial_hz = dominant_hz(story.caller.rtp.audio_since(keyed + 0.2))
        caller_up = not story.caller.leg.ended  # type: ignore[union-attr]
        # and the caller can dial again
        await story.digits("102")
        await until(lambda: len(desk.legs) == 2 and desk.legs[1].answered)
        desk.hangup()
        outcome = await story.result()
    assert destination_still_up
    assert heard_desk_keys
    assert tones_after_desk_keys == ["dial", "ringback"]  # no second dial tone
    end = desk.legs[0].end_cause
    assert end is not None and end.outcome is Outcome.HUNG_UP_REMOTE
    assert caller_up
    assert abs(dial_hz - 425) <= 10
    assert outcome == "ended"
    assert story.recorder.digits.startswith("102**102")


async def test_without_star_star_the_keys_are_only_passed_on(free_port_factory: Ports) -> None:
    desk = Phone("desk")
    async with disa_story(free_port_factory, params(star_star=False),
                          phones={"102": desk}) as story:
        await story.digits("102")
        await until(lambda: bool(desk.legs) and desk.legs[0].answered)
        await asyncio.sleep(0.2)
        await story.digits("**")
        await asyncio.sleep(0.4)
        assert not desk.legs[0].ended
        assert desk.rtp is not None
        assert sum(p.payload_type == 101 for _, p in desk.rtp.packets) >= 2
        desk.hangup()
        assert await story.result() == "ended"
    assert story.recorder.tones_on() == ["dial", "ringback"]
