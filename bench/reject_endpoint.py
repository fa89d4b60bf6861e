#!/usr/bin/env python3
"""Boomerang answering the trigger exchange itself, for bench/sip_reject_cps.py.

It is the product's Endpoint (transports, transaction layer, UAS checks),
with an INVITE policy that holds every INVITE, sends 180 Ringing at once and
the reject (486) after ``--ring-ms``: the exchange a callback trigger gets
(SPEC §2), without the callback service behind it.

  python bench/reject_endpoint.py --listen udp:127.0.0.1:5070 --ring-ms 100
  python bench/reject_endpoint.py ... --profile out.prof   # cProfile, written on SIGTERM
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import sys
import time

from boomerang.app import Endpoint, make_endpoint, serve
from boomerang.config import load_config_text
from boomerang.sip.address import Address
from boomerang.sip.message import Request
from boomerang.sip.transaction.events import CancelReceived, TransactionKey


class RejectAfterRinging:
    """The endpoint's INVITE handler: (100 by the layer) 180 now, 486 after ring_s."""

    def __init__(self, endpoint: Endpoint, ring_s: float, status: int) -> None:
        self.endpoint = endpoint
        self.ring_s = ring_s
        self.status = status
        self.loop = asyncio.get_running_loop()
        # ringing calls: transaction -> (request, tag, timer). No per-call
        # closure: a closure per call held until the transaction ends (Timer
        # I, 5 s) kept ~10,000 objects alive at 2000 calls/s and multiplied
        # the collector's work (p99 4 -> 108 ms).
        self.ringing: dict[TransactionKey, tuple[Request, str, asyncio.TimerHandle]] = {}
        self._cancelled = self.cancelled  # one bound method for every call

    def install(self) -> None:
        # replaces whatever serve() installed (the call manager answers 404
        # for numbers it does not serve)
        self.endpoint.handlers["INVITE"] = self.on_invite

    def on_invite(self, request: Request, transaction: TransactionKey, source: Address) -> None:
        tag = self.endpoint.ids.tag()
        self.endpoint.respond(request, 180, to_tag=tag)
        handle = self.loop.call_later(self.ring_s, self.reject, transaction)
        self.ringing[transaction] = (request, tag, handle)
        self.endpoint.on_cancel(transaction, self._cancelled)

    def reject(self, transaction: TransactionKey) -> None:
        ringing = self.ringing.pop(transaction, None)
        if ringing is not None:
            request, tag, _ = ringing
            self.endpoint.respond(request, self.status, to_tag=tag)

    def cancelled(self, event: CancelReceived) -> None:
        ringing = self.ringing.pop(event.transaction, None)
        if ringing is not None:
            request, tag, handle = ringing
            handle.cancel()
            self.endpoint.respond(request, 487, to_tag=tag)


class GcPauses:
    """Counts collections per generation and how long they paused the loop."""

    def __init__(self) -> None:
        self.started = 0.0
        self.count = [0, 0, 0]
        self.total_s = [0.0, 0.0, 0.0]
        self.max_s = [0.0, 0.0, 0.0]

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        generation = info["generation"]
        pause = time.perf_counter() - self.started
        self.count[generation] += 1
        self.total_s[generation] += pause
        self.max_s[generation] = max(self.max_s[generation], pause)

    def report(self) -> str:
        return "gc pauses: " + "; ".join(
            f"gen{g}: {self.count[g]} collections, total {self.total_s[g] * 1000:.0f} ms, "
            f"max {self.max_s[g] * 1000:.1f} ms" for g in range(3))


async def main_async(args: argparse.Namespace) -> int:
    config = load_config_text(
        f"sip:\n  listen: [{args.listen}]\n", "<bench>")
    endpoint = make_endpoint(config)
    ready = asyncio.Event()

    def on_ready(bound: object) -> None:
        RejectAfterRinging(endpoint, args.ring_ms / 1000.0, args.status).install()
        if args.gc_freeze:
            gc.freeze()  # start-up objects never need scanning again
        print(f"listening on {bound}", flush=True)
        ready.set()

    pauses = GcPauses()
    gc.callbacks.append(pauses)
    if args.gc_garbage:  # diagnosis: keep what the collector finds, list it at exit
        gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        return await serve(config, on_ready=on_ready, endpoint=endpoint)
    finally:
        gc.callbacks.remove(pauses)
        print(pauses.report(), flush=True)
        if args.gc_garbage:
            gc.collect()
            kinds: dict[str, int] = {}
            for item in gc.garbage:
                name = f"{type(item).__module__}.{type(item).__qualname__}"
                kinds[name] = kinds.get(name, 0) + 1
            top = sorted(kinds.items(), key=lambda kv: -kv[1])[:12]
            print(f"gc garbage: {len(gc.garbage)} objects in cycles; most common: {top}",
                  flush=True)
        if endpoint.overload is not None:
            monitor = endpoint.overload.monitor
            print(f"overload: {endpoint.overload.shed_count} INVITEs shed with 503; "
                  f"max loop lag {monitor.max_lag_s * 1000 if monitor else 0:.0f} ms",
                  flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="udp:127.0.0.1:5070")
    parser.add_argument("--ring-ms", type=int, default=100)
    parser.add_argument("--status", type=int, default=486)
    parser.add_argument("--profile", help="write cProfile stats here on exit")
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--gc-freeze", action="store_true", default=True)
    parser.add_argument("--gc-garbage", action="store_true",
                        help="diagnosis: list the objects found in reference cycles at exit")
    args = parser.parse_args()
    if not args.no_uvloop:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    try:
        return asyncio.run(main_async(args))
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)


if __name__ == "__main__":
    sys.exit(main())
