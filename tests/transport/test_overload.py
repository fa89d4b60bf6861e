"""Overload control: the loop-lag probe, the shedding decision, and the
endpoint answering new INVITEs 503 while overloaded."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from test_endpoint import UDP_TCP, make_endpoint, peer, running

from boomerang.transport.overload import LoopLagMonitor, OverloadGuard


async def test_the_monitor_measures_how_long_the_loop_was_blocked() -> None:
    loop = asyncio.get_running_loop()
    monitor = LoopLagMonitor(loop, interval_s=0.02)
    monitor.start()
    try:
        await asyncio.sleep(0.05)
        assert monitor.max_lag_s < 0.1
        loop.call_soon(time.sleep, 0.3)  # a callback that hogs the loop
        await asyncio.sleep(0.1)
        assert monitor.max_lag_s >= 0.25
    finally:
        monitor.close()


def _guard(lag_s: float, *, max_transactions: int = 0) -> tuple[OverloadGuard, SimpleNamespace]:
    fake = SimpleNamespace(lag_s=lag_s)
    return OverloadGuard(fake, lag_high_s=0.2,  # type: ignore[arg-type]
                         max_transactions=max_transactions), fake


def test_shedding_starts_above_the_threshold_and_stops_below_half_of_it() -> None:
    guard, monitor = _guard(0.05)
    assert not guard.should_shed(10)
    monitor.lag_s = 0.25
    assert guard.should_shed(10)
    monitor.lag_s = 0.15  # between half and the threshold: still shedding
    assert guard.should_shed(10)
    monitor.lag_s = 0.09
    assert not guard.should_shed(10)
    assert guard.shed_count == 2


def test_the_transaction_cap_sheds_whatever_the_lag() -> None:
    guard, _ = _guard(0.0, max_transactions=100)
    assert not guard.should_shed(99)
    assert guard.should_shed(100)


async def test_an_overloaded_endpoint_answers_new_invites_503_and_still_options() -> None:
    endpoint = make_endpoint(UDP_TCP)
    async with running(endpoint) as bound, peer(bound, "udp") as client:
        assert endpoint.overload is not None
        real = endpoint.overload.monitor
        assert real is not None
        real.lag_s = 5.0  # as if the loop had just been found 5 s late
        real.close()  # no further probe resets it
        client.request("INVITE", branch="z9hG4bK-o1")
        assert (await client.response()).status == 100
        shed = await client.response()
        assert shed.status == 503
        assert shed.headers.get("Retry-After") == "5"
        client.request("OPTIONS", branch="z9hG4bK-o2")
        assert (await client.response()).status == 200
        assert endpoint.overload.shed_count == 1
