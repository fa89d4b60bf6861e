#!/usr/bin/env python3
"""Trigger-call capacity: SIPp drives "reject after ringing" at rising rates.

The exchange is the callback trigger: INVITE, 100, 180, (ring pause), 486,
ACK. For each system under test (SUT) the rate rises step by step until a
step has a failed call; each step runs ``--duration`` seconds of steady load
(90 s by default: shorter bursts flatter Python servers, see DESIGN.md
"Measuring speed honestly").

SUTs:
  boomerang  bench/reject_endpoint.py, Boomerang's transports and transaction
             layer answering the trigger itself (100, 180, pause, 486)
  sippy      sippy 2.5 b2bua_simple relaying to a SIPp UAS that rejects (so it
             handles every message twice), installed from PyPI into its own
             venv (--sippy-venv); the reference figures of
             ../shared/anchors/sip-cps used the same set-up

For each step it prints: calls, achieved rate, failed calls, retransmissions
seen by the UAC, SUT CPU (% of one core, utime+stime of its process tree from
/proc), max RSS, and the response time INVITE->180 (rtd1) and INVITE->486
180->486 (rtd2: the ring pause and how late it ends) at p50/p99/max. Results also go to
bench/results/<timestamp>.json and .md.

Everything runs on 127.0.0.1 with free ports; every process runs under
`timeout` and is stopped by PID; every step is bounded in calls and time.

  python bench/sip_reject_cps.py --sut boomerang --rates 500,1000,2000 --duration 90
  python bench/sip_reject_cps.py --quick          # 15 s steps, for a look
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
IP = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((IP, 0))
        return int(s.getsockname()[1])


def udp_port_bound(port: int) -> bool:
    hex_port = f"{port:04X}"
    with open("/proc/net/udp") as f:
        next(f)
        return any(line.split()[1].endswith(":" + hex_port) for line in f)


def wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def process_tree(root: int) -> list[int]:
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
                parent[int(name)] = int(rest[1])
            except (OSError, IndexError):
                continue
    members = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in members and pid not in members:
                members.add(pid)
                grew = True
    return sorted(members)


def cpu_and_rss(pids: list[int]) -> tuple[int, int]:
    ticks = rss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(rest[11]) + int(rest[12])
        rss += int(rest[21]) * PAGE_KIB
    return ticks, rss


class CpuSampler(threading.Thread):
    """Samples CPU ticks and RSS of a process tree every ``interval_s``."""

    def __init__(self, root: int, interval_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval_s = interval_s
        self.samples: list[tuple[float, int, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            pids = process_tree(self.root)
            ticks, rss = cpu_and_rss(pids)
            self.samples.append((time.monotonic(), ticks, rss))
            self._stop_event.wait(self.interval_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def cpu_percent(self, start: float, end: float) -> tuple[float, float]:
        """Average and peak (over 2 s windows) CPU % of one core in [start, end]."""
        window = [s for s in self.samples if start <= s[0] <= end]
        if len(window) < 2:
            return float("nan"), float("nan")
        (t0, c0, _), (t1, c1, _) = window[0], window[-1]
        average = 100.0 * (c1 - c0) / CLK_TCK / (t1 - t0)
        peak = 0.0
        for i in range(len(window)):
            for j in range(i + 1, len(window)):
                if window[j][0] - window[i][0] >= 2.0:
                    dt = window[j][0] - window[i][0]
                    peak = max(peak, 100.0 * (window[j][1] - window[i][1]) / CLK_TCK / dt)
                    break
        return average, peak

    def max_rss_mib(self) -> float:
        return max((s[2] for s in self.samples), default=0) / 1024.0


@dataclass
class StepResult:
    sut: str
    rate: int
    calls: int
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    unexpected: int = 0
    achieved_cps: float = float("nan")
    cpu_avg_pct: float = float("nan")
    cpu_peak_pct: float = float("nan")
    max_rss_mib: float = float("nan")
    rtd1_ms: dict[str, float] = field(default_factory=dict)
    rtd2_ms: dict[str, float] = field(default_factory=dict)
    sipp_rc: int | None = None
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.sipp_rc == 0 and self.failed == 0 and self.successful == self.calls


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)

    def pick(p: float) -> float:
        return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]

    return {"n": len(values), "p50": pick(50), "p99": pick(99), "max": values[-1],
            "mean": statistics.fmean(values)}


def read_last_stat(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=";") if r]
    return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) >= 2 else {}


def read_rtts(workdir: Path) -> tuple[list[float], list[float], list[float]]:
    rtd1: list[float] = []
    rtd2: list[float] = []
    done_ms: list[float] = []
    for name in glob.glob(str(workdir / "*_rtt.csv")):
        with open(name) as f:
            next(f, None)
            for line in f:
                parts = line.strip().split(";")
                if len(parts) < 3:
                    continue
                try:
                    value = float(parts[1])
                except ValueError:
                    continue
                if parts[2] == "1":
                    rtd1.append(value)
                elif parts[2] == "2":
                    rtd2.append(value)
                    done_ms.append(float(parts[0]))
    return rtd1, rtd2, done_ms


def stat_int(stat: dict[str, str], key: str) -> int:
    try:
        return int(float(stat.get(key, "0") or 0))
    except ValueError:
        return 0


class Sut:
    """A running system under test; ``port`` is where the UAC sends."""

    def __init__(self, name: str, args: argparse.Namespace, workdir: Path, life_s: int) -> None:
        self.name = name
        self.port = free_udp_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.root_pid = 0
        ring_ms = args.ring_ms
        if name == "boomerang":
            cmd = ["timeout", "-s", "TERM", str(life_s), sys.executable,
                   str(HERE / "reject_endpoint.py"), "--listen", f"udp:{IP}:{self.port}",
                   "--ring-ms", str(ring_ms)]
            if args.profile:
                cmd += ["--profile", str(workdir / "profile.out")]
            self._start(cmd, workdir / "sut.log")
        elif name == "sippy":
            venv = Path(args.sippy_venv)
            uas_port = free_udp_port()
            self._start(["timeout", "-s", "TERM", str(life_s), "sipp", "-sf",
                         str(SCENARIOS / "uas_reject.xml"), "-i", IP, "-p", str(uas_port),
                         "-d", str(ring_ms), "-buff_size", "1048576", "-nostdin",
                         "-recv_timeout", "20000", "-trace_err"],
                        workdir / "uas.log", cwd=workdir)
            wait_until(lambda: udp_port_bound(uas_port), 10)
            env = dict(os.environ, SIPLOG_BEND="none")
            self._start(["timeout", "-s", "TERM", str(life_s), str(venv / "bin" / "b2bua_simple"),
                         "-f", "-l", IP, "-p", str(self.port), "-n", f"{IP}:{uas_port}"],
                        workdir / "sut.log", env=env)
        else:
            raise SystemExit(f"unknown SUT {name!r}")
        # the SUT is the last process started
        self.root_pid = self.procs[-1].pid
        if not wait_until(lambda: udp_port_bound(self.port), 20):
            self.stop()
            raise RuntimeError(f"{name} did not bind {IP}:{self.port}; see {workdir}/sut.log")
        time.sleep(0.3)

    def _start(self, cmd: list[str], log: Path, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> None:
        with open(log, "wb") as out:
            self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                               cwd=cwd, env=env, start_new_session=True))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def run_step(sut_name: str, rate: int, args: argparse.Namespace, outdir: Path) -> StepResult:
    calls = max(rate * args.duration, args.min_calls)
    send_s = (calls + rate - 1) // rate
    workdir = outdir / f"{sut_name}_{rate:05d}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    result = StepResult(sut=sut_name, rate=rate, calls=calls)
    sut = Sut(sut_name, args, workdir, life_s=send_s + 120)
    sampler = CpuSampler(sut.root_pid)
    sampler.start()
    uac_port = free_udp_port()
    started = time.monotonic()
    cmd = ["timeout", "-s", "TERM", str(send_s + 90), "sipp", "-sf",
           str(SCENARIOS / "uac_reject.xml"), f"{IP}:{sut.port}", "-s", "100",
           "-i", IP, "-p", str(uac_port), "-r", str(rate), "-rp", "1000", "-m", str(calls),
           "-l", str(max(rate * 4, 1000)), "-buff_size", "1048576",
           "-trace_stat", "-stf", "uac_stat.csv", "-fd", "1", "-trace_err",
           "-trace_rtt", "-rtt_freq", "1", "-trace_screen",
           "-recv_timeout", "10000", "-timeout", str(send_s + 60), "-nostdin"]
    with open(workdir / "uac.log", "wb") as out:
        proc = subprocess.run(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                              check=False)
    sending_done = time.monotonic()
    result.sipp_rc = proc.returncode
    sampler.stop()
    sut.stop()  # SIGTERM: the endpoint writes its profile on the way out
    stat = read_last_stat(workdir / "uac_stat.csv")
    result.successful = stat_int(stat, "SuccessfulCall(C)")
    result.failed = stat_int(stat, "FailedCall(C)")
    result.retransmissions = stat_int(stat, "Retransmissions(C)")
    result.unexpected = stat_int(stat, "FailedUnexpectedMessage(C)")
    rtd1, rtd2, done_ms = read_rtts(workdir)
    result.rtd1_ms = percentiles(rtd1)
    result.rtd2_ms = percentiles(rtd2)
    if len(done_ms) > 100:
        done_ms.sort()
        cut = len(done_ms) // 100
        a, b = done_ms[cut], done_ms[-1 - cut]
        result.achieved_cps = (len(done_ms) - 1 - 2 * cut) / ((b - a) / 1000.0) if b > a else 0.0
    result.cpu_avg_pct, result.cpu_peak_pct = sampler.cpu_percent(started + 1.0, sending_done)
    result.max_rss_mib = sampler.max_rss_mib()
    if not args.keep:
        for name in glob.glob(str(workdir / "*_rtt.csv")):
            os.unlink(name)
    return result


def fmt_ms(d: dict[str, float]) -> str:
    if not d:
        return "-"
    return f"{d['p50']:.0f}/{d['p99']:.0f}/{d['max']:.0f}"


def table(results: list[StepResult]) -> str:
    lines = [
        "| SUT | target cps | calls | pass | achieved cps | failed | retrans | unexpected "
        "| CPU % avg/peak | max RSS MiB | INVITE->180 p50/p99/max ms "
        "| 180->486 p50/p99/max ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.sut} | {r.rate} | {r.calls} | {'yes' if r.passed else 'NO'} "
            f"| {r.achieved_cps:.0f} | {r.failed} | {r.retransmissions} | {r.unexpected} "
            f"| {r.cpu_avg_pct:.0f}/{r.cpu_peak_pct:.0f} | {r.max_rss_mib:.0f} "
            f"| {fmt_ms(r.rtd1_ms)} | {fmt_ms(r.rtd2_ms)} |"
        )
    return "\n".join(lines)


def machine_line() -> str:
    model = "unknown cpu"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    sipp_version = subprocess.run(["sipp", "-v"], capture_output=True, text=True, check=False)
    version = next((ln.strip() for ln in (sipp_version.stdout + sipp_version.stderr).splitlines()
                    if "SIPp" in ln), "SIPp ?")
    return (f"{os.cpu_count()} cpus ({model}), Python {sys.version.split()[0]}, {version}, "
            f"load average before: {open('/proc/loadavg').read().split()[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sut", default="boomerang,sippy",
                        help="comma-separated: boomerang, sippy")
    parser.add_argument("--rates", default="500,1000,1500,2000,2500,3000",
                        help="comma-separated call rates (calls/s) per step, for boomerang")
    parser.add_argument("--sippy-rates", default="100,200,300,400",
                        help="call rates for sippy")
    parser.add_argument("--duration", type=int, default=90, help="seconds of load per step")
    parser.add_argument("--min-calls", type=int, default=1000)
    parser.add_argument("--ring-ms", type=int, default=100, help="pause between 180 and 486")
    parser.add_argument("--quick", action="store_true", help="15 s steps (a look, not a figure)")
    parser.add_argument("--all-steps", action="store_true", help="do not stop at the first failure")
    parser.add_argument("--profile", action="store_true",
                        help="run the Boomerang endpoint under cProfile and print where CPU goes")
    parser.add_argument("--sippy-venv", default="/tmp/bench-sippy-venv")
    parser.add_argument("--keep", action="store_true", help="keep SIPp's per-call rtt files")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    if args.quick:
        args.duration = 15
    if shutil.which("sipp") is None:
        print("sipp is missing: apt-get install sip-tester", file=sys.stderr)
        return 2
    suts = [s.strip() for s in args.sut.split(",") if s.strip()]
    if "sippy" in suts and not (Path(args.sippy_venv) / "bin" / "b2bua_simple").exists():
        print(f"installing sippy into {args.sippy_venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", args.sippy_venv], check=True)
        subprocess.run([str(Path(args.sippy_venv) / "bin" / "pip"), "install", "-q", "sippy"],
                       check=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    outdir = Path(args.out) / stamp
    outdir.mkdir(parents=True, exist_ok=True)
    machine = machine_line()
    print(f"machine: {machine}\nduration per step: {args.duration} s, ring pause {args.ring_ms} ms",
          flush=True)
    results: list[StepResult] = []
    for sut_name in suts:
        rates = args.sippy_rates if sut_name == "sippy" else args.rates
        for rate in [int(r) for r in rates.split(",") if r.strip()]:
            print(f"-- {sut_name} at {rate} calls/s for {args.duration} s", flush=True)
            try:
                result = run_step(sut_name, rate, args, outdir)
            except RuntimeError as exc:
                print(f"   step failed to start: {exc}")
                break
            results.append(result)
            print("   " + table([result]).splitlines()[-1], flush=True)
            log = outdir / f"{sut_name}_{rate:05d}" / "sut.log"
            sut_lines = [ln for ln in log.read_text(errors="replace").splitlines()
                         if ln.startswith(("gc pauses:", "overload:"))] if log.exists() else []
            if sut_lines:
                result.note = "; ".join(sut_lines)
                for line in sut_lines:
                    print("   " + line, flush=True)
            if args.profile and sut_name == "boomerang":
                profile = outdir / f"{sut_name}_{rate:05d}" / "profile.out"
                if profile.exists():
                    import pstats
                    print(f"   where the CPU goes at {rate} calls/s (cProfile, by tottime):")
                    pstats.Stats(str(profile)).sort_stats("tottime").print_stats(15)
            if not result.passed and not args.all_steps:
                break
            time.sleep(2)
    print("\n" + table(results))
    best = {}
    for r in results:
        if r.passed:
            best[r.sut] = max(best.get(r.sut, 0), r.rate)
    for sut_name in suts:
        print(f"highest rate with zero failed calls, {sut_name}: {best.get(sut_name, 0)} calls/s")
    (outdir / "results.json").write_text(json.dumps(
        {"machine": machine, "duration_s": args.duration, "ring_ms": args.ring_ms,
         "steps": [asdict(r) | {"passed": r.passed} for r in results]}, indent=2))
    (outdir / "results.md").write_text(f"machine: {machine}\n\n" + table(results) + "\n")
    print(f"results: {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
