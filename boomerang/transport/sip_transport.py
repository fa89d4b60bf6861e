"""asyncio SIP transports (UDP, TCP, TLS) feeding one TransactionLayer.

``SipDriver`` is the only owner of the sans-I/O ``TransactionLayer``: every
transport hands it what arrived, and after each input it drains the layer's
events to the application and its messages to the sockets, in the order
they were produced, then keeps exactly ONE ``loop.call_at`` armed at
``layer.get_timer()`` (aioquic's asyncio adapter does the same).

- UDP: one ``DatagramProtocol`` per listen address; each socket has one
  sender (``transport.sendto`` on the loop thread, no threads, no queues of
  our own), so messages leave in the order the layer produced them.
- TCP and TLS: ``StreamTransport`` runs a server per listen address and
  opens client connections on demand. Connections are kept in a table keyed
  by the remote ``Address`` so responses and new requests to the same peer
  reuse them; a connection idle for ``idle_timeout_s`` is closed. The byte
  stream is cut into messages by ``StreamFramer``; a framing error answers
  (when a response can be addressed) and closes the connection. RFC 5626
  keep-alive pings (CRLF CRLF) are answered with a CRLF pong.

Malformed input is counted per reason and logged at most once per source
per minute, so a flood never becomes a log line per packet.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from collections.abc import Callable
from typing import Any

from ..sip.address import Address
from ..sip.errors import SipError
from ..sip.message import Request, Response
from ..sip.parser import DEFAULT_LIMITS, Limits, StreamFramer
from ..sip.transaction.events import (
    Event,
    MalformedMessageReceived,
    Outgoing,
    TransactionKey,
)
from ..sip.transaction.layer import TransactionLayer
from ..sip.uas_checks import reply_to_broken_head

log = logging.getLogger(__name__)
trace = logging.getLogger("boomerang.sip.trace")

EventHandler = Callable[[Event], None]

LOG_INTERVAL_S = 60.0
MAX_LOG_SOURCES = 4096
MAX_REASONS = 256
CONNECT_TIMEOUT_S = 10.0
UDP_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
KEEPALIVE_PING = b"\r\n\r\n"
KEEPALIVE_PONG = b"\r\n"

_VARIABLE = re.compile(r"'[^']*'|\"[^\"]*\"|\d+")


def malformed_reason(error: SipError) -> str:
    """A bounded-cardinality key for counting: status and the message template."""
    text = _VARIABLE.sub("_", error.detail)[:60]
    return f"{error.status} {text}"


class RateLimitedLog:
    """Logs at most once per key per interval; counts what it held back.

    Bounded: past ``max_keys`` sources, old entries are pruned, and if the
    table is still full every further source shares one key.
    """

    __slots__ = ("_last", "_suppressed", "interval_s", "max_keys")

    def __init__(self, interval_s: float = LOG_INTERVAL_S, max_keys: int = MAX_LOG_SOURCES):
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str, now: float) -> int | None:
        """None to stay silent; else how many were held back since the last line."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        if last is None and key != "*" and len(self._last) >= self.max_keys:
            self._prune(now)
            if len(self._last) >= self.max_keys:
                return self.allow("*", now)
        self._last[key] = now
        return self._suppressed.pop(key, 0)

    def _prune(self, now: float) -> None:
        old = [k for k, t in self._last.items() if now - t >= self.interval_s]
        for key in old:
            del self._last[key]
            self._suppressed.pop(key, None)


# -- UDP -----------------------------------------------------------------------


