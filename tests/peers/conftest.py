"""Fixtures that drive real third-party SIP software against Boomerang.

Every external program runs under ``timeout``, on 127.0.0.1, on ports the
kernel handed out (see ``pick_free_port``), and is stopped by its PID at
teardown. A test is skipped only when the program is not installed
(``scripts/test.sh`` installs them all).
"""

from __future__ import annotations

import csv
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"
SCENARIOS = Path(__file__).parent / "scenarios"
KAMAILIO_CONFIG = Path(__file__).parent / "kamailio" / "registrar.cfg"

SIPP_TRANSPORT = {"udp": "u1", "tcp": "t1"}

# a row of SIPp's screen, client side "  404 <----------  E-RTD1 3   0   0   0"
# and server side "  ----------> INVITE   1   0   0   0"
SCREEN_ROW = re.compile(
    r"^\s*(?:(?P<name>[A-Za-z0-9]+)\s+(?P<arrow><-+|-+>)"
    r"|(?P<arrow2><-+|-+>)\s+(?P<name2>[A-Za-z0-9]+))"
    r"\s+(?:[A-Za-z][\w-]*\s+)?(?P<counts>[\d ]+?)\s*$"
)


def require_tool(name: str) -> str:
    """Path of ``name``; skips the test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/test.sh installs it)")
    return path


@dataclass(frozen=True, slots=True)
class ScreenRow:
    """One message line of SIPp's screen: counts per scenario element."""

    name: str
    direction: str  # "sent" or "received"
    messages: int
    retransmissions: int


@dataclass
class SippRun:
    """What one SIPp run left behind."""

    returncode: int
    directory: Path
    statistics: dict[str, str] = field(default_factory=dict)
    screen: list[ScreenRow] = field(default_factory=list)
    screen_text: str = ""
    messages: str = ""
    errors: str = ""
    output: str = ""

    def counter(self, name: str) -> int:
        """A cumulative counter of -trace_stat, e.g. ``FailedCall(C)``."""
        return int(self.statistics[name])

    def rows(self, name: str) -> list[ScreenRow]:
        return [row for row in self.screen if row.name == name]

    def explain(self) -> str:
        return (
            f"sipp exit {self.returncode}\n--- screen ---\n{self.screen_text[-3000:]}\n"
            f"--- errors ---\n{self.errors[-3000:]}\n--- output ---\n{self.output[-2000:]}\n"
            f"--- messages ---\n{self.messages[-4000:]}"
        )


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _parse_screen(text: str) -> list[ScreenRow]:
    # The screen file holds the last screen; keep its first message table.
    rows: list[ScreenRow] = []
    for line in text.splitlines():
        match = SCREEN_ROW.match(line)
        if not match:
            if rows and "Messages" in line:
                break
            continue
        counts = [int(c) for c in match.group("counts").split()]
        if len(counts) < 2:
            counts.append(0)
        # client screens: "404 <---" is received; server screens put the
        # arrow first and "---> INVITE" is received
        if match.group("name"):
            received = match.group("arrow").startswith("<")
        else:
            received = match.group("arrow2").endswith(">")
        rows.append(
            ScreenRow(
                name=match.group("name") or match.group("name2"),
                direction="received" if received else "sent",
                messages=counts[0],
                retransmissions=counts[1],
            )
        )
    return rows


def _parse_statistics(path: Path) -> dict[str, str]:
    text = _read(path)
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    reader = csv.reader(lines, delimiter=";")
    header = next(reader)
    last: list[str] = []
    for row in reader:
        last = row
    return {name: value for name, value in zip(header, last, strict=False) if name}


def _collect(returncode: int, output: str, directory: Path) -> SippRun:
    return SippRun(
        returncode=returncode,
        directory=directory,
        statistics=_parse_statistics(directory / "stat.csv"),
        screen=_parse_screen(_read(directory / "screen.log")),
        screen_text=_read(directory / "screen.log"),
        messages=_read(directory / "messages.log"),
        errors=_read(directory / "errors.log"),
        output=output,
    )


def sipp_arguments(
    scenario: str,
    directory: Path,
    *,
    transport: str,
    local_port: int,
    media_port: int,
    calls: int,
) -> list[str]:
    return [
        "-sf", str(SCENARIOS / scenario),
        "-t", SIPP_TRANSPORT[transport],
        "-i", LOOPBACK, "-mi", LOOPBACK, "-mp", str(media_port),
        "-p", str(local_port),
        "-m", str(calls),
        "-nostdin",
        "-trace_stat", "-stf", str(directory / "stat.csv"), "-fd", "1",
        "-trace_screen", "-screen_file", str(directory / "screen.log"),
        "-trace_err", "-error_file", str(directory / "errors.log"),
        "-trace_msg", "-message_file", str(directory / "messages.log"),
    ]  # fmt: skip


