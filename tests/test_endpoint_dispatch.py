"""The endpoint as a dispatcher for the layers above (registrar, trunks, calls):
per-method handlers, the dialog handler, client transactions with callbacks,
and CANCEL callbacks. Real UDP sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio

from test_endpoint import UDP_TCP, make_endpoint, peer, running

from boomerang.app import ClientEvent
from boomerang.sip.address import Address
from boomerang.sip.message import Request
from boomerang.sip.transaction.events import (
    CancelReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
)


async def test_a_method_handler_takes_new_requests_and_answers_later() -> None:
    endpoint = make_endpoint(UDP_TCP)
    seen: list[Request] = []

    def on_invite(request: Request, transaction: TransactionKey, source: Address) -> None:
        seen.append(request)
        asyncio.get_running_loop().call_later(0.05, endpoint.respond, request, 486)

    endpoint.handlers["INVITE"] = on_invite
    async with running(endpoint) as bound, peer(bound, "udp") as client:
        client.request("INVITE")
        assert (await client.response()).status == 100
        assert (await client.response()).status == 486
    assert [r.method for r in seen] == ["INVITE"]


async def test_in_dialog_requests_go_to_the_dialog_handler_or_get_481() -> None:
    endpoint = make_endpoint(UDP_TCP)
    known: list[str] = []

    def dialog_handler(request: Request, transaction: TransactionKey | None,
                       source: Address) -> bool:
        if request.call_id != "known@peer":
            return False
        known.append(request.method)
        endpoint.respond(request, 200, to_tag=request.to_tag)
        return True

    endpoint.dialog_handler = dialog_handler
    async with running(endpoint) as bound, peer(bound, "udp") as client:
        client.request("BYE", call_id="known@peer", to_tag="ours", branch="z9hG4bK-b1")
        ok = await client.response()
        assert ok.status == 200 and ok.to_tag == "ours"
        client.request("INFO", call_id="other@peer", to_tag="ours", branch="z9hG4bK-b2")
        assert (await client.response()).status == 481
    assert known == ["BYE"]


async def test_a_register_with_a_to_tag_is_not_treated_as_in_dialog() -> None:
    endpoint = make_endpoint(UDP_TCP)
    async with running(endpoint) as bound, peer(bound, "udp") as client:
        client.request("REGISTER", uri="sip:127.0.0.1", to_tag="stale-tag")
        assert (await client.response()).status == 401


async def test_client_transactions_report_responses_then_termination() -> None:
    server = make_endpoint(UDP_TCP)
    client_endpoint = make_endpoint(UDP_TCP)
    events: list[ClientEvent] = []
    done = asyncio.Event()

    def on_event(event: ClientEvent) -> None:
        events.append(event)
        if isinstance(event, TransactionTerminated):
            done.set()

    async with running(server) as far, running(client_endpoint) as near:
        target = far["udp"]
        options = Request("OPTIONS", f"sip:{target.host}:{target.port}", [
            ("Via", f"SIP/2.0/UDP {near['udp'].host}:{near['udp'].port};branch=z9hG4bK-o1"),
            ("Max-Forwards", "70"), ("From", "<sip:probe@127.0.0.1>;tag=p1"),
            ("To", "<sip:probe@127.0.0.1>"), ("Call-ID", "probe-1"), ("CSeq", "1 OPTIONS"),
        ])
        client_endpoint.send_request(options, target, on_event)
        await asyncio.wait_for(done.wait(), 5)
    responses = [e.response.status for e in events if isinstance(e, ResponseReceived)]
    assert responses == [200]
    assert isinstance(events[-1], TransactionTerminated)


async def test_a_silent_destination_times_out_through_the_callback() -> None:
    client_endpoint = make_endpoint(UDP_TCP)  # FAST_TIMERS: Timer F = 64 * 50 ms
    events: list[ClientEvent] = []
    done = asyncio.Event()

    def on_event(event: ClientEvent) -> None:
        events.append(event)
        if isinstance(event, TransactionTerminated):
            done.set()

    silent = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    port = silent[0].get_extra_info("sockname")[1]
    try:
        async with running(client_endpoint) as near:
            options = Request("OPTIONS", f"sip:127.0.0.1:{port}", [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:{near['udp'].port};branch=z9hG4bK-s1"),
                ("Max-Forwards", "70"), ("From", "<sip:probe@127.0.0.1>;tag=p1"),
                ("To", "<sip:probe@127.0.0.1>"), ("Call-ID", "probe-2"), ("CSeq", "1 OPTIONS"),
            ])
            client_endpoint.send_request(options, Address("udp", "127.0.0.1", port), on_event)
            await asyncio.wait_for(done.wait(), 10)
    finally:
        silent[0].close()
    assert any(isinstance(e, TransactionTimedOut) and e.timer == "F" for e in events)


async def test_cancel_reaches_the_registered_callback() -> None:
    endpoint = make_endpoint(UDP_TCP)
    cancelled: list[CancelReceived] = []

    def on_invite(request: Request, transaction: TransactionKey, source: Address) -> None:
        def on_cancel(event: CancelReceived) -> None:
            cancelled.append(event)
            endpoint.respond(request, 487)
        endpoint.on_cancel(transaction, on_cancel)
        endpoint.respond(request, 180)

    endpoint.handlers["INVITE"] = on_invite
    async with running(endpoint) as bound, peer(bound, "udp") as client:
        client.request("INVITE", branch="z9hG4bK-c1")
        statuses = [(await client.response()).status, (await client.response()).status]
        assert statuses == [100, 180]
        client.request("CANCEL", branch="z9hG4bK-c1")
        answers = {(await client.response()).status, (await client.response()).status}
        assert answers == {200, 487}
    assert len(cancelled) == 1