class UdpTransport(asyncio.DatagramProtocol):
    """One bound UDP socket; the only sender on it."""

    __slots__ = ("_driver", "local", "transport")

    def __init__(self, driver: SipDriver) -> None:
        self._driver = driver
        self.transport: asyncio.DatagramTransport | None = None
        self.local: Address | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        name = transport.get_extra_info("sockname")
        self.local = Address("udp", name[0], name[1])

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._driver.receive(data, Address("udp", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like; UDP has no delivery guarantee.
        log.debug("udp %s: %s", self.local, exc)

    def send(self, data: bytes, destination: Address) -> None:
        if self.transport is not None:
            self.transport.sendto(data, (destination.host, destination.port))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _enlarge_receive_buffer(udp: UdpTransport) -> None:
    """Ask for a deep receive queue so bursts are not dropped (the kernel may cap it)."""
    sock = udp.transport.get_extra_info("socket") if udp.transport is not None else None
    if sock is None:
        return
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < UDP_RECEIVE_BUFFER_BYTES:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER_BYTES)
    except OSError as error:
        log.debug("cannot enlarge the UDP receive buffer: %s", error)


# -- TCP and TLS -----------------------------------------------------------------


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection: framing in, writes out."""

    __slots__ = ("_framer", "_owner", "closing", "keys", "last_activity", "remote", "transport")

    def __init__(self, owner: StreamTransport) -> None:
        self._owner = owner
        self._framer = StreamFramer(owner.limits)
        self.transport: asyncio.Transport | None = None
        self.remote: Address | None = None
        self.keys: list[Address] = []
        self.last_activity = 0.0
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.remote = Address(self._owner.kind, peer[0], peer[1])
        self._owner.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        owner = self._owner
        self.last_activity = owner.loop.time()
        try:
            messages = self._framer.feed(data)
        except SipError as error:
            owner.framing_failed(self, error, self._framer.buffered)
            return
        remote = self.remote
        assert remote is not None
        for message in messages:
            if message == KEEPALIVE_PING:
                self.write(KEEPALIVE_PONG)
            else:
                owner.driver.receive(message, remote)
            if self.closing:
                return

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._owner.connection_closed(self, exc)
        self.transport = None

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closing:
            self.last_activity = self._owner.loop.time()
            self.transport.write(data)

    def close(self) -> None:
        """Close after the buffered data is written."""
        self.closing = True
        if self.transport is not None:
            self.transport.close()


class StreamTransport:
    """Every TCP (or TLS) server and connection of the process."""

    __slots__ = (
        "_connecting",
        "_servers",
        "_sweep_handle",
        "_tasks",
        "client_ssl",
        "connections",
        "driver",
        "idle_timeout_s",
        "kind",
        "limits",
        "loop",
        "max_connections",
        "server_ssl",
    )

    def __init__(
        self,
        driver: SipDriver,
        kind: str,
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        idle_timeout_s: float = 300.0,
        max_connections: int = 10_000,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.driver = driver
        self.loop = driver.loop
        self.kind = kind
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.limits = limits
        self.connections: dict[Address, StreamConnection] = {}
        self._connecting: dict[Address, list[bytes]] = {}
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweep_handle: asyncio.TimerHandle | None = None

    async def listen(self, host: str, port: int) -> Address:
        if self.kind == "tls" and self.server_ssl is None:
            raise ValueError("a TLS listener needs a server certificate")
        server = await self.loop.create_server(
            lambda: StreamConnection(self), host, port, ssl=self.server_ssl,
            reuse_address=True,
        )
        self._servers.append(server)
        name = server.sockets[0].getsockname()
        return Address(self.kind, name[0], name[1])

    # -- connection table ---------------------------------------------------

    def connection_opened(self, connection: StreamConnection) -> None:
        remote = connection.remote
        assert remote is not None
        if len(self.connections) >= self.max_connections:
            self.driver.note_refused(remote, "too many connections")
            connection.close()
            return
        connection.last_activity = self.loop.time()
        connection.keys.append(remote)
        self.connections[remote] = connection
        if self._sweep_handle is None:
            self._arm_sweep()

    def connection_closed(self, connection: StreamConnection, exc: Exception | None) -> None:
        for key in connection.keys:
            if self.connections.get(key) is connection:
                del self.connections[key]
        connection.keys.clear()
        if exc is not None:
            log.debug("%s connection to %s lost: %s", self.kind, connection.remote, exc)

    def framing_failed(self, connection: StreamConnection, error: SipError, buffered: bytes
                       ) -> None:
        remote = connection.remote
        assert remote is not None
        response = reply_to_broken_head(buffered, error,
                                        extra_headers=self.driver.server_headers)
        if response is not None:
            data = response.serialize()
            self.driver.trace_send(data, remote)
            connection.write(data)
        self.driver.note_malformed(remote, error, response is not None)
        connection.close()

    def _arm_sweep(self) -> None:
        interval = max(0.05, min(self.idle_timeout_s / 4, 30.0))
        self._sweep_handle = self.loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        self._sweep_handle = None
        now = self.loop.time()
        idle = [c for c in set(self.connections.values())
                if now - c.last_activity >= self.idle_timeout_s]
        for connection in idle:
            log.debug("closing idle %s connection to %s", self.kind, connection.remote)
            connection.close()
        if self.connections:
            self._arm_sweep()

    # -- sending --------------------------------------------------------------

    def send(self, data: bytes, destination: Address) -> None:
        connection = self.connections.get(destination)
        if connection is not None and not connection.closing:
            connection.write(data)
            return
        waiting = self._connecting.get(destination)
        if waiting is not None:
            waiting.append(data)
            return
        self._connecting[destination] = [data]
        task = self.loop.create_task(self._connect(destination))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, destination: Address) -> None:
        server_hostname = destination.host if self.kind == "tls" else None
        try:
            _, protocol = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: StreamConnection(self), destination.host, destination.port,
                    ssl=self.client_ssl if self.kind == "tls" else None,
                    server_hostname=server_hostname,
                ),
                CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError, ssl.SSLError) as error:
            self._connecting.pop(destination, None)
            log.info("cannot connect %s to %s: %s", self.kind, destination, error)
            self.driver.transport_failed(destination)
            return
        except asyncio.CancelledError:
            self._connecting.pop(destination, None)
            raise
        connection: StreamConnection = protocol
        waiting = self._connecting.pop(destination, [])
        if connection.closing:
            self.driver.transport_failed(destination)
            return
        if destination not in connection.keys:
            connection.keys.append(destination)
            self.connections[destination] = connection
        for data in waiting:
            connection.write(data)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for connection in set(self.connections.values()):
            connection.close()
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()


# -- the driver --------------------------------------------------------------------


class SipDriver:
    """Runs one TransactionLayer on the event loop for every transport."""

    __slots__ = (
        "_flushing",
        "_handler",
        "_log_limit",
        "_streams",
        "_timer_at",
        "_timer_handle",
        "_udp",
        "client_ssl",
        "idle_timeout_s",
        "layer",
        "limits",
        "listening",
        "loop",
        "malformed_counts",
        "server_headers",
    )

    def __init__(
        self,
        layer: TransactionLayer,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        handler: EventHandler | None = None,
        idle_timeout_s: float = 300.0,
        client_ssl: ssl.SSLContext | None = None,
        limits: Limits = DEFAULT_LIMITS,
        server_headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.layer = layer
        self.loop = loop or asyncio.get_running_loop()
        self._handler = handler
        self.idle_timeout_s = idle_timeout_s
        self.client_ssl = client_ssl
        self.limits = limits
        self.server_headers = server_headers
        self.listening: list[Address] = []
        self.malformed_counts: dict[str, int] = {}
        self._log_limit = RateLimitedLog()
        self._udp: list[UdpTransport] = []
        self._streams: dict[str, StreamTransport] = {}
        self._timer_handle: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flushing = False

    def set_handler(self, handler: EventHandler | None) -> None:
        self._handler = handler

    # -- listening --------------------------------------------------------------

    async def listen(
        self, transport: str, host: str, port: int, *, server_ssl: ssl.SSLContext | None = None
    ) -> Address:
        """Bind one listen address; returns the address bound (real port for 0)."""
        if transport == "udp":
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            _, protocol = await self.loop.create_datagram_endpoint(
                lambda: UdpTransport(self), local_addr=(host, port), family=family,
            )
            assert isinstance(protocol, UdpTransport) and protocol.local is not None
            _enlarge_receive_buffer(protocol)
            self._udp.append(protocol)
            bound = protocol.local
        elif transport in ("tcp", "tls"):
            stream = self._stream(transport)
            if server_ssl is not None:
                stream.server_ssl = server_ssl
            bound = await stream.listen(host, port)
        else:
            raise ValueError(f"unknown transport {transport!r}")
        self.listening.append(bound)
        return bound

    def _stream(self, kind: str) -> StreamTransport:
        stream = self._streams.get(kind)
        if stream is None:
            stream = StreamTransport(
                self, kind, client_ssl=self.client_ssl if kind == "tls" else None,
                idle_timeout_s=self.idle_timeout_s, limits=self.limits,
            )
            self._streams[kind] = stream
        return stream

    @property
    def timer_deadline(self) -> float | None:
        """The deadline the one armed timer fires at (None when none is armed)."""
        return self._timer_at

    def connections(self, kind: str) -> int:
        """Open stream connections of ``kind`` (for tests and metrics)."""
        stream = self._streams.get(kind)
        return len(set(stream.connections.values())) if stream else 0

    # -- input --------------------------------------------------------------------

    def receive(self, data: bytes, source: Address) -> None:
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("received %d bytes from %s\n%s", len(data), source,
                        data.decode("utf-8", "replace"))
        self.layer.receive(data, source, self.loop.time())
        self.flush()

    def transport_failed(self, destination: Address) -> None:
        self.layer.transport_error(destination, self.loop.time())
        self.flush()

    # -- output for the application --------------------------------------------

    def send_response(self, response: Response) -> None:
        self.layer.send_response(response, self.loop.time())
        self.flush()

    def send_request(self, request: Request, destination: Address) -> TransactionKey:
        key = self.layer.send_request(request, destination, self.loop.time())
        self.flush()
        return key

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        self.layer.send_stateless(message, destination)
        self.flush()

    def cancel(self, transaction: TransactionKey,
               headers: tuple[tuple[str, str], ...] = ()) -> TransactionKey | None:
        key = self.layer.cancel(transaction, self.loop.time(), headers)
        self.flush()
        return key

    # -- the pump ------------------------------------------------------------------

    def flush(self) -> None:
        """Drain events to the handler and messages to the sockets; re-arm the timer.

        Re-entrant calls (a handler sending a response) return at once: the
        outer loop picks up what they queued.
        """
        if self._flushing:
            return
        self._flushing = True
        layer = self.layer
        try:
            while True:
                events = layer.events()
                for event in events:
                    self._dispatch(event)
                outgoing = layer.datagrams_to_send()
                for item in outgoing:
                    self._send(item)
                if not events and not outgoing:
                    break
        finally:
            self._flushing = False
        self._arm_timer()

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, MalformedMessageReceived):
            self.note_malformed(event.source, event.error, event.answered)
        handler = self._handler
        if handler is None:
            return
        try:
            handler(event)
        except Exception:
            log.exception("the application failed on %s", type(event).__name__)

    def _send(self, item: Outgoing) -> None:
        destination = item.destination
        self.trace_send(item.data, destination)
        if destination.transport == "udp":
            udp = self._udp_for(destination)
            if udp is None:
                self.layer.transport_error(destination, self.loop.time())
                return
            udp.send(item.data, destination)
            return
        stream = self._streams.get(destination.transport)
        if stream is None and destination.transport in ("tcp", "tls"):
            stream = self._stream(destination.transport)
        if stream is None:
            self.layer.transport_error(destination, self.loop.time())
            return
        stream.send(item.data, destination)

    def _udp_for(self, destination: Address) -> UdpTransport | None:
        want_v6 = ":" in destination.host
        for udp in self._udp:
            local = udp.local
            if local is not None and (":" in local.host) == want_v6:
                return udp
        return None

    def trace_send(self, data: bytes, destination: Address) -> None:
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("sending %d bytes to %s\n%s", len(data), destination,
                        data.decode("utf-8", "replace"))

    # -- the one timer ---------------------------------------------------------------

    def _arm_timer(self) -> None:
        deadline = self.layer.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer_handle = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        deadline = self._timer_at
        self._timer_handle = None
        self._timer_at = None
        now = self.loop.time()
        if deadline is not None and now < deadline:
            now = deadline  # call_at may fire within the clock resolution before it
        self.layer.handle_timer(now)
        self.flush()

    # -- bad input --------------------------------------------------------------------

    def note_malformed(self, source: Address, error: SipError, answered: bool) -> None:
        reason = malformed_reason(error)
        counts = self.malformed_counts
        if reason not in counts and len(counts) >= MAX_REASONS:
            reason = "other"
        counts[reason] = counts.get(reason, 0) + 1
        held_back = self._log_limit.allow(source.host, self.loop.time())
        if held_back is not None:
            log.warning(
                "malformed message from %s: %s (%s)%s", source, error.detail[:200],
                f"answered {error.status}" if answered else "dropped",
                f"; {held_back} more from this source in the last minute not logged"
                if held_back else "",
            )

    def note_refused(self, source: Address, why: str) -> None:
        if self._log_limit.allow(source.host, self.loop.time()) is not None:
            log.warning("refused %s connection from %s: %s", source.transport, source, why)

    # -- shutdown -----------------------------------------------------------------------

    async def close(self) -> None:
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
            self._timer_at = None
        for udp in self._udp:
            udp.close()
        self._udp.clear()
        for stream in self._streams.values():
            await stream.close()
        self._streams.clear()
        self.listening.clear()


__all__ = [
    "RateLimitedLog",
    "SipDriver",
    "StreamConnection",
    "StreamTransport",
    "UdpTransport",
    "malformed_reason",
]
