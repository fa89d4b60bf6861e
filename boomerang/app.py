"""The endpoint application of version 0.1.0: config -> transports ->
TransactionLayer -> a small UAS core.

What it answers (RFC 3261 §8.2 order of checks, see sip/uas_checks.py):

| request                                  | answer                                   |
|------------------------------------------|------------------------------------------|
| Max-Forwards: 0                          | 483                                      |
| Request-URI scheme not sip/sips/tel      | 416                                      |
| unknown method                           | 501 with Allow                           |
| Require with an option we lack           | 420 with Unsupported                     |
| OPTIONS                                  | 200 with Allow, Accept, Supported        |
| INVITE (no number is served yet)         | 100 (by the layer), then 404             |
| REGISTER, any user, with or without      | 401 with a fresh digest challenge; the   |
| credentials (there are no users yet)     | same shape for everyone (no enumeration) |
| CANCEL                                   | 200 (by the layer); 487 to a pending     |
|                                          | INVITE                                   |
| ACK                                      | absorbed                                 |
| BYE, INFO, UPDATE (no dialogs exist)     | 481                                      |
| anything new while shutting down         | 503 with Retry-After                     |

A request for another domain is answered all the same: we are not a proxy.
Every response carries a To tag and a Server header.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import secrets
import signal
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from .config import Config
from .ids import RandomIds
from .media.tones import ToneBank
from .sip.address import Address
from .sip.errors import ProtocolError, SipError
from .sip.ids import IdGenerator
from .sip.message import Request, Response, make_response
from .sip.transaction.events import (
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from .sip.transaction.layer import TransactionLayer
from .sip.uas_checks import UasPolicy, screen_request
from .transport.overload import LoopLagMonitor, OverloadGuard
from .transport.sip_transport import SipDriver

if TYPE_CHECKING:
    from .call.manager import CallManager
    from .store import Store

log = logging.getLogger(__name__)

ALLOWED_METHODS = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "UPDATE")
# Requests that only make sense inside a dialog; no dialog exists in 0.1.0.
DIALOG_METHODS = frozenset(("BYE", "INFO", "UPDATE"))
POLICY = UasPolicy(allowed_methods=ALLOWED_METHODS, supported_options=())
RETRY_AFTER_S = 5

InvitePolicy = Callable[[Request], int | None]
"""Decides an INVITE: a final status to answer at once, or None to hold it
pending (answered later with ``Endpoint.answer_invite``)."""


class RequestHandler(Protocol):
    """Takes a new out-of-dialog request of one method (INVITE, REGISTER...).

    It answers through ``Endpoint.respond`` (now or later); for an INVITE it
    may register ``Endpoint.on_cancel`` to hear of a CANCEL.
    """

    def __call__(self, request: Request, transaction: TransactionKey, source: Address) -> None:
        ...


class DialogHandler(Protocol):
    """Takes requests inside a dialog (To tag present) and ACKs for 2xx.

    Returns False when no dialog of its own matches: the endpoint then
    answers 481 (an ACK is dropped).
    """

    def __call__(self, request: Request, transaction: TransactionKey | None,
                 source: Address) -> bool:
        ...


ClientEvent = (ResponseReceived | TransactionTimedOut | TransportErrorOccurred
               | TransactionTerminated)
ClientCallback = Callable[[ClientEvent], None]
"""Hears what happens to a client transaction the endpoint started."""
CancelCallback = Callable[[CancelReceived], None]


def reject_every_invite(request: Request) -> int:
    """Version 0.1.0 serves no number: every INVITE is 404 Not Found."""
    return 404


class Challenger(Protocol):
    """What the endpoint needs of ``boomerang.sip.auth.DigestServer``."""

    def challenge(self, now: float, *, stale: bool = False) -> list[str]: ...


class StartError(Exception):
    """The endpoint could not start (a listen address could not be bound...)."""


def server_ssl_context(config: Config) -> ssl.SSLContext | None:
    tls = config.sip.tls
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    return context


def client_ssl_context(config: Config) -> ssl.SSLContext:
    tls = config.sip.tls
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca) if tls and tls.ca else None)
    if tls is None or not tls.verify_peer:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Endpoint:
    """The SIP endpoint: owns the driver and answers what arrives."""

    __slots__ = (
        "_cancel_callbacks",
        "_client_callbacks",
        "_ids",
        "_wall_clock",
        "challenger",
        "config",
        "dialog_handler",
        "draining",
        "driver",
        "handlers",
        "invite_policy",
        "layer",
        "overload",
        "pending_invites",
        "server_headers",
    )

    def __init__(
        self,
        config: Config,
        *,
        challenger: Challenger,
        ids: IdGenerator | None = None,
        layer: TransactionLayer | None = None,
        invite_policy: InvitePolicy = reject_every_invite,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.challenger = challenger
        self._ids = ids or RandomIds()
        self._wall_clock = wall_clock
        self.layer = layer if layer is not None else TransactionLayer()
        self.invite_policy = invite_policy
        self.server_headers: tuple[tuple[str, str], ...] = (("Server", config.sip.user_agent),)
        self.pending_invites: dict[TransactionKey, Request] = {}
        self.draining = False
        self.driver: SipDriver | None = None
        # Out-of-dialog requests by method; without one, INVITE goes to
        # invite_policy and REGISTER gets the anonymous challenge.
        self.handlers: dict[str, RequestHandler] = {}
        self.dialog_handler: DialogHandler | None = None
        self.overload: OverloadGuard | None = None
        self._client_callbacks: dict[TransactionKey, ClientCallback] = {}
        self._cancel_callbacks: dict[TransactionKey, CancelCallback] = {}

    @property
    def ids(self) -> IdGenerator:
        return self._ids

    # -- life cycle -----------------------------------------------------------------

    async def start(self) -> list[Address]:
        """Bind every listen address of the config; all or nothing."""
        sip = self.config.sip
        driver = SipDriver(
            self.layer, loop=asyncio.get_running_loop(), handler=self.handle,
            idle_timeout_s=sip.connection_idle_s, client_ssl=client_ssl_context(self.config),
            server_headers=self.server_headers,
        )
        server_ssl = server_ssl_context(self.config)
        bound: list[Address] = []
        for item in sip.listen:
            try:
                bound.append(await driver.listen(
                    item.transport, item.host, item.port,
                    server_ssl=server_ssl if item.transport == "tls" else None))
            except OSError as error:
                await driver.close()
                raise StartError(f"cannot listen on {item}: {error.strerror or error}") from None
        self.driver = driver
        monitor = None
        if sip.overload_lag_ms > 0:
            monitor = LoopLagMonitor(driver.loop)
            monitor.start()
        self.overload = OverloadGuard(monitor, lag_high_s=sip.overload_lag_ms / 1000,
                                      max_transactions=sip.max_transactions)
        return bound

    def begin_shutdown(self) -> None:
        """Stop taking new requests (503 from now on; requests in a dialog and
        CANCEL still pass, so calls in progress can finish); answer held INVITEs."""
        self.draining = True
        for key in list(self.pending_invites):
            self.answer_invite(key, 503, retry_after=True)

    async def drain(self, grace_s: float, abort: asyncio.Event | None = None) -> None:
        """Wait until no transaction is left, at most ``grace_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while len(self.layer) and loop.time() < deadline:
            if abort is not None and abort.is_set():
                return
            await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))

    async def close(self) -> None:
        if self.overload is not None and self.overload.monitor is not None:
            self.overload.monitor.close()
        if self.driver is not None:
            await self.driver.close()
            self.driver = None

    # -- events ---------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            if event.transaction is not None:
                self._on_request(event.request, event.transaction, event.source)
            elif self.dialog_handler is not None:  # ACK for a 2xx
                self.dialog_handler(event.request, None, event.source)
        elif isinstance(event, CancelReceived):
            self._on_cancel(event)
        elif isinstance(event, ResponseReceived | TransactionTimedOut | TransportErrorOccurred):
            callback = self._client_callbacks.get(event.transaction)
            if callback is not None:
                callback(event)
        elif isinstance(event, TransactionTerminated):
            key = event.transaction
            self.pending_invites.pop(key, None)
            self._cancel_callbacks.pop(key, None)
            callback = self._client_callbacks.pop(key, None)
            if callback is not None:
                callback(event)

    # -- the API the layers above use -------------------------------------------------

    def send_request(self, request: Request, destination: Address,
                     on_event: ClientCallback) -> TransactionKey:
        """Start a client transaction; ``on_event`` hears its responses, its
        timeout or transport error, and finally its TransactionTerminated."""
        driver = self.driver
        assert driver is not None
        # register the callback before the driver flushes: an immediate
        # transport error must reach it
        key = self.layer.send_request(request, destination, driver.loop.time())
        self._client_callbacks[key] = on_event
        driver.flush()
        return key

    def cancel(self, transaction: TransactionKey,
               headers: tuple[tuple[str, str], ...] = ()) -> TransactionKey | None:
        """CANCEL a pending client INVITE transaction (RFC 3261 §9.1);
        ``headers`` go in the CANCEL (a Reason, RFC 3326)."""
        assert self.driver is not None
        return self.driver.cancel(transaction, headers)

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        """ACK for a 2xx, 2xx retransmissions, and other messages outside transactions."""
        assert self.driver is not None
        self.driver.send_stateless(message, destination)

    def on_cancel(self, transaction: TransactionKey, callback: CancelCallback) -> None:
        """Hear of a CANCEL of the server INVITE transaction ``transaction``
        (the layer has answered the CANCEL 200; answer the INVITE 487)."""
        self._cancel_callbacks[transaction] = callback

    def respond(
        self,
        request: Request,
        status: int,
        headers: tuple[tuple[str, str], ...] = (),
        *,
        body: bytes = b"",
        to_tag: str | None = None,
    ) -> Response | None:
        """Answer ``request`` through its server transaction; returns the
        response sent, or None when the transaction had already ended.
        ``to_tag`` defaults to a fresh tag (dialog users pass their own)."""
        response = make_response(request, status, to_tag=to_tag or self._ids.tag(),
                                 headers=headers + self.server_headers, body=body)
        assert self.driver is not None
        try:
            self.driver.send_response(response)
        except ProtocolError as error:  # the transaction ended meanwhile (Timer H...)
            log.debug("call_id=%s %d not sent: %s", request.headers.get("Call-ID"), status,
                      error.detail)
            return None
        return response

    def _on_request(self, request: Request, key: TransactionKey, source: Address) -> None:
        method = request.method
        if method == "ACK":
            return
        try:
            # draining: nothing new, but calls in progress go on (BYE, re-INVITE...)
            if self.draining and method != "CANCEL" and (
                    request.to_tag is None or method == "REGISTER"):
                self._answer(request, 503, retry_after=True)
                return
            rejection = screen_request(request, POLICY)
            if rejection is not None:
                log.debug("call_id=%s %s from %s refused %d: %s", request.call_id, method,
                          source, rejection.status, rejection.detail)
                self._answer(request, rejection.status, rejection.headers)
                return
            # REGISTER is never in a dialog, even from a phone that sends a To tag
            if request.to_tag is not None and method not in ("CANCEL", "REGISTER"):
                self._on_in_dialog(request, key, source)
                return
            if (method == "INVITE" and self.overload is not None
                    and self.overload.should_shed(len(self.layer))):
                self._answer(request, 503, retry_after=True)
                return
            handler = self.handlers.get(method)
            if handler is not None and method != "OPTIONS":
                handler(request, key, source)
                return
            if method == "OPTIONS":
                self._answer(request, 200, (
                    ("Allow", POLICY.allow_header),
                    ("Accept", "application/sdp"),
                    ("Supported", POLICY.supported_header),
                ))
            elif method == "INVITE":
                self._on_invite(request, key, source)
            elif method == "REGISTER":
                self._on_register(request)
            elif method in DIALOG_METHODS:
                self._answer(request, 481)
            else:
                self._answer(request, 501, (("Allow", POLICY.allow_header),))
        except SipError as error:
            log.info("call_id=%s %s from %s: %s", request.headers.get("Call-ID"), method,
                     source, error.detail)
            self._answer(request, error.status)

    def _on_in_dialog(self, request: Request, key: TransactionKey, source: Address) -> None:
        if self.dialog_handler is not None and self.dialog_handler(request, key, source):
            return
        if request.method != "ACK":
            self._answer(request, 481)

    def _on_invite(self, request: Request, key: TransactionKey, source: Address) -> None:
        status = self.invite_policy(request)
        if status is None:
            self.pending_invites[key] = request
            return
        log.debug("call_id=%s INVITE %s from %s answered %d", request.call_id, request.uri,
                 source, status)
        self._answer(request, status)

    def answer_invite(self, key: TransactionKey, status: int, *, retry_after: bool = False
                      ) -> None:
        """Give a held INVITE its final response."""
        request = self.pending_invites.pop(key, None)
        if request is not None:
            self._answer(request, status, retry_after=retry_after)

    def _on_cancel(self, event: CancelReceived) -> None:
        callback = self._cancel_callbacks.pop(event.transaction, None)
        if callback is not None:
            callback(event)
            return
        request = self.pending_invites.pop(event.transaction, None)
        if request is not None:
            log.info("call_id=%s INVITE cancelled by %s", request.call_id, event.source)
            self._answer(request, 487)

    def _on_register(self, request: Request) -> None:
        # No users exist yet: every REGISTER, with or without credentials, for
        # any user, gets the same 401 with a fresh challenge, so nobody can
        # tell a known user from an unknown one.
        challenges = self.challenger.challenge(self._wall_clock())
        self._answer(request, 401, tuple(("WWW-Authenticate", value) for value in challenges))

    def _answer(
        self,
        request: Request,
        status: int,
        headers: tuple[tuple[str, str], ...] = (),
        *,
        retry_after: bool = False,
    ) -> None:
        extra = headers + self.server_headers
        if retry_after:
            extra += (("Retry-After", str(RETRY_AFTER_S)),)
        response = make_response(request, status, to_tag=self._ids.tag(), headers=extra)
        assert self.driver is not None
        try:
            self.driver.send_response(response)
        except ProtocolError as error:  # the transaction ended meanwhile (Timer H...)
            log.debug("call_id=%s %d not sent: %s", request.headers.get("Call-ID"), status,
                      error.detail)


