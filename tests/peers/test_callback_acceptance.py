"""The callback service end to end with real peers (the issue's "Proof"):
``boomerang run`` between a carrier trunk whose far end plays the mobile
phone, and extension 101, a baresip registered with digest.

1. baresip is the mobile: it rings the DID, sees 180 then 486 (never a
   200), is called back ``delay`` later showing the configured caller ID
   (From, the trunk's ``caller_id_header: from``), auto-answers, hears the
   425 Hz dial tone, keys 101 (RFC 4733); 101 rings and answers; each phone
   hears the other's microphone (550 Hz and 660 Hz); the mobile hangs up;
   ``boomerang cdr --format json`` shows one story: trigger, callback and
   the leg to 101 (kind ``internal``: an extension, docs/RECORDS.md), all
   billed to the mobile's extension 100, not to 101.
2. SIPp is the mobile, ringing from its national number (600100200): the
   callback dials the number stored (+48600100200) with the caller ID in
   P-Asserted-Identity; the mobile keys 1 0 1 as RFC 4733 events (a pcap
   played from the ACK) or as SIP INFO dtmf-relay; 101 answers; the mobile
   hangs up 6 s after its last key.

Refusals, timers, durability and the licence are in the sibling
``test_callback_*.py`` files; the world they share is ``callback_world.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .callback_world import (
    CALLBACK_CALLER_ID,
    DID,
    LATE_S,
    MOBILE,
    MOBILE_NATIONAL,
    ServerProcess,
    SippPeer,
    Timers,
    callback_config,
    cdr_records,
    describe_track,
    extension_yaml,
    frequency_track,
    longest,
    mobile_account,
    port_range,
    read_wav,
    require_peers,
    server_address,
    sipp_peers,
    sounding_spans,
    span_hz,
    stamp_events,
    start_server,
    start_sipp,
    trigger,
    wait_count,
)
from .conftest import LOOPBACK
from .pcap_writer import TimedPacket, rfc4733_stream, write_pcap
from .test_phone_calls import phones, register

pytestmark = [pytest.mark.peers, pytest.mark.slow]

MOBILE_MIC_HZ = 550
DESK_MIC_HZ = 660
DIAL_TONE_HZ = 425
DESK_PASSWORD = "desk-pw"
StartServer = Callable[..., ServerProcess]


def story_extensions() -> str:
    return (extension_yaml("100", mobiles=[MOBILE], callback=True)
            + extension_yaml("101", password=DESK_PASSWORD))


async def ended_records(server: ServerProcess, legs: int, timeout_s: float = 5.0
                        ) -> list[dict[str, Any]]:
    """The call records once ``legs`` legs are stored and every one has ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = await asyncio.to_thread(cdr_records, server.config_path)
        if len(records) >= legs and all(r["ended_at"] for r in records):
            return records
        if time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.3)


def assert_one_story_billed_to_100(records: list[dict[str, Any]], dialled: str = "101",
                                   dialled_kind: str = "internal") -> dict[str, dict[str, Any]]:
    """Trigger, callback and dialled legs under one correlation id, each
    billed to 100 (docs/RECORDS.md: the leg to an extension the user dialled
    is ``internal``, through a trunk ``destination``); returns them by kind."""
    summary = [(r["leg_kind"], r["correlation_id"], r["owner_extension"], r["result"],
                r["sip_status"]) for r in records]
    assert sorted(r["leg_kind"] for r in records) == sorted(["callback", dialled_kind,
                                                             "trigger"]), summary
    assert len({r["correlation_id"] for r in records}) == 1, summary
    assert {r["owner_extension"] for r in records} == {"100"}, summary
    legs = {r["leg_kind"]: r for r in records}
    trigger_leg, callback_leg, dialled_leg = (legs["trigger"], legs["callback"],
                                              legs[dialled_kind])
    assert (trigger_leg["result"], trigger_leg["sip_status"]) == ("rejected", 486), trigger_leg
    assert trigger_leg["answered_at"] is None, trigger_leg
    assert (trigger_leg["trigger_did"], trigger_leg["trigger_caller"]) == (DID, MOBILE), \
        trigger_leg
    assert callback_leg["callback_target"] == MOBILE, callback_leg
    assert callback_leg["result"] == "answered" and callback_leg["answered_at"], callback_leg
    assert callback_leg["sip_status"] == 200, callback_leg
    assert callback_leg["trunk"] == "carrier", callback_leg
    assert dialled_leg["dialed_destination"] == dialled, dialled_leg
    assert dialled_leg["result"] == "answered" and dialled_leg["answered_at"], dialled_leg
    assert dialled_leg["sip_status"] == 200, dialled_leg
    return legs


