"""Fixtures every test area may use.

- ``free_port``: a port number free on 127.0.0.1 for both UDP and TCP;
  ``free_port_factory()`` for several.
- ``run_boomerang``: start ``boomerang run -c FILE`` as a subprocess (under
  ``timeout``) with a temporary config, wait for its ready line and return a
  ``BoomerangProcess`` that knows the addresses it listens on. Every process
  started this way is stopped (SIGTERM, then SIGKILL) at teardown, by PID.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from commands import boomerang_command

LOOPBACK = "127.0.0.1"

# "listening on udp:127.0.0.1:40123 tcp:127.0.0.1:40124 ..."
READY_PATTERN = re.compile(r"listening on\b(.*)", re.IGNORECASE)
ADDRESS_PATTERN = re.compile(r"\b(udp|tcp|tls):(\[[0-9a-fA-F:.]+\]|[\w.-]+):(\d+)")

# shutdown_grace_s short: UDP server transactions linger (Timer J, 32 s) and
# the SIGTERM drain would otherwise wait its full default grace in teardown.
DEFAULT_CONFIG = """\
sip:
  listen: [udp:127.0.0.1:0, tcp:127.0.0.1:0]
  shutdown_grace_s: 0.2
"""


def pick_free_port(host: str = LOOPBACK) -> int:
    """A port that was free for both UDP and TCP on ``host`` a moment ago.

    The kernel picks it (bind to port 0), so parallel runs do not collide;
    it is released before returning, so bind to it soon.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP after 50 tries")


@pytest.fixture
def free_port() -> int:
    """One port free on 127.0.0.1 for UDP and TCP."""
    return pick_free_port()


@pytest.fixture
def free_port_factory() -> Callable[[], int]:
    """``free_port_factory()`` picks another free port each call."""
    return pick_free_port


@dataclass
class BoomerangProcess:
    """A running ``boomerang run`` and what its ready line said."""

    process: subprocess.Popen[bytes]
    config_path: Path
    log_path: Path
    ready_line: str = ""
    listen: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def address(self, transport: str = "udp") -> tuple[str, int]:
        """(host, port) it listens on for ``transport``."""
        try:
            return self.listen[transport]
        except KeyError:
            raise AssertionError(
                f"boomerang does not listen on {transport}; ready line: {self.ready_line!r}"
            ) from None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return int(self.process.returncode)


def _wait_ready(proc: BoomerangProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = proc.output()
        for line in text.splitlines():
            match = READY_PATTERN.search(line)
            if match:
                proc.ready_line = line
                for transport, host, port in ADDRESS_PATTERN.findall(match.group(1)):
                    proc.listen.setdefault(transport, (host.strip("[]"), int(port)))
                if proc.listen:
                    return
        if proc.process.poll() is not None:
            raise AssertionError(
                f"boomerang exited with {proc.process.returncode} before it was ready:\n"
                + text[-4000:]
            )
        time.sleep(0.02)
    raise AssertionError(f"boomerang not ready after {timeout_s} s:\n" + proc.output()[-4000:])


@pytest.fixture
def run_boomerang(tmp_path: Path) -> Iterator[Callable[..., BoomerangProcess]]:
    """Factory: ``run_boomerang(config_text=None, *, args=(), ready_timeout_s=15)``.

    ``config_text`` is the YAML written to a temporary ``boomerang.yaml``
    (default: UDP and TCP on 127.0.0.1, ephemeral ports). The process runs
    under ``timeout`` (``limit_s``, default 120 s) with output in a log file.
    """
    started: list[BoomerangProcess] = []

    def start(
        config_text: str | None = None,
        *,
        args: tuple[str, ...] = (),
        ready_timeout_s: float = 15.0,
        limit_s: int = 120,
    ) -> BoomerangProcess:
        index = len(started)
        config_path = tmp_path / f"boomerang-{index}.yaml"
        config_path.write_text(DEFAULT_CONFIG if config_text is None else config_text)
        log_path = tmp_path / f"boomerang-{index}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                # --foreground: a SIGTERM to ``timeout`` reaches boomerang alone and
                # timeout then exits with boomerang's status (without it, it exits
                # by the signal when started from Python)
                ["timeout", "--foreground", "--kill-after=5", str(limit_s),
                 *boomerang_command(),
                 "run", "-c", str(config_path), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                env=env,
            )
        proc = BoomerangProcess(process=process, config_path=config_path, log_path=log_path)
        started.append(proc)
        _wait_ready(proc, ready_timeout_s)
        return proc

    yield start
    for proc in started:
        proc.stop()