# -- running the server ---------------------------------------------------------------


def make_endpoint(config: Config) -> Endpoint:
    """The production endpoint: random ids and a digest secret from the OS CSPRNG."""
    from .sip.auth import DigestServer

    challenger = DigestServer(realm=config.sip.realm, secret=secrets.token_bytes(32),
                              algorithms=tuple(config.sip.digest_algorithms))
    return Endpoint(config, challenger=challenger, ids=RandomIds())


async def serve(
    config: Config,
    *,
    on_ready: Callable[[list[Address]], None],
    endpoint: Endpoint | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop``); drain; return the exit status.

    Raises StartError when a listen address cannot be bound.
    """
    loop = asyncio.get_running_loop()
    endpoint = endpoint or make_endpoint(config)
    stop = stop or asyncio.Event()
    # What is costly comes before any socket opens, so no request waits for
    # it: importing the call layer (imported here because it builds on this
    # module), the tone tables, a full collection.
    for module in ("call.trunks", "call.registrar", "call.manager", "call.router",
                   "transport.media_relay", "transport.rtp_socket", "store"):
        importlib.import_module(f"{__package__}.{module}")
    from .call.registrar import open_registrar
    from .call.trunks import TrunkSet

    tone_bank = ToneBank()
    from .callback.licence import LicenceError, load_for_config
    from .callback.rates import RateTableError, load_rates
    from .store import open_store

    try:  # a bad licence or rate table refuses the start, before anything opens
        load_for_config(config, today=datetime.now(UTC).date())
        load_rates(config.records)
    except LicenceError as error:
        raise StartError(f"licence: {error}") from None
    except RateTableError as error:
        raise StartError("rate table: " + "; ".join(error.problems)) from None

    try:
        store = await open_store(config.database.url)
    except Exception as error:
        raise StartError(f"database {config.database}: {error}") from error
    gc.collect()
    try:
        bound = await endpoint.start()
    except BaseException:
        await store.close()
        raise
    trunks = TrunkSet(config, endpoint)
    trunks.install()
    trunks.start()
    registrar = await open_registrar(endpoint, store)  # None without extensions
    calls = await _start_calls(config, endpoint, registrar, trunks, tone_bank, store)
    from .callback.runtime import start_callbacks

    callbacks = await start_callbacks(config, calls, store)
    installed: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    # Everything built so far lives as long as the process: move it out of
    # the cyclic collector's way, so its pauses grow with the calls in
    # progress only (DESIGN.md, "Measuring speed honestly"). The costly
    # gc.collect() ran before the sockets opened; freezing is cheap.
    gc.freeze()
    try:
        on_ready(bound)
        await stop.wait()
        stop.clear()
        log.info("stopping: no new triggers or calls (503); %d call(s) in progress get up "
                 "to %.0f s; pending callbacks stay stored for the next start",
                 len(calls.calls), config.service.drain_grace_s)
        endpoint.begin_shutdown()
        await callbacks.drain(config.service.drain_grace_s, abort=stop)
        await endpoint.drain(config.sip.shutdown_grace_s, abort=stop)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await callbacks.close()
        await calls.close()
        await calls.relay.close()
        await trunks.close()  # unregisters while the endpoint still runs
        if registrar is not None:
            await registrar.close()
        await endpoint.close()
        await store.close()
        gc.unfreeze()  # for callers that go on in this process (tests, benches)
    log.info("stopped")
    return 0


async def _start_calls(config: Config, endpoint: Endpoint, registrar: object,
                      trunks: object, tone_bank: ToneBank, store: Store) -> CallManager:
    """The call layer for ``serve``: media relay, CallManager, extension router."""
    import ipaddress

    from .call.manager import CallManager
    from .call.registrar import Registrar
    from .call.router import Router
    from .call.trunks import TrunkSet
    from .transport.media_relay import PythonMediaRelay
    from .transport.rtp_socket import PortAllocator

    host = config.sip.listen[0].host if config.sip.listen else "127.0.0.1"
    advertised: str | None = None
    if ipaddress.ip_address(host).is_unspecified and config.sip.public_address != "auto":
        advertised = config.sip.public_address.strip("[]")
    # With a wildcard address and public_address auto, each leg's SDP carries
    # the local address the system routes to that leg's peer (as its Via does).
    ports = config.media.rtp_ports
    relay = PythonMediaRelay(PortAllocator(ports.first, ports.last), local_address=host,
                             advertised_address=advertised)
    assert registrar is None or isinstance(registrar, Registrar)
    assert isinstance(trunks, TrunkSet)
    manager = CallManager(endpoint, config, registrar=registrar, trunks=trunks, relay=relay,
                          tone_bank=tone_bank, store=store)
    manager.install()
    Router(manager, config).install()
    return manager


__all__ = [
    "ALLOWED_METHODS",
    "CancelCallback",
    "Challenger",
    "ClientCallback",
    "ClientEvent",
    "DialogHandler",
    "Endpoint",
    "InvitePolicy",
    "RequestHandler",
    "StartError",
    "make_endpoint",
    "reject_every_invite",
    "serve",
]
