"""Real phones call each other through Boomerang: two (or three) baresip
1.0.0 register as extensions 101 and 102 to an in-process endpoint running
the Registrar and the CallManager with the Router and the Python relay.

101 dials ``sip:102@boomerang``; baresip answers the 407 with its account
credentials; 102 auto-answers; each phone's microphone is a different tone
(101: 440 Hz, 102: 660 Hz, 8 kHz wav files made with sox), so each sndfile
recording (``dump-*-dec.wav``, what the phone heard) tells whether audio
crossed the bridge in its direction.
"""

from __future__ import annotations

import asyncio
import subprocess
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from boomerang.app import Endpoint
from boomerang.call.calls import InboundCall, OutboundCall
from boomerang.call.events import Q850_RECOVERY_ON_TIMER_EXPIRY, Outcome
from boomerang.call.manager import CallManager
from boomerang.call.registrar import Registrar
from boomerang.call.router import Router
from boomerang.config import load_config_text
from boomerang.media.tones import ToneBank
from boomerang.sip.address import Address
from boomerang.sip.auth import DigestServer
from boomerang.sip.ids import CountingIds
from boomerang.store import CallRecordFilter, CallResult, LegKind, Store, open_store
from boomerang.transport.media_relay import PythonMediaRelay
from boomerang.transport.rtp_socket import PortAllocator

from .baresip import Baresip, account, wait_until
from .conftest import LOOPBACK, require_tool

pytestmark = pytest.mark.peers

CONFIG = """\
sip:
  listen: [udp:127.0.0.1:0]
  shutdown_grace_s: 0.2
registrar: {{min_expires_s: 60, default_expires_s: 600, max_expires_s: 600,
            keepalive_s: 1.0, keepalive_failures: 3}}
media: {{rtp_ports: {first}-{last}}}
extensions:
  - {{number: "101", password: anna-pw}}
  - {{number: "102", password: bob-pw}}
"""


class Phone(Baresip):
    """A baresip that records its calls (sndfile) on its own RTP ports."""

    record = True


@dataclass
class Boomerang:
    endpoint: Endpoint
    manager: CallManager
    registrar: Registrar
    relay: PythonMediaRelay
    store: Store
    address: Address


def free_range(free_port_factory: Callable[[], int], size: int = 40) -> tuple[int, int]:
    first = free_port_factory() & ~1
    return (first, min(first + size, 65535))


@asynccontextmanager
async def boomerang(tmp_path: Path, free_port_factory: Callable[[], int], *,
                    no_media_timeout_s: float = 30.0) -> AsyncIterator[Boomerang]:
    first, last = free_range(free_port_factory)
    config = load_config_text(CONFIG.format(first=first, last=last), "test.yaml")
    endpoint = Endpoint(config, challenger=DigestServer(realm="boomerang", secret=b"s" * 32,
                                                        algorithms=("MD5",)),
                        ids=CountingIds("b"))
    store = await open_store(f"sqlite:///{tmp_path / 'boomerang.db'}")
    registrar = Registrar.for_config(endpoint)
    relay = PythonMediaRelay(PortAllocator(first, last), no_media_timeout_s=no_media_timeout_s)
    bound = await endpoint.start()
    await registrar.start()
    manager = CallManager(endpoint, config, registrar=registrar, trunks=None, relay=relay,
                          tone_bank=ToneBank(), store=store)
    manager.install()
    Router(manager, config).install()
    try:
        yield Boomerang(endpoint, manager, registrar, relay, store, bound[0])
    finally:
        await manager.close()
        await relay.close()
        await registrar.close()
        await endpoint.close()
        await store.close()