# -- 1. baresip plays the mobile ------------------------------------------------------


async def test_baresip_mobile_is_called_back_dials_101_and_both_talk(
        tmp_path: Path, free_port_factory: Callable[[], int],
        run_boomerang: StartServer) -> None:
    require_peers("baresip", "sox")
    timers = Timers(ring_time_s=1.5, delay_s=1.5, first_digit_s=6.0)
    async with phones(tmp_path, free_port_factory) as make:
        mobile, desk = make("mobile", MOBILE_MIC_HZ), make("desk", DESK_MIC_HZ)
        stamp_events(mobile)
        stamp_events(desk)
        config = callback_config(
            database=tmp_path / "boomerang.db", rtp_ports=port_range(free_port_factory),
            carrier_port=mobile.sip_port, extensions=story_extensions(), timers=timers,
            caller_id_header="from")
        server = await start_server(run_boomerang, config)
        address = server_address(server)
        await register(desk, "101", DESK_PASSWORD, address, auto_answer=True)
        mobile.start(limit_s=60)
        await mobile.connect()
        await mobile.command("uanew", mobile_account())

        dialled_at = time.monotonic()
        await mobile.command("dial", f"sip:{DID}@{LOOPBACK}:{address.port}")
        rejected = await wait_count(mobile, "CALL_CLOSED", 1, timers.ring_time_s + 4)
        # answermode=auto: baresip 1.0 answers at once and reports no CALL_INCOMING
        offered = await wait_count(mobile, "CALL_ESTABLISHED", 1, timers.delay_s + 4)
        await asyncio.sleep(1.2)  # the dial tone
        for digit in "101":
            await mobile.command("sndcode", digit)
            await asyncio.sleep(0.3)
        desk_rang = await desk.wait_event("CALL_ESTABLISHED", timeout_s=6)
        await asyncio.sleep(2.5)  # both talk
        await mobile.command("hangup")
        await desk.wait_event("CALL_CLOSED", timeout_s=5)
        await wait_count(mobile, "CALL_CLOSED", 2, 5)
        await mobile.quit()
        await desk.quit()
        records = await ended_records(server, 3)
    trigger_events = [e["type"] for e in mobile.events if e["at_s"] <= rejected["at_s"]]
    print(f"mobile events until the reject: {trigger_events}; reject {rejected.get('param')!r}"
          f" {rejected['at_s'] - dialled_at:.2f} s after dialling; callback from "
          f"{offered.get('peeruri')!r} {offered['at_s'] - rejected['at_s']:.2f} s after it; "
          f"101 saw {desk_rang.get('peeruri')!r}")
    # the trigger: 180, then the reject; never answered
    assert "CALL_RINGING" in trigger_events, trigger_events
    assert "CALL_ESTABLISHED" not in trigger_events, trigger_events
    assert "486" in str(rejected.get("param")), rejected
    ring_s = rejected["at_s"] - dialled_at
    assert timers.ring_time_s - 0.2 <= ring_s <= timers.ring_time_s + LATE_S, ring_s
    # the callback: delay after the reject, showing the callback caller ID
    gap_s = offered["at_s"] - rejected["at_s"]
    assert timers.delay_s - 0.3 <= gap_s <= timers.delay_s + LATE_S, gap_s
    assert CALLBACK_CALLER_ID in str(offered.get("peeruri")), offered
    # what each phone heard
    mobile_pcm, rate = read_wav(longest(mobile.recordings("dec")))
    track = frequency_track(mobile_pcm, rate)
    dial_tone = sounding_spans(track, DIAL_TONE_HZ, tolerance_hz=10)
    desk_voice = sounding_spans(track, DESK_MIC_HZ, tolerance_hz=10)
    picture = describe_track(track)
    assert dial_tone and dial_tone[0][1] - dial_tone[0][0] >= 0.8, picture
    assert abs(span_hz(mobile_pcm, rate, *dial_tone[0]) - DIAL_TONE_HZ) <= 5, picture
    assert desk_voice and desk_voice[-1][1] - desk_voice[-1][0] >= 1.5, picture
    # 101 came after the dial tone (sndfile writes only what arrived: no gaps)
    assert desk_voice[-1][0] >= dial_tone[0][1] - 0.01, picture
    assert abs(span_hz(mobile_pcm, rate, *desk_voice[-1]) - DESK_MIC_HZ) <= 5, picture
    desk_pcm, desk_rate = read_wav(longest(desk.recordings("dec")))
    desk_track = frequency_track(desk_pcm, desk_rate)
    mobile_voice = sounding_spans(desk_track, MOBILE_MIC_HZ, tolerance_hz=10)
    assert mobile_voice and mobile_voice[-1][1] - mobile_voice[-1][0] >= 1.5, \
        describe_track(desk_track)
    assert abs(span_hz(desk_pcm, desk_rate, *mobile_voice[-1]) - MOBILE_MIC_HZ) <= 5
    # the records: one story, billed to 100
    assert_one_story_billed_to_100(records)


