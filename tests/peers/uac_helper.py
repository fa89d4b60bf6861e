"""A small SIP client for the peer tests: Boomerang's TransactionLayer on
plain asyncio sockets (UDP, or one TCP connection to the peer).

It proves that our client transactions interoperate with software we did
not write. The layer is driven exactly as the contract in
``boomerang/sip/transaction/layer.py`` says: feed ``receive``, drain
``events()`` and ``datagrams_to_send()``, keep one timer armed at
``get_timer()``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from boomerang.sip.address import Address
from boomerang.sip.ids import CountingIds
from boomerang.sip.message import Request, Response
from boomerang.sip.parser import StreamFramer
from boomerang.sip.transaction.events import (
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from boomerang.sip.transaction.layer import TimerSettings, TransactionLayer

LOOPBACK = "127.0.0.1"


@dataclass
class Exchange:
    """The responses one client transaction received, in order."""

    key: TransactionKey
    responses: list[Response] = field(default_factory=list)
    final: asyncio.Future[Response] | None = None

    @property
    def statuses(self) -> list[int]:
        return [response.status for response in self.responses]


class TransactionTimeout(Exception):
    """Timer B/F fired, or the transport failed: no final response."""


class PeerClient:
    """A UAC endpoint bound to 127.0.0.1 on an ephemeral port."""

    def __init__(self, transport: str, *, prefix: str = "uac") -> None:
        self.transport = transport
        self.ids = CountingIds(prefix)
        self.layer = TransactionLayer(timers=TimerSettings())
        self.local = Address(transport, LOOPBACK, 0)
        self.exchanges: dict[TransactionKey, Exchange] = {}
        self.requests: asyncio.Queue[RequestReceived] = asyncio.Queue()
        self.events_seen: list[Event] = []
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._streams: dict[tuple[str, int], asyncio.StreamWriter] = {}
        self._readers: list[asyncio.Task[None]] = []

    # -- setup --------------------------------------------------------------

    @classmethod
    async def open(cls, transport: str, remote: tuple[str, int]) -> PeerClient:
        """Bind (UDP) or connect to ``remote`` (TCP)."""
        client = cls(transport)
        if transport == "udp":
            udp, _ = await client._loop.create_datagram_endpoint(
                lambda: _Datagrams(client), local_addr=(LOOPBACK, 0)
            )
            client._udp = udp
            port = udp.get_extra_info("sockname")[1]
        elif transport == "tcp":
            reader, writer = await asyncio.open_connection(remote[0], remote[1])
            client._streams[remote] = writer
            client._readers.append(asyncio.create_task(client._read_stream(reader, remote)))
            port = writer.get_extra_info("sockname")[1]
        else:
            raise ValueError(f"transport {transport!r} is not supported here")
        client.local = Address(transport, LOOPBACK, int(port))
        return client

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in self._readers:
            task.cancel()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for writer in self._streams.values():
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if self._udp is not None:
            self._udp.close()

    # -- building requests -------------------------------------------------------

    @property
    def via(self) -> str:
        return (f"SIP/2.0/{self.transport.upper()} {self.local.host}:{self.local.port}"
                f";branch={self.ids.branch()};rport")

    @property
    def contact(self) -> str:
        return f"<sip:uac@{self.local.host}:{self.local.port};transport={self.transport}>"

    def new_request(
        self,
        method: str,
        uri: str,
        *,
        from_header: str,
        to_header: str,
        call_id: str,
        cseq: int,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request:
        """A request with a fresh top Via branch and the headers RFC 3261 §8.1.1 asks."""
        items = [
            ("Via", self.via),
            ("Max-Forwards", "70"),
            ("From", from_header),
            ("To", to_header),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            *headers,
            ("User-Agent", "boomerang-peer-tests"),
        ]
        return Request(method, uri, items, body)

    # -- sending -----------------------------------------------------------------

    async def request(
        self, request: Request, destination: tuple[str, int], *, timeout_s: float = 10.0
    ) -> Exchange:
        """Send ``request`` in a client transaction; return when a final response
        arrives (raises TransactionTimeout on Timer B/F or a transport error)."""
        exchange = self.start(request, destination)
        assert exchange.final is not None
        await asyncio.wait_for(asyncio.shield(exchange.final), timeout_s)
        return exchange

    def start(self, request: Request, destination: tuple[str, int]) -> Exchange:
        address = Address(self.transport, destination[0], destination[1])
        key = self.layer.send_request(request, address, self._loop.time())
        exchange = Exchange(key=key, final=self._loop.create_future())
        self.exchanges[key] = exchange
        self._service()
        return exchange

    def send_stateless(self, message: Request | Response, destination: tuple[str, int]) -> None:
        """ACK for a 2xx and other messages outside a transaction."""
        self.layer.send_stateless(
            message, Address(self.transport, destination[0], destination[1])
        )
        self._service()

    # -- the layer's owner loop ----------------------------------------------------

    def receive(self, data: bytes, source: Address) -> None:
        self.layer.receive(data, source, self._loop.time())
        self._service()

    def _on_timer(self) -> None:
        self._timer = None
        self.layer.handle_timer(self._loop.time())
        self._service()

    def _service(self) -> None:
        for outgoing in self.layer.datagrams_to_send():
            self._transmit(outgoing.data, outgoing.destination)
        for event in self.layer.events():
            self.events_seen.append(event)
            self._dispatch(event)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.layer.get_timer()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, ResponseReceived):
            exchange = self.exchanges.get(event.transaction)
            if exchange is None:
                return
            exchange.responses.append(event.response)
            final = exchange.final
            if event.response.status >= 200 and final is not None and not final.done():
                final.set_result(event.response)
        elif isinstance(event, (TransactionTimedOut, TransportErrorOccurred)):
            exchange = self.exchanges.get(event.transaction)
            if exchange is not None and exchange.final is not None and not exchange.final.done():
                exchange.final.set_exception(TransactionTimeout(repr(event)))
        elif isinstance(event, RequestReceived):
            self.requests.put_nowait(event)

    def _transmit(self, data: bytes, destination: Address) -> None:
        if destination.transport == "udp":
            assert self._udp is not None, "UDP message but no UDP socket"
            self._udp.sendto(data, (destination.host, destination.port))
            return
        writer = self._streams.get((destination.host, destination.port))
        if writer is None:
            self.layer.transport_error(destination, self._loop.time())
            return
        writer.write(data)

    async def _read_stream(self, reader: asyncio.StreamReader, remote: tuple[str, int]) -> None:
        framer = StreamFramer()
        source = Address("tcp", remote[0], remote[1])
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for message in framer.feed(data):
                if message != b"\r\n\r\n":
                    self.receive(message, source)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, client: PeerClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.client.receive(data, Address("udp", addr[0], addr[1]))