@asynccontextmanager
async def phones(tmp_path: Path, free_port_factory: Callable[[], int]
                 ) -> AsyncIterator[Callable[[str, int], Phone]]:
    require_tool("baresip")
    sox = require_tool("sox")
    microphones: dict[int, Path] = {}
    started: list[Phone] = []

    def microphone(frequency_hz: int) -> Path:
        if frequency_hz not in microphones:
            path = tmp_path / f"mic-{frequency_hz}.wav"
            subprocess.run([sox, "-q", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path),
                            "synth", "30", "sine", str(frequency_hz), "vol", "0.3"],
                           check=True, timeout=10)
            microphones[frequency_hz] = path
        return microphones[frequency_hz]

    def make(name: str, frequency_hz: int) -> Phone:
        directory = tmp_path / name
        directory.mkdir()
        phone = Phone(directory, sip_port=free_port_factory(), ctrl_port=free_port_factory())
        phone.rtp_ports = free_range(free_port_factory, 20)
        phone.write_config(microphone(frequency_hz))
        started.append(phone)
        return phone

    try:
        yield make
    finally:
        for phone in started:
            await phone.stop()


async def register(phone: Phone, user: str, password: str, server: Address,
                   *, auto_answer: bool = False) -> None:
    phone.start(limit_s=40)
    await phone.connect()
    line = account(user, password, server) + (";answermode=auto" if auto_answer else "")
    await phone.command("uanew", line)
    await phone.wait_event("REGISTER_OK")


