"""The call manager: INVITEs in, calls out, bridges, records.

``CallManager`` takes the endpoint's INVITE handler and puts its
``LegRegistry`` in as the endpoint's ``dialog_handler``:

| INVITE from                         | what happens                                     |
|-------------------------------------|--------------------------------------------------|
| a trunk's source addresses          | ``on_trunk_call(call, trunk)`` (default: 404);   |
|                                     | the callback service plugs in there              |
| elsewhere, no extension configured  | 403 (404 when there are no trunks either)        |
| elsewhere, no or wrong credentials  | 407 with a fresh Proxy-Authenticate challenge    |
| (unknown user and wrong password    | (``stale=true`` for a stale nonce)               |
| look the same)                      |                                                  |
| elsewhere, an extension proven by   | ``on_extension_call(call, extension)`` (the      |
| Proxy-Authorization                 | router's dial plan); 403 when the From user is   |
|                                     | not the authenticated extension                  |

``originate(target, ...)`` places a call: to every registered contact of
an extension at once (``ExtensionTarget``: the first to answer wins, the
others get CANCEL), to a URI (``UriTarget``) or through a trunk
(``TrunkTarget``: the trunk's number format and caller-ID headers, one
channel taken for the call's life). ``bridge(a, b)`` joins two calls of one
story (same ``correlation_id``): a ``B2bua`` for the signalling, the relay
for media (both ways, DTMF passed on); it returns when both legs ended.

Media: every leg has one relay port for its life (``RelayMediaPort``), in
the relay call named by the story's ``correlation_id``; the relay call is
released when the last leg of the story ended. A ``MediaTimedOut`` of an
answered leg ends that leg (Q.850 102), and a bridge then ends the other
one: no orphaned leg.

Trunk calls: the INVITE carries the number in the trunk's ``dial_format``
and the caller ID in From and, per ``caller_id_header``, P-Asserted-
Identity or Remote-Party-ID (``Privacy: id`` with ``TrunkTarget(privacy=
True)``); a 401/407 from the carrier is answered with the trunk's
``username`` / ``password``. A call through a trunk with
``max_call_seconds`` is cut then, with the warning tone ``warning_lead_s``
before (``call_limits.DurationLimit``).

Limits: an extension's ``max_concurrent_calls`` caps the stories it owns;
a new one beyond the cap is refused 486 (an INVITE from its phone, or
``originate`` with ``owner_extension``: ``CallRefused`` 486).

Session timers (RFC 4028): every leg asks for or agrees
``sip.session_expires_s`` and refuses intervals below ``sip.min_se_s``
(422); ``session_expires_s: 0`` turns them off.

Records: with a ``store``, every inbound call and every outbound call (one
row for all its forks) leaves a call record: the correlation id linking the
legs, the owner extension, start, answer and end, result, SIP status and
Q.850 cause.

Not done here: early media passed between legs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..config import Config, ExtensionSettings, SipSettings
from ..media.relay import MediaTimedOut, RelayError, RelayEvent
from ..media.tones import ToneBank
from ..sip.address import Address
from ..sip.auth import DigestClient, DigestServer
from ..sip.errors import SipError
from ..sip.message import Request
from ..sip.offer_answer import MediaCapabilities
from ..sip.transaction.events import TransactionKey
from ..sip.uri import SipUri, Uri
from ..store import CallResult, LegKind, NewCallRecord, Store
from ..transport.media_relay import MediaRelay
from ..transport.rtp_socket import PortsExhausted
from .b2bua import B2bua, end_leg
from .call_limits import (
    CONCURRENT_CALLS_STATUS,
    WARNING_LEAD_S,
    DurationLimit,
    over_concurrent_cap,
)
from .calls import AnyCall, CallEndedError, InboundCall, OutboundCall
from .events import (
    Q850_RECOVERY_ON_TIMER_EXPIRY,
    CallAnswered,
    CallEnded,
    CallEvent,
    EndCause,
    Outcome,
)
from .leg import T1_S, CallLeg, LegAddressing, LegRegistry, LegState, Resolver, resolve_literal
from .location import uri_address
from .media_port import RelayMediaPort
from .numbers import NumberError
from .ports import Scheduler
from .registrar import Registrar
from .session_timer import SessionTimerSettings
from .trunks import Trunk, TrunkSet
from .uac_leg import UacLeg
from .uas_leg import UasLeg

log = logging.getLogger(__name__)

MEDIA_TIMEOUT = EndCause(outcome=Outcome.FAILED, q850_cause=Q850_RECOVERY_ON_TIMER_EXPIRY,
                         reason_text="No media")


TRUNK_USABLE = ("up", "registered")  # trunk states that take outbound calls


class CallRefused(SipError):
    """``originate`` could not place the call; ``status`` says why (404 no
    such trunk, 480 not registered, 484 bad number, 503 trunk down or full)."""


@dataclass(frozen=True, slots=True)
class ExtensionTarget:
    """Every registered contact of an extension, in parallel."""

    number: str


@dataclass(frozen=True, slots=True)
class UriTarget:
    """One URI, sent to ``destination``."""

    uri: str
    destination: Address


@dataclass(frozen=True, slots=True)
class TrunkTarget:
    """An E.164 number through the trunk called ``trunk_name``; ``privacy``
    withholds the caller ID from the called party (RFC 3323/3325)."""

    trunk_name: str
    e164: str
    privacy: bool = False


Target = ExtensionTarget | UriTarget | TrunkTarget
TrunkCallHook = Callable[[InboundCall, Trunk], Coroutine[Any, Any, None]]
ExtensionCallHook = Callable[[InboundCall, ExtensionSettings], Coroutine[Any, Any, None]]
# (request URI, From, To, extra headers, destination, the peer's contact URI)
_Plan = tuple[str, str, str, tuple[tuple[str, str], ...], Address, str | None]


async def refuse_trunk_call(call: InboundCall, trunk: Trunk) -> None:
    """The default ``on_trunk_call``: nothing serves trunk calls yet."""
    call.reject(404)


async def refuse_extension_call(call: InboundCall, extension: ExtensionSettings) -> None:
    call.reject(404)


_RESULTS = {Outcome.BUSY: CallResult.BUSY, Outcome.NO_ANSWER: CallResult.NO_ANSWER,
            Outcome.REJECTED: CallResult.REJECTED, Outcome.FAILED: CallResult.FAILED,
            Outcome.CANCELLED: CallResult.CANCELLED}


def result_of(cause: EndCause, answered: bool) -> CallResult:
    """The record's result: answered once answered, else why it never was."""
    if answered:
        return CallResult.ANSWERED
    return _RESULTS.get(cause.outcome, CallResult.CANCELLED)


