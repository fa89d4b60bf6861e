"""The registrar (RFC 3261 §10.3, RFC 3327 Path, RFC 5626 keep-alive basics).

``Registrar`` takes REGISTER requests from the endpoint
(``endpoint.handlers["REGISTER"]``), keeps the location service
(``location.py``) in memory, writes every change to the store first (so
bindings survive a restart: ``start`` loads the unexpired ones), and pings
each binding with OPTIONS every ``keepalive_s``.

Decisions, in the order of RFC 3261 §10.3:

| case                                              | answer                               |
|---------------------------------------------------|--------------------------------------|
| no, bad or stale credentials; unknown user        | 401 + fresh challenge (stale=true    |
|                                                   | for a stale nonce); identical for    |
|                                                   | known and unknown users              |
| To user is not the authenticated user             | 403                                  |
| ``Contact: *`` with other contacts or Expires != 0| 400                                  |
| 0 < expires < min_expires_s                       | 423 with Min-Expires; nothing changes|
| expires > max_expires_s                           | lowered to max_expires_s             |
| same Call-ID, CSeq not higher than the binding's  | 500; nothing changes (§10.3 step 7)  |
| more contacts in one request than max_contacts    | 403                                  |
| an extension past max_contacts after the update   | its least recently refreshed other   |
|                                                   | bindings are dropped (a phone that   |
|                                                   | changed address must not be locked   |
|                                                   | out by its own stale bindings)       |
| otherwise                                         | 200 listing every binding with its   |
|                                                   | remaining expires; Path echoed when  |
|                                                   | the phone sent ``Supported: path``   |

The expiry of a contact is its ``expires`` parameter, else the Expires
header, else ``default_expires_s``. Path values are stored whether or not the
phone supports path, and always used to route to it.

Keep-alive: any response to the OPTIONS, even 404 or 405, proves the contact
alive; ``keepalive_failures`` timeouts or transport errors in a row remove
it. RFC 5626 CRLF pings from phones are answered by the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..sip.address import Address
from ..sip.auth import DigestServer
from ..sip.errors import SipError
from ..sip.headers import NameAddr
from ..sip.message import Request
from ..sip.transaction.events import (
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from ..sip.uri import SipUri
from .location import Binding, Location, binding_key

if TYPE_CHECKING:
    from ..app import ClientEvent, Endpoint
    from ..store import Store
    from ..store.models import Registration

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 5.0
PING_ABANDON_S = 64.0  # a ping neither answered nor timed out by then is a failure


class ExtensionAccount(Protocol):
    """What the registrar needs of ``config.ExtensionSettings``."""

    @property
    def number(self) -> str: ...

    @property
    def password(self) -> str | None: ...

    @property
    def max_contacts(self) -> int: ...


class RegistrarPolicy(Protocol):
    """What the registrar needs of ``config.RegistrarSettings``."""

    @property
    def min_expires_s(self) -> int: ...

    @property
    def max_expires_s(self) -> int: ...

    @property
    def default_expires_s(self) -> int: ...

    @property
    def keepalive_s(self) -> float: ...

    @property
    def keepalive_failures(self) -> int: ...


AccountLookup = Callable[[str], ExtensionAccount | None]


# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactRegistered:
    """A binding was added (``refreshed`` False) or renewed."""

    binding: Binding
    refreshed: bool
    time: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactUnregistered:
    """A binding went away. ``reason``: ``unregistered`` (Expires 0 or ``*``),
    ``expired``, ``keepalive_failed`` or ``replaced`` (past max_contacts)."""

    binding: Binding
    reason: str
    time: float


RegistrarEvent = ContactRegistered | ContactUnregistered


class RegistrationRefused(SipError):
    """The REGISTER cannot be applied; answer ``status`` with ``headers``."""

    def __init__(self, detail: str, *, status: int,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(detail, status=status)
        self.headers = headers


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """The changes one REGISTER makes, decided before any is applied."""

    put: tuple[Binding, ...]
    remove: tuple[tuple[Binding, str], ...]  # (binding, reason)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _to_registration(binding: Binding) -> Registration:
    from ..store.models import Registration

    return Registration(
        extension=binding.extension, contact_uri=binding.contact_uri,
        transport=binding.source.transport, source_host=binding.source.host,
        source_port=binding.source.port, expires_at=_utc(binding.expires_at),
        call_id=binding.call_id, cseq=binding.cseq, path=binding.path,
        user_agent=binding.user_agent, q=binding.q, instance_id=binding.instance_id,
        reg_id=binding.reg_id, updated_at=_utc(binding.registered_at))


def _from_registration(row: Registration) -> Binding:
    return Binding(
        extension=row.extension, contact_uri=row.contact_uri,
        source=Address(row.transport, row.source_host, row.source_port),
        expires_at=row.expires_at.timestamp(),
        registered_at=(row.updated_at or row.expires_at).timestamp(),
        call_id=row.call_id, cseq=row.cseq, path=tuple(row.path), user_agent=row.user_agent,
        q=row.q, instance_id=row.instance_id, reg_id=row.reg_id)


def _instance_and_reg_id(contact: NameAddr) -> tuple[str | None, int | None]:
    instance = contact.param("+sip.instance")
    reg_id_text = contact.param("reg-id")
    if instance is not None:
        instance = instance.strip('"')
    reg_id = int(reg_id_text) if reg_id_text is not None and reg_id_text.isdigit() else None
    return instance, reg_id


def _contact_value(binding: Binding, now: float) -> str:
    params = f";expires={binding.expires_in_s(now)}"
    if binding.q is not None:
        params += f";q={binding.q:g}"
    if binding.instance_id is not None:
        params += f';+sip.instance="{binding.instance_id}"'
    if binding.reg_id is not None:
        params += f";reg-id={binding.reg_id}"
    return f"<{binding.contact_uri}>{params}"


class Registrar:
    """REGISTER handling, the location service and contact keep-alive."""

    __slots__ = (
        "_accounts",
        "_closing",
        "_digest",
        "_endpoint",
        "_failures",
        "_in_flight",
        "_locks",
        "_on_event",
        "_owns_store",
        "_store",
        "_tasks",
        "_timer",
        "_wall_clock",
        "location",
        "settings",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        accounts: AccountLookup,
        settings: RegistrarPolicy,
        digest: DigestServer | None = None,
        store: Store | None = None,
        wall_clock: Callable[[], float] = time.time,
        on_event: Callable[[RegistrarEvent], None] | None = None,
    ) -> None:
        if digest is None:
            if not isinstance(endpoint.challenger, DigestServer):
                raise TypeError("the registrar needs a DigestServer to verify credentials")
            digest = endpoint.challenger
        self._endpoint = endpoint
        self._accounts = accounts
        self.settings = settings
        self._digest = digest
        self._store = store
        self._wall_clock = wall_clock
        self._on_event = on_event
        self.location = Location()
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Future[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        # (extension, key) -> consecutive unanswered pings / when the ping in flight left
        self._failures: dict[tuple[str, str], int] = {}
        self._in_flight: dict[tuple[str, str], float] = {}
        self._closing = False
        self._owns_store = False

    @classmethod
    def for_config(
        cls,
        endpoint: Endpoint,
        *,
        store: Store | None = None,
        digest: DigestServer | None = None,
        wall_clock: Callable[[], float] = time.time,
        on_event: Callable[[RegistrarEvent], None] | None = None,
    ) -> Registrar:
        """A registrar for the endpoint's config: ``extensions`` and ``registrar``."""
        config = endpoint.config
        return cls(endpoint, accounts=config.extension, settings=config.registrar,
                   digest=digest, store=store, wall_clock=wall_clock, on_event=on_event)

    # -- life cycle -----------------------------------------------------------------

    async def start(self) -> int:
        """Load the unexpired bindings from the store, take REGISTER requests,
        start the keep-alive timer; returns how many bindings were loaded."""
        loaded = 0
        if self._store is not None:
            now = self._wall_clock()
            await self._store.registrations.expire(_utc(now))
            for row in await self._store.registrations.list_all(_utc(now)):
                self.location.put(_from_registration(row))
                loaded += 1
            log.info("%d registration(s) loaded from the store", loaded)
        self._endpoint.handlers["REGISTER"] = self.handle_register
        self._arm()
        return loaded

    async def close(self) -> None:
        """Stop the timer, stop taking REGISTER, finish the store writes under way."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._endpoint.handlers.get("REGISTER") == self.handle_register:
            del self._endpoint.handlers["REGISTER"]
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=CLOSE_WAIT_S)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._owns_store and self._store is not None:
            await self._store.close()

    # -- the location service API -------------------------------------------------------

    @property
    def store(self) -> Store | None:
        """The store the bindings are written to (the call records' too, in ``serve``)."""
        return self._store

    def contacts_for(self, extension: str) -> list[Binding]:
        """Live bindings of ``extension``: highest q first, then most recent."""
        return self.location.bindings(extension, self._wall_clock())

    def is_registered(self, extension: str) -> bool:
        return bool(self.contacts_for(extension))

    # -- REGISTER -------------------------------------------------------------------------

    def _password_for(self, username: str) -> str | None:
        account = self._accounts(username)
        return None if account is None else account.password

    def handle_register(self, request: Request, transaction: TransactionKey,
                        source: Address) -> None:
        """The endpoint handler: authenticate now, apply in a task (store first)."""
        call_id = request.call_id
        now = self._wall_clock()
        result = self._digest.verify(request, self._password_for, now)
        if not result.ok:
            if result.reason != "missing":
                log.info("call_id=%s REGISTER from %s for %r refused: %s", call_id, source,
                         result.username, result.reason)
            challenge = self._digest.challenge(now, stale=result.stale)
            self._endpoint.respond(request, result.respond_status,
                                   tuple((result.challenge_header, c) for c in challenge))
            return
        username = result.username or ""
        to_uri = request.to.uri
        to_user = to_uri.user_unescaped if isinstance(to_uri, SipUri) else None
        account = self._accounts(username)
        if to_user != username or account is None:
            log.info("call_id=%s REGISTER from %s: %r may not register %r", call_id, source,
                     username, to_user)
            self._endpoint.respond(request, 403)
            return
        self._spawn(self._register(request, source, account))

    async def _register(self, request: Request, source: Address,
                        account: ExtensionAccount) -> None:
        extension = account.number
        call_id = request.call_id
        lock = self._locks.setdefault(extension, asyncio.Lock())
        async with lock:
            now = self._wall_clock()
            try:
                supports_path = "path" in request.header_tokens("Supported")
                plan = self._plan(request, source, account, now)
                await self._persist(plan)
            except RegistrationRefused as refused:
                log.info("call_id=%s REGISTER %s from %s refused %d: %s", call_id, extension,
                         source, refused.status, refused.detail)
                self._endpoint.respond(request, refused.status, refused.headers)
                return
            except SipError as error:
                log.info("call_id=%s REGISTER %s from %s: %s", call_id, extension, source,
                         error.detail)
                self._endpoint.respond(request, error.status)
                return
            except Exception:
                log.exception("call_id=%s REGISTER %s: the store failed", call_id, extension)
                self._endpoint.respond(request, 500)
                return
            self._apply(plan, now)
            headers: list[tuple[str, str]] = [
                ("Contact", _contact_value(b, now))
                for b in self.location.bindings(extension, now)]
            if supports_path:
                headers.extend(("Path", value) for value in request.headers.values("Path"))
            headers.append(("Date", email.utils.formatdate(now, usegmt=True)))
            self._endpoint.respond(request, 200, tuple(headers))
            log.info("call_id=%s REGISTER %s from %s: %d binding(s) now", call_id,
                     extension, source, len(self.location.bindings(extension, now)))

    def _plan(self, request: Request, source: Address, account: ExtensionAccount,
              now: float) -> _Plan:
        extension = account.number
        settings = self.settings
        call_id = request.call_id
        cseq = request.cseq.number
        current = {b.key: b for b in self.location.bindings(extension, now)}
        header_expires = request.expires
        if request.contact_star:
            if request.contacts or header_expires != 0:
                raise RegistrationRefused("Contact: * needs Expires: 0 and no other contact",
                                          status=400)
            for binding in current.values():
                self._check_order(binding, call_id, cseq)
            return _Plan(put=(), remove=tuple((b, "unregistered") for b in current.values()))
        contacts = request.contacts
        if len(contacts) > account.max_contacts:
            raise RegistrationRefused(
                f"{len(contacts)} contacts, at most {account.max_contacts} allowed", status=403)
        path = tuple(request.headers.values("Path"))
        user_agent = request.headers.get("User-Agent")
        put: dict[str, Binding] = {}
        remove: dict[str, tuple[Binding, str]] = {}
        for contact in contacts:
            expires = contact.expires
            if expires is None:
                expires = header_expires if header_expires is not None \
                    else settings.default_expires_s
            if 0 < expires < settings.min_expires_s:
                raise RegistrationRefused(
                    f"expires {expires} s is below {settings.min_expires_s} s", status=423,
                    headers=(("Min-Expires", str(settings.min_expires_s)),))
            expires = min(expires, settings.max_expires_s)
            instance_id, reg_id = _instance_and_reg_id(contact)
            uri = str(contact.uri)
            key = binding_key(uri, instance_id, reg_id)
            existing = current.get(key)
            if existing is not None:
                self._check_order(existing, call_id, cseq)
            if expires == 0:
                put.pop(key, None)
                if existing is not None:
                    remove[key] = (existing, "unregistered")
                continue
            remove.pop(key, None)
            put[key] = Binding(
                extension=extension, contact_uri=uri, source=source, expires_at=now + expires,
                registered_at=now, call_id=call_id, cseq=cseq, path=path,
                user_agent=user_agent, q=contact.q, instance_id=instance_id, reg_id=reg_id)
        # past max_contacts: drop the least recently refreshed of the others
        kept = [b for k, b in current.items() if k not in put and k not in remove]
        overflow = len(kept) + len(put) - account.max_contacts
        if overflow > 0:
            kept.sort(key=lambda b: b.registered_at)
            for binding in kept[:overflow]:
                remove[binding.key] = (binding, "replaced")
        return _Plan(put=tuple(put.values()), remove=tuple(remove.values()))

    @staticmethod
    def _check_order(binding: Binding, call_id: str, cseq: int) -> None:
        if binding.call_id == call_id and cseq <= binding.cseq:
            raise RegistrationRefused(
                f"CSeq {cseq} is not above {binding.cseq} of the binding {binding.contact_uri}",
                status=500)

    async def _persist(self, plan: _Plan) -> None:
        store = self._store
        if store is None:
            return
        for binding, _ in plan.remove:
            await store.registrations.remove(binding.extension, binding.key)
        for binding in plan.put:
            await store.registrations.upsert(_to_registration(binding))

    def _apply(self, plan: _Plan, now: float) -> None:
        for binding, reason in plan.remove:
            self._forget(binding, reason, now)
        for binding in plan.put:
            old = self.location.put(binding)
            self._failures.pop((binding.extension, binding.key), None)
            self._emit(ContactRegistered(binding=binding, refreshed=old is not None, time=now))

    def _forget(self, binding: Binding, reason: str, now: float) -> None:
        removed = self.location.remove(binding.extension, binding.key)
        self._failures.pop((binding.extension, binding.key), None)
        if removed is not None:
            log.info("call_id=%s %s contact %s removed: %s", removed.call_id, removed.extension,
                     removed.contact_uri, reason)
            self._emit(ContactUnregistered(binding=removed, reason=reason, time=now))

    def _emit(self, event: RegistrarEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def _spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- keep-alive and expiry ------------------------------------------------------------

    def _arm(self) -> None:
        interval = self.settings.keepalive_s
        if self._closing:
            return
        if interval <= 0:
            # no pings, but expired bindings are still swept
            interval = float(max(1, self.settings.min_expires_s))
        self._timer = asyncio.get_running_loop().call_later(interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self._wall_clock()
        try:
            self.sweep(now)
            if self.settings.keepalive_s > 0:
                for binding in self.location.all():
                    self._ping(binding, now)
        finally:
            self._arm()

    def sweep(self, now: float) -> int:
        """Drop expired bindings (memory now, the store in a task); how many."""
        expired = self.location.pop_expired(now)
        for binding in expired:
            self._failures.pop((binding.extension, binding.key), None)
            log.info("call_id=%s %s contact %s expired", binding.call_id, binding.extension,
                     binding.contact_uri)
            self._emit(ContactUnregistered(binding=binding, reason="expired", time=now))
        if expired and self._store is not None:
            self._spawn(self._store.registrations.expire(_utc(now)))
        return len(expired)

    def _ping(self, binding: Binding, now: float) -> None:
        slot = (binding.extension, binding.key)
        sent_at = self._in_flight.get(slot)
        if sent_at is not None:
            if now - sent_at < PING_ABANDON_S:
                return
            del self._in_flight[slot]
            self._ping_failed(slot, binding.call_id, now)
            return
        destination = binding.destination
        request = self._options_for(binding, destination)
        if request is None:
            return
        self._in_flight[slot] = now
        ping_call_id = request.call_id

        def on_event(event: ClientEvent) -> None:
            if isinstance(event, ResponseReceived):
                self._failures.pop(slot, None)
            elif isinstance(event, TransactionTimedOut | TransportErrorOccurred):
                self._ping_failed(slot, ping_call_id, self._wall_clock())
            elif isinstance(event, TransactionTerminated):
                self._in_flight.pop(slot, None)

        try:
            self._endpoint.send_request(request, destination, on_event)
        except (OSError, SipError) as error:
            self._in_flight.pop(slot, None)
            log.info("call_id=%s OPTIONS to %s failed: %s", ping_call_id, destination, error)
            self._ping_failed(slot, ping_call_id, now)

    def _ping_failed(self, slot: tuple[str, str], call_id: str, now: float) -> None:
        binding = self.location.get(*slot)
        if binding is None:
            return
        failures = self._failures.get(slot, 0) + 1
        self._failures[slot] = failures
        log.info("call_id=%s keep-alive to %s contact %s unanswered (%d/%d)", call_id,
                 binding.extension, binding.contact_uri, failures,
                 self.settings.keepalive_failures)
        if failures >= self.settings.keepalive_failures:
            self._forget(binding, "keepalive_failed", now)
            if self._store is not None:
                self._spawn(self._store.registrations.remove(binding.extension, binding.key))

    def _options_for(self, binding: Binding, destination: Address) -> Request | None:
        driver = self._endpoint.driver
        if driver is None:
            return None
        local = next((a for a in driver.listening if a.transport == destination.transport),
                     None)
        if local is None:
            return None
        host = _advertised_host(local.host, self._endpoint.config.sip.public_address,
                                destination.host)
        ids = self._endpoint.ids
        sent_by = f"[{host}]" if ":" in host else host
        headers = [
            ("Via", f"SIP/2.0/{destination.transport.upper()} {sent_by}:{local.port};"
                    f"branch={ids.branch()};rport"),
            ("Max-Forwards", "70"),
            *(("Route", value) for value in binding.route_set),
            ("From", f"<sip:{sent_by}:{local.port}>;tag={ids.tag()}"),
            ("To", f"<{binding.contact_uri}>"),
            ("Call-ID", ids.call_id()),
            ("CSeq", "1 OPTIONS"),
            ("Accept", "application/sdp"),
        ]
        return Request("OPTIONS", binding.contact_uri, headers)


async def open_registrar(endpoint: Endpoint, store: Store | None = None) -> Registrar | None:
    """For ``serve``: a started registrar, or None when the config has no
    extensions. On ``store`` when given (the caller closes it), else on its
    own store of ``config.database`` which ``close()`` closes."""
    config = endpoint.config
    if not config.extensions or "REGISTER" in endpoint.handlers:
        return None
    owns_store = store is None
    if store is None:
        from ..store import open_store

        store = await open_store(config.database.url)
    registrar = Registrar.for_config(endpoint, store=store)
    registrar._owns_store = owns_store
    try:
        await registrar.start()
    except BaseException:
        await registrar.close()
        raise
    return registrar


def _advertised_host(listen_host: str, public_address: str, destination_host: str) -> str:
    """The host for our Via: the listen address, unless it is a wildcard."""
    try:
        unspecified = ipaddress.ip_address(listen_host).is_unspecified
    except ValueError:
        unspecified = False
    if not unspecified:
        return listen_host
    if public_address != "auto":
        return public_address.strip("[]")
    # a wildcard listener: loopback peers are reached from loopback
    try:
        if ipaddress.ip_address(destination_host).is_loopback:
            return destination_host
    except ValueError:
        pass
    return listen_host


__all__ = [
    "AccountLookup",
    "ContactRegistered",
    "ContactUnregistered",
    "ExtensionAccount",
    "Registrar",
    "RegistrarEvent",
    "RegistrarPolicy",
    "RegistrationRefused",
    "open_registrar",
]
