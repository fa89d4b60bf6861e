#!/usr/bin/env python3
"""N concurrent dial-tone sessions through ONE shared pacer, over real UDP.

One process (this one, one core, uvloop when installed) opens one RTP/RTCP
socket pair per session on 127.0.0.1 (``open_socket_pair``) and sends the
precomputed dial-tone frames of ``tones.py`` (PCMA, 20 ms) through one
``Pacer``. A separate receiver process counts what arrives. For each N the
pacer's lateness histogram (actual send time minus schedule) gives p50,
p99, max and the share of packets sent within 2 ms of their schedule.

    python bench/bench_dialtone_sessions.py [--sessions 100,250,500,750,1000]
                                            [--seconds 5] [--slot-ms 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import socket
import subprocess
import sys
import time

from boomerang.media.codecs import PCMA
from boomerang.media.stream import RtpSender
from boomerang.media.tones import ToneBank, tone_plan
from boomerang.transport.rtp_socket import Pacer, PortAllocator, SocketPair, open_socket_pair

RECEIVER = r"""
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
sock.settimeout(0.5)
count = 0
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    try:
        data = sock.recv(2048)
    except socket.timeout:
        continue
    if data == b"report":
        print(count, flush=True)
        count = 0
        continue
    count += 1
"""


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"machine: nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()} "
            f"load average={os.getloadavg()}")


class Sink:
    def rtp_received(self, data: bytes, source: tuple[str, int]) -> None: ...

    def rtcp_received(self, data: bytes, source: tuple[str, int]) -> None: ...


async def run(sessions: list[int], seconds: float, slot_ms: float, early_ms: float,
              loop_name: str) -> None:
    total_s = len(sessions) * (seconds + 3) + 30
    receiver = subprocess.Popen(["timeout", str(int(total_s)), sys.executable, "-c", RECEIVER,
                                 str(total_s)], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        target = ("127.0.0.1", int(receiver.stdout.readline()))
        control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        bank = ToneBank()
        frames = bank.frames(tone_plan("pl").tone("dial"), PCMA, 20)
        first = random.randrange(30000, 50000 - 2 * max(sessions) - 100, 2)
        allocator = PortAllocator(first, first + 2 * max(sessions) + 200)
        print(f"event loop: {loop_name}; pacer slot {slot_ms:g} ms, timer lead {early_ms:g} ms; "
              "ptime 20 ms; "
              f"{len(frames.frames)} precomputed PCMA dial-tone frames; receiver: a separate "
              f"process, one socket")
        print(f"{'sessions':>8} {'packets':>9} {'recv':>9} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'max ms':>7} {'<=2ms':>8} {'early':>7} {'earliest':>9} {'cpu %':>6}")
        for count in sessions:
            pacer = Pacer(slot_ms=slot_ms, early_s=early_ms / 1000)
            pairs: list[SocketPair] = []
            streams = []
            for index in range(count):
                pair = await open_socket_pair(allocator, "127.0.0.1", Sink())
                pairs.append(pair)
                player = bank.player(frames.tone, PCMA, 20)
                sender = RtpSender(ssrc=index, payload_type=8, timestamp_step=160,
                                   initial_sequence_number=index, initial_timestamp=index)
                sendto = pair.rtp_transport.sendto
                streams.append(pacer.start(
                    send=lambda data, sendto=sendto: sendto(data, target),  # type: ignore[misc]
                    sender=sender, frames=player.next_frame))
            gc.collect()
            gc.freeze()  # start-up objects out of the collector's way (DESIGN.md)
            await asyncio.sleep(1.0)  # warm-up: every stream started
            control.sendto(b"report", target)
            receiver.stdout.readline()
            pacer.lateness.reset()
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
            histogram = pacer.lateness
            sent = histogram.count
            control.sendto(b"report", target)
            received = int(receiver.stdout.readline())
            print(f"{count:>8} {sent:>9} {received:>9} {histogram.quantile_ms(0.5):>7.2f} "
                  f"{histogram.quantile_ms(0.99):>7.2f} {histogram.max_s * 1000:>7.2f} "
                  f"{histogram.share_within_ms(2.0) * 100:>7.2f}% "
                  f"{histogram.early / max(sent, 1) * 100:>6.1f}% {histogram.min_s * 1000:>8.2f} "
                  f"{cpu * 100:>6.1f}")
            for stream in streams:
                stream.stop()
            pacer.close()
            for pair in pairs:
                pair.close()
            gc.unfreeze()
            await asyncio.sleep(0.2)
        print("(p50/p99/max: lateness of the packets sent late, upper edges of 0.05 ms bins; "
              "early: share sent before their schedule (the timer leads by up to the lead), "
              "earliest: the most negative lateness; received counts packets arriving at the "
              "receiver during the same window, so +-1 tick of packets)")
        print(f"load average after: {os.getloadavg()}")
    finally:
        receiver.terminate()
        receiver.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="100,250,500,750,1000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--slot-ms", type=float, default=2.5)
    parser.add_argument("--early-ms", type=float, default=1.0,
                        help="how far ahead of the schedule the pacer's timer fires")
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    print("command: " + " ".join([os.path.basename(sys.executable), *sys.argv]))
    print(machine())
    sessions = [int(n) for n in args.sessions.split(",")]
    loop_name = "asyncio"
    if not args.no_uvloop:
        try:
            import uvloop
            uvloop.install()
            loop_name = f"uvloop {uvloop.__version__}"
        except ImportError:
            pass
    asyncio.run(run(sessions, args.seconds, args.slot_ms, args.early_ms, loop_name))


if __name__ == "__main__":
    main()
