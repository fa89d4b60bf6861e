"""Media on calls we place, with real SIP and RTP on 127.0.0.1: an answered
OutboundCall plays tones and prompts to the far end and hears its keys
(RFC 4733 and SIP INFO), like an InboundCall does."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

_FLOW_TESTS = str(Path(__file__).resolve().parent.parent / "flow")
if _FLOW_TESTS not in sys.path:
    sys.path.insert(0, _FLOW_TESTS)

from flowworld import (  # noqa: E402
    Phone,
    answered_call,
    dominant_hz,
    sine_wav,
    until,
    world,
)

from boomerang.media.digits import (  # noqa: E402
    DigitCollectionEnded,
    DigitEndReason,
    DigitEvent,
    DigitReceived,
    DigitSource,
)


async def _events(call: object, timeout_s: float = 5.0) -> list[DigitEvent]:
    out: list[DigitEvent] = []
    async with asyncio.timeout(timeout_s):
        async for event in call.digits():  # type: ignore[attr-defined]
            out.append(event)
    return out


async def test_an_answered_outbound_call_plays_dial_tone_and_hears_rfc4733_digits(
        free_port_factory: Callable[[], int]) -> None:
    phone = Phone("mobile")
    async with world(free_port_factory, phone) as manager:
        call = await answered_call(manager, phone)
        session = await call.attach_media_session()
        assert await call.attach_media_session() is session  # once per leg
        call.play_tone("dial")
        collecting = asyncio.ensure_future(_events(call))
        await until(lambda: len(phone.rtp.packets) >= 25)
        assert session.tone_playing
        await phone.send_digits("12#")
        events = await collecting
        call.hangup()
        await asyncio.wait_for(call.ended, 2)
    tone = [packet for _, packet in phone.rtp.packets[:25]]
    assert {p.payload_type for p in tone} == {0}  # the negotiated PCMU
    assert abs(dominant_hz(tone) - 425) <= 5  # the Polish dial tone
    digits = [e for e in events if isinstance(e, DigitReceived)]
    assert [(d.digit, d.source) for d in digits] == [
        ("1", DigitSource.RFC4733), ("2", DigitSource.RFC4733), ("#", DigitSource.RFC4733)]
    end = events[-1]
    assert isinstance(end, DigitCollectionEnded)
    assert (end.digits, end.reason) == ("12", DigitEndReason.TERMINATOR)
    assert session.tone_stop_reason == "key 1 down"


async def test_sip_info_digits_of_an_outbound_call_reach_its_session(
        free_port_factory: Callable[[], int]) -> None:
    phone = Phone("mobile")
    async with world(free_port_factory, phone) as manager:
        call = await answered_call(manager, phone)
        session = await call.attach_media_session()
        phone.send_info(b"Signal=7\r\nDuration=160\r\n")
        pressed = await session.next_digit(2.0)
        phone.send_info(b"9", content_type="application/dtmf")
        second = await session.next_digit(2.0)
        call.hangup()
        await asyncio.wait_for(call.ended, 2)
    assert pressed is not None and (pressed.digit, pressed.source) == ("7", DigitSource.INFO)
    assert second is not None and second.digit == "9"


async def test_a_prompt_plays_once_in_the_negotiated_codec_and_reports_its_end(
        free_port_factory: Callable[[], int], tmp_path: Path) -> None:
    prompt = sine_wav(tmp_path / "hello.wav", frequency_hz=1000, duration_s=0.4)
    phone = Phone("mobile")
    async with world(free_port_factory, phone) as manager:
        call = await answered_call(manager, phone)
        session = await call.attach_media_session()
        loop = asyncio.get_running_loop()
        started = loop.time()
        finished = await asyncio.wait_for(session.play_prompt(prompt, repeat=2), 3)
        took_s = loop.time() - started
        await asyncio.sleep(0.1)
        cached = len(session.prompts)
        call.hangup()
        await asyncio.wait_for(call.ended, 2)
    assert finished is True
    assert not session.tone_playing and session.tone_stop_reason == "finished"
    assert 0.78 <= took_s < 1.3  # twice 400 ms
    packets = [packet for _, packet in phone.rtp.packets]
    audible = [p for p in packets if max(p.payload) != min(p.payload)]
    assert 38 <= len(audible) <= 41  # 2 x 20 frames (and nothing after the end)
    assert abs(dominant_hz(audible) - 1000) <= 10  # resampled 16 kHz -> 8 kHz PCMU
    assert cached == 1  # encoded once for (file, PCMU, 20 ms)


async def test_a_key_barges_into_an_interruptible_prompt_but_not_into_an_announcement(
        free_port_factory: Callable[[], int], tmp_path: Path) -> None:
    prompt = sine_wav(tmp_path / "long.wav", frequency_hz=600, duration_s=3.0)
    phone = Phone("mobile")
    async with world(free_port_factory, phone) as manager:
        call = await answered_call(manager, phone)
        session = await call.attach_media_session()
        playing = asyncio.ensure_future(session.play_prompt(prompt))
        await until(lambda: len(phone.rtp.packets) >= 5)
        await phone.send_digits("5")
        barged = await asyncio.wait_for(playing, 2)
        announcement = asyncio.ensure_future(session.play_tone_for("busy", 0.6))
        await phone.send_digits("6")
        assert not announcement.done()
        full = await asyncio.wait_for(announcement, 2)
        call.hangup()
        await asyncio.wait_for(call.ended, 2)
    assert barged is False
    assert full is True


async def test_cancelling_a_prompt_stops_its_stream(
        free_port_factory: Callable[[], int], tmp_path: Path) -> None:
    prompt = sine_wav(tmp_path / "long.wav", frequency_hz=600, duration_s=3.0)
    phone = Phone("mobile")
    async with world(free_port_factory, phone) as manager:
        call = await answered_call(manager, phone)
        session = await call.attach_media_session()
        playing = asyncio.ensure_future(session.play_prompt(prompt))
        await until(lambda: len(phone.rtp.packets) >= 5)
        playing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await playing
        stopped = session.tone_playing
        await asyncio.sleep(0.06)
        count = len(phone.rtp.packets)
        await asyncio.sleep(0.1)
        after = len(phone.rtp.packets)
        call.hangup()
        await asyncio.wait_for(call.ended, 2)
    assert stopped is False and session.tone_stop_reason == "cancelled"
    assert after == count
