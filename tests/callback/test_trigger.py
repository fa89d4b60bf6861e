"""The trigger call of SPEC §2 over real UDP on 127.0.0.1: a carrier (a
second CallManager) rings the DID; Boomerang's CallbackService rings it,
rejects it after ring_time, never answers it, and stores a job only for a
registered mobile of a callback-enabled extension. The scheduler here is
the real job store with a recording ``advance``; placing callbacks is the
scheduler's and runner's business, tested elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from boomerang.app import Endpoint
from boomerang.call.calls import OutboundCall
from boomerang.call.events import CallAnswered, CallEvent, CallRinging, Outcome
from boomerang.call.manager import CallManager, UriTarget
from boomerang.call.trunks import TrunkSet
from boomerang.callback.service import CallbackService
from boomerang.config import Config, load_config_text
from boomerang.media.tones import ToneBank
from boomerang.sip.address import Address
from boomerang.sip.auth import DigestServer
from boomerang.sip.ids import CountingIds
from boomerang.sip.transaction.layer import TimerSettings, TransactionLayer
from boomerang.store import (
    CallbackJob,
    CallRecordFilter,
    CallResult,
    LegKind,
    NewCallbackJob,
    Store,
    open_store,
)
from boomerang.transport.media_relay import PythonMediaRelay
from boomerang.transport.rtp_socket import PortAllocator

FAST = TimerSettings(t1=0.01, t2=0.08, t4=0.04, timer_d=0.05)
DID = "+48221234567"
ANNA = "+48600100200"     # mobile of 100, callback on
BOB = "+48600100300"      # mobile of 102, callback off


def config_text(carrier_port: int, **callback: object) -> str:
    params = {"ring_time": 0.4, "delay": 1, "caller_id": f'"{DID}"', **callback}
    node = ", ".join(f"{k}: {v}" for k, v in params.items())
    return f"""\
sip:
  listen: [udp:127.0.0.1:0]
  shutdown_grace_s: 0.1
trunks:
  - {{name: carrier, host: 127.0.0.1, port: {carrier_port}, keepalive_s: 0,
     sources: [127.0.0.1/32]}}
extensions:
  - {{number: "100", password: pw100, mobiles: ["{ANNA}"], callback: true}}
  - {{number: "102", password: pw102, mobiles: ["{BOB}"], callback: false}}
dids:
  - {{number: "{DID}", trunk: carrier, flow: roaming}}
flows:
  roaming:
    - {{id: cb, type: callback, {node}, next: tone}}
    - {{id: tone, type: disa}}
"""


@dataclass
class RecordingScheduler:
    """The real job store behind the service's two scheduler calls."""

    store: Store
    advanced: list[tuple[int, datetime]] = field(default_factory=list)

    async def schedule(self, job: NewCallbackJob) -> CallbackJob:
        return await self.store.jobs.create(job)

    async def advance(self, job_id: int, due_at: datetime) -> bool:
        self.advanced.append((job_id, due_at))
        return True