@pytest.fixture
def sipp(tmp_path: Path, free_port_factory: Callable[[], int]) -> Callable[..., SippRun]:
    """Run SIPp as a client to completion: ``sipp(scenario, (host, port),
    transport="udp", calls=1, rate=None, service="404", pause_ms=None,
    extra=(), limit_s=20)``."""
    binary = require_tool("sipp")
    runs = 0

    def run(
        scenario: str,
        remote: tuple[str, int],
        *,
        transport: str = "udp",
        calls: int = 1,
        rate: float | None = None,
        service: str = "service",
        pause_ms: int | None = None,
        extra: tuple[str, ...] = (),
        limit_s: int = 20,
    ) -> SippRun:
        nonlocal runs
        runs += 1
        directory = tmp_path / f"sipp-{runs}"
        directory.mkdir()
        command = [
            "timeout", "--kill-after=3", str(limit_s), binary,
            f"{remote[0]}:{remote[1]}",
            # SIPp 3.6.1 binds 5060 when -p is not given: always pass a free port
            *sipp_arguments(scenario, directory, transport=transport,
                            local_port=free_port_factory(), media_port=free_port_factory(),
                            calls=calls),
            "-s", service, "-recv_timeout", "5000",
            *(["-r", str(rate)] if rate is not None else []),
            *(["-d", str(pause_ms)] if pause_ms is not None else []),
            *extra,
        ]  # fmt: skip
        done = subprocess.run(
            command, cwd=directory, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
        return _collect(done.returncode, done.stdout.decode(errors="replace"), directory)

    return run


@dataclass
class SippServer:
    """A SIPp UAS running in the background."""

    process: subprocess.Popen[bytes]
    directory: Path
    transport: str
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)

    def wait(self, timeout_s: float = 10.0) -> SippRun:
        """Wait for SIPp to finish its calls and collect its traces."""
        try:
            output, _ = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            output, _ = self.process.communicate(timeout=5)
        return _collect(self.process.returncode, output.decode(errors="replace"), self.directory)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(3)


def _wait_listening(process: subprocess.Popen[bytes], transport: str, port: int) -> None:
    """Wait until SIPp has bound its port (a bind test fails once it has)."""
    kind = "udp" if transport == "udp" else "tcp"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return  # exited: wait() reports why
        done = subprocess.run(
            ["ss", "-H", "-ln", "--" + kind, f"sport = :{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        if done.stdout.strip():
            return
        time.sleep(0.02)
    raise AssertionError(f"sipp did not listen on {kind} port {port} within 5 s")


@pytest.fixture
def sipp_server(
    tmp_path: Path, free_port_factory: Callable[[], int]
) -> Iterator[Callable[..., SippServer]]:
    """Start a SIPp UAS: ``sipp_server(scenario, transport="udp", calls=1)``."""
    binary = require_tool("sipp")
    started: list[SippServer] = []

    def start(scenario: str, *, transport: str = "udp", calls: int = 1,
              limit_s: int = 20) -> SippServer:
        directory = tmp_path / f"sipp-server-{len(started) + 1}"
        directory.mkdir()
        port = free_port_factory()
        command = [
            "timeout", "--kill-after=3", str(limit_s), binary,
            *sipp_arguments(scenario, directory, transport=transport, local_port=port,
                            media_port=free_port_factory(), calls=calls),
            "-timeout", f"{limit_s - 2}s", "-timeout_error",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=directory, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        server = SippServer(process=process, directory=directory, transport=transport, port=port)
        started.append(server)
        _wait_listening(process, transport, port)
        return server

    yield start
    for server in started:
        server.stop()


@dataclass
class KamailioServer:
    """Kamailio as a digest-checking registrar (users in kamailio/registrar.cfg:
    alice/alice-secret and 101/s3cret)."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)

    def log(self) -> str:
        return _read(self.log_path)

    def wait_for_log(self, text: str, timeout_s: float = 3.0) -> bool:
        """True once ``text`` is in the log (its workers write it asynchronously)."""
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(3)


def _probe_options(port: int, deadline: float) -> bool:
    """Send OPTIONS over UDP until a 200 comes back or ``deadline`` passes."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        local_port = probe.getsockname()[1]
        probe.settimeout(0.1)
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            probe.sendto(
                (
                    f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP {LOOPBACK}:{local_port};branch=z9hG4bKprobe{attempt}\r\n"
                    f"Max-Forwards: 70\r\nFrom: <sip:probe@{LOOPBACK}>;tag=probe\r\n"
                    f"To: <sip:{LOOPBACK}:{port}>\r\nCall-ID: probe-{local_port}\r\n"
                    f"CSeq: {attempt} OPTIONS\r\nContent-Length: 0\r\n\r\n"
                ).encode(),
                (LOOPBACK, port),
            )
            try:
                data = probe.recv(65535)
            except TimeoutError:
                continue
            if data.startswith(b"SIP/2.0 200"):
                return True
    return False


@pytest.fixture
def kamailio(
    tmp_path: Path, free_port_factory: Callable[[], int]
) -> Iterator[Callable[..., KamailioServer]]:
    """Start Kamailio: ``kamailio(algorithm="MD5")`` ("MD5" or "SHA-256")."""
    binary = require_tool("kamailio")
    started: list[KamailioServer] = []

    def start(*, algorithm: str = "MD5", limit_s: int = 30) -> KamailioServer:
        directory = tmp_path / f"kamailio-{len(started) + 1}"
        directory.mkdir()
        port = free_port_factory()
        log_path = directory / "kamailio.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    "timeout", "--kill-after=3", str(limit_s), binary,
                    "-f", str(KAMAILIO_CONFIG), "-DD", "-E",
                    "-w", str(directory), "-Y", str(directory), "-m", "32", "-M", "8",
                    "-A", f"KAM_PORT={port}", "-A", f'KAM_ALGORITHM="{algorithm}"',
                ],
                cwd=directory, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        server = KamailioServer(process=process, port=port, log_path=log_path)
        started.append(server)
        if not _probe_options(port, time.monotonic() + 8):
            server.stop()
            raise AssertionError(f"kamailio did not answer OPTIONS:\n{server.log()[-3000:]}")
        return server

    yield start
    for server in started:
        server.stop()