def session_timer_settings(sip: SipSettings) -> SessionTimerSettings | None:
    """The legs' RFC 4028 policy from ``sip`` (None: ``session_expires_s`` 0)."""
    if not sip.session_expires_s:
        return None
    return SessionTimerSettings(session_expires_s=sip.session_expires_s, min_se_s=sip.min_se_s)


def trunk_credentials(trunk: Trunk) -> DigestClient | None:
    """The digest user answering a carrier's 401/407, when the trunk has one."""
    settings = trunk.settings
    if settings.username and settings.password is not None:
        return DigestClient(username=settings.username, password=settings.password)
    return None


def _route_source(destination_host: str) -> str:
    family = socket.AF_INET6 if ":" in destination_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((destination_host, 9))
            return str(probe.getsockname()[0])
        except OSError:
            return "::1" if family == socket.AF_INET6 else "127.0.0.1"


def _steady_resolver(contact_uri: str | None, destination: Address) -> Resolver:
    """Requests to the peer's own Contact go where its traffic comes from
    (``destination``: NAT, a connection it opened); others as their URI says."""
    contact = uri_address(contact_uri) if contact_uri else None

    def resolve(uri: Uri, transport: str) -> Address:
        try:
            literal = resolve_literal(uri, transport)
        except SipError:
            return destination
        if contact is not None and (literal.host, literal.port) == (contact.host,
                                                                     contact.port):
            return destination
        return literal

    return resolve


