"""The asyncio SIP transports and the driver, against a scripted fake layer.

The fake stands in for TransactionLayer (same methods): it records what
arrives, and its ``reply`` function decides what it queues to send. Sockets
are real, on 127.0.0.1, ephemeral ports.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from sip_test_support import make_self_signed, on_both_loops

from boomerang.sip.address import Address
from boomerang.sip.errors import ParseError, SipError
from boomerang.sip.parser import parse_message
from boomerang.sip.transaction.events import (
    Event,
    MalformedMessageReceived,
    Outgoing,
    RequestReceived,
    TransactionKey,
)
from boomerang.transport.sip_transport import RateLimitedLog, SipDriver, malformed_reason

LOOPBACK = "127.0.0.1"

STEP_S = 2.0  # upper bound for any single network wait


def options(branch: str = "z9hG4bK-1", call_id: str = "c1@test") -> bytes:
    return (
        f"OPTIONS sip:boomerang@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:5999;branch={branch}\r\n"
        f"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:boomerang@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


Reply = Callable[[bytes, Address], list[bytes]]


class FakeLayer:
    """The TransactionLayer contract, scripted: ``reply(data, source)`` -> bytes to send back."""

    def __init__(self, reply: Reply | None = None, *, parse: bool = False) -> None:
        self.reply: Reply = reply or (lambda data, source: [])
        self.parse = parse
        self.received: list[tuple[bytes, Address]] = []
        self.transport_errors: list[Address] = []
        self.timer_calls: list[float] = []
        self.deadline: float | None = None
        self._events: list[Event] = []
        self._out: list[Outgoing] = []

    def receive(self, data: bytes, source: Address, now: float) -> None:
        self.received.append((data, source))
        if self.parse:
            try:
                message = parse_message(data, stream=source.reliable)
            except ParseError as error:
                self._events.append(MalformedMessageReceived(
                    source=source, error=error, answered=False, time=now))
                return
            self._events.append(RequestReceived(
                request=message, source=source,  # type: ignore[arg-type]
                transaction=TransactionKey("b", "OPTIONS", True), time=now))
        for data_out in self.reply(data, source):
            self._out.append(Outgoing(data=data_out, destination=source))

    def queue(self, data: bytes, destination: Address) -> None:
        self._out.append(Outgoing(data=data, destination=destination))

    def transport_error(self, destination: Address, now: float) -> None:
        self.transport_errors.append(destination)

    def events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    def datagrams_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.timer_calls.append(now)
        self.deadline = None

    def __len__(self) -> int:
        return 0


async def make_driver(layer: FakeLayer, **kwargs: object) -> SipDriver:
    return SipDriver(layer, loop=asyncio.get_running_loop(), **kwargs)  # type: ignore[arg-type]


async def wait_for(condition: Callable[[], bool], timeout_s: float = STEP_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(data)


async def udp_client(target: Address) -> tuple[asyncio.DatagramTransport, UdpClient]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        UdpClient, local_addr=(LOOPBACK, 0), remote_addr=(target.host, target.port))
    return transport, protocol


# -- UDP -----------------------------------------------------------------------------


@on_both_loops
async def test_udp_datagram_reaches_the_layer_and_the_reply_goes_back_to_its_source() -> None:
    layer = FakeLayer(lambda data, source: [b"reply to " + data])
    driver = await make_driver(layer)
    bound = await driver.listen("udp", LOOPBACK, 0)
    assert bound.transport == "udp" and bound.port != 0
    client, protocol = await udp_client(bound)
    try:
        client.sendto(b"hello")
        reply = await asyncio.wait_for(protocol.queue.get(), STEP_S)
        assert reply == b"reply to hello"
        data, source = layer.received[0]
        assert data == b"hello"
        assert source == Address("udp", LOOPBACK, client.get_extra_info("sockname")[1])
    finally:
        client.close()
        await driver.close()


@on_both_loops
async def test_udp_messages_leave_in_the_order_the_layer_produced_them() -> None:
    layer = FakeLayer(lambda data, source: [b"%d" % i for i in range(200)])
    driver = await make_driver(layer)
    bound = await driver.listen("udp", LOOPBACK, 0)
    client, protocol = await udp_client(bound)
    try:
        client.sendto(b"go")
        got = [await asyncio.wait_for(protocol.queue.get(), STEP_S) for _ in range(200)]
        assert got == [b"%d" % i for i in range(200)]
    finally:
        client.close()
        await driver.close()


@on_both_loops
async def test_udp_send_without_a_udp_socket_is_a_transport_error() -> None:
    layer = FakeLayer()
    driver = await make_driver(layer)
    destination = Address("udp", LOOPBACK, 9)
    layer.queue(b"x", destination)
    driver.flush()
    assert layer.transport_errors == [destination]
    await driver.close()


# -- the one timer -------------------------------------------------------------------


@on_both_loops
async def test_one_timer_is_armed_at_the_layer_deadline_and_fires_once() -> None:
    loop = asyncio.get_running_loop()
    layer = FakeLayer()
    driver = await make_driver(layer)
    deadline = loop.time() + 0.05
    layer.deadline = deadline
    driver.flush()
    driver.flush()  # same deadline: not armed twice
    assert driver.timer_deadline == deadline
    await wait_for(lambda: bool(layer.timer_calls))
    await asyncio.sleep(0.05)
    assert len(layer.timer_calls) == 1
    assert layer.timer_calls[0] >= deadline
    assert driver.timer_deadline is None
    await driver.close()


@on_both_loops
async def test_a_changed_deadline_replaces_the_armed_timer() -> None:
    loop = asyncio.get_running_loop()
    layer = FakeLayer()
    driver = await make_driver(layer)
    layer.deadline = loop.time() + 5.0
    driver.flush()
    earlier = loop.time() + 0.02
    layer.deadline = earlier
    driver.flush()
    assert driver.timer_deadline == earlier
    await wait_for(lambda: bool(layer.timer_calls))
    assert layer.timer_calls[0] >= earlier
    assert driver.timer_deadline is None  # the 5 s timer was cancelled, not left armed
    await driver.close()


# -- TCP -------------------------------------------------------------------------------


async def open_tcp(bound: Address, context: ssl.SSLContext | None = None
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(
        bound.host, bound.port, ssl=context,
        server_hostname="localhost" if context else None), STEP_S)


async def read_message(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP_S)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = await asyncio.wait_for(reader.readexactly(length), STEP_S) if length else b""
    return head + body


@on_both_loops
async def test_tcp_messages_are_framed_and_answers_use_the_same_connection() -> None:
    layer = FakeLayer(lambda data, source: [data.replace(b"OPTIONS sip", b"ECHOED sip", 1)])
    driver = await make_driver(layer)
    bound = await driver.listen("tcp", LOOPBACK, 0)
    reader, writer = await open_tcp(bound)
    try:
        # two messages in one segment, then one split over two writes
        writer.write(options("z9hG4bK-1") + options("z9hG4bK-2"))
        second = options("z9hG4bK-3")
        writer.write(second[:30])
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(second[30:])
        for branch in (b"z9hG4bK-1", b"z9hG4bK-2", b"z9hG4bK-3"):
            message = await read_message(reader)
            assert message.startswith(b"ECHOED sip") and branch in message
        assert [data for data, _ in layer.received] == [
            options("z9hG4bK-1"), options("z9hG4bK-2"), second]
        local_port = writer.get_extra_info("sockname")[1]
        assert {source for _, source in layer.received} == {Address("tcp", LOOPBACK, local_port)}
        assert driver.connections("tcp") == 1
        # a new message from the application to that peer reuses the connection
        layer.queue(b"NOTIFY-LIKE\r\nContent-Length: 0\r\n\r\n", layer.received[0][1])
        driver.flush()
        assert await read_message(reader) == b"NOTIFY-LIKE\r\nContent-Length: 0\r\n\r\n"
        assert driver.connections("tcp") == 1
    finally:
        writer.close()
        await driver.close()


@on_both_loops
async def test_tcp_keepalive_ping_is_answered_with_a_pong() -> None:
    layer = FakeLayer()
    driver = await make_driver(layer)
    bound = await driver.listen("tcp", LOOPBACK, 0)
    reader, writer = await open_tcp(bound)
    try:
        writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(2), STEP_S) == b"\r\n"
        assert layer.received == []
    finally:
        writer.close()
        await driver.close()


@on_both_loops
async def test_tcp_header_over_the_limit_gets_an_error_response_and_the_connection_closes(
        caplog: pytest.LogCaptureFixture) -> None:
    layer = FakeLayer()
    driver = await make_driver(layer, server_headers=(("Server", "Boomerang-test"),))
    bound = await driver.listen("tcp", LOOPBACK, 0)
    reader, writer = await open_tcp(bound)
    head = options().split(b"Content-Length")[0]
    try:
        writer.write(head + b"X-Big: " + b"a" * 100_000 + b"\r\nContent-Length: 0\r\n\r\n")
        with caplog.at_level(logging.WARNING, "boomerang.transport.sip_transport"):
            reply = await asyncio.wait_for(reader.read(65536), STEP_S)
            assert reply.startswith(b"SIP/2.0 513 ")
            response = parse_message(reply)
            assert response.call_id == "c1@test"
            assert response.headers.get("Server") == "Boomerang-test"
            assert await asyncio.wait_for(reader.read(), STEP_S) == b""  # closed
        assert layer.received == []
        assert sum(driver.malformed_counts.values()) == 1
        assert any("malformed message" in r.message for r in caplog.records)
    finally:
        writer.close()
        await driver.close()


@on_both_loops
async def test_tcp_broken_framing_without_addressable_headers_just_closes() -> None:
    layer = FakeLayer()
    driver = await make_driver(layer)
    bound = await driver.listen("tcp", LOOPBACK, 0)
    reader, writer = await open_tcp(bound)
    try:
        writer.write(b"GARBAGE " * 5000)
        assert await asyncio.wait_for(reader.read(), STEP_S) == b""
        assert layer.received == []
        assert sum(driver.malformed_counts.values()) == 1
    finally:
        writer.close()
        await driver.close()


@on_both_loops
async def test_idle_tcp_connections_are_closed() -> None:
    layer = FakeLayer()
    driver = await make_driver(layer, idle_timeout_s=0.2)
    bound = await driver.listen("tcp", LOOPBACK, 0)
    reader, writer = await open_tcp(bound)
    try:
        await wait_for(lambda: driver.connections("tcp") == 1)
        assert await asyncio.wait_for(reader.read(), STEP_S) == b""
        await wait_for(lambda: driver.connections("tcp") == 0)
    finally:
        writer.close()
        await driver.close()


@on_both_loops
async def test_outbound_tcp_opens_one_connection_and_reuses_it() -> None:
    accepted: list[asyncio.StreamReader] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(reader)

    server = await asyncio.start_server(on_client, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    layer = FakeLayer()
    driver = await make_driver(layer)
    destination = Address("tcp", LOOPBACK, port)
    try:
        layer.queue(b"first\r\n", destination)
        layer.queue(b"second\r\n", destination)
        driver.flush()
        await wait_for(lambda: bool(accepted))
        layer.queue(b"third\r\n", destination)
        driver.flush()
        data = b""
        while data.count(b"\r\n") < 3:
            data += await asyncio.wait_for(accepted[0].read(100), STEP_S)
        assert data == b"first\r\nsecond\r\nthird\r\n"
        assert len(accepted) == 1
        assert driver.connections("tcp") == 1
    finally:
        await driver.close()
        server.close()
        await server.wait_closed()


@on_both_loops
async def test_outbound_tcp_to_a_closed_port_reports_a_transport_error() -> None:
    probe = socket.socket()
    probe.bind((LOOPBACK, 0))
    port = probe.getsockname()[1]
    probe.close()  # nobody listens there now
    layer = FakeLayer()
    driver = await make_driver(layer)
    destination = Address("tcp", LOOPBACK, port)
    layer.queue(b"x", destination)
    driver.flush()
    await wait_for(lambda: bool(layer.transport_errors))
    assert layer.transport_errors == [destination]
    await driver.close()


# -- TLS ---------------------------------------------------------------------------------


@pytest.fixture
def tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = make_self_signed(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    return server, client


@on_both_loops
async def test_tls_server_frames_messages_and_answers_on_the_connection(
        tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_context, client_context = tls_contexts
    layer = FakeLayer(lambda data, source: [data.replace(b"OPTIONS", b"ECHOED", 1)])
    driver = await make_driver(layer)
    bound = await driver.listen("tls", LOOPBACK, 0, server_ssl=server_context)
    assert bound.transport == "tls"
    reader, writer = await open_tcp(bound, client_context)
    try:
        writer.write(options())
        message = await read_message(reader)
        assert message.startswith(b"ECHOED sip:boomerang")
        assert layer.received[0][1].transport == "tls"
    finally:
        writer.close()
        await driver.close()


@on_both_loops
async def test_tls_client_connects_with_the_configured_ca(
        tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_context, client_context = tls_contexts
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.put_nowait(await reader.readexactly(6))

    server = await asyncio.start_server(on_client, LOOPBACK, 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    layer = FakeLayer()
    driver = await make_driver(layer, client_ssl=client_context)
    try:
        layer.queue(b"hello!", Address("tls", LOOPBACK, port))
        driver.flush()
        assert await asyncio.wait_for(got.get(), STEP_S) == b"hello!"
        assert layer.transport_errors == []
    finally:
        await driver.close()
        server.close()
        await server.wait_closed()


# -- malformed input -----------------------------------------------------------------------


@on_both_loops
async def test_a_junk_flood_is_counted_per_reason_and_logged_once_per_source(
        caplog: pytest.LogCaptureFixture) -> None:
    layer = FakeLayer(parse=True)
    driver = await make_driver(layer)
    bound = await driver.listen("udp", LOOPBACK, 0)
    client, _ = await udp_client(bound)
    try:
        with caplog.at_level(logging.WARNING, "boomerang.transport.sip_transport"):
            for batch in range(6):  # in batches, so the kernel's queue never overflows
                for i in range(50):
                    client.sendto(b"junk %d\r\n\r\n" % i if i % 2 else b"BYE sip:x SIP/2.0\r\n\r\n")
                await wait_for(lambda n=batch: len(layer.received) == 50 * (n + 1))
        assert sum(driver.malformed_counts.values()) == 300
        assert len(driver.malformed_counts) == 2  # two kinds of junk, two reasons
        lines = [r for r in caplog.records if "malformed" in r.message]
        assert len(lines) == 1
    finally:
        client.close()
        await driver.close()


def test_malformed_reason_hides_the_variable_parts() -> None:
    one = malformed_reason(ParseError("bad request line 'junk 1'"))
    two = malformed_reason(ParseError("bad request line 'other junk 22'"))
    assert one == two == "400 bad request line _"
    assert malformed_reason(ParseError("Content-Length 10 but only 3 body bytes")) \
        == "400 Content-Length _ but only _ body bytes"


def test_rate_limited_log_allows_once_per_interval_and_counts_the_rest() -> None:
    limit = RateLimitedLog(interval_s=60.0, max_keys=3)
    assert limit.allow("a", 0.0) == 0
    assert limit.allow("a", 1.0) is None
    assert limit.allow("a", 2.0) is None
    assert limit.allow("a", 61.0) == 2
    # past max_keys, new sources share one key rather than growing the table
    assert limit.allow("b", 61.0) == 0
    assert limit.allow("c", 61.0) == 0
    assert limit.allow("d", 61.5) == 0  # "*"
    assert limit.allow("e", 62.0) is None  # "*" again, within the minute
    assert len(limit._last) <= 4


@on_both_loops
async def test_an_application_error_is_logged_and_the_driver_keeps_going(
        caplog: pytest.LogCaptureFixture) -> None:
    layer = FakeLayer(parse=True)
    calls: list[Event] = []

    def handler(event: Event) -> None:
        calls.append(event)
        raise SipError("boom")

    driver = await make_driver(layer, handler=handler)
    source = Address("udp", LOOPBACK, 5999)
    with caplog.at_level(logging.ERROR, "boomerang.transport.sip_transport"):
        driver.receive(options(), source)
        driver.receive(options(), source)
    assert len(calls) == 2
    assert sum("application failed" in r.message for r in caplog.records) == 2
    await driver.close()