def heard_frequency_hz(recording: Path) -> tuple[float, float]:
    """(dominant frequency, seconds of sound) of what a phone heard."""
    with wave.open(str(recording)) as heard:
        rate = heard.getframerate()
        pcm = np.frombuffer(heard.readframes(heard.getnframes()), "<i2").astype(float)
    block = rate // 50
    levels = np.sqrt(np.mean(pcm[:len(pcm) // block * block].reshape(-1, block) ** 2, axis=1))
    sounding = np.flatnonzero(levels > 300)
    if not sounding.size:
        return 0.0, 0.0
    tone = pcm[sounding[0] * block:(sounding[-1] + 1) * block]
    spectrum = np.abs(np.fft.rfft(tone * np.hanning(len(tone))))
    spectrum[0] = 0
    frequency = float(np.fft.rfftfreq(len(tone), 1 / rate)[int(np.argmax(spectrum))])
    return frequency, len(tone) / rate


async def test_101_calls_102_and_each_hears_the_other(
        tmp_path: Path, free_port_factory: Callable[[], int]) -> None:
    async with boomerang(tmp_path, free_port_factory) as server, \
            phones(tmp_path, free_port_factory) as make:
        anna, bob = make("anna", 440), make("bob", 660)
        await register(anna, "101", "anna-pw", server.address)
        await register(bob, "102", "bob-pw", server.address, auto_answer=True)
        await anna.command("dial", f"sip:102@{LOOPBACK}:{server.address.port}")
        await anna.wait_event("CALL_ESTABLISHED", timeout_s=8)
        await bob.wait_event("CALL_ESTABLISHED", timeout_s=2)
        [call_a] = [c for c in server.manager.calls if isinstance(c, InboundCall)]
        stats = server.relay
        await asyncio.sleep(2.0)
        counters = await stats.stats(call_a.correlation_id)
        await anna.command("hangup")
        await bob.wait_event("CALL_CLOSED", timeout_s=5)  # our BYE reached 102
        await anna.wait_event("CALL_CLOSED", timeout_s=5)
        assert await wait_until(lambda: not server.manager.calls, 3.0)
        await asyncio.sleep(0.3)  # the records' last writes
        records = await server.store.records.query(
            CallRecordFilter(correlation_id=call_a.correlation_id))
        await anna.quit()
        await bob.quit()
    [anna_heard] = anna.recordings("dec")
    [bob_heard] = bob.recordings("dec")
    anna_hz, anna_s = heard_frequency_hz(anna_heard)
    bob_hz, bob_s = heard_frequency_hz(bob_heard)
    print(f"101 heard {anna_hz:.1f} Hz for {anna_s:.2f} s; 102 heard {bob_hz:.1f} Hz "
          f"for {bob_s:.2f} s; relay {counters}")
    assert abs(bob_hz - 440) <= 5 and bob_s > 1.5, (bob_hz, bob_s)
    assert abs(anna_hz - 660) <= 5 and anna_s > 1.5, (anna_hz, anna_s)
    assert len(records) == 2, records
    assert {r.leg_kind for r in records} == {LegKind.INTERNAL}
    assert all(r.result is CallResult.ANSWERED and r.owner_extension == "101"
               and r.answered_at is not None and r.ended_at is not None for r in records)
    assert {r.dialed_destination for r in records} == {"102"}
    assert len({r.call_id for r in records}) == 2


async def test_forked_call_the_phone_that_does_not_answer_gets_cancel(
        tmp_path: Path, free_port_factory: Callable[[], int]) -> None:
    async with boomerang(tmp_path, free_port_factory) as server, \
            phones(tmp_path, free_port_factory) as make:
        anna, desk, mobile = make("anna", 440), make("desk", 660), make("mobile", 660)
        await register(anna, "101", "anna-pw", server.address)
        await register(desk, "102", "bob-pw", server.address, auto_answer=True)
        await register(mobile, "102", "bob-pw", server.address)
        assert len(server.registrar.contacts_for("102")) == 2
        await anna.command("dial", f"sip:102@{LOOPBACK}:{server.address.port}")
        await anna.wait_event("CALL_ESTABLISHED", timeout_s=8)
        await desk.wait_event("CALL_ESTABLISHED", timeout_s=2)
        await mobile.wait_event("CALL_INCOMING", timeout_s=2)
        [outbound] = [c for c in server.manager.calls if isinstance(c, OutboundCall)]
        closed = await mobile.wait_event("CALL_CLOSED", timeout_s=5)
        assert await wait_until(lambda: all(leg.ended for leg in outbound.forks
                                            if leg is not outbound.winner), 2.0)
        assert mobile.count("CALL_ESTABLISHED") == 0
        await anna.command("hangup")
        await desk.wait_event("CALL_CLOSED", timeout_s=5)
        assert await wait_until(lambda: not server.manager.calls, 3.0)
    print(f"the losing phone closed with {closed.get('param')!r}")
    [loser] = [leg for leg in outbound.forks if leg is not outbound.winner]
    assert loser.end_cause is not None
    assert (loser.end_cause.outcome, loser.end_cause.sip_status) == (Outcome.CANCELLED, 487)
    assert outbound.winner is not None and outbound.winner.destination.port == desk.sip_port


async def test_a_vanished_phone_is_released_by_the_no_media_timeout(
        tmp_path: Path, free_port_factory: Callable[[], int]) -> None:
    async with boomerang(tmp_path, free_port_factory, no_media_timeout_s=1.5) as server, \
            phones(tmp_path, free_port_factory) as make:
        anna, bob = make("anna", 440), make("bob", 660)
        await register(anna, "101", "anna-pw", server.address)
        await register(bob, "102", "bob-pw", server.address, auto_answer=True)
        await anna.command("dial", f"sip:102@{LOOPBACK}:{server.address.port}")
        await anna.wait_event("CALL_ESTABLISHED", timeout_s=8)
        await bob.wait_event("CALL_ESTABLISHED", timeout_s=2)
        await asyncio.sleep(0.5)
        assert len(server.manager.calls) == 2
        calls = list(server.manager.calls)
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        bob.kill()
        closed = await anna.wait_event("CALL_CLOSED", timeout_s=6)
        released_after_s = loop.time() - killed_at
        assert await wait_until(lambda: not server.manager.calls, 2.0)
        assert await wait_until(lambda: len(server.relay) == 0, 2.0)
    print(f"101 got BYE {released_after_s:.2f} s after 102 vanished: {closed.get('param')!r}")
    assert 1.4 < released_after_s < 5.0, released_after_s
    causes = {type(call).__name__: call.ended.result() for call in calls}
    # 102's leg ended by us for lack of media; 101 got the Q.850 cause in the BYE's Reason
    assert causes["OutboundCall"].q850_cause == Q850_RECOVERY_ON_TIMER_EXPIRY, causes
    assert causes["InboundCall"].q850_cause == Q850_RECOVERY_ON_TIMER_EXPIRY, causes