# -- 2. SIPp plays the mobile: RFC 4733 or SIP INFO ---------------------------------------


def mobile_stream(dtmf: str) -> list[TimedPacket]:
    """The mobile's RTP from the ACK on: 1 0 1 as telephone-events 1.5 s
    after the answer, or silence only (the INFO scenario sends the keys)."""
    if dtmf == "rfc4733":
        return rfc4733_stream("101", lead_s=1.5, tail_s=8.0)
    return rfc4733_stream("", lead_s=0.0, tail_s=12.0)


def start_mobile(tmp_path: Path, carrier_port: int, media_port: int, dtmf: str,
                 name: str = "mobile", calls: int = 1) -> SippPeer:
    pcap = write_pcap(tmp_path / f"{name}.pcap", mobile_stream(dtmf))
    if dtmf == "rfc4733":
        return start_sipp("callback_mobile_uas.xml", tmp_path / name, port=carrier_port,
                          media_port=media_port, calls=calls, keys={"rtp_pcap": str(pcap)})
    return start_sipp("callback_mobile_info_uas.xml", tmp_path / name, port=carrier_port,
                      media_port=media_port, calls=calls,
                      keys={"rtp_pcap": str(pcap), "d1": "1", "d2": "0", "d3": "1"})


@pytest.mark.parametrize("dtmf", ["rfc4733", "info"])
async def test_sipp_mobile_is_called_back_and_dials_101(
        tmp_path: Path, free_port_factory: Callable[[], int], run_boomerang: StartServer,
        dtmf: str) -> None:
    require_peers("sipp", "baresip", "sox")
    timers = Timers(ring_time_s=1.0, delay_s=1.0, first_digit_s=6.0)
    carrier_port = free_port_factory()
    config = callback_config(
        database=tmp_path / "boomerang.db", rtp_ports=port_range(free_port_factory),
        carrier_port=carrier_port, extensions=story_extensions(), timers=timers,
        caller_id_header="pai")
    with sipp_peers() as peers:
        mobile = start_mobile(tmp_path, carrier_port, free_port_factory(), dtmf)
        peers.append(mobile)
        server = await start_server(run_boomerang, config)
        async with phones(tmp_path, free_port_factory) as make:
            desk = make("desk", DESK_MIC_HZ)
            await register(desk, "101", DESK_PASSWORD, server_address(server),
                           auto_answer=True)
            rang = await trigger(tmp_path / "trigger", server, free_port_factory,
                                 caller=MOBILE_NATIONAL)
            peers.append(rang.peer)
            assert rang.final_status == 486, rang.explain()
            await desk.wait_event("CALL_ESTABLISHED", timeout_s=timers.delay_s + 9)
            await desk.wait_event("CALL_CLOSED", timeout_s=10)  # the mobile hung up
            mobile_exit = await asyncio.to_thread(mobile.wait, 10)
            await desk.quit()
        records = await ended_records(server, 3)
    trace = mobile.explain()
    print(trace)
    # the trigger: 180 at once, 486 ring_time later, never a 200
    assert rang.returncode == 0, rang.explain()
    assert rang.ringing_at_s is not None, rang.explain()
    assert 200 not in [status for _, status in rang.provisional], rang.explain()
    assert rang.final_at_s is not None
    ring_s = rang.final_at_s - rang.invite_at_s
    assert timers.ring_time_s - 0.2 <= ring_s <= timers.ring_time_s + LATE_S, ring_s
    # one callback, to the stored mobile, with the caller ID in P-Asserted-Identity
    [invite] = mobile.invites()
    assert invite.request_user == MOBILE, invite.start_line
    assert CALLBACK_CALLER_ID in (invite.header("P-Asserted-Identity") or ""), invite.headers
    gap_s = invite.at_s - rang.final_at_s
    assert timers.delay_s - 0.3 <= gap_s <= timers.delay_s + LATE_S, gap_s
    # the mobile hung up (its BYE answered), Boomerang did not hang up on it
    assert mobile_exit == 0, trace
    assert [m.status for m in mobile.received(200) if m.cseq.endswith("BYE")] == [200], trace
    assert not mobile.received("BYE"), trace
    if dtmf == "info":
        assert [m.status for m in mobile.received(200) if m.cseq.endswith("INFO")] \
            == [200, 200, 200], trace
    assert_one_story_billed_to_100(records)


