"""A headless baresip 1.0.0 for the real-peer tests, driven through ctrl_tcp
(netstring-framed JSON: commands out, responses and events in).

Audio: no sound card; the microphone is an 8 kHz mono wav (``aufile`` has no
resampler) and what the phone hears goes to an ``aubridge`` sink nobody
reads, or, with ``record=True``, to ``sndfile`` recordings
(``rec/dump-*-dec.wav`` is what the phone heard, ``-enc`` what it sent).
See ../shared/peers/README.md for the gotchas these settings avoid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from boomerang.sip.address import Address

from .conftest import LOOPBACK, require_tool


class Baresip:
    """One baresip process in ``directory`` with its own SIP and control ports.

    ``rtp_ports`` pins its RTP range (else baresip picks); ``record`` loads
    sndfile; ``accounts`` is the initial accounts file (empty: add accounts
    with ``uanew`` once connected, since REGISTER_OK may fire before a
    control client can connect).
    """

    record = False

    def __init__(self, directory: Path, *, sip_port: int, ctrl_port: int,
                 rtp_ports: tuple[int, int] | None = None, record: bool | None = None,
                 accounts: str = "") -> None:
        self.directory = directory
        self.sip_port = sip_port
        self.ctrl_port = ctrl_port
        self.rtp_ports = rtp_ports
        if record is not None:
            self.record = record
        self.accounts = accounts
        self.process: subprocess.Popen[bytes] | None = None
        self.events: list[dict[str, Any]] = []
        self._responses: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._event_arrived = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._token = 0

    @property
    def log(self) -> str:
        path = self.directory / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def write_config(self, microphone: Path) -> None:
        settings = {
            "poll_method": "epoll",
            "net_interface": LOOPBACK,  # else the eth0 address goes into the SDP
            "sip_listen": f"{LOOPBACK}:{self.sip_port}",
            "call_max_calls": "2",
            "audio_player": "aubridge,sink",  # no sound card: a bridge nobody reads
            "audio_alert": "aubridge,alert",
            "audio_source": f"aufile,{microphone}",  # 8 kHz mono: aufile has no resampler
            "audio_level": "no",
            "module_path": "/usr/lib/baresip/modules",
            "ctrl_tcp_listen": f"{LOOPBACK}:{self.ctrl_port}",
            "dns_server": f"{LOOPBACK}:53",
        }
        modules = ["g711.so", "aufile.so", "aubridge.so", "ctrl_tcp.so"]
        if self.rtp_ports is not None:
            settings |= {
                "rtp_ports": f"{self.rtp_ports[0]}-{self.rtp_ports[1]}",
                "rtp_timeout": "0",
                "rtcp_mux": "no",
                "jitter_buffer_delay": "1-4",
            }
        if self.record:
            (self.directory / "rec").mkdir(parents=True, exist_ok=True)
            settings["snd_path"] = str(self.directory / "rec")
            modules.append("sndfile.so")
        text = "".join(f"{key}\t{value}\n" for key, value in settings.items())
        text += "".join(f"module\t{module}\n" for module in modules)
        text += "module_tmp\taccount.so\nmodule_app\tmenu.so\n"
        (self.directory / "config").write_text(text)
        (self.directory / "accounts").write_text(self.accounts)
        (self.directory / "contacts").write_text("")

    def start(self, limit_s: int = 40) -> None:
        with (self.directory / "baresip.log").open("wb") as log:
            self.process = subprocess.Popen(
                ["timeout", "--kill-after=3", str(limit_s), require_tool("baresip"),
                 "-f", str(self.directory)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.directory)

    async def connect(self, timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    reader, self._writer = await asyncio.open_connection(LOOPBACK,
                                                                         self.ctrl_port)
                    break
                except OSError:
                    assert self.process is not None and self.process.poll() is None, self.log
                    await asyncio.sleep(0.05)
        self._reader = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
            while True:
                size = int((await reader.readuntil(b":"))[:-1])
                message = json.loads((await reader.readexactly(size + 1))[:-1])
                if message.get("event"):
                    self.events.append(message)
                    self._event_arrived.set()
                elif message.get("response"):
                    self._responses.put_nowait(message)

    async def command(self, command: str, params: str = "") -> dict[str, Any]:
        """Send a command and return its response (asserting it is ok)."""
        assert self._writer is not None
        self._token += 1
        request = {"command": command, "params": params, "token": f"t{self._token}"}
        data = json.dumps(request).encode()
        self._writer.write(str(len(data)).encode() + b":" + data + b",")
        await self._writer.drain()
        async with asyncio.timeout(5):
            while True:
                response = await self._responses.get()
                if response.get("token") == request["token"]:
                    assert response.get("ok"), (response, self.log[-2000:])
                    return response

    async def wait_event(self, kind: str, timeout_s: float = 10.0) -> dict[str, Any]:
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    for event in self.events:
                        if event.get("type") == kind:
                            return event
                    self._event_arrived.clear()
                    await self._event_arrived.wait()
        except TimeoutError:
            raise AssertionError(f"no {kind} within {timeout_s} s; events {self.events}\n"
                                 f"{self.log[-3000:]}") from None

    def count(self, kind: str) -> int:
        return sum(1 for event in self.events if event.get("type") == kind)

    def recordings(self, kind: str) -> list[Path]:
        """sndfile's wav files: ``dec`` is what the phone heard, ``enc`` what it sent."""
        return sorted((self.directory / "rec").glob(f"dump-*-{kind}.wav"))

    def kill(self) -> None:
        """Vanish without unregistering: SIGKILL to baresip itself, the child of
        the ``timeout`` we started (SIGKILL to ``timeout`` would leave it running)."""
        assert self.process is not None and self.process.poll() is None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGKILL)
        self.process.wait(5)

    async def quit(self) -> None:
        """Quit cleanly (sndfile finishes its wav files), then stop."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError, AssertionError, TimeoutError):
                await self.command("quit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.process.wait, 5)
        await self.stop()

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def account(user: str, password: str, server: Address) -> str:
    """A baresip account line registering ``user`` to ``server`` with digest."""
    return f"<sip:{user}@{server.host}:{server.port}>;auth_pass={password};regint=600"


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()
