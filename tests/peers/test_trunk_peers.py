"""Trunks against SIPp playing the carrier.

(a) SIPp as a digest registrar (``trunk_registrar_401.xml``, checked by
    SIPp's own ``verifyauth``): our trunk registers, reports ``registered``
    and unregisters (Expires: 0) on close; a wrong password ends ``failed``.
(b) SIPp answering OPTIONS: the trunk goes ``up``; SIPp stopped: ``down``.
(c) An INVITE from SIPp, outside every trunk's ``sources``, gets 403.

Our endpoint runs in the test's event loop; SIPp runs under ``timeout`` in a
thread (``asyncio.to_thread``) so the loop keeps serving while it waits.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from boomerang.app import Endpoint
from boomerang.call.trunks import TrunkEvent, TrunkSet, TrunkWentDown, TrunkWentUp
from boomerang.config import Config, load_config_text
from boomerang.sip.auth import DigestServer
from boomerang.sip.ids import CountingIds
from boomerang.sip.transaction.layer import TimerSettings, TransactionLayer

from .conftest import LOOPBACK, SippRun, SippServer

pytestmark = pytest.mark.peers

# Timer F = 64 * T1 = 0.64 s: an unanswered OPTIONS fails fast.
TIMERS = TimerSettings(t1=0.01, t2=0.08, t4=0.05, timer_d=0.2)


def make_config(port: int, **fields: object) -> Config:
    values: dict[str, object] = {
        "name": "carrier", "host": LOOPBACK, "port": port, "username": "trunkuser",
        "password": "trunkpw", "register": "false", "keepalive_s": 0,
        "sources": "[10.0.0.0/8]",
    }
    values.update(fields)
    body = "\n".join(f"    {key}: {value}" for key, value in values.items())
    text = f"sip:\n  listen: [udp:127.0.0.1:0]\ntrunks:\n  - {body.lstrip()}\n"
    return load_config_text(text, "test.yaml")


@asynccontextmanager
async def trunk_set(config: Config, **options: object) -> AsyncIterator[TrunkSet]:
    endpoint = Endpoint(config, challenger=DigestServer(realm="us", secret=b"k" * 32),
                        ids=CountingIds("p"), layer=TransactionLayer(timers=TIMERS))
    await endpoint.start()
    trunks = TrunkSet(config, endpoint, **options)  # type: ignore[arg-type]
    trunks.install()
    trunks.start()
    try:
        yield trunks
    finally:
        await trunks.close()
        await endpoint.close()


async def wait_until(predicate: Callable[[], bool], timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.02)


async def test_trunk_registers_with_digest_at_a_sipp_registrar_and_unregisters(
    sipp_server: Callable[..., SippServer],
) -> None:
    server = sipp_server("trunk_registrar_401.xml", limit_s=25)
    async with trunk_set(make_config(server.port, register="true")) as trunks:
        trunk = trunks.trunk("carrier")
        await wait_until(lambda: trunk.state in ("registered", "failed"), 10)
        status = trunk.status()
    run: SippRun = await asyncio.to_thread(server.wait, 10)
    assert status.state == "registered", (status, run.explain())
    assert status.registered_expires_s == 120  # from the 200's Contact expires
    assert run.returncode == 0, run.explain()  # verifyauth accepted both digests
    registers = re.findall(r"^REGISTER .*?(?=\r?\n\r?\n)", run.messages, re.M | re.S)
    assert len(registers) == 4, run.explain()
    assert re.search(r"^Expires: *0\s*$", registers[2], re.M), registers[2]
    assert "Authorization: Digest" in registers[1] and "Authorization" not in registers[0]


async def test_a_wrong_password_is_refused_by_sipp_and_reported_failed(
    sipp_server: Callable[..., SippServer],
) -> None:
    server = sipp_server("trunk_registrar_401.xml", limit_s=25)
    sleep_delays: list[float] = []

    async def no_retry(delay_s: float) -> None:  # keep the first failure on screen
        sleep_delays.append(delay_s)
        await asyncio.sleep(3600)

    config = make_config(server.port, register="true", password="wrong")
    async with trunk_set(config, sleep=no_retry) as trunks:
        trunk = trunks.trunk("carrier")
        await wait_until(lambda: trunk.state in ("registered", "failed"), 10)
        status = trunk.status()
    run = await asyncio.to_thread(server.wait, 10)
    assert status.state == "failed", run.explain()
    assert status.last_error == "403 Forbidden"
    assert run.returncode != 0  # SIPp counted the bad digest as a failed call
    assert len(sleep_delays) == 1


async def test_keepalive_sees_sipp_up_then_down_when_it_stops(
    sipp_server: Callable[..., SippServer],
) -> None:
    server = sipp_server("options_uas.xml", calls=200, limit_s=30)
    events: list[TrunkEvent] = []
    config = make_config(server.port, keepalive_s=0.1)
    async with trunk_set(config, on_event=events.append) as trunks:
        trunk = trunks.trunk("carrier")
        await wait_until(lambda: trunk.state == "up", 5)
        await asyncio.to_thread(server.stop)
        await wait_until(lambda: trunk.state == "down", 8)
        status = trunk.status()
    assert [type(e) for e in events] == [TrunkWentUp, TrunkWentDown]
    assert status.reachable is False and status.last_error is not None


async def test_an_invite_from_outside_the_trunk_sources_gets_403(
    sipp: Callable[..., SippRun],
) -> None:
    async with trunk_set(make_config(5060, sources="[10.0.0.0/8]")) as trunks:
        assert trunks.endpoint.driver is not None
        bound = trunks.endpoint.driver.listening[0]
        run = await asyncio.to_thread(sipp, "trunk_invite_403_uac.xml", (bound.host, bound.port),
                                      service="+48221234567", limit_s=15)
        refused = dict(trunks.refused_counts)
    assert run.returncode == 0, run.explain()
    assert refused == {"unknown_source": 1}
