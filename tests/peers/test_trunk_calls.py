"""Outbound calls through a trunk whose carrier (SIPp, ``carrier_407_uas.xml``)
challenges every INVITE with 407 and checks, with ``<ereg check_it="true">``,
the digest's user, realm and nonce, the Request-URI in the trunk's
``dial_format`` (national: ``600100200``, without the outside prefix the
phone dialled) and the caller ID in
P-Asserted-Identity (``+48221234567``): SIPp's call fails otherwise.
SIPp 3.6.1's ``verifyauth`` reads only an Authorization header, so the
digest's ``response`` is recomputed here (RFC 2617 §3.2.2, MD5 without
qop, hashlib) from the INVITE SIPp received.

(a) ``CallManager.originate(TrunkTarget(...))`` straight from the test;
(b) a baresip phone registered as extension 101 (transit) dials the outside
    prefix and a national number, ``0600100200``, through the Router;
(c) extension 102 without transit, and 101 dialling a premium-rate number:
    the phone's call is refused 403 and no INVITE reaches the carrier.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from boomerang.app import Endpoint
from boomerang.call.events import Outcome
from boomerang.call.manager import CallManager, TrunkTarget
from boomerang.call.registrar import Registrar
from boomerang.call.router import Router
from boomerang.call.trunks import TrunkSet
from boomerang.config import load_config_text
from boomerang.media.tones import ToneBank
from boomerang.sip.address import Address
from boomerang.sip.auth import DigestServer
from boomerang.sip.ids import CountingIds
from boomerang.transport.media_relay import PythonMediaRelay
from boomerang.transport.rtp_socket import PortAllocator

from .conftest import LOOPBACK, SippServer
from .test_baresip_register import wait_until
from .test_phone_calls import Phone, free_range, phones, register

pytestmark = pytest.mark.peers

CONFIG = """\
sip:
  listen: [udp:127.0.0.1:0]
  shutdown_grace_s: 0.2
registrar: {{min_expires_s: 60, default_expires_s: 600, max_expires_s: 600}}
media: {{rtp_ports: {first}-{last}}}
numbers: {{country: PL, company_number: "+48221234567"}}
trunks:
  - {{name: carrier, host: 127.0.0.1, port: {carrier_port}, username: trunkuser,
     password: {password}, keepalive_s: 0, sources: [10.0.0.0/8], dial_format: national,
     outside_prefix: "0", caller_id_header: pai}}
extensions:
  - {{number: "101", password: anna-pw, transit: true}}
  - {{number: "102", password: bob-pw}}
