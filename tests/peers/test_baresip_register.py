"""Real phones register: baresip 1.0.0 (headless, ctrl_tcp) against an
in-process Endpoint running the Registrar, with extensions 101 and 102.

Each baresip starts with an empty accounts file; the account is added with
``uanew`` once the control connection is up (REGISTER_OK fires before a
ctrl_tcp client could connect otherwise, see the peers README).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from boomerang.app import Endpoint
from boomerang.call.registrar import ContactUnregistered, Registrar, RegistrarEvent
from boomerang.config import load_config_text
from boomerang.sip.address import Address
from boomerang.sip.auth import DigestServer
from boomerang.sip.ids import CountingIds
from boomerang.sip.transaction.layer import TimerSettings, TransactionLayer

from .conftest import LOOPBACK, require_tool

pytestmark = pytest.mark.peers

# Timer F = 64 * T1 = 0.64 s: a vanished phone fails its keep-alives fast
FAST_TIMERS = TimerSettings(t1=0.01, t2=0.08, t4=0.04, timer_d=0.2)
CONFIG = """\
sip:
  listen: [udp:127.0.0.1:0]
  shutdown_grace_s: 0.2
registrar: {min_expires_s: 60, default_expires_s: 600, max_expires_s: 600,
            keepalive_s: 0.3, keepalive_failures: 2}
extensions:
  - {number: "101", password: anna-pw}
  - {number: "102", password: bob-pw}