# -- 7. the trunk's max_call_seconds on a bridged callback ------------------------------

MAX_CALL_S = 14
WARNING_LEAD_S = 10  # docs/CONFIG.md: the warning tone 10 s before the end


def warning_beeps(pcm: Any, rate: int, after_s: float) -> list[tuple[float, float]]:
    """The 425 Hz spans of a recording after ``after_s`` (the warning's beeps)."""
    track = frequency_track(pcm, rate)
    return [span for span in sounding_spans(track, DIAL_TONE_HZ, tolerance_hz=15)
            if span[0] >= after_s]


async def test_max_call_seconds_cuts_a_bridged_callback_after_the_warning_tone(
        tmp_path: Path, free_port_factory: Callable[[], int],
        run_boomerang: StartServer) -> None:
    require_peers("baresip", "sox")
    timers = Timers(ring_time_s=1.0, delay_s=1.0, first_digit_s=6.0)
    async with phones(tmp_path, free_port_factory) as make:
        mobile, desk = make("mobile", MOBILE_MIC_HZ), make("desk", DESK_MIC_HZ)
        stamp_events(mobile)
        stamp_events(desk)
        config = callback_config(
            database=tmp_path / "boomerang.db", rtp_ports=port_range(free_port_factory),
            carrier_port=mobile.sip_port, extensions=story_extensions(), timers=timers,
            carrier_extra=f", max_call_seconds: {MAX_CALL_S}")
        server = await start_server(run_boomerang, config)
        address = server_address(server)
        await register(desk, "101", DESK_PASSWORD, address, auto_answer=True)
        mobile.start(limit_s=60)
        await mobile.connect()
        await mobile.command("uanew", mobile_account())
        await mobile.command("dial", f"sip:{DID}@{LOOPBACK}:{address.port}")
        await wait_count(mobile, "CALL_CLOSED", 1, timers.ring_time_s + 4)
        answered = await wait_count(mobile, "CALL_ESTABLISHED", 1, timers.delay_s + 4)
        await asyncio.sleep(1.0)
        for digit in "101":
            await mobile.command("sndcode", digit)
            await asyncio.sleep(0.3)
        bridged = await desk.wait_event("CALL_ESTABLISHED", timeout_s=6)
        # nobody hangs up: Boomerang ends both legs MAX_CALL_S after the answer
        cut = await wait_count(mobile, "CALL_CLOSED", 2, MAX_CALL_S + 5)
        desk_cut = await desk.wait_event("CALL_CLOSED", timeout_s=3)
        await mobile.quit()
        await desk.quit()
        log = server.output()
    lasted_s = cut["at_s"] - answered["at_s"]
    print(f"bridged {bridged['at_s'] - answered['at_s']:.2f} s after the answer; cut after "
          f"{lasted_s:.2f} s ({cut.get('param')!r}); 101 closed {desk_cut.get('param')!r}")
    assert MAX_CALL_S - 0.3 <= lasted_s <= MAX_CALL_S + LATE_S, lasted_s
    assert abs(desk_cut["at_s"] - cut["at_s"]) < 1.0
    assert bridged["at_s"] - answered["at_s"] < MAX_CALL_S - WARNING_LEAD_S, \
        "not bridged before the warning: the test proves nothing"
    assert "warning tone" in log, log[-3000:]
    bridged_after_s = bridged["at_s"] - answered["at_s"]
    for phone, other_hz in ((mobile, DESK_MIC_HZ), (desk, MOBILE_MIC_HZ)):
        pcm, rate = read_wav(longest(phone.recordings("dec")))
        track = frequency_track(pcm, rate)
        talk = sounding_spans(track, other_hz, tolerance_hz=10)
        assert talk, describe_track(track)
        beeps = warning_beeps(pcm, rate, talk[0][0])
        print(f"{phone.directory.name}: beeps {[(round(s, 2), round(e, 2)) for s, e in beeps]}"
              f" of {len(pcm) / rate:.1f} s")
        # three 200 ms beeps (docs/CONFIG.md), heard in the bridge before the end
        assert len(beeps) >= 3, describe_track(track)
        assert all(0.1 <= end - start <= 0.35 for start, end in beeps[:3]), beeps
        if phone is desk:  # its recording starts at the bridge and runs without gaps
            expected_s = MAX_CALL_S - WARNING_LEAD_S - bridged_after_s
            assert abs(beeps[0][0] - expected_s) <= 0.7, (beeps, expected_s)
