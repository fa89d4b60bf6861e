"""What must never get a callback, with real peers (the "Proof" list, 3).

- Triggers that are refused: a caller number that is no extension's
  mobile, a withheld number (From anonymous@anonymous.invalid), the
  registered mobile's number from an address outside the trunk's sources
  (SIPp bound to 127.0.0.2), and the mobile of an extension without
  callback. The three that come from the trunk ring and are rejected
  exactly like an accepted trigger (180, then 486 after ``ring_time``: a
  caller cannot probe which numbers are registered); the stranger is not
  rung at all. A SIPp UAS listens on the carrier's port for a window past
  ``delay`` and every retry: it receives no INVITE. Then the registered
  mobile rings from the carrier and the same UAS gets its callback, which
  proves the UAS would have seen one.
- Numbers refused at the dial tone: a baresip mobile is called back and
  keys an external number. Without transit permission (0600100300#), and
  with it but premium-rate (0701234567#, PL 70x), it hears the special
  information tone (950/1400/1800 Hz) and Boomerang hangs up; no INVITE
  reaches the trunk for external calls (``pstn``, a SIPp UAS counting
  INVITEs). With transit, 0600100300# does reach it (600100300, the
  trunk's national format): the control again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .callback_world import (
    DID,
    LATE_S,
    MOBILE,
    STRANGER,
    UNKNOWN_MOBILE,
    ServerProcess,
    Timers,
    callback_config,
    cdr_records,
    describe_track,
    events_of,
    extension_yaml,
    frequency_track,
    mobile_account,
    port_range,
    read_wav,
    require_peers,
    silence_pcap,
    sipp_peers,
    sounding_spans,
    stamp_events,
    start_server,
    start_sipp,
    trigger,
    wait_count,
)
from .conftest import LOOPBACK
from .test_phone_calls import phones

pytestmark = [pytest.mark.peers, pytest.mark.slow]

StartServer = Callable[..., ServerProcess]

NO_CALLBACK_MOBILE = "+48600100202"   # extension 102's, which has callback: false
SPECIAL_INFORMATION_HZ = (950, 1400, 1800)
DIAL_TONE_HZ = 425


async def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# -- triggers that are refused ----------------------------------------------------------


async def test_refused_triggers_are_rejected_and_never_called_back(
        tmp_path: Path, free_port_factory: Callable[[], int],
        run_boomerang: StartServer) -> None:
    require_peers("sipp")
    timers = Timers(ring_time_s=1.0, delay_s=1.0, retries=1, retry_interval_s=2.0)
    carrier_port = free_port_factory()
    config = callback_config(
        database=tmp_path / "boomerang.db", rtp_ports=port_range(free_port_factory),
        carrier_port=carrier_port, timers=timers,
        extensions=extension_yaml("100", mobiles=[MOBILE], callback=True)
        + extension_yaml("102", mobiles=[NO_CALLBACK_MOBILE], callback=False, transit=True))
    callers = {  # name: (caller number, From host, our address)
        "unknown": (UNKNOWN_MOBILE, LOOPBACK, LOOPBACK),
        "withheld": ("anonymous", "anonymous.invalid", LOOPBACK),
        "stranger": (MOBILE, LOOPBACK, STRANGER),
        "no_callback": (NO_CALLBACK_MOBILE, LOOPBACK, LOOPBACK),
    }
    with sipp_peers() as peers:
        carrier = start_sipp("callback_mobile_uas.xml", tmp_path / "carrier", port=carrier_port,
                             media_port=free_port_factory(), calls=5,
                             keys={"rtp_pcap": str(silence_pcap(tmp_path / "silence.pcap"))},
                             limit_s=60)
        peers.append(carrier)
        server = await start_server(run_boomerang, config)
        results = await asyncio.gather(*(
            trigger(tmp_path / f"trigger-{name}", server, free_port_factory, caller=caller,
                    caller_host=caller_host, host=host)
            for name, (caller, caller_host, host) in callers.items()))
        rang = dict(zip(callers, results, strict=True))
        peers.extend(result.peer for result in results)
        last_end_s = max(r.final_at_s or r.invite_at_s for r in results)
        await asyncio.sleep(max(0.0, last_end_s + timers.quiet_window_s - time.time()))
        refused_invites = carrier.invites()
        # the control: the registered mobile, from the carrier, on the same UAS
        control = await trigger(tmp_path / "trigger-control", server, free_port_factory,
                                caller=MOBILE)
        peers.append(control.peer)
        called_back = await wait_for(lambda: len(carrier.invites()) > len(refused_invites),
                                     timers.delay_s + 4)
        log = server.output()
        records = await asyncio.to_thread(cdr_records, server.config_path)
    for name, result in rang.items():
        print(f"{name}: 1xx {[s for _, s in result.provisional]}, final {result.final_status} "
              f"after {(result.final_at_s or 0) - result.invite_at_s:.2f} s")
    print("records:", [(r["leg_kind"], r["trigger_caller"], r["result"], r["sip_status"])
                       for r in records])
    assert refused_invites == [], carrier.explain()
    for name in ("unknown", "withheld", "no_callback"):
        result = rang[name]
        assert result.ringing_at_s is not None, (name, result.explain())
        assert result.final_status == 486, (name, result.explain())
        assert result.final_at_s is not None
        ring_s = result.final_at_s - result.invite_at_s
        assert timers.ring_time_s - 0.2 <= ring_s <= timers.ring_time_s + LATE_S, (name, ring_s)
    # not a trunk: refused before any ringing. 407 (a challenge: it could be an
    # extension's phone, manager.py) or 403; never a trigger
    stranger = rang["stranger"]
    assert stranger.ringing_at_s is None, stranger.explain()
    assert stranger.final_status in (403, 407), stranger.explain()
    for reason in ("unknown_caller", "withheld", "no_callback"):
        assert f"refused: {reason}" in log, reason
    # the control: the carrier's UAS does get the registered mobile's callback
    assert control.final_status == 486, control.explain()
    assert called_back, carrier.explain()
    [invite] = carrier.invites()
    assert invite.request_user == MOBILE, invite.start_line
    refused_legs = [r for r in records if r["leg_kind"] == "trigger"
                    and r["trigger_caller"] != MOBILE]
    assert len(refused_legs) == 3, records
    assert all(r["owner_extension"] in (None, "102") for r in refused_legs), refused_legs
    assert all(r["result"] == "refused" and r["sip_status"] == 486 for r in refused_legs), \
        refused_legs
    # one callback leg in the store: the control's (still in progress)
    assert len([r for r in records if r["leg_kind"] == "callback"]) == 1, records


# -- numbers refused at the dial tone ---------------------------------------------------


def pstn_trunk(port: int) -> str:
    """The trunk for external calls (disa ``trunk: pstn``): a SIPp UAS."""
    return (f"  - {{name: pstn, host: 127.0.0.1, port: {port}, sources: [192.0.2.1/32],\n"
            f"     keepalive_s: 0, dial_format: national, outside_prefix: \"0\"}}\n")


async def call_back_and_key(mobile: Any, server: ServerProcess, timers: Timers,
                            digits: str, story: int) -> tuple[float, dict[str, Any]]:
    """One story of the baresip mobile: ring the DID, be called back, key
    ``digits`` on the dial tone; returns when the last key was sent and the
    CALL_CLOSED that ended the callback (Boomerang's BYE)."""
    _, port = server.address("udp")
    await mobile.command("dial", f"sip:{DID}@{LOOPBACK}:{port}")
    await wait_count(mobile, "CALL_CLOSED", 2 * story - 1, timers.ring_time_s + 4)
    await wait_count(mobile, "CALL_ESTABLISHED", story, timers.delay_s + 4)
    await asyncio.sleep(1.0)  # the dial tone
    for digit in digits:
        await mobile.command("sndcode", digit)
        await asyncio.sleep(0.3)
    keyed_at = time.monotonic()
    closed = await wait_count(mobile, "CALL_CLOSED", 2 * story, 6)
    return keyed_at, closed


def assert_special_information_after_dial_tone(recording: Path) -> None:
    pcm, rate = read_wav(recording)
    track = frequency_track(pcm, rate)
    picture = describe_track(track, step=2)
    dial_tone = sounding_spans(track, DIAL_TONE_HZ, tolerance_hz=10)
    assert dial_tone and dial_tone[0][1] - dial_tone[0][0] >= 0.5, picture
    starts = []
    for frequency_hz in SPECIAL_INFORMATION_HZ:
        spans = [s for s in sounding_spans(track, frequency_hz, tolerance_hz=30)
                 if s[0] >= dial_tone[0][1] - 0.01]
        assert spans and max(e - s for s, e in spans) >= 0.2, (frequency_hz, picture)
        starts.append(spans[0][0])
    assert starts == sorted(starts), (starts, picture)  # 950, then 1400, then 1800


async def test_external_numbers_refused_at_the_dial_tone_never_reach_the_trunk(
        tmp_path: Path, free_port_factory: Callable[[], int],
        run_boomerang: StartServer) -> None:
    require_peers("sipp", "baresip", "sox")
    timers = Timers(ring_time_s=1.0, delay_s=1.0, first_digit_s=6.0, inter_digit_s=3.0)
    pstn_port = free_port_factory()
    stories = [  # (transit, digits, reaches the trunk)
        (False, "0600100300#", False),
        (True, "0701234567#", False),
        (True, "0600100300#", True),
    ]
    with sipp_peers() as peers:
        pstn = start_sipp("callback_busy_uas.xml", tmp_path / "pstn", port=pstn_port,
                          media_port=free_port_factory(), calls=5, limit_s=90)
        peers.append(pstn)
        async with phones(tmp_path, free_port_factory) as make:
            mobile = make("mobile", 550)
            stamp_events(mobile)
            mobile.start(limit_s=90)
            await mobile.connect()
            await mobile.command("uanew", mobile_account())
            outcomes = []
            server = None
            for story, (transit, digits, _) in enumerate(stories, start=1):
                if server is None or story == 2:  # a server per transit setting
                    if server is not None:
                        server.stop()
                    config = callback_config(
                        database=tmp_path / f"boomerang-{transit}.db",
                        rtp_ports=port_range(free_port_factory),
                        carrier_port=mobile.sip_port, timers=timers,
                        extensions=extension_yaml("100", mobiles=[MOBILE], callback=True,
                                                  transit=transit),
                        more_trunks=pstn_trunk(pstn_port), disa_extra=", trunk: pstn")
                    server = await start_server(run_boomerang, config)
                invites_before = len(pstn.invites())
                keyed_at, closed = await call_back_and_key(mobile, server, timers, digits,
                                                           story)
                await asyncio.sleep(0.5)  # an INVITE to the trunk would be there by now
                outcomes.append((closed["at_s"] - keyed_at, closed.get("param"),
                                 pstn.invites()[invites_before:]))
            assert server is not None
            log = server.output()
            await mobile.quit()
    recordings = mobile.recordings("dec")
    for (transit, digits, _), (hung_up_s, param, invites) in zip(stories, outcomes,
                                                                  strict=True):
        print(f"transit={transit} {digits}: closed {hung_up_s:.2f} s after the last key "
              f"({param!r}); INVITEs at the trunk {[m.start_line for m in invites]}")
    print(pstn.explain())
    assert len(recordings) == len(stories), (recordings, events_of(mobile, "CALL_CLOSED"))
    for (_, digits, reaches), (hung_up_s, _, invites), recording in zip(
            stories, outcomes, recordings, strict=True):
        if reaches:
            assert [m.request_user for m in invites] == ["600100300"], pstn.explain()
            continue
        assert invites == [], (digits, pstn.explain())
        # the error tone (1 s), then Boomerang's BYE
        assert 0.5 <= hung_up_s <= 4.0, (digits, hung_up_s)
        assert_special_information_after_dial_tone(recording)
    assert "0701234567" not in "".join(m.start_line for m in pstn.invites())
    assert "701234567" not in "".join(m.start_line for m in pstn.invites()), log[-2000:]
