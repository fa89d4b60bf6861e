#!/usr/bin/env python3
"""Boomerang bridging trunk calls to another trunk, for bench/bridge_cps.py.

It is the product as ``serve()`` builds it: Endpoint, TrunkSet,
CallManager and the Python media relay, on uvloop, ``gc.freeze()`` after
start. One trunk (``carrier``) has the SIPp UAS as its host and
127.0.0.1 as its source, so the SIPp UAC's INVITEs arrive as trunk calls.
The ``on_trunk_call`` hook:

  inbound INVITE -> ring -> originate(UriTarget(UAS)) in the same story
  (correlation id) -> UAS answers -> answer the inbound call -> bridge
  (B2BUA signalling + relay media) -> either side's BYE ends both.

Every ``--stats-s`` seconds it prints one ``stats`` line (calls offered,
bridged, failed, live and peak concurrent bridged calls, relay packet
counters of finished and live calls, RSS) and on exit a ``final`` line,
the GC pauses and the overload counters.

  python bench/bridge_endpoint.py --listen udp:127.0.0.1:5070 \
      --uas 127.0.0.1:5080 --rtp-ports 21000-28999
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import resource
import sys
import time
from typing import Any

from reject_endpoint import GcPauses  # bench/ is sys.path[0] when run as a script

from boomerang.app import make_endpoint, serve
from boomerang.call.calls import CallEndedError, InboundCall, OutboundCall
from boomerang.call.events import EndCause, Outcome
from boomerang.call.manager import CallManager, CallRefused, UriTarget
from boomerang.call.trunks import Trunk
from boomerang.config import load_config_text
from boomerang.media.relay import RelayError
from boomerang.sip.address import Address
from boomerang.transport.media_relay import PythonMediaRelay

NORMAL_ENDS = (Outcome.HUNG_UP_REMOTE, Outcome.HUNG_UP_LOCAL, Outcome.ANSWERED)


def rss_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process, KiB."""
    rss = hwm = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


class RelayCounters:
    """Packet counters of the relay: finished calls (read just before their
    release) plus, on demand, the calls still bridged."""

    __slots__ = ("dropped", "lost", "received", "relay", "sent")

    def __init__(self, relay: PythonMediaRelay) -> None:
        self.relay = relay
        self.received = self.sent = self.dropped = self.lost = 0
        original = relay.release

        async def release(call_id: str) -> None:
            self.add(call_id, self)
            await original(call_id)

        relay.release = release  # type: ignore[method-assign]

    def add(self, call_id: str, into: Any) -> None:
        try:
            stats = self.relay.relay_call(call_id).stats()
        except (RelayError, KeyError):
            return
        for leg in stats.legs:
            into.received += leg.packets_received
            into.sent += leg.packets_sent
            into.dropped += leg.packets_dropped
            into.lost += leg.packets_lost

    def totals(self, live: set[str]) -> RelayCounters:
        now = object.__new__(RelayCounters)
        now.received, now.sent = self.received, self.sent
        now.dropped, now.lost = self.dropped, self.lost
        for call_id in live:
            self.add(call_id, now)
        return now


class BridgeToUas:
    """The ``on_trunk_call`` hook: every trunk call is bridged to the UAS."""

    def __init__(self, manager: CallManager, uas: Address, ring_timeout_s: float) -> None:
        self.manager = manager
        self.uas = uas
        self.uri = f"sip:bench@{uas.host}:{uas.port}"
        self.ring_timeout_s = ring_timeout_s
        self.offered = 0
        self.bridged = 0
        self.failed = 0
        self.ended_abnormally = 0
        self.failures: dict[str, int] = {}
        self.census = False  # --gc-census: count tracked objects in each stats line
        self.live: set[str] = set()
        self.peak = 0
        relay = manager.relay
        assert isinstance(relay, PythonMediaRelay)
        self.counters = RelayCounters(relay)

    def _fail(self, why: str) -> None:
        self.failed += 1
        self.failures[why] = self.failures.get(why, 0) + 1

    async def __call__(self, call: InboundCall, trunk: Trunk) -> None:
        self.offered += 1
        call.ring()
        try:
            out = await self.manager.originate(
                UriTarget(self.uri, self.uas), caller_id="bench",
                ring_timeout_s=self.ring_timeout_s, correlation_id=call.correlation_id)
        except CallRefused as error:
            self._fail(f"originate {error.status}")
            call.reject(error.status)
            return
        if not await self._answered(call, out):
            return
        try:
            await call.answer()
        except CallEndedError as error:
            self._fail(f"inbound ended before ACK {error.status}")
            out.hangup()
            return
        self.bridged += 1
        key = call.correlation_id
        self.live.add(key)
        self.peak = max(self.peak, len(self.live))
        try:
            await self.manager.bridge(call, out)
        finally:
            self.live.discard(key)
        for side in (call, out):
            cause: EndCause = side.ended.result()
            if cause.outcome not in NORMAL_ENDS:
                self.ended_abnormally += 1
                why = f"bridged call ended {cause.outcome} {cause.sip_status}"
                self.failures[why] = self.failures.get(why, 0) + 1
                break

    async def _answered(self, call: InboundCall, out: OutboundCall) -> bool:
        outcome = asyncio.ensure_future(out.outcome())
        await asyncio.wait((outcome, call.ended), return_when=asyncio.FIRST_COMPLETED)
        if call.ended.done():  # the caller gave up (CANCEL) first
            outcome.cancel()
            out.hangup()
            self._fail("inbound ended while the UAS rang")
            return False
        cause = outcome.result()
        if cause.outcome is not Outcome.ANSWERED:
            self._fail(f"outbound {cause.outcome} {cause.sip_status}")
            call.reject(cause.sip_status if cause.sip_status and cause.sip_status >= 400
                        else 480)
            return False
        return True

    def line(self, tag: str, started: float) -> str:
        now = self.counters.totals(self.live)
        rss, hwm = rss_kib()
        mono = time.monotonic()
        return (f"{tag} t={mono - started:.1f} mono={mono:.3f} offered={self.offered} "
                f"bridged={self.bridged} failed={self.failed} "
                f"ended_abnormally={self.ended_abnormally} concurrent={len(self.live)} "
                f"peak={self.peak} rtp_received={now.received} rtp_sent={now.sent} "
                f"rtp_dropped={now.dropped} rtp_lost={now.lost} "
                f"calls_in_manager={len(self.manager.calls)} "
                f"relay_calls={len(self.manager.relay)} rss_kib={rss} hwm_kib={hwm}"  # type: ignore[arg-type]
                + (f" gc_tracked={len(gc.get_objects())} gc_frozen={gc.get_freeze_count()} "
                   f"gc_counts={gc.get_count()}" if self.census else ""))


