"""The callback's clocks with real peers (the "Proof" list, 4 and 5).

SIPp plays the mobile behind the carrier; every gap is measured on its own
message trace (wall-clock times of what it sent and received):

- first-digit timeout: the mobile answers the callback and keys nothing;
  Boomerang's BYE comes ``first_digit_timeout`` after the ACK;
- inter-digit timeout: the mobile keys 1 0 (RFC 4733), the start of 100
  and 101 but neither: after ``timeout`` (plus the special information
  tone) Boomerang hangs up;
- retries: the mobile is busy (486) for the first callback INVITE and
  answers the second, which comes ``retry_interval`` after the first; the
  records hold both attempts;
- durability: ``kill -9`` of the server right after the trigger's reject,
  before the callback is due; ``boomerang calls`` lists the job the dead
  server left in the database; a restart on the same database: the
  callback arrives once, counted at the carrier over a window past
  ``delay`` and ``retry_interval``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .callback_world import (
    LATE_S,
    MOBILE,
    ServerProcess,
    Timers,
    callback_config,
    cdr_records,
    extension_yaml,
    kill_server,
    pending_callbacks,
    port_range,
    require_peers,
    server_pid,
    silence_pcap,
    sipp_peers,
    start_server,
    start_sipp,
    trigger,
)
from .pcap_writer import rfc4733_stream, write_pcap

pytestmark = [pytest.mark.peers, pytest.mark.slow]

StartServer = Callable[..., ServerProcess]
TELEPHONE_EVENT = 101


def config_for(tmp_path: Path, free_port_factory: Callable[[], int], carrier_port: int,
               timers: Timers) -> str:
    return callback_config(
        database=tmp_path / "boomerang.db", rtp_ports=port_range(free_port_factory),
        carrier_port=carrier_port, timers=timers,
        extensions=extension_yaml("100", mobiles=[MOBILE], callback=True)
        + extension_yaml("101", password="desk-pw"))


async def test_dial_tone_timeouts_hang_up_on_the_mobile(
        tmp_path: Path, free_port_factory: Callable[[], int],
        run_boomerang: StartServer) -> None:
    require_peers("sipp")
    timers = Timers(ring_time_s=1.0, delay_s=1.0, first_digit_s=2.0, inter_digit_s=1.5)
    carrier_port = free_port_factory()
    config = config_for(tmp_path, free_port_factory, carrier_port, timers)
    keyed = rfc4733_stream("10", lead_s=1.0, tail_s=8.0)
    last_key_s = max(p.time_s for p in keyed if p.data[1] & 0x7F == TELEPHONE_EVENT)
    stories = {"no key": silence_pcap(tmp_path / "silence.pcap"),
               "1 0": write_pcap(tmp_path / "keyed.pcap", keyed)}
    gaps: dict[str, float] = {}
    traces: dict[str, str] = {}
    with sipp_peers() as peers:
        server = await start_server(run_boomerang, config)
        for name, pcap in stories.items():
            mobile = start_sipp("callback_mobile_uas.xml", tmp_path / f"mobile-{len(gaps)}",
                                port=carrier_port, media_port=free_port_factory(),
                                keys={"rtp_pcap": str(pcap)})
            peers.append(mobile)
            rang = await trigger(tmp_path / f"trigger-{len(gaps)}", server, free_port_factory,
                                 caller=MOBILE)
            peers.append(rang.peer)
            assert rang.final_status == 486, rang.explain()
            await asyncio.to_thread(mobile.wait, timers.delay_s + 15)
            traces[name] = mobile.explain()
            [ack] = mobile.received("ACK")
            byes = mobile.received("BYE")
            assert byes, f"{name}: Boomerang never hung up (the mobile did):\n{traces[name]}"
            assert not mobile.sent("BYE"), traces[name]
            start_s = ack.at_s + (last_key_s if name == "1 0" else 0.0)
            gaps[name] = byes[0].at_s - start_s
    print({name: round(gap, 2) for name, gap in gaps.items()})
    # no key: the dial tone from the ACK, BYE first_digit_timeout later
    assert timers.first_digit_s - 0.2 <= gaps["no key"] <= timers.first_digit_s + LATE_S, \
        traces["no key"]
    # an incomplete number: timeout after the last key, the error tone (1 s), BYE
    assert timers.inter_digit_s - 0.2 <= gaps["1 0"] <= timers.inter_digit_s + 1.0 + LATE_S, \
        traces["1 0"]


async def test_a_busy_mobile_is_called_again_after_the_retry_interval(
        tmp_path: Path, free_port_factory: Callable[[], int],
        run_boomerang: StartServer) -> None:
    require_peers("sipp")
    timers = Timers(ring_time_s=1.0, delay_s=1.0, retries=1, retry_interval_s=2.5,
                    first_digit_s=1.5)
    carrier_port = free_port_factory()
    config = config_for(tmp_path, free_port_factory, carrier_port, timers)
    with sipp_peers() as peers:
        busy = start_sipp("callback_busy_uas.xml", tmp_path / "busy", port=carrier_port,
                          media_port=free_port_factory())
        peers.append(busy)
        server = await start_server(run_boomerang, config)
        rang = await trigger(tmp_path / "trigger", server, free_port_factory, caller=MOBILE)
        peers.append(rang.peer)
        assert rang.final_status == 486, rang.explain()
        # -m 1: the busy mobile leaves after its one call; the next INVITE
        # finds the mobile that answers on the same port
        busy_exit = await asyncio.to_thread(busy.wait, timers.delay_s + 6)
        answering = start_sipp("callback_mobile_uas.xml", tmp_path / "answering",
                               port=carrier_port, media_port=free_port_factory(),
                               keys={"rtp_pcap": str(silence_pcap(tmp_path / "s.pcap"))})
        peers.append(answering)
        await asyncio.to_thread(answering.wait, timers.retry_interval_s + 12)
        await asyncio.sleep(0.5)  # the records' last writes
        records = await asyncio.to_thread(cdr_records, server.config_path)
    print(busy.explain())
    print(answering.explain())
    assert busy_exit == 0, busy.explain()
    [first] = busy.invites()
    [second] = answering.invites()
    gap_s = second.at_s - first.at_s
    print(f"second callback INVITE {gap_s:.2f} s after the first")
    assert timers.retry_interval_s - 0.2 <= gap_s <= timers.retry_interval_s + LATE_S, gap_s
    assert second.request_user == MOBILE and first.request_user == MOBILE
    assert answering.received("BYE"), answering.explain()  # dial tone, no key: hung up
    # one callback leg per attempt, each with its final SIP status
    # (docs/RECORDS.md: sip_status "the final SIP status of the leg (200, 486...)")
    attempts = sorted((r["attempts"], r["result"], r["sip_status"]) for r in records
                      if r["leg_kind"] == "callback")
    print(f"callback legs (attempt, result, sip_status): {attempts}")
    assert attempts == [(1, "busy", 486), (2, "answered", 200)], attempts


async def test_kill_9_between_reject_and_callback_calls_back_exactly_once(
        tmp_path: Path, free_port_factory: Callable[[], int],
        run_boomerang: StartServer) -> None:
    require_peers("sipp")
    timers = Timers(ring_time_s=1.0, delay_s=2.0, retries=1, retry_interval_s=2.0,
                    first_digit_s=1.5)
    carrier_port = free_port_factory()
    config = config_for(tmp_path, free_port_factory, carrier_port, timers)
    with sipp_peers() as peers:
        carrier = start_sipp("callback_mobile_uas.xml", tmp_path / "carrier",
                             port=carrier_port, media_port=free_port_factory(), calls=4,
                             keys={"rtp_pcap": str(silence_pcap(tmp_path / "s.pcap"))},
                             limit_s=60)
        peers.append(carrier)
        server = await start_server(run_boomerang, config)
        pid = server_pid(server)
        rang = await trigger(tmp_path / "trigger", server, free_port_factory, caller=MOBILE)
        peers.append(rang.peer)
        killed_pid = kill_server(server)
        killed_at = time.time()
        assert rang.final_status == 486 and rang.final_at_s is not None, rang.explain()
        # what the dead server left in its database
        pending = await asyncio.to_thread(pending_callbacks, server.config_path)
        invites_before_restart = carrier.invites()
        restarted = await start_server(run_boomerang, config)
        restarted_at = time.time()
        window_end = rang.final_at_s + timers.quiet_window_s + 1.0
        await asyncio.sleep(max(0.0, window_end - time.time()))
        invites = carrier.invites()
        await asyncio.sleep(0.5)
        left = await asyncio.to_thread(pending_callbacks, restarted.config_path)
        records = await asyncio.to_thread(cdr_records, restarted.config_path)
    print(f"killed pid {killed_pid} {killed_at - rang.final_at_s:.2f} s after the reject, "
          f"restarted {restarted_at - rang.final_at_s:.2f} s after it; pending then: "
          f"{[(j['target_number'], j['state']) for j in pending]}")
    print(carrier.explain())
    assert killed_pid == pid and server.process.poll() is not None
    assert killed_at < rang.final_at_s + timers.delay_s, "killed too late to prove anything"
    # the job was stored before the reject: it outlived the kill
    assert [(j["target_number"], j["owner_extension"]) for j in pending] == [(MOBILE, "100")]
    assert invites_before_restart == [], carrier.explain()
    # exactly one callback, from the restarted server
    assert len(invites) == 1, carrier.explain()
    assert invites[0].request_user == MOBILE
    assert invites[0].at_s >= restarted_at - 0.5, carrier.explain()
    assert left == [], left
    callback_legs = [r for r in records if r["leg_kind"] == "callback"]
    assert len(callback_legs) == 1 and callback_legs[0]["result"] == "answered", records
