#!/usr/bin/env python3
"""Bridged-call capacity: trunk to trunk through Boomerang, SIPp on both ends.

SIPp UAC (the caller's trunk) -> Boomerang (bench/bridge_endpoint.py: the
product's Endpoint, CallManager and Python relay; every trunk call is
bridged to the UAS) -> SIPp UAS (the called trunk, ``-rtp_echo``). Each call
holds ``--hold-s`` seconds: the UAC plays a pcap of 20 ms PCMU packets as
long as the hold time, the UAS echoes it, so RTP crosses the relay both
ways (4 relayed streams of 50 packets/s per call: 2 in, 2 out each way).

The rate rises step by step (a fresh Boomerang per step) until a step has a
failed call; each step offers ``--duration`` seconds of calls (90 s by
default, DESIGN.md "Measuring speed honestly"), then waits for the last
calls to end. Per step: calls, failed (SIPp UAC, SIPp UAS and Boomerang's
own count), retransmissions seen by the UAC, CPU % of one core (Boomerang;
and both SIPp together, they share the 2 cores), max RSS and RSS growth
per concurrent call, relayed packets/s, INVITE->200 and BYE->200 p50/p99/max,
peak concurrent bridged calls. Then the highest rate with zero failures and
the largest concurrent bridged call count held with zero failures, with
memory per call (RSS growth over the idle process / concurrent calls).

Everything runs on 127.0.0.1 with free ports; every process runs under
``timeout`` and is stopped by PID; every step is bounded in calls and time.
Results go to bench/results/bridge-<timestamp>/ (results.json, results.md).

  python bench/bridge_cps.py --rates 10,20,40,60,80 --duration 90 --hold-s 10
  python bench/bridge_cps.py --quick      # 20 s steps at 10,20 calls/s: a look
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sip_reject_cps import (  # bench/ is sys.path[0] when run as a script
    IP,
    CpuSampler,
    free_udp_port,
    machine_line,
    percentiles,
    read_last_stat,
    read_rtts,
    stat_int,
    udp_port_bound,
    wait_until,
)

from boomerang.media.g711 import PCMU_SILENCE
from boomerang.media.rtp import pack_rtp

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"


# -- the RTP the UAC plays -------------------------------------------------------------


def write_pcmu_pcap(path: Path, seconds: float, *, ssrc: int = 0x5EED1234) -> int:
    """One PCMU stream (20 ms packets, continuous seq/ts, one SSRC) as a
    classic libpcap file of Ethernet/IPv4/UDP frames; returns the packet count.
    SIPp's ``play_pcap_audio`` sends each UDP payload at its capture time."""
    count = round(seconds / 0.020)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    loopback = bytes((127, 0, 0, 1))
    payload = bytes([PCMU_SILENCE]) * 160
    for index in range(count):
        rtp = pack_rtp(payload_type=0, sequence_number=index, timestamp=index * 160, ssrc=ssrc,
                       payload=payload, marker=index == 0)
        udp = struct.pack("!HHHH", 16000, 16002, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), index & 0xFFFF, 0x4000, 64,
                         17, 0, loopback, loopback)
        words = struct.unpack("!10H", ip)
        total = sum(words)
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        ip = ip[:10] + struct.pack("!H", ~total & 0xFFFF) + ip[12:]
        frame = bytes(12) + b"\x08\x00" + ip + udp
        micros = 1_700_000_000_000_000 + index * 20_000
        out.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame),
                               len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))
    return count


# -- ports and processes -------------------------------------------------------------------


