"""Trunks: the company's SIP connections to carriers.

One ``Trunk`` per configured trunk, all held by a ``TrunkSet``:

- outbound registration (``register: true``): REGISTER to the trunk's
  address (RFC 3263 via ``ServerLocator`` when the host is a name; the next
  target, then a fresh lookup, after a failure), 401/407 answered once per
  realm with ``retry_with_credentials``, 423 answered with the Min-Expires
  asked for, refresh at 90 % of the expiry the registrar granted (the
  Contact's ``expires``, else Expires), exponential back-off on failure
  (``retry_base_s`` doubling up to ``retry_max_s``, minus up to 20 % jitter
  from an injected draw), unregistration (Expires: 0) on close;
- keep-alive: OPTIONS every ``keepalive_s`` after the previous probe ended;
  any response means ``up``; a timeout or transport error twice in a row
  (registration attempts count too) means ``down``; changes are reported as
  ``TrunkWentUp`` / ``TrunkWentDown`` to a callback;
- inbound: ``trunk_for_source`` admits a request on a trunk only from its
  ``sources`` networks or from an address its registration goes to;
  refusals are counted per reason in ``refused_counts``;
- channels: ``acquire_channel`` / ``release_channel`` honour
  ``max_channels`` (0 = unlimited); the call layer answers 503 beyond.

``state`` of a trunk, shown by ``status()``:

| state         | meaning                                                          |
|---------------|------------------------------------------------------------------|
| ``down``      | two requests in a row got no answer, or no answer yet while      |
|               | keep-alive is on and the trunk does not register                 |
| ``registering``| the first REGISTER is under way                                 |
| ``registered``| the registrar accepted our binding                               |
| ``failed``    | the registration was refused (or timed out); retrying with back-off|
| ``up``        | answers arrive (or nothing is probed: keep-alive off, no register)|
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

from ..app import ClientEvent, Endpoint
from ..config import Config, TrunkSettings
from ..sip.address import Address
from ..sip.auth import DigestClient
from ..sip.auth_retry import retry_with_credentials
from ..sip.errors import AuthError, ParseError, SipError
from ..sip.headers import NameAddr
from ..sip.message import Request, Response
from ..sip.transaction.events import (
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from ..sip.uri import SipUri
from ..transport.dns import ServerLocator, Target
from .trunk_shaping import (
    build_outbound_invite_headers,
    did_of,
    trunk_uri,
)

log = logging.getLogger(__name__)

REFRESH_FRACTION = 0.9  # refresh a registration at 90 % of the granted expiry
DOWN_AFTER_FAILURES = 2  # consecutive unanswered requests before a trunk is down
JITTER_FRACTION = 0.2  # back-off delays are shortened by up to 20 %
MAX_CHALLENGE_ROUNDS = 3  # 401/407/423 answers to one registration attempt
UNREGISTER_TIMEOUT_S = 4.0

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkWentUp:
    """A trunk answered again (or for the first time)."""

    trunk: str
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkWentDown:
    """A trunk left ``DOWN_AFTER_FAILURES`` requests in a row unanswered."""

    trunk: str
    reason: str
    time: float


TrunkEvent = TrunkWentUp | TrunkWentDown


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkStatus:
    """A snapshot of one trunk for the admin views and ``boomerang calls``."""

    name: str
    state: str
    registration: str | None  # registering / registered / failed; None: no registration
    reachable: bool | None  # None until the first answer or failure
    target: str | None  # where requests go, e.g. udp:192.0.2.10:5060
    registered_expires_s: int | None  # the expiry the registrar granted
    next_attempt_in_s: float | None  # next REGISTER (refresh or retry)
    registration_failures: int
    last_error: str | None
    channels_in_use: int
    max_channels: int


def backoff_delay_s(failures: int, *, base_s: float, max_s: float, jitter_draw: float) -> float:
    """Delay before the next attempt after ``failures`` failures in a row:
    ``base_s`` doubling per failure up to ``max_s``, shortened by
    ``JITTER_FRACTION * jitter_draw`` (draw in [0, 1)) so trunks that failed
    together do not retry in step."""
    raw = min(max_s, base_s * 2.0 ** max(0, failures - 1))
    return raw * (1.0 - JITTER_FRACTION * min(max(jitter_draw, 0.0), 1.0))


def _network(item: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return item
    return ipaddress.ip_network(str(item), strict=False)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _route_source(destination: Address) -> str:
    """The local IP the kernel would send to ``destination`` from (no packet sent)."""
    family = socket.AF_INET6 if ":" in destination.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((destination.host, destination.port))
            return str(probe.getsockname()[0])
        except OSError:
            return "::1" if family == socket.AF_INET6 else "127.0.0.1"


class Trunk:
    """One carrier connection: registration, keep-alive, channels, status."""

    __slots__ = (
        "_call_id",
        "_consecutive_failures",
        "_cseq",
        "_digest",
        "_from_tag",
        "_next_attempt_at",
        "_owner",
        "_target_index",
        "_targets",
        "_tasks",
        "channels_in_use",
        "last_error",
        "name",
        "reachable",
        "registered_expires_s",
        "registration",
        "registration_failures",
        "settings",
        "sources",
    )

    def __init__(self, settings: TrunkSettings, owner: TrunkSet) -> None:
        self.settings = settings
        self.name = settings.name
        self._owner = owner
        self.sources = tuple(_network(item) for item in settings.sources)
        self.registration: str | None = None
        self.reachable: bool | None = None
        self.registered_expires_s: int | None = None
        self.registration_failures = 0
        self.last_error: str | None = None
        self.channels_in_use = 0
        self._consecutive_failures = 0
        self._targets: list[Target] | None = None
        self._target_index = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._next_attempt_at: float | None = None
        self._digest = (DigestClient(username=settings.username, password=settings.password)
                        if settings.username and settings.password is not None else None)
        ids = owner.endpoint.ids
        self._call_id = ids.call_id()  # one Call-ID for all our REGISTERs (RFC 3261 §10.2)
        self._from_tag = ids.tag()
        self._cseq = 0

    # -- state ----------------------------------------------------------------------

    @property
    def state(self) -> str:
        if self.reachable is False:
            return "down"
        if self.registration is not None:
            return self.registration
        if self.reachable is None and self.settings.keepalive_s > 0:
            return "down"
        return "up"

    @property
    def target(self) -> Address | None:
        """Where this trunk's requests go now (None until resolved)."""
        if not self._targets:
            return None
        item = self._targets[self._target_index % len(self._targets)]
        return Address(item.transport, item.host, item.port)

    async def locate(self) -> Address:
        """Where this trunk's requests go, resolving the host first when no
        registration or keep-alive has yet (SipError 503 when it cannot)."""
        try:
            await self._resolve()
        except (ValueError, OSError) as error:
            raise SipError(f"no address for {self.settings.host}: {error}", status=503) from None
        target = self.target
        if target is None:
            raise SipError(f"no address for {self.settings.host}", status=503)
        return target

    def status(self) -> TrunkStatus:
        loop_now = self._owner.now()
        target = self.target
        return TrunkStatus(
            name=self.name,
            state=self.state,
            registration=self.registration,
            reachable=self.reachable,
            target=str(target) if target else None,
            registered_expires_s=self.registered_expires_s,
            next_attempt_in_s=(None if self._next_attempt_at is None
                               else max(0.0, self._next_attempt_at - loop_now)),
            registration_failures=self.registration_failures,
            last_error=self.last_error,
            channels_in_use=self.channels_in_use,
            max_channels=self.settings.max_channels,
        )

    def accepts_source(self, source: Address) -> bool:
        """True when ``source`` is in ``sources`` or is where our registration goes."""
        ip = _ip(source.host)
        if ip is None:
            return False
        if any(ip.version == net.version and ip in net for net in self.sources):
            return True
        if self.settings.register and self._targets:
            return any(_ip(target.host) == ip for target in self._targets)
        return False

    # -- channels -------------------------------------------------------------------

    def acquire_channel(self) -> bool:
        """Take a channel for a call; False (and counted) at ``max_channels``."""
        limit = self.settings.max_channels
        if limit and self.channels_in_use >= limit:
            self._owner.note_refused("channel_limit")
            return False
        self.channels_in_use += 1
        return True

    def release_channel(self) -> None:
        self.channels_in_use = max(0, self.channels_in_use - 1)

    # -- outbound requests ------------------------------------------------------------

    def outbound_invite_headers(self, *, dialled_e164: str, caller_id_e164: str,
                                privacy: bool = False, display_name: str | None = None,
                                ) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """``build_outbound_invite_headers`` for this trunk."""
        return build_outbound_invite_headers(
            self.settings, dialled_e164=dialled_e164, caller_id_e164=caller_id_e164,
            privacy=privacy, display_name=display_name)

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks:
            return
        if self.settings.register:
            self.registration = "registering"
            self._tasks.append(asyncio.create_task(self._registration_loop(),
                                                   name=f"trunk {self.name} registration"))
        if self.settings.keepalive_s > 0:
            self._tasks.append(asyncio.create_task(self._keepalive_loop(),
                                                   name=f"trunk {self.name} keep-alive"))

    async def close(self) -> None:
        """Stop the loops; unregister (Expires: 0) when registered."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._next_attempt_at = None
        if self.registration == "registered" and self._owner.endpoint.driver is not None:
            try:
                await asyncio.wait_for(self._register_once(0), UNREGISTER_TIMEOUT_S)
            except TimeoutError:
                log.info("call_id=%s trunk %s: no answer to the unregistration",
                         self._call_id, self.name)
            self.registration = None
            self.registered_expires_s = None

    # -- resolution and addresses -------------------------------------------------------

    async def _resolve(self) -> list[Target]:
        if self._targets:
            return self._targets
        settings = self.settings
        targets = await self._owner.locator.locate(
            settings.host, port=settings.port,
            transport=settings.transport if settings.port is not None or
            settings.transport != "udp" else None)
        if not targets:
            raise SipError(f"no address for {settings.host}", status=503)
        self._targets = targets
        self._target_index = 0
        return targets

    def _next_target(self) -> None:
        """After an unanswered request: the next target, or a fresh lookup."""
        if self._targets is None:
            return
        self._target_index += 1
        if self._target_index >= len(self._targets):
            self._targets = None
            self._target_index = 0

    def _local(self, destination: Address) -> Address:
        """Our address for Via and Contact towards ``destination``."""
        driver = self._owner.endpoint.driver
        assert driver is not None
        want_v6 = ":" in destination.host
        candidates = [a for a in driver.listening if a.transport == destination.transport]
        same_family = [a for a in candidates if (":" in a.host) == want_v6]
        chosen = (same_family or candidates or driver.listening)[0]
        host = chosen.host
        if host in ("0.0.0.0", "::"):
            public = self._owner.sip_settings.public_address
            host = public if public != "auto" else _route_source(destination)
        return Address(chosen.transport, host, chosen.port)

    # -- one transaction as a coroutine ---------------------------------------------------

    async def _transact(self, request: Request, destination: Address) -> Response | str:
        """The final response, or why there is none (timeout, transport error)."""
        endpoint = self._owner.endpoint
        if endpoint.driver is None:
            return "endpoint not running"
        future: asyncio.Future[Response | str] = asyncio.get_running_loop().create_future()

        def on_event(event: ClientEvent) -> None:
            if future.done():
                return
            if isinstance(event, ResponseReceived):
                if event.response.status >= 200:
                    future.set_result(event.response)
            elif isinstance(event, TransactionTimedOut):
                future.set_result(f"no answer from {destination} (Timer {event.timer})")
            elif isinstance(event, TransportErrorOccurred):
                future.set_result(f"transport error towards {destination}")
            elif isinstance(event, TransactionTerminated):
                future.set_result(f"no final response from {destination}")

        try:
            endpoint.send_request(request, destination, on_event)
        except (SipError, OSError) as error:
            return f"cannot send to {destination}: {error}"
        return await future

    def _base_request(self, method: str, uri: str, local: Address, *, call_id: str,
                      cseq: int, from_uri: str, from_tag: str, to_uri: str,
                      extra: Iterable[tuple[str, str]] = ()) -> Request:
        host = f"[{local.host}]" if ":" in local.host else local.host
        via = (f"SIP/2.0/{local.transport.upper()} {host}:{local.port}"
               f";branch={self._owner.endpoint.ids.branch()};rport")
        headers = [
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", f"<{from_uri}>;tag={from_tag}"),
            ("To", f"<{to_uri}>"),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            *extra,
            ("User-Agent", self._owner.user_agent),
            ("Content-Length", "0"),
        ]
        return Request(method, uri, headers)

    # -- registration -------------------------------------------------------------------

    def _aor(self) -> str:
        user = self.settings.username or "boomerang"
        host = self.settings.host
        return f"sip:{user}@{f'[{host}]' if ':' in host else host}"

    def _contact_uri(self, local: Address) -> str:
        user = self.settings.username or "boomerang"
        host = f"[{local.host}]" if ":" in local.host else local.host
        transport = "" if local.transport == "udp" else f";transport={local.transport}"
        return f"sip:{user}@{host}:{local.port}{transport}"

    def _register_request(self, local: Address, expires_s: int) -> Request:
        self._cseq += 1
        aor = self._aor()
        return self._base_request(
            "REGISTER", trunk_uri(self.settings), local, call_id=self._call_id, cseq=self._cseq,
            from_uri=aor, from_tag=self._from_tag, to_uri=aor,
            extra=(("Contact", f"<{self._contact_uri(local)}>"), ("Expires", str(expires_s))))

    @staticmethod
    def _granted_expires_s(response: Response, contact_uri: str, asked_s: int) -> int:
        try:
            contacts = response.contacts
        except ParseError:
            contacts = []
        ours = str(contact_uri).lower()
        mine: list[NameAddr] = [c for c in contacts if str(c.uri).lower() == ours]
        if not mine and isinstance(contacts, list):
            mine = [c for c in contacts if isinstance(c.uri, SipUri)
                    and ours.startswith(f"sip:{c.uri.user}@{c.uri.host}".lower())]
        for contact in mine or contacts[:1]:
            with contextlib.suppress(ParseError):
                if contact.expires is not None:
                    return contact.expires
        with contextlib.suppress(ParseError):
            if response.expires is not None:
                return response.expires
        return asked_s

    async def _register_once(self, expires_s: int) -> int | str:
        """One registration (``expires_s`` 0: removal) with its challenge
        rounds; the granted expiry, or why it failed."""
        try:
            targets = await self._resolve()
        except (SipError, ValueError, OSError) as error:
            return f"cannot resolve {self.settings.host}: {error}"
        target = targets[self._target_index % len(targets)]
        destination = Address(target.transport, target.host, target.port)
        local = self._local(destination)
        request = self._register_request(local, expires_s)
        contact = self._contact_uri(local)
        ids = self._owner.endpoint.ids
        for _ in range(MAX_CHALLENGE_ROUNDS + 1):
            result = await self._transact(request, destination)
            if isinstance(result, str):
                self._note_unanswered(result)
                self._next_target()
                return result
            self._note_answered()
            status = result.status
            if status in (401, 407):
                if self._digest is None:
                    return f"{status} {result.reason}: no credentials configured"
                try:
                    request = retry_with_credentials(request, result, self._digest,
                                                     branch=ids.branch(), cnonce=ids.tag())
                except AuthError as error:
                    return f"{status} {result.reason}: {error.detail}"
                self._cseq = request.cseq.number
                continue
            if status == 423 and expires_s:
                minimum = result.headers.get("Min-Expires") or ""
                if not minimum.strip().isdigit():
                    return "423 without a usable Min-Expires"
                expires_s = int(minimum.strip())
                request = self._register_request(local, expires_s)
                continue
            if 200 <= status < 300:
                if expires_s == 0:
                    return 0
                granted = self._granted_expires_s(result, contact, expires_s)
                if granted <= 0:
                    return "the registrar granted 0 seconds"
                return granted
            return f"{status} {result.reason}"
        return "too many challenges"

    async def _registration_loop(self) -> None:
        owner = self._owner
        while True:
            outcome = await self._register_once(self.settings.register_expires_s)
            if isinstance(outcome, int):
                if self.registration != "registered":
                    log.info("call_id=%s trunk %s registered for %d s", self._call_id,
                             self.name, outcome)
                self.registration = "registered"
                self.registered_expires_s = outcome
                self.registration_failures = 0
                self.last_error = None
                delay_s = outcome * REFRESH_FRACTION
            else:
                self.registration = "failed"
                self.registered_expires_s = None
                self.registration_failures += 1
                self.last_error = outcome
                delay_s = backoff_delay_s(self.registration_failures, base_s=owner.retry_base_s,
                                          max_s=owner.retry_max_s,
                                          jitter_draw=owner.random_draw())
                log.warning("call_id=%s trunk %s registration failed (%s); retry in %.1f s",
                            self._call_id, self.name, outcome, delay_s)
            self._next_attempt_at = owner.now() + delay_s
            await owner.sleep(delay_s)

    # -- keep-alive ---------------------------------------------------------------------

    async def _probe(self) -> str | None:
        """One OPTIONS; None when answered, else why not."""
        try:
            targets = await self._resolve()
        except (SipError, ValueError, OSError) as error:
            return f"cannot resolve {self.settings.host}: {error}"
        target = targets[self._target_index % len(targets)]
        destination = Address(target.transport, target.host, target.port)
        local = self._local(destination)
        ids = self._owner.endpoint.ids
        user = self.settings.username or "boomerang"
        host = f"[{local.host}]" if ":" in local.host else local.host
        uri = trunk_uri(self.settings)
        request = self._base_request("OPTIONS", uri, local, call_id=ids.call_id(), cseq=1,
                                     from_uri=f"sip:{user}@{host}", from_tag=ids.tag(),
                                     to_uri=uri)
        result = await self._transact(request, destination)
        if isinstance(result, str):
            self._next_target()
            return result
        return None

    async def _keepalive_loop(self) -> None:
        owner = self._owner
        while True:
            failure = await self._probe()
            if failure is None:
                self._note_answered()
            else:
                self._note_unanswered(failure)
            await owner.sleep(self.settings.keepalive_s)

    def _note_answered(self) -> None:
        self._consecutive_failures = 0
        if self.reachable is not True:
            self.reachable = True
            log.info("call_id=%s trunk %s is up", self._call_id, self.name)
            self._owner.emit(TrunkWentUp(trunk=self.name, time=self._owner.now()))

    def _note_unanswered(self, reason: str) -> None:
        self._consecutive_failures += 1
        self.last_error = reason
        if self._consecutive_failures >= DOWN_AFTER_FAILURES and self.reachable is not False:
            self.reachable = False
            log.warning("call_id=%s trunk %s is down: %s", self._call_id, self.name, reason)
            self._owner.emit(TrunkWentDown(trunk=self.name, reason=reason,
                                           time=self._owner.now()))


class TrunkSet:
    """Every configured trunk, and the inbound checks that use them."""

    __slots__ = (
        "_trunks",
        "endpoint",
        "locator",
        "on_event",
        "random_draw",
        "refused_counts",
        "retry_base_s",
        "retry_max_s",
        "sip_settings",
        "sleep",
        "user_agent",
    )

    def __init__(
        self,
        config: Config,
        endpoint: Endpoint,
        *,
        locator: ServerLocator | None = None,
        on_event: Callable[[TrunkEvent], None] | None = None,
        sleep: Sleep = asyncio.sleep,
        random_draw: Callable[[], float] = random.random,
        retry_base_s: float = 30.0,
        retry_max_s: float = 1800.0,
    ) -> None:
        self.endpoint = endpoint
        self.locator = locator if locator is not None else ServerLocator()
        self.on_event = on_event
        self.sleep = sleep
        self.random_draw = random_draw
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.sip_settings = config.sip
        self.user_agent = config.sip.user_agent
        self.refused_counts: dict[str, int] = {}
        self._trunks: dict[str, Trunk] = {}
        for settings in config.trunks:
            self._trunks[settings.name] = Trunk(settings, self)

    # -- access ---------------------------------------------------------------------

    def __iter__(self) -> Iterator[Trunk]:
        return iter(self._trunks.values())

    def __len__(self) -> int:
        return len(self._trunks)

    def trunk(self, name: str) -> Trunk:
        """The trunk called ``name``; KeyError when there is none."""
        return self._trunks[name]

    def status(self) -> list[TrunkStatus]:
        return [trunk.status() for trunk in self._trunks.values()]

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def emit(self, event: TrunkEvent) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("the trunk event callback failed on %s", type(event).__name__)

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start registrations and keep-alives (the endpoint must be running)."""
        for trunk in self._trunks.values():
            trunk.start()

    async def close(self) -> None:
        """Stop every loop and unregister, while the endpoint still runs."""
        await asyncio.gather(*(trunk.close() for trunk in self._trunks.values()))

    # -- inbound ------------------------------------------------------------------------

    def note_refused(self, reason: str) -> None:
        self.refused_counts[reason] = self.refused_counts.get(reason, 0) + 1

    def trunk_for_source(self, source: Address) -> Trunk | None:
        """The trunk a request from ``source`` belongs to, or None (counted
        as ``unknown_source``)."""
        for trunk in self._trunks.values():
            if trunk.accepts_source(source):
                return trunk
        self.note_refused("unknown_source")
        return None

    def did_of(self, request: Request, trunk: Trunk) -> str:
        return did_of(request, trunk.settings)

    def install(self) -> None:
        """Screen INVITEs by source when no call layer has taken INVITE yet:
        403 from outside every trunk, the endpoint's previous answer otherwise."""
        if self._trunks and "INVITE" not in self.endpoint.handlers:
            self.endpoint.handlers["INVITE"] = self._screen_invite

    def _screen_invite(self, request: Request, transaction: TransactionKey,
                       source: Address) -> None:
        endpoint = self.endpoint
        if self.trunk_for_source(source) is None:
            log.info("call_id=%s INVITE from %s refused 403: not a trunk source",
                     request.call_id, source)
            endpoint.respond(request, 403)
            return
        status = endpoint.invite_policy(request)
        if status is None:
            endpoint.pending_invites[transaction] = request
        else:
            endpoint.respond(request, status)


__all__ = [
    "DOWN_AFTER_FAILURES",
    "REFRESH_FRACTION",
    "Trunk",
    "TrunkEvent",
    "TrunkSet",
    "TrunkStatus",
    "TrunkWentDown",
    "TrunkWentUp",
    "backoff_delay_s",
]