class CallManager:
    """INVITE handling, originate, bridge, records (see the module doc)."""

    def __init__(
        self,
        endpoint: Any,
        config: Config,
        *,
        registrar: Registrar | None,
        trunks: TrunkSet | None,
        relay: MediaRelay,
        tone_bank: ToneBank,
        store: Store | None = None,
        scheduler: Scheduler | None = None,
        capabilities: MediaCapabilities | None = None,
        wall_clock: Callable[[], float] = time.time,
        t1_s: float = T1_S,
        warning_lead_s: float = WARNING_LEAD_S,
    ) -> None:
        """``warning_lead_s``: how long before a trunk's ``max_call_seconds``
        the warning tone plays (0: none)."""
        self.endpoint = endpoint
        self.config = config
        self.registrar = registrar
        self.trunks = trunks
        self.relay = relay
        self.tone_bank = tone_bank
        self.store = store
        self.scheduler: Scheduler = scheduler or asyncio.get_running_loop()
        self.capabilities = capabilities or MediaCapabilities()
        self.wall_clock = wall_clock
        self.t1_s = t1_s
        self.warning_lead_s = warning_lead_s
        self.session_timers = session_timer_settings(config.sip)
        self.legs = LegRegistry()
        self.on_trunk_call: TrunkCallHook = refuse_trunk_call
        self.on_extension_call: ExtensionCallHook = refuse_extension_call
        self.calls: set[AnyCall] = set()
        self._media_users: dict[str, int] = {}
        self._media_legs: dict[tuple[str, str], CallLeg] = {}
        self._allocating: dict[str, set[asyncio.Task[tuple[str, int]]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._record_fields: dict[int, dict[str, Any]] = {}
        if getattr(relay, "on_event", None) is None and hasattr(relay, "on_event"):
            relay.on_event = self.relay_event

    # -- wiring ----------------------------------------------------------------------

    def install(self) -> None:
        """Take the endpoint's INVITEs and in-dialog requests."""
        self.endpoint.handlers["INVITE"] = self.handle_invite
        self.endpoint.dialog_handler = self.legs

    async def close(self) -> None:
        """End every live call, finish the records, release the media."""
        for call in list(self.calls):
            call.hangup()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=2.0)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.endpoint.handlers.get("INVITE") == self.handle_invite:
            del self.endpoint.handlers["INVITE"]
        if self.endpoint.dialog_handler is self.legs:
            self.endpoint.dialog_handler = None

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())

    # -- addressing ------------------------------------------------------------------

    def _local(self, destination: Address) -> tuple[Address, str]:
        """The listen address used toward ``destination`` and the host to
        write in Via, Contact and SDP: the bound address, or for a wildcard
        listen address the configured public address, or (auto) the local
        address the system routes to ``destination`` from."""
        driver = self.endpoint.driver
        listening: list[Address] = list(driver.listening) if driver is not None else []
        local = next((a for a in listening if a.transport == destination.transport),
                     listening[0] if listening else Address(destination.transport,
                                                            "127.0.0.1", 5060))
        host = local.host
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).is_unspecified:
                public = self.config.sip.public_address
                host = public.strip("[]") if public != "auto" \
                    else _route_source(destination.host)
        return local, host

    def _addressing(self, destination: Address, user: str = "boomerang") -> LegAddressing:
        local, host = self._local(destination)
        host = f"[{host}]" if ":" in host else host
        sent_by = f"{host}:{local.port}"
        transport = "" if local.transport == "udp" else f";transport={local.transport}"
        return LegAddressing(sent_by=sent_by, contact=f"<sip:{user}@{sent_by}{transport}>",
                             transport=local.transport)

    # -- media bookkeeping ---------------------------------------------------------------

    def _media_port(self, media_key: str, leg_name: str, peer: Address) -> RelayMediaPort:
        self._media_users[media_key] = self._media_users.get(media_key, 0) + 1
        return RelayMediaPort(self.relay, media_key=media_key, leg_name=leg_name,
                              capabilities=self.capabilities, tone_bank=self.tone_bank,
                              tone_plan=self.config.media.tone_plan,
                              advertised_host=self._local(peer)[1])

    async def _allocate(self, port: RelayMediaPort) -> tuple[str, int]:
        task = asyncio.get_running_loop().create_task(port.allocate())
        pending = self._allocating.setdefault(port.media_key, set())
        pending.add(task)
        try:
            return await task
        finally:
            pending.discard(task)

    def _watch_leg(self, leg: CallLeg, port: RelayMediaPort) -> None:
        key = (port.media_key, port.leg_name)
        self._media_legs[key] = leg

        def done() -> None:
            self._media_legs.pop(key, None)
            port.close()
            self._media_done(port.media_key)

        if leg.ended:
            done()
        else:
            leg.add_listener(lambda event: done() if isinstance(event, CallEnded) else None)

    def _media_done(self, media_key: str) -> None:
        users = self._media_users.get(media_key, 0) - 1
        if users > 0:
            self._media_users[media_key] = users
            return
        self._media_users.pop(media_key, None)
        self._spawn(self._release(media_key))

    async def _release(self, media_key: str) -> None:
        pending = self._allocating.get(media_key)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if media_key not in self._media_users:
            self._allocating.pop(media_key, None)
            await self.relay.release(media_key)
            log.debug("media %s released", media_key)

    def relay_event(self, event: RelayEvent) -> None:
        """The relay's events: a leg that sends no media any more is ended."""
        if not isinstance(event, MediaTimedOut):
            return
        leg = self._media_legs.get((event.call_id, event.leg))
        if leg is None or leg.ended or leg.state is not LegState.CONFIRMED:
            return
        log.info("call_id=%s no media for %.1f s: ending the call", leg.call_id,
                 event.silent_s)
        end_leg(leg, MEDIA_TIMEOUT)

    # -- inbound ---------------------------------------------------------------------

    def handle_invite(self, request: Request, transaction: TransactionKey,
                      source: Address) -> None:
        trunk = self._trunk_of(source)
        if trunk is not None:
            call = self._inbound(request, transaction, source, owner=None)
            self._limit_duration(call, trunk)
            self._spawn(self._run_inbound(call, self.on_trunk_call(call, trunk),
                                          LegKind.TRIGGER, trunk=trunk.name))
            return
        extension = self._authenticate(request, source)
        if extension is None:
            return
        if over_concurrent_cap(self.calls, extension):
            log.info("call_id=%s INVITE from %s refused %d: %d concurrent calls already",
                     request.call_id, extension.number, CONCURRENT_CALLS_STATUS,
                     extension.max_concurrent_calls)
            self.endpoint.respond(request, CONCURRENT_CALLS_STATUS)
            return
        call = self._inbound(request, transaction, source, owner=extension.number)
        self._spawn(self._run_inbound(call, self.on_extension_call(call, extension),
                                      LegKind.INTERNAL))

    def _trunk_of(self, source: Address) -> Trunk | None:
        if self.trunks is None:
            return None
        return next((t for t in self.trunks if t.accepts_source(source)), None)

    def _authenticate(self, request: Request, source: Address) -> ExtensionSettings | None:
        digest = self.endpoint.challenger
        if not self.config.extensions or not isinstance(digest, DigestServer):
            # nobody could authenticate: not a trunk source (403), or no trunks (404)
            self.endpoint.respond(request, 403 if self.trunks is not None
                                  and len(self.trunks) else 404)
            return None

        def password_for(username: str) -> str | None:
            found = self.config.extension(username)
            return found.password if found is not None else None

        now = self.wall_clock()
        result = digest.verify(request, password_for, now, header="Proxy-Authorization")
        if not result.ok:
            if result.reason != "missing":
                log.info("call_id=%s INVITE from %s for user %r refused: %s",
                         request.call_id, source, result.username, result.reason)
            challenges = digest.challenge(now, stale=result.stale)
            self.endpoint.respond(request, 407, tuple(
                ("Proxy-Authenticate", value) for value in challenges))
            return None
        extension = self.config.extension(result.username or "")
        from_uri = request.from_.uri
        from_user = from_uri.user_unescaped if isinstance(from_uri, SipUri) else None
        if extension is None or from_user != extension.number:
            log.info("call_id=%s INVITE: user %r may not call as %r", request.call_id,
                     result.username, from_user)
            self.endpoint.respond(request, 403)
            return None
        return extension

    def _inbound(self, request: Request, transaction: TransactionKey, source: Address,
                 *, owner: str | None) -> InboundCall:
        correlation_id = self.endpoint.ids.call_id()
        port = self._media_port(correlation_id, request.call_id, source)
        contacts = request.contacts
        contact_uri = str(contacts[0].uri) if contacts else None
        leg = UasLeg(sip=self.endpoint, scheduler=self.scheduler, media=port,
                     addressing=self._addressing(source), request=request,
                     transaction=transaction, source=source, registry=self.legs,
                     resolve=_steady_resolver(contact_uri, source), t1_s=self.t1_s,
                     session_timers=self.session_timers)
        call = InboundCall(leg, port, correlation_id=correlation_id, source=source,
                           owner_extension=owner)
        self._watch_leg(leg, port)
        self._track(call)
        return call

    async def _run_inbound(self, call: InboundCall, hook: Coroutine[Any, Any, None],
                           kind: LegKind,
                           *, trunk: str | None = None) -> None:
        dialled = call.leg.invite.request_uri
        self._keep_record(call, kind, trunk=trunk, dialed_destination=(
            dialled.user_unescaped if isinstance(dialled, SipUri) else str(dialled)))
        try:
            await self._allocate(call.media)
        except (PortsExhausted, RelayError) as error:
            log.warning("call_id=%s no media port: %s", call.call_id, error)
            call.reject(503)
            hook.close()
            return
        try:
            await hook
        except CallEndedError:
            pass
        except Exception:
            log.exception("call_id=%s call handler failed", call.call_id)
            if not call.leg.answered:
                call.reject(500)
            else:
                call.hangup()

    def _track(self, call: AnyCall) -> None:
        self.calls.add(call)
        call.ended.add_done_callback(lambda _: self.calls.discard(call))

    # -- outbound --------------------------------------------------------------------

    async def originate(self, target: Target, *, caller_id: str, ring_timeout_s: float | None,
                        correlation_id: str | None = None, owner_extension: str | None = None,
                        display_name: str | None = None, leg_kind: LegKind | None = None,
                        record_fields: dict[str, Any] | None = None) -> OutboundCall:
        """Place a call (see the module doc); raises ``CallRefused`` when it
        cannot even start. The legs' INVITEs are out when this returns.
        ``leg_kind`` and ``record_fields`` (e.g. ``callback_target``,
        ``attempts``) go into its call record."""
        if owner_extension is not None:
            owner = self.config.extension(owner_extension)
            if owner is not None and over_concurrent_cap(self.calls, owner,
                                                         joining=correlation_id):
                raise CallRefused(f"extension {owner_extension}: "
                                  f"{owner.max_concurrent_calls} concurrent calls already",
                                  status=CONCURRENT_CALLS_STATUS)
        correlation_id = correlation_id or self.endpoint.ids.call_id()
        trunk = self._trunk_for(target) if isinstance(target, TrunkTarget) else None
        if trunk is not None:
            try:
                await trunk.locate()
            except SipError as error:
                raise CallRefused(f"trunk {trunk.name}: {error.detail}", status=503) from None
        plans = self._plans(target, caller_id, display_name)
        if trunk is not None and not trunk.acquire_channel():
            raise CallRefused(f"trunk {trunk.name}: every channel is busy", status=503)
        credentials = trunk_credentials(trunk) if trunk is not None else None
        forks: list[tuple[UacLeg, RelayMediaPort]] = []
        try:
            for request_uri, from_, to, headers, destination, contact_uri in plans:
                call_id = self.endpoint.ids.call_id()
                port = self._media_port(correlation_id, call_id, destination)
                try:
                    await self._allocate(port)
                except BaseException:
                    self._media_done(correlation_id)
                    raise
                leg = UacLeg(sip=self.endpoint, scheduler=self.scheduler, media=port,
                             addressing=self._addressing(destination),
                             request_uri=request_uri, from_=from_, to=to,
                             destination=destination, ring_timeout_s=ring_timeout_s,
                             headers=headers, registry=self.legs, call_id=call_id,
                             resolve=_steady_resolver(contact_uri, destination),
                             t1_s=self.t1_s, credentials=credentials,
                             session_timers=self.session_timers)
                forks.append((leg, port))
        except BaseException:
            for _, port in forks:
                self._media_done(port.media_key)
            if trunk is not None:
                trunk.release_channel()
            raise
        call = OutboundCall(forks, correlation_id=correlation_id, target=str(target),
                            owner_extension=owner_extension)
        for leg, port in forks:
            self._watch_leg(leg, port)
        if trunk is not None:
            call.ended.add_done_callback(lambda _: trunk.release_channel())
            self._limit_duration(call, trunk)
        self._track(call)
        if record_fields:
            self.annotate(call, **record_fields)
        kind = leg_kind or (LegKind.DESTINATION if trunk is not None else LegKind.INTERNAL)
        self._keep_record(call, kind, trunk=trunk.name if trunk is not None else None,
                          dialed_destination=None if kind is LegKind.CALLBACK
                          else _dialled(target))
        for leg, _ in forks:
            leg.start()
        return call

    def _plans(self, target: Target, caller_id: str, display_name: str | None
               ) -> list[_Plan]:
        """What each fork sends, and where."""
        name = f'"{display_name}" ' if display_name else ""
        if isinstance(target, ExtensionTarget):
            if self.registrar is None:
                raise CallRefused("no registrar", status=480)
            bindings = self.registrar.contacts_for(target.number)
            if not bindings:
                raise CallRefused(f"extension {target.number} is not registered", status=480)
            plans: list[_Plan] = []
            for binding in bindings:
                sent_by = self._addressing(binding.destination).sent_by
                plans.append((binding.contact_uri, f"{name}<sip:{caller_id}@{sent_by}>",
                              f"<sip:{target.number}@{sent_by}>",
                              tuple(("Route", hop) for hop in binding.route_set),
                              binding.destination, binding.contact_uri))
            return plans
        if isinstance(target, UriTarget):
            sent_by = self._addressing(target.destination).sent_by
            return [(target.uri, f"{name}<sip:{caller_id}@{sent_by}>", f"<{target.uri}>", (),
                     target.destination, target.uri)]
        trunk = self._trunk_for(target)
        destination = trunk.target
        if trunk.state not in TRUNK_USABLE or destination is None:
            raise CallRefused(f"trunk {trunk.name} is {trunk.state}", status=503)
        try:
            request_uri, from_, headers = trunk.outbound_invite_headers(
                dialled_e164=target.e164, caller_id_e164=caller_id, privacy=target.privacy,
                display_name=display_name)
        except NumberError as error:
            raise CallRefused(f"trunk {trunk.name}: {error}", status=error.sip_status) from None
        return [(request_uri, from_, f"<{request_uri}>", headers, destination, None)]

    def _trunk_for(self, target: TrunkTarget) -> Trunk:
        if self.trunks is None:
            raise CallRefused("no trunks", status=503)
        try:
            return self.trunks.trunk(target.trunk_name)
        except KeyError:
            raise CallRefused(f"no trunk {target.trunk_name!r}", status=404) from None

    # -- limits ----------------------------------------------------------------------

    def _limit_duration(self, call: AnyCall, trunk: Trunk) -> None:
        """Cut ``call`` after the trunk's ``max_call_seconds`` from its answer."""
        max_s = trunk.settings.max_call_seconds
        if not max_s:
            return

        def answered(event: CallEvent) -> None:
            if isinstance(event, CallAnswered):
                call.listeners.remove(answered)
                limit = DurationLimit(call, max_s=max_s, lead_s=self.warning_lead_s,
                                      story=lambda: self._story(call.correlation_id),
                                      relay=self.relay, tone_plan=self.config.media.tone_plan)
                self._spawn(limit.run())

        call.listeners.append(answered)

    def _story(self, correlation_id: str) -> list[AnyCall]:
        return [call for call in self.calls if call.correlation_id == correlation_id]

    # -- bridge ----------------------------------------------------------------------

    async def bridge(self, a: AnyCall, b: AnyCall) -> None:
        """Join two answered calls of one story; returns when both ended."""
        if a.media.media_key != b.media.media_key:
            raise ValueError("only calls of one story (correlation id) can be bridged")
        b2bua = B2bua(a.leg, b.leg)
        ended = next((leg for leg in (a.leg, b.leg) if leg.ended), None)
        if ended is not None:
            b2bua.hangup(ended.end_cause)
        else:
            try:
                for call in (a, b):
                    await call.media.settled()
                    await call.media.hand_over()
                await self.relay.bridge(a.media.media_key, a.media.leg_name, b.media.leg_name)
                log.info("call_id=%s bridged to call_id=%s", a.call_id, b.call_id)
            except (RelayError, KeyError) as error:
                log.warning("call_id=%s bridge to call_id=%s failed: %s", a.call_id,
                            b.call_id, error)
                b2bua.hangup(EndCause(outcome=Outcome.FAILED, sip_status=500))
        # shielded: cancelling the caller must not cancel the calls' own futures
        await asyncio.wait({asyncio.shield(a.ended), asyncio.shield(b.ended)})

    # -- records ---------------------------------------------------------------------

    def _utc_at(self, loop_time: float) -> datetime:
        wall = self.wall_clock() - (self.scheduler.time() - loop_time)
        return datetime.fromtimestamp(wall, UTC)

    def annotate(self, call: AnyCall, **fields: Any) -> None:
        """Fields the call's record gets when it ends (``trigger_did``,
        ``trigger_caller``, ``callback_target``, ``owner_extension``...)."""
        if self.store is None:
            return
        self._record_fields.setdefault(id(call), {}).update(fields)

    def _keep_record(self, call: AnyCall, kind: LegKind, *, trunk: str | None,
                     dialed_destination: str | None) -> None:
        if self.store is not None:
            self._spawn(self._record(self.store, call, kind, trunk, dialed_destination))

    async def _record(self, store: Store, call: AnyCall, kind: LegKind, trunk: str | None,
                      dialed_destination: str | None) -> None:
        records = store.records
        known = self._record_fields.get(id(call), {})  # what is known already goes in now
        early = {name: known[name] for name in _EARLY_FIELDS if known.get(name) is not None}
        record = await records.insert(NewCallRecord(
            correlation_id=call.correlation_id, leg_kind=kind,
            started_at=self._utc_at(call.started_at), owner_extension=call.owner_extension,
            trunk=trunk, dialed_destination=dialed_destination, call_id=call.call_id,
            **early))
        try:
            cause = await call.ended
        finally:
            extra = self._record_fields.pop(id(call), None)
        result = result_of(cause, call.answered_at is not None)
        if extra:
            result = CallResult(extra.pop("result", result))
        if extra:
            await records.update(record.id, **extra)
        if call.answered_at is not None:
            await records.answer(record.id, self._utc_at(call.answered_at))
            if call.call_id != record.call_id:  # the fork that answered
                await records.update(record.id, call_id=call.call_id)
        await records.finish(record.id, ended_at=self._utc_at(call.ended_at or call.started_at),
                             result=result, sip_status=cause.sip_status or (
                                 200 if call.answered_at is not None else None),
                             q850_cause=cause.q850_cause)


# Record fields ``annotate`` may know when a leg starts (the rest come at its end).
_EARLY_FIELDS = ("trigger_did", "trigger_caller", "callback_target", "attempts")


def _dialled(target: Target) -> str:
    if isinstance(target, ExtensionTarget):
        return target.number
    if isinstance(target, TrunkTarget):
        return target.e164
    return target.uri


__all__ = [
    "MEDIA_TIMEOUT",
    "TRUNK_USABLE",
    "CallManager",
    "CallRefused",
    "ExtensionCallHook",
    "ExtensionTarget",
    "Target",
    "TrunkCallHook",
    "TrunkTarget",
    "UriTarget",
    "refuse_extension_call",
    "refuse_trunk_call",
    "result_of",
    "session_timer_settings",
    "trunk_credentials",
]