def free_media_port() -> int:
    """An even port with the 3 above it free too (SIPp's RTP, RTCP, video)."""
    for _ in range(200):
        base = free_udp_port() & ~1
        held: list[socket.socket] = []
        try:
            for port in range(base, base + 4):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind((IP, port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError("no free media port block")


class Procs:
    """Processes started here, stopped by PID (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], grace_s: float = 15) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


# -- one step ------------------------------------------------------------------------------


@dataclass
class StepResult:
    rate: int
    calls: int
    successful: int = 0
    failed: int = 0
    uas_failed: int = 0
    sut_bridged: int = 0
    sut_failed: int = 0
    sut_ended_abnormally: int = 0
    retransmissions: int = 0
    cpu_avg_pct: float = float("nan")
    cpu_peak_pct: float = float("nan")
    sipp_cpu_pct: float = float("nan")
    idle_rss_mib: float = float("nan")
    max_rss_mib: float = float("nan")
    peak_concurrent: int = 0
    kib_per_call: float = float("nan")
    relayed_pps: float = float("nan")
    rtp_dropped: int = 0
    rtp_lost: int = 0
    invite_200_ms: dict[str, float] = field(default_factory=dict)
    bye_200_ms: dict[str, float] = field(default_factory=dict)
    sipp_rc: int | None = None
    note: str = ""

    @property
    def passed(self) -> bool:
        return (self.sipp_rc == 0 and self.failed == 0 and self.successful == self.calls
                and self.uas_failed == 0 and self.sut_failed == 0
                and self.sut_ended_abnormally == 0)


STATS_LINE = re.compile(r"^(stats|final) (.*)$")


def read_sut_lines(log: Path) -> tuple[list[dict[str, float]], list[str]]:
    samples: list[dict[str, float]] = []
    notes: list[str] = []
    if not log.exists():
        return samples, notes
    for line in log.read_text(errors="replace").splitlines():
        match = STATS_LINE.match(line)
        if match:
            census = match.group(2).find(" gc_tracked=")  # --gc-census fields: not numbers
            fields = match.group(2) if census < 0 else match.group(2)[:census]
            sample = {k: float(v) for k, v in (item.split("=", 1) for item in fields.split())}
            sample["final"] = float(match.group(1) == "final")
            samples.append(sample)
        elif line.startswith(("gc pauses:", "overload:", "failures:", "census",
                              "Traceback", "ERROR")):
            notes.append(line)
    return samples, notes


def run_step(rate: int, args: argparse.Namespace, outdir: Path, pcap: Path) -> StepResult:
    calls = rate * args.duration
    hold_s = args.hold_s
    workdir = outdir / f"rate_{rate:04d}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    result = StepResult(rate=rate, calls=calls)
    life_s = args.duration + hold_s + 120
    procs = Procs()
    try:
        uas_port, sut_port, uac_port = free_udp_port(), free_udp_port(), free_udp_port()
        uas_mp, uac_mp = free_media_port(), free_media_port()
        uas = procs.start(
            ["timeout", "-s", "TERM", str(life_s), "sipp", "-sf", str(SCENARIOS / "bridge_uas.xml"),
             "-i", IP, "-p", str(uas_port), "-mi", IP, "-mp", str(uas_mp), "-rtp_echo",
             "-m", str(calls), "-buff_size", "4194304", "-nostdin", "-trace_err",
             "-trace_stat", "-stf", "uas_stat.csv", "-fd", "1"],
            workdir / "uas.log", workdir)
        if not wait_until(lambda: udp_port_bound(uas_port), 10):
            raise RuntimeError(f"the SIPp UAS did not bind {uas_port}; see {workdir}/uas.log")
        sut = procs.start(
            ["timeout", "-s", "TERM", str(life_s), sys.executable, str(HERE / "bridge_endpoint.py"),
             "--listen", f"udp:{IP}:{sut_port}", "--uas", f"{IP}:{uas_port}",
             "--rtp-ports", args.rtp_ports, *(["--gc-census"] if args.gc_census else [])],
            workdir / "sut.log", workdir)
        sampler = CpuSampler(sut.pid)
        sampler.start()
        if not wait_until(lambda: udp_port_bound(sut_port), 20):
            raise RuntimeError(f"Boomerang did not bind {sut_port}; see {workdir}/sut.log")
        time.sleep(2.0)  # the idle process's RSS
        idle = [s[2] for s in sampler.samples[-3:]]
        result.idle_rss_mib = (sum(idle) / len(idle) / 1024.0) if idle else float("nan")
        limit = rate * (hold_s + 10) * 2
        uac_cmd = [
            "timeout", "-s", "TERM", str(args.duration + hold_s + 90), "sipp", "-sf",
            str(SCENARIOS / "bridge_uac.xml"), f"{IP}:{sut_port}", "-s", "bench",
            "-i", IP, "-p", str(uac_port), "-mi", IP, "-mp", str(uac_mp),
            "-key", "rtp_pcap", str(pcap), "-d", str(hold_s * 1000),
            "-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(limit),
            "-buff_size", "4194304", "-trace_stat", "-stf", "uac_stat.csv", "-fd", "1",
            "-trace_err", "-trace_rtt", "-rtt_freq", "1", "-trace_screen",
            "-recv_timeout", "30000", "-timeout", str(args.duration + hold_s + 60), "-nostdin"]
        started = time.monotonic()
        uac = procs.start(uac_cmd, workdir / "uac.log", workdir)
        sipp_sampler = CpuSampler(uac.pid)
        uas_sampler = CpuSampler(uas.pid)
        sipp_sampler.start()
        uas_sampler.start()
        result.sipp_rc = uac.wait(timeout=args.duration + hold_s + 100)
        ended = time.monotonic()
        sipp_sampler.stop()
        uas_sampler.stop()
        try:  # the UAS ends after its last call's timewait
            uas.wait(timeout=10)
        except subprocess.TimeoutExpired:
            Procs.stop(uas)
        time.sleep(1.0)
        sampler.stop()
        Procs.stop(sut)  # SIGTERM: the endpoint prints its final counters
    finally:
        procs.stop_all()
    # -- figures
    stat = read_last_stat(workdir / "uac_stat.csv")
    result.successful = stat_int(stat, "SuccessfulCall(C)")
    result.failed = stat_int(stat, "FailedCall(C)")
    result.retransmissions = stat_int(stat, "Retransmissions(C)")
    uas_stat = read_last_stat(workdir / "uas_stat.csv")
    result.uas_failed = stat_int(uas_stat, "FailedCall(C)")
    invite_ms, bye_ms, _ = read_rtts(workdir)
    result.invite_200_ms = percentiles(invite_ms)
    result.bye_200_ms = percentiles(bye_ms)
    # steady state: every call of the step is up, from one hold time after the
    # start to the end of the offering
    steady = (started + hold_s + 2, started + args.duration)
    result.cpu_avg_pct, result.cpu_peak_pct = sampler.cpu_percent(*steady)
    uac_cpu, _ = sipp_sampler.cpu_percent(*steady)
    uas_cpu, _ = uas_sampler.cpu_percent(*steady)
    result.sipp_cpu_pct = uac_cpu + uas_cpu
    result.max_rss_mib = sampler.max_rss_mib()
    samples, notes = read_sut_lines(workdir / "sut.log")
    final = next((s for s in reversed(samples) if s.get("final")), samples[-1] if samples else {})
    result.sut_bridged = int(final.get("bridged", 0))
    result.sut_failed = int(final.get("failed", 0))
    result.sut_ended_abnormally = int(final.get("ended_abnormally", 0))
    result.peak_concurrent = int(final.get("peak", 0))
    result.rtp_dropped = int(final.get("rtp_dropped", 0))
    result.rtp_lost = int(final.get("rtp_lost", 0))
    window = [s for s in samples if steady[0] <= s.get("mono", 0) <= steady[1]]
    if len(window) >= 2 and window[-1]["mono"] > window[0]["mono"]:
        result.relayed_pps = ((window[-1]["rtp_sent"] - window[0]["rtp_sent"])
                              / (window[-1]["mono"] - window[0]["mono"]))
    if result.peak_concurrent:
        result.kib_per_call = ((result.max_rss_mib - result.idle_rss_mib) * 1024.0
                               / result.peak_concurrent)
    result.note = "; ".join(notes)
    result.note += (f"; steady window {steady[1] - steady[0]:.0f} s, "
                    f"step took {ended - started:.0f} s")
    if not args.keep:
        for name in workdir.glob("*_rtt.csv"):
            name.unlink()
    return result


# -- report ----------------------------------------------------------------------------------


def fmt_ms(d: dict[str, float]) -> str:
    return f"{d['p50']:.0f}/{d['p99']:.0f}/{d['max']:.0f}" if d else "-"


def table(results: list[StepResult]) -> str:
    lines = [
        "| calls/s | calls | pass | failed UAC/UAS/B | retrans | peak bridged "
        "| CPU % avg/peak | SIPp CPU % | RSS idle/max MiB | KiB/call | relayed pkt/s "
        "| INVITE->200 p50/p99/max ms | BYE->200 p50/p99/max ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.rate} | {r.calls} | {'yes' if r.passed else 'NO'} "
            f"| {r.failed}/{r.uas_failed}/{r.sut_failed + r.sut_ended_abnormally} "
            f"| {r.retransmissions} | {r.peak_concurrent} "
            f"| {r.cpu_avg_pct:.0f}/{r.cpu_peak_pct:.0f} | {r.sipp_cpu_pct:.0f} "
            f"| {r.idle_rss_mib:.0f}/{r.max_rss_mib:.0f} | {r.kib_per_call:.0f} "
            f"| {r.relayed_pps:.0f} | {fmt_ms(r.invite_200_ms)} | {fmt_ms(r.bye_200_ms)} |")
    return "\n".join(lines)


def summary(results: list[StepResult]) -> str:
    passed = [r for r in results if r.passed]
    if not passed:
        return "no step passed with zero failed calls"
    best = max(passed, key=lambda r: r.rate)
    held = max(passed, key=lambda r: r.peak_concurrent)
    return (f"highest rate with zero failed calls: {best.rate} calls/s "
            f"({best.calls} calls)\n"
            f"most concurrent bridged calls held with zero failures: {held.peak_concurrent} "
            f"(at {held.rate} calls/s), Boomerang CPU {held.cpu_avg_pct:.0f} % of one core, "
            f"RSS {held.idle_rss_mib:.0f} -> {held.max_rss_mib:.0f} MiB: "
            f"{held.kib_per_call:.0f} KiB per bridged call")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10,20,40,60,80", help="calls/s per step")
    parser.add_argument("--duration", type=int, default=90, help="seconds of new calls per step")
    parser.add_argument("--hold-s", type=int, default=10, help="holding time of each call")
    parser.add_argument("--rtp-ports", default="21000-28999", help="Boomerang's relay ports")
    parser.add_argument("--quick", action="store_true", help="20 s steps at 10,20 (a look)")
    parser.add_argument("--all-steps", action="store_true", help="go on after a failed step")
    parser.add_argument("--keep", action="store_true", help="keep SIPp's per-call rtt files")
    parser.add_argument("--gc-census", action="store_true",
                        help="the endpoint counts tracked objects in its stats (diagnosis)")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rates = 20, "10,20"
    if shutil.which("sipp") is None:
        print("sipp is missing: apt-get install sip-tester", file=sys.stderr)
        return 2
    outdir = Path(args.out) / f"bridge-{time.strftime('%Y%m%d-%H%M%S')}"
    outdir.mkdir(parents=True, exist_ok=True)
    pcap = outdir / "pcmu.pcap"
    packets = write_pcmu_pcap(pcap, args.hold_s)
    machine = machine_line()
    print(f"machine: {machine}\n{args.duration} s of new calls per step, hold {args.hold_s} s, "
          f"UAC plays {packets} PCMU packets, UAS echoes", flush=True)
    results: list[StepResult] = []
    for rate in [int(r) for r in args.rates.split(",") if r.strip()]:
        print(f"-- {rate} calls/s for {args.duration} s (load "
              f"{os.getloadavg()[0]:.2f})", flush=True)
        try:
            result = run_step(rate, args, outdir, pcap)
        except RuntimeError as exc:
            print(f"   step failed to start: {exc}", flush=True)
            break
        results.append(result)
        print("   " + table([result]).splitlines()[-1], flush=True)
        if result.note:
            print("   " + result.note, flush=True)
        if not result.passed and not args.all_steps:
            break
        time.sleep(2)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print("\n" + table(results))
    print(summary(results))
    print(f"load average after: {load}")
    (outdir / "results.json").write_text(json.dumps(
        {"machine": machine, "duration_s": args.duration, "hold_s": args.hold_s,
         "load_after": load,
         "steps": [asdict(r) | {"passed": r.passed} for r in results]}, indent=2))
    (outdir / "results.md").write_text(
        f"machine: {machine}\n\n{table(results)}\n\n{summary(results)}\n"
        f"load average after: {load}\n")
    print(f"results: {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