"""


@dataclass
class Boomerang:
    endpoint: Endpoint
    manager: CallManager
    address: Address


@asynccontextmanager
async def boomerang(free_port_factory: Callable[[], int], carrier_port: int,
                    ) -> AsyncIterator[Boomerang]:
    first, last = free_range(free_port_factory)
    config = load_config_text(CONFIG.format(first=first, last=last, carrier_port=carrier_port,
                                            password="trunkpw"), "test.yaml")
    endpoint = Endpoint(config, challenger=DigestServer(realm="boomerang", secret=b"s" * 32,
                                                        algorithms=("MD5",)),
                        ids=CountingIds("b"))
    registrar = Registrar.for_config(endpoint)
    relay = PythonMediaRelay(PortAllocator(first, last))
    bound = await endpoint.start()
    await registrar.start()
    trunks = TrunkSet(config, endpoint)
    manager = CallManager(endpoint, config, registrar=registrar, trunks=trunks, relay=relay,
                          tone_bank=ToneBank())
    manager.install()
    Router(manager, config).install()
    try:
        yield Boomerang(endpoint, manager, bound[0])
    finally:
        await manager.close()
        await trunks.close()
        await relay.close()
        await registrar.close()
        await endpoint.close()


def invites(run_messages: str) -> int:
    return sum(1 for line in run_messages.splitlines() if line.startswith("INVITE sip:"))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_is_valid(run_messages: str, username: str, password: str) -> bool:
    """The Proxy-Authorization of the INVITE SIPp received holds the right
    ``response`` for ``password`` (RFC 2617 §3.2.2, no qop)."""
    found = re.search(r"^Proxy-Authorization:\s*Digest (.*)$", run_messages, re.MULTILINE)
    assert found is not None, run_messages
    fields = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
    assert "qop" not in fields  # the challenge offered none
    ha1 = _md5(f"{username}:{fields['realm']}:{password}")
    ha2 = _md5(f"INVITE:{fields['uri']}")
    return fields["response"] == _md5(f"{ha1}:{fields['nonce']}:{ha2}")


async def test_originate_through_a_carrier_that_challenges_407(
        sipp_server: Callable[..., SippServer], free_port_factory: Callable[[], int]) -> None:
    server = sipp_server("carrier_407_uas.xml", limit_s=20)
    async with boomerang(free_port_factory, server.port) as pbx:
        call = await pbx.manager.originate(TrunkTarget("carrier", "+48600100200"),
                                           caller_id="+48221234567", ring_timeout_s=10)
        cause = await asyncio.wait_for(call.outcome(), 8)
        await asyncio.sleep(0.3)
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
        run = await asyncio.to_thread(server.wait, 8.0)
    assert cause.outcome is Outcome.ANSWERED, run.explain()
    assert run.returncode == 0, run.explain()  # Request-URI, PAI and digest user checked
    assert run.counter("SuccessfulCall(C)") == 1, run.explain()
    assert invites(run.messages) == 2, run.explain()  # the 407, then the one with credentials
    assert digest_is_valid(run.messages, "trunkuser", "trunkpw")
    assert not digest_is_valid(run.messages, "trunkuser", "another-pw")


async def test_a_phone_with_transit_calls_out_through_the_challenging_carrier(
        tmp_path: Path, sipp_server: Callable[..., SippServer],
        free_port_factory: Callable[[], int]) -> None:
    server = sipp_server("carrier_407_uas.xml", limit_s=25)
    async with boomerang(free_port_factory, server.port) as pbx, \
            phones(tmp_path, free_port_factory) as make:
        anna = make("anna", 440)
        await register(anna, "101", "anna-pw", pbx.address)
        await anna.command("dial", f"sip:0600100200@{LOOPBACK}:{pbx.address.port}")
        await anna.wait_event("CALL_ESTABLISHED", timeout_s=8)
        await asyncio.sleep(0.5)
        await anna.command("hangup")
        await anna.wait_event("CALL_CLOSED", timeout_s=5)
        run = await asyncio.to_thread(server.wait, 8.0)
        assert await wait_until(lambda: not pbx.manager.calls, 3.0)
        await anna.quit()
    assert run.returncode == 0, run.explain()
    assert run.counter("SuccessfulCall(C)") == 1, run.explain()
    assert digest_is_valid(run.messages, "trunkuser", "trunkpw")
    assert "Remote-Party-ID" not in run.messages


@pytest.mark.parametrize(("user", "password", "dialled"), [
    ("102", "bob-pw", "0600100200"),  # no transit permission
    ("101", "anna-pw", "0701234567"),  # premium rate, refused even with transit
])
async def test_a_refused_external_number_never_reaches_the_carrier(
        tmp_path: Path, sipp_server: Callable[..., SippServer],
        free_port_factory: Callable[[], int], user: str, password: str, dialled: str) -> None:
    server = sipp_server("carrier_407_uas.xml", limit_s=20)
    async with boomerang(free_port_factory, server.port) as pbx, \
            phones(tmp_path, free_port_factory) as make:
        phone: Phone = make(f"ext{user}", 440)
        await register(phone, user, password, pbx.address)
        await phone.command("dial", f"sip:{dialled}@{LOOPBACK}:{pbx.address.port}")
        closed = await phone.wait_event("CALL_CLOSED", timeout_s=8)
        await asyncio.sleep(0.5)  # an INVITE to the carrier would be there by now
        assert await wait_until(lambda: not pbx.manager.calls, 3.0)
        await phone.quit()
    server.stop()
    run = server.wait(5.0)
    print(f"{user} dialled {dialled}: {closed.get('param')!r}")
    assert "403" in str(closed.get("param")), closed
    assert phone.count("CALL_ESTABLISHED") == 0
    assert invites(run.messages) == 0, run.messages