async def main_async(args: argparse.Namespace) -> int:
    uas_host, uas_port = args.uas.rsplit(":", 1)
    config = load_config_text(
        f"sip:\n  listen: [{args.listen}]\n"
        f"media:\n  rtp_ports: {args.rtp_ports}\n"
        "trunks:\n"
        f"  - {{name: carrier, host: {uas_host}, port: {uas_port}, transport: udp,\n"
        f"     sources: [{args.sources}], keepalive_s: 0}}\n", "<bench>")
    endpoint = make_endpoint(config)
    started = time.monotonic()
    hook: list[BridgeToUas] = []
    tasks: list[asyncio.Task[None]] = []

    async def report() -> None:
        while True:
            await asyncio.sleep(args.stats_s)
            print(hook[0].line("stats", started), flush=True)

    def on_ready(bound: object) -> None:
        # serve() does not hand out its CallManager: it is the owner of the
        # INVITE handler it installed on the endpoint
        manager = endpoint.handlers["INVITE"].__self__  # type: ignore[attr-defined]
        assert isinstance(manager, CallManager)
        bridge = BridgeToUas(manager, Address("udp", uas_host, int(uas_port)),
                             args.ring_timeout_s)
        manager.on_trunk_call = bridge
        bridge.census = args.gc_census
        hook.append(bridge)
        if args.gc_freeze:
            gc.collect()
            gc.freeze()  # start-up objects never need scanning again
        tasks.append(asyncio.get_running_loop().create_task(report()))
        print(f"listening on {bound}", flush=True)
        print(hook[0].line("stats", started), flush=True)

    pauses = GcPauses()
    gc.callbacks.append(pauses)
    try:
        return await serve(config, on_ready=on_ready, endpoint=endpoint)
    finally:
        for task in tasks:
            task.cancel()
        gc.callbacks.remove(pauses)
        if hook:
            bridge = hook[0]
            print(bridge.line("final", started), flush=True)
            print(f"failures: {bridge.failures}", flush=True)
        print(pauses.report(), flush=True)
        if hook and hook[0].census:
            before = len(gc.get_objects())
            found = gc.collect()
            after = gc.get_objects()
            kinds: dict[str, int] = {}
            for item in after:
                name = type(item).__qualname__
                kinds[name] = kinds.get(name, 0) + 1
            top = sorted(kinds.items(), key=lambda kv: -kv[1])[:15]
            print(f"census at exit: {before} tracked, a full collection found {found} "
                  f"unreachable, {len(after)} left; most common: {top}", flush=True)
        if endpoint.overload is not None:
            monitor = endpoint.overload.monitor
            print(f"overload: {endpoint.overload.shed_count} INVITEs shed with 503; "
                  f"max loop lag {monitor.max_lag_s * 1000 if monitor else 0:.0f} ms",
                  flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="udp:127.0.0.1:5070")
    parser.add_argument("--uas", required=True, help="HOST:PORT of the SIPp UAS")
    parser.add_argument("--sources", default="127.0.0.1/32",
                        help="where trunk calls come from (the SIPp UAC)")
    parser.add_argument("--rtp-ports", default="21000-28999")
    parser.add_argument("--ring-timeout-s", type=float, default=30.0)
    parser.add_argument("--stats-s", type=float, default=2.0)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false")
    parser.add_argument("--gc-census", action="store_true",
                        help="count the objects the collector tracks in every stats line "
                             "(costs a few ms each time: diagnosis only)")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s %(message)s")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 4 sockets per bridged call
    if not args.no_uvloop:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
