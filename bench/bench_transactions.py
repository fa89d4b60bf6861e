"""How many "reject after ringing" exchanges one core does through a server
TransactionLayer, in-process (no sockets), and what a live transaction costs.

Per exchange: INVITE bytes in (100 Trying sent by the layer), the TU sends
180 and 486 (make_response), the ACK bytes in (Confirmed, Timer I), and
Timer I expires later. Run: ``python bench/bench_transactions.py [N]``;
``--profile`` prints the top of a cProfile run instead.
"""

from __future__ import annotations

import cProfile
import gc
import pstats
import sys
import time
import tracemalloc

from boomerang.sip.address import Address
from boomerang.sip.message import make_response
from boomerang.sip.transaction.events import RequestReceived
from boomerang.sip.transaction.layer import TransactionLayer

SOURCE = Address("udp", "198.51.100.7", 5060)


def make_traffic(count: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(count):
        common = (
            f"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-{i:08d};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: \"+48600100200\" <sip:+48600100200@carrier.example.com>;tag=f{i}\r\n"
            "{to}"
            f"Call-ID: {i:08d}-bench@carrier.example.com\r\n"
        )
        invite = (
            "INVITE sip:+48221234567@boomerang.example.com SIP/2.0\r\n"
            + common.format(to="To: <sip:+48221234567@boomerang.example.com>\r\n")
            + "CSeq: 1 INVITE\r\n"
            "Contact: <sip:+48600100200@198.51.100.7:5060>\r\n"
            "Content-Type: application/sdp\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        ack = (
            "ACK sip:+48221234567@boomerang.example.com SIP/2.0\r\n"
            + common.format(to="To: <sip:+48221234567@boomerang.example.com>;tag=uas\r\n")
            + "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        out.append((invite, ack))
    return out


def exchanges(layer: TransactionLayer, traffic: list[tuple[bytes, bytes]], start: float) -> float:
    now = start
    for invite, ack in traffic:
        now += 0.0001
        layer.receive(invite, SOURCE, now)
        for event in layer.events():
            if type(event) is RequestReceived:
                request = event.request
                layer.send_response(make_response(request, 180, to_tag="uas"), now)
                layer.send_response(make_response(request, 486, to_tag="uas"), now)
        layer.datagrams_to_send()
        layer.receive(ack, SOURCE, now)
        layer.events()
        deadline = layer.get_timer()
        if deadline is not None and deadline <= now:
            layer.handle_timer(now)
            layer.events()
            layer.datagrams_to_send()
    return now


def main() -> None:
    count = int(next((a for a in sys.argv[1:] if a.isdigit()), "20000"))
    traffic = make_traffic(count)
    layer = TransactionLayer()
    if "--profile" in sys.argv:
        profiler = cProfile.Profile()
        profiler.runcall(exchanges, layer, traffic, 0.0)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return

    exchanges(layer, make_traffic(2000), -100.0)  # warm up
    layer.handle_timer(1e9)
    layer.events()
    rates: list[float] = []
    now = 0.0
    for _ in range(5):  # best and median of 5 rounds: the machine is shared
        gc.collect()
        started = time.perf_counter()
        now = exchanges(layer, traffic, now)
        rates.append(count / (time.perf_counter() - started))
        live = len(layer)
        started = time.perf_counter()
        now += 6.0
        layer.handle_timer(now)  # Timer I (T4 = 5 s) expires for all
        layer.events()
        drain_s = time.perf_counter() - started
        assert len(layer) == 0 and layer.get_timer() is None
    rates.sort()
    print(f"exchanges per round     {count} (5 rounds)")
    print(f"in-process rate         best {rates[-1]:,.0f}/s ({1e6 / rates[-1]:.1f} us each), "
          f"median {rates[2]:,.0f}/s")
    print(f"Timer I expiry          {drain_s * 1e6 / max(live, 1):.1f} us per transaction")
    print(f"live after a round      {live} transactions (Confirmed, waiting for Timer I)")
    print(f"live after Timer I      {len(layer)} transactions, next timer {layer.get_timer()}")

    # memory per live transaction (Confirmed), request objects freed by the TU
    layer = TransactionLayer()
    traffic = make_traffic(5000)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    exchanges(layer, traffic, 0.0)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    print(f"memory per live transaction  {grown / len(layer):,.0f} bytes "
          f"({len(layer)} live in Confirmed, with the layer's maps and heap)")

    # no reference cycles: with the collector off, finished exchanges leave
    # nothing for it to find (everything was freed by reference counting)
    layer = TransactionLayer()
    traffic = make_traffic(5000)
    gc.collect()
    gc.disable()
    now = exchanges(layer, traffic, 0.0)
    layer.handle_timer(now + 6.0)
    layer.events()
    del traffic
    cyclic = gc.collect()
    gc.enable()
    print(f"cyclic garbage left     {cyclic} objects after 5000 exchanges (want 0)")


if __name__ == "__main__":
    main()