class NoRunner:
    async def run_inbound(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a callback flow must never answer the trigger")


@dataclass
class World:
    boomerang: CallManager
    carrier: CallManager
    service: CallbackService
    scheduler: RecordingScheduler
    store: Store
    did_address: Address

    async def ring(self, caller: str, *, did: str = DID,
                   headers: tuple[str, ...] = ()) -> tuple[OutboundCall, list[str]]:
        """The carrier's trigger call; returns it and what the carrier saw."""
        seen: list[str] = []
        call = await self.carrier.originate(
            UriTarget(f"sip:{did}@127.0.0.1:{self.did_address.port}", self.did_address),
            caller_id=caller, ring_timeout_s=10)

        def listen(event: CallEvent) -> None:
            if isinstance(event, CallRinging):
                seen.append("180")
            elif isinstance(event, CallAnswered):
                seen.append("200")

        call.listeners.append(listen)
        return call, seen

    async def jobs(self) -> list[CallbackJob]:
        return await self.store.jobs.load_unfinished()


def _endpoint(name: str, config: Config) -> Endpoint:
    return Endpoint(config, challenger=DigestServer(realm="test", secret=b"k" * 32),
                    ids=CountingIds(name), layer=TransactionLayer(timers=FAST))


@asynccontextmanager
async def world(tmp_path: Path, free_port_factory: Callable[[], int],
                **callback: object) -> AsyncIterator[World]:
    carrier_endpoint = _endpoint("carrier", load_config_text(
        "sip:\n  listen: [udp:127.0.0.1:0]\n", "carrier.yaml"))
    [carrier_address] = await carrier_endpoint.start()
    config = load_config_text(config_text(carrier_address.port, **callback), "test.yaml")
    endpoint = _endpoint("b", config)
    [did_address] = await endpoint.start()
    store = await open_store(f"sqlite:///{tmp_path / 'test.db'}")
    first = free_port_factory() & ~1
    relay = PythonMediaRelay(PortAllocator(first, first + 40))
    trunks = TrunkSet(config, endpoint)
    boomerang = CallManager(endpoint, config, registrar=None, trunks=trunks, relay=relay,
                            tone_bank=ToneBank(), store=store, t1_s=0.01)
    boomerang.install()
    carrier_relay = PythonMediaRelay(PortAllocator(first + 40, first + 60))
    carrier = CallManager(carrier_endpoint, carrier_endpoint.config, registrar=None,
                          trunks=None, relay=carrier_relay, tone_bank=ToneBank(), t1_s=0.01)
    carrier.install()
    service = CallbackService(boomerang, config, store=store, runner=NoRunner(),  # type: ignore[arg-type]
                              entitled=frozenset({ANNA, BOB}))
    scheduler = RecordingScheduler(store)
    service.install(scheduler)  # type: ignore[arg-type]
    try:
        yield World(boomerang, carrier, service, scheduler, store, did_address)
    finally:
        for manager in (carrier, boomerang):
            await manager.close()
        await trunks.close()
        for each in (relay, carrier_relay):
            await each.close()
        await carrier_endpoint.close()
        await endpoint.close()
        await store.close()


async def settle(world: World) -> None:
    """Until the records of every finished call are written."""
    for _ in range(100):
        if not world.boomerang._tasks:
            return
        await asyncio.sleep(0.02)


async def test_a_registered_mobile_is_rung_then_rejected_never_answered_and_a_job_stored(
        tmp_path: Path, free_port_factory: Callable[[], int]) -> None:
    async with world(tmp_path, free_port_factory) as w:
        loop = asyncio.get_running_loop()
        started = loop.time()
        call, seen = await w.ring(ANNA)
        cause = await asyncio.wait_for(call.outcome(), 5)
        rang_s = loop.time() - started
        assert seen == ["180"]
        assert cause.outcome is Outcome.BUSY and cause.sip_status == 486
        assert 0.35 <= rang_s < 1.5, rang_s
        [job] = await w.jobs()
        assert job.target_number == ANNA and job.owner_extension == "100"
        assert job.trunk == "carrier" and job.caller_id == DID
        assert job.max_attempts == 3 and job.deduplication_key == ANNA
        assert job.context["did"] == DID
        await settle(w)
        [record] = await w.store.records.query(CallRecordFilter(leg_kind=LegKind.TRIGGER))
        assert record.owner_extension == "100" and record.trigger_did == DID
        assert record.trigger_caller == ANNA and record.callback_target == ANNA
        assert record.result is CallResult.REJECTED and record.answered_at is None


@pytest.mark.parametrize("reject_code", [603, 480])
async def test_the_reject_code_is_the_configured_one(
        tmp_path: Path, free_port_factory: Callable[[], int], reject_code: int) -> None:
    async with world(tmp_path, free_port_factory, reject_code=reject_code) as w:
        call, _ = await w.ring(ANNA)
        cause = await asyncio.wait_for(call.outcome(), 5)
        assert cause.sip_status == reject_code


async def test_a_caller_who_hangs_up_first_still_gets_the_callback_sooner(
        tmp_path: Path, free_port_factory: Callable[[], int]) -> None:
    async with world(tmp_path, free_port_factory, ring_time=3) as w:
        call, seen = await w.ring(ANNA)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.02)
        call.cancel()
        cause = await asyncio.wait_for(call.outcome(), 5)
        assert cause.outcome is Outcome.CANCELLED
        for _ in range(100):
            if w.scheduler.advanced:
                break
            await asyncio.sleep(0.02)
        [job] = await w.jobs()
        [(job_id, due_at)] = w.scheduler.advanced
        assert job_id == job.id
        # planned: ring_time 3 + delay 1 from the trigger; now: delay 1 from the CANCEL
        assert (job.due_at - due_at).total_seconds() > 2.0


@pytest.mark.parametrize(("caller", "reason"), [
    ("+48600999999", "unknown_caller"),
    (BOB, "no_callback"),
    ("anonymous", "withheld"),
])
async def test_refused_triggers_ring_and_reject_the_same_and_store_nothing(
        tmp_path: Path, free_port_factory: Callable[[], int], caller: str,
        reason: str) -> None:
    async with world(tmp_path, free_port_factory) as w:
        call, seen = await w.ring(caller)
        cause = await asyncio.wait_for(call.outcome(), 5)
        assert seen == ["180"] and cause.sip_status == 486
        assert await w.jobs() == []
        text = w.service.metrics.text().decode()
        assert f'boomerang_triggers_total{{reason="{reason}",result="refused"}} 1.0' in text
        await settle(w)
        [record] = await w.store.records.query(CallRecordFilter(leg_kind=LegKind.TRIGGER))
        assert record.result is CallResult.REFUSED


async def test_ringing_twice_quickly_gives_one_job(
        tmp_path: Path, free_port_factory: Callable[[], int]) -> None:
    async with world(tmp_path, free_port_factory) as w:
        first, _ = await w.ring(ANNA)
        await asyncio.sleep(0.05)
        second, _ = await w.ring(ANNA)
        for call in (first, second):
            assert (await asyncio.wait_for(call.outcome(), 5)).sip_status == 486
        assert len(await w.jobs()) == 1
        text = w.service.metrics.text().decode()
        assert 'boomerang_triggers_total{reason="duplicate",result="duplicate"} 1.0' in text


async def test_an_unknown_did_gets_404_at_once(
        tmp_path: Path, free_port_factory: Callable[[], int]) -> None:
    async with world(tmp_path, free_port_factory) as w:
        call, seen = await w.ring(ANNA, did="+48221111111")
        cause = await asyncio.wait_for(call.outcome(), 5)
        assert cause.sip_status == 404 and seen == []
        assert await w.jobs() == []


async def test_while_draining_a_trigger_gets_503_and_no_job(
        tmp_path: Path, free_port_factory: Callable[[], int]) -> None:
    async with world(tmp_path, free_port_factory) as w:
        w.service.begin_drain()
        call, _ = await w.ring(ANNA)
        assert (await asyncio.wait_for(call.outcome(), 5)).sip_status == 503
        assert await w.jobs() == []
