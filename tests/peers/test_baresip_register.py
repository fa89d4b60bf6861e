"""Real phones register: baresip 1.0.0 (headless, ctrl_tcp) against an
in-process Endpoint running the Registrar, with extensions 101 and 102.

Each baresip starts with an empty accounts file; the account is added with
``uanew`` once the control connection is up (REGISTER_OK fires before a
ctrl_tcp client could connect otherwise, see the peers README).
"""

from __future__ import annotations

import asyncio
import json
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

from .baresip import Baresip, account, wait_until
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