"""


class Baresip:
    """A headless baresip in ``directory`` driven through ctrl_tcp
    (netstring-framed JSON)."""

    def __init__(self, directory: Path, *, sip_port: int, ctrl_port: int) -> None:
        self.directory = directory
        self.sip_port = sip_port
        self.ctrl_port = ctrl_port
        self.process: subprocess.Popen[bytes] | None = None
        self.events: list[dict[str, Any]] = []
        self._responses: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
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
            "net_interface": LOOPBACK,
            "sip_listen": f"{LOOPBACK}:{self.sip_port}",
            "audio_player": "aubridge,sink",
            "audio_alert": "aubridge,alert",
            "audio_source": f"aufile,{microphone}",  # 8 kHz mono: aufile has no resampler
            "audio_level": "no",
            "module_path": "/usr/lib/baresip/modules",
            "ctrl_tcp_listen": f"{LOOPBACK}:{self.ctrl_port}",
            "dns_server": f"{LOOPBACK}:53",
        }
        text = "".join(f"{key}\t{value}\n" for key, value in settings.items())
        text += "".join(f"module\t{m}\n" for m in ("g711.so", "aufile.so", "aubridge.so",
                                                     "ctrl_tcp.so"))
        text += "module_tmp\taccount.so\nmodule_app\tmenu.so\n"
        (self.directory / "config").write_text(text)
        (self.directory / "accounts").write_text("")
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
                elif message.get("response"):
                    self._responses.put_nowait(message)

    async def command(self, command: str, params: str = "") -> dict[str, Any]:
        assert self._writer is not None
        self._token += 1
        data = json.dumps({"command": command, "params": params,
                           "token": f"t{self._token}"}).encode()
        self._writer.write(str(len(data)).encode() + b":" + data + b",")
        await self._writer.drain()
        return await asyncio.wait_for(self._responses.get(), 5)

    async def wait_event(self, kind: str, timeout_s: float = 5.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            for event in self.events:
                if event.get("type") == kind:
                    return event
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind} within {timeout_s} s; events {self.events}\n"
                             f"{self.log[-3000:]}")

    def kill(self) -> None:
        """Vanish without unregistering: SIGKILL to baresip itself, the child of
        the ``timeout`` we started (SIGKILL to ``timeout`` would leave it running)."""
        assert self.process is not None and self.process.poll() is None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGKILL)
        self.process.wait(5)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._writer is not None:
            self._writer.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)



@asynccontextmanager
async def phones(tmp_path: Path, free_port_factory: Callable[[], int]
                 ) -> AsyncIterator[Callable[[str], Any]]:
    require_tool("baresip")
    sox = require_tool("sox")
    microphone = tmp_path / "mic.wav"
    subprocess.run([sox, "-q", "-n", "-r", "8000", "-c", "1", "-b", "16", str(microphone),
                    "synth", "5", "sine", "440", "vol", "0.1"], check=True, timeout=10)
    started: list[Baresip] = []

    async def start(name: str) -> Baresip:
        directory = tmp_path / name
        directory.mkdir()
        phone = Baresip(directory, sip_port=free_port_factory(), ctrl_port=free_port_factory())
        phone.write_config(microphone)
        started.append(phone)
        phone.start()
        await phone.connect()
        return phone

    try:
        yield start
    finally:
        for phone in started:
            await phone.stop()


@asynccontextmanager
async def registrar_running() -> AsyncIterator[tuple[Registrar, Address,
                                                     list[RegistrarEvent]]]:
    config = load_config_text(CONFIG, "test.yaml")
    endpoint = Endpoint(config, challenger=DigestServer(realm="boomerang", secret=b"s" * 32,
                                                        algorithms=("MD5",)),
                        ids=CountingIds("b"), layer=TransactionLayer(timers=FAST_TIMERS))
    events: list[RegistrarEvent] = []
    registrar = Registrar.for_config(endpoint, on_event=events.append)
    bound = await endpoint.start()
    await registrar.start()
    try:
        yield registrar, bound[0], events
    finally:
        await registrar.close()
        await endpoint.close()


def account(user: str, password: str, server: Address) -> str:
    return f"<sip:{user}@{server.host}:{server.port}>;auth_pass={password};regint=600"


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


async def test_two_baresip_phones_register_with_digest_and_are_located(
        tmp_path: Path, free_port_factory: Callable[[], int]) -> None:
    async with registrar_running() as (registrar, server, events), \
            phones(tmp_path, free_port_factory) as start:
        anna, bob = await start("anna"), await start("bob")
        await anna.command("uanew", account("101", "anna-pw", server))
        await bob.command("uanew", account("102", "bob-pw", server))
        await anna.wait_event("REGISTER_OK")
        await bob.wait_event("REGISTER_OK")
        await asyncio.sleep(1.0)  # several keep-alive rounds: both answer OPTIONS
        located = {ext: registrar.contacts_for(ext) for ext in ("101", "102")}
        assert [e for e in events if isinstance(e, ContactUnregistered)] == []
    for extension, phone in (("101", anna), ("102", bob)):
        [binding] = located[extension]
        assert binding.destination == Address("udp", LOOPBACK, phone.sip_port)
        # baresip's contact user is "<user>-0x<pointer>"
        assert binding.contact_uri.startswith(f"sip:{extension}-")
        assert f"@{LOOPBACK}:{phone.sip_port}" in binding.contact_uri
        assert binding.user_agent is not None and "baresip" in binding.user_agent.lower()


async def test_a_wrong_password_gives_register_fail_401(
        tmp_path: Path, free_port_factory: Callable[[], int]) -> None:
    async with registrar_running() as (registrar, server, _), \
            phones(tmp_path, free_port_factory) as start:
        anna = await start("anna")
        await anna.command("uanew", account("101", "not-the-password", server))
        failed = await anna.wait_event("REGISTER_FAIL")
        assert not registrar.is_registered("101")
    assert "401" in json.dumps(failed), failed


async def test_a_vanished_phone_is_unregistered_after_failed_keepalives(
        tmp_path: Path, free_port_factory: Callable[[], int]) -> None:
    async with registrar_running() as (registrar, server, events), \
            phones(tmp_path, free_port_factory) as start:
        anna = await start("anna")
        await anna.command("uanew", account("101", "anna-pw", server))
        await anna.wait_event("REGISTER_OK")
        assert registrar.is_registered("101")
        anna.kill()
        gone = await wait_until(lambda: not registrar.is_registered("101"), 8.0)
    assert gone
    assert [(e.binding.extension, e.reason) for e in events
            if isinstance(e, ContactUnregistered)] == [("101", "keepalive_failed")]
