#!/usr/bin/env python3
"""Relayed packets per second per core: the Python relay, then rtpengine.

K bridged calls. Two generator processes play the two sides of every call:
generator A sends one 20 ms G.711 packet (172 octets) per call every 20 ms
to the relay's port for leg a and receives what comes back from leg b, and
generator B does the same for leg b. Each packet carries its send time
(CLOCK_MONOTONIC, shared by the processes) in its payload; the receiving
generator measures the added latency. The relay's CPU time over the
measured window gives packets per CPU-second ("per core").

    python bench/bench_relay.py [--calls 500] [--seconds 20] [--no-rtpengine]

Every process runs under ``timeout`` and is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from boomerang.media.relay import LegMedia
from boomerang.transport.media_relay import MediaRelay, PythonMediaRelay
from boomerang.transport.rtp_socket import PortAllocator
from boomerang.transport.rtpengine import RtpengineMediaRelay

HERE = Path(__file__).resolve()
STAMP = struct.Struct("!d")


# -- generator process ----------------------------------------------------------------


async def generator(targets: list[tuple[str, int]], seconds: float) -> None:
    from boomerang.transport.rtp_socket import LatenessHistogram

    loop = asyncio.get_running_loop()
    latency = LatenessHistogram(bin_ms=0.05, max_ms=500)
    received = [0]

    jitters: list[float] = []  # each receiving stream's final jitter, seconds

    class Receiver(asyncio.DatagramProtocol):
        """Counts, measures latency, and keeps the RFC 3550 A.8 interarrival
        jitter of its stream computed against the send time stamped in the
        payload, so it is the jitter the relay (and the host) added, not
        the generator's own sending jitter."""

        def __init__(self) -> None:
            self.transit_s: float | None = None
            self.jitter_s = 0.0
            jitters.append(0.0)
            self.index = len(jitters) - 1

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if 192 <= data[1] <= 223:
                return  # the relay's RTCP reports
            received[0] += 1
            arrival = time.monotonic()
            transit = arrival - STAMP.unpack_from(data, 12)[0]
            latency.add(transit)
            if self.transit_s is not None:
                self.jitter_s += (abs(transit - self.transit_s) - self.jitter_s) / 16
                jitters[self.index] = self.jitter_s
            self.transit_s = transit

    transports = []
    for _ in targets:
        transport, _ = await loop.create_datagram_endpoint(Receiver,
                                                           local_addr=("127.0.0.1", 0))
        transports.append(transport)
    print(json.dumps([t.get_extra_info("sockname")[1] for t in transports]), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # "go"
    header = struct.Struct("!BBHII")
    filler = b"\xd5" * (160 - STAMP.size)
    sent = 0
    start = time.monotonic()
    n = 0
    while True:
        due = start + n * 0.02
        now = time.monotonic()
        if now >= start + seconds:
            break
        if due > now:
            await asyncio.sleep(due - now)
        for index, (transport, target) in enumerate(zip(transports, targets, strict=True)):
            transport.sendto(header.pack(0x80, 8, n & 0xFFFF, n * 160, index)
                             + STAMP.pack(time.monotonic()) + filler, target)
        sent += len(targets)
        n += 1
    await asyncio.sleep(0.3)  # the last packets in flight
    ordered = sorted(jitters)
    print(json.dumps({"sent": sent, "received": received[0],
                      "p50_ms": latency.quantile_ms(0.5), "p99_ms": latency.quantile_ms(0.99),
                      "max_ms": latency.max_s * 1000,
                      "jitter_p50_ms": ordered[len(ordered) // 2] * 1000 if ordered else 0.0,
                      "jitter_p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
                      * 1000 if ordered else 0.0}), flush=True)


# -- orchestrator ---------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"machine: nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()} "
            f"load average={os.getloadavg()}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pid(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else pid


def start_generator(targets: list[tuple[str, int]], seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["timeout", str(int(seconds + 60)), sys.executable, str(HERE), "--generator",
         json.dumps(targets), "--seconds", str(seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


async def run_load(relay: MediaRelay, calls: int, seconds: float, relay_pid: int,
                   label: str) -> None:
    loop = asyncio.get_running_loop()
    local: dict[str, list[tuple[str, int]]] = {"a": [], "b": []}
    for call in range(calls):
        for leg in ("a", "b"):
            local[leg].append(await relay.allocate(f"bench-{call}", leg))
    generators = {leg: start_generator(local[leg], seconds) for leg in ("a", "b")}
    try:
        ports = {}
        for leg, process in generators.items():
            assert process.stdout is not None
            line = await loop.run_in_executor(None, process.stdout.readline)
            ports[leg] = json.loads(line)
        for call in range(calls):
            for leg in ("a", "b"):
                await relay.update(f"bench-{call}", leg, LegMedia(
                    remote_address="127.0.0.1", remote_port=ports[leg][call],
                    codecs=((8, "PCMA", 8000),), telephone_event_payload_type=101))
            await relay.bridge(f"bench-{call}", "a", "b")
        gc.collect()
        gc.freeze()
        cpu0, wall0 = cpu_seconds(relay_pid), time.monotonic()
        for process in generators.values():
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        results = {}
        for leg, process in generators.items():
            assert process.stdout is not None
            line = await loop.run_in_executor(None, process.stdout.readline)
            results[leg] = json.loads(line)
        wall = time.monotonic() - wall0
        cpu = cpu_seconds(relay_pid) - cpu0
        gc.unfreeze()
        sent = sum(r["sent"] for r in results.values())
        received = sum(r["received"] for r in results.values())
        print(f"{label}: {calls} calls, {seconds:g} s: sent {sent}, relayed and received "
              f"{received} ({100 * (sent - received) / max(sent, 1):.2f}% lost), "
              f"{received / wall:,.0f} pps offered-and-delivered, relay CPU {cpu:.1f} s "
              f"of {wall:.1f} s = {100 * cpu / wall:.0f}% of a core -> "
              f"{received / max(cpu, 1e-9):,.0f} packets per CPU-second")
        for leg, result in sorted(results.items()):
            print(f"   received by side {leg}: latency p50 {result['p50_ms']:.2f} ms, "
                  f"p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.2f} ms; added "
                  f"jitter (RFC 3550, per stream) p50 {result['jitter_p50_ms']:.2f} ms, "
                  f"p99 {result['jitter_p99_ms']:.2f} ms")
    finally:
        for process in generators.values():
            if process.poll() is None:
                process.terminate()
            process.wait(10)
        for call in range(calls):
            await relay.release(f"bench-{call}")


def start_rtpengine(port_min: int, port_max: int, seconds: float) -> tuple[
        subprocess.Popen[bytes], tuple[str, int]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        ng = ("127.0.0.1", int(probe.getsockname()[1]))
    binary = shutil.which("rtpengine")
    assert binary is not None
    process = subprocess.Popen(
        ["timeout", str(int(seconds + 120)), binary, "--config-file=none", "--foreground",
         "--log-stderr", "--table=-1", "--interface=127.0.0.1",
         f"--listen-ng={ng[0]}:{ng[1]}", f"--port-min={port_min}", f"--port-max={port_max}",
         "--delete-delay=0", "--log-level=3"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, ng


async def main_async(calls: int, seconds: float, with_rtpengine: bool, loop_name: str) -> None:
    print(f"event loop of the Python relay: {loop_name}; generators: 2 processes "
          f"(uvloop if installed), one socket per call side")
    first = random.randrange(20000, 45000 - 12 * calls - 400, 2)
    python_relay = PythonMediaRelay(PortAllocator(first, first + 4 * calls + 100),
                                    local_address="127.0.0.1")
    await run_load(python_relay, calls, seconds, os.getpid(), "python relay")
    await python_relay.close()
    if not with_rtpengine:
        return
    if shutil.which("rtpengine") is None:
        print("rtpengine: not installed (apt-get install rtpengine-daemon); skipped")
        return
    # rtpengine takes new ports when an offer is repeated with the real SDP: room for both.
    process, ng = start_rtpengine(first + 4 * calls + 200, first + 12 * calls + 400, seconds)
    try:
        relay = None
        for _ in range(50):
            try:
                relay = await RtpengineMediaRelay.connect(ng)
                break
            except Exception:
                await asyncio.sleep(0.1)
        assert relay is not None, "rtpengine did not answer"
        await run_load(relay, calls, seconds, child_pid(process.pid),
                       "rtpengine 10.5 userspace (--table=-1)")
        await relay.close()
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-rtpengine", action="store_true")
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--generator", help=argparse.SUPPRESS)
    args = parser.parse_args()
    loop_name = "asyncio"
    if not args.no_uvloop:
        try:
            import uvloop
            uvloop.install()
            loop_name = f"uvloop {uvloop.__version__}"
        except ImportError:
            pass
    if args.generator:
        targets = [(host, int(port)) for host, port in json.loads(args.generator)]
        asyncio.run(generator(targets, args.seconds))
        return
    print("command: " + " ".join([os.path.basename(sys.executable), *sys.argv]))
    print(machine())
    asyncio.run(main_async(args.calls, min(args.seconds, 60.0), not args.no_rtpengine,
                           loop_name))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
