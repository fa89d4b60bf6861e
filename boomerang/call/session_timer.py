"""Session timers (RFC 4028): what a leg writes, how the interval is
agreed, and the one timer a live call keeps for it.

Negotiation, per request/response pair (the initial INVITE, and every
re-INVITE or UPDATE after it, is a refresh):

- UAC (§7): the request carries ``Supported: timer``, ``Session-Expires``
  (our interval, and ``refresher`` when we want a role) and ``Min-SE``.
  A 422 names the smallest interval the UAS takes (its ``Min-SE``): the
  request is sent again with that interval (``retry_after_422``). The 2xx
  decides: its ``Session-Expires`` gives the interval and the refresher.
  A 2xx without one (a UAS that does not do timers) leaves us refreshing at
  the interval we asked, with nobody watching: a refresh that fails with
  408/481 still ends a dead call.
- UAS (§9): a ``Session-Expires`` below our ``Min-SE`` is refused with 422
  and our ``Min-SE`` (``IntervalTooSmall``). Otherwise the interval is the
  offered one (lowered to our ``session_expires_s``, never under the
  request's ``Min-SE``), the refresher the one asked for, else ``uac`` when
  the UAC supports timers, else ``uas`` (us). A request without
  ``Session-Expires`` gets ours in the 2xx with ``refresher=uas``.
  ``Require: timer`` goes in the 2xx when the refresher is the UAC.

Once agreed (``SessionInterval``): the refresher refreshes at half the
interval; the other side sends BYE when no refresh came by
``interval - min(32, interval / 3)`` (§10).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..sip.errors import ParseError, SipError
from ..sip.grammar import format_params, get_param, parse_params, parse_uint, set_param
from ..sip.headers import CSeq
from ..sip.message import Request, Response
from .ports import Scheduler, TimerHandle

log = logging.getLogger(__name__)

MIN_SE_FLOOR_S = 90  # §4 and §5: no interval below 90 s
HeaderPairs = tuple[tuple[str, str], ...]


class Refresher(enum.StrEnum):
    UAC = "uac"
    UAS = "uas"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionTimerSettings:
    """Our session-timer policy: the interval we ask for, the least we accept
    (``min_se_s``, 422 below it), and the refresher we ask for as UAC
    (None: the UAS chooses)."""

    session_expires_s: int = 1800
    min_se_s: int = MIN_SE_FLOOR_S
    refresher: Refresher | None = None

    def __post_init__(self) -> None:
        if self.min_se_s < MIN_SE_FLOOR_S:
            raise ValueError(f"min_se_s must be at least {MIN_SE_FLOOR_S} (RFC 4028 §5)")
        if self.session_expires_s < self.min_se_s:
            raise ValueError("session_expires_s must not be below min_se_s")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionExpires:
    """A ``Session-Expires`` value: ``1800;refresher=uac``."""

    interval_s: int
    refresher: Refresher | None = None

    @classmethod
    def parse(cls, value: str) -> SessionExpires:
        number, _, rest = value.partition(";")
        params = parse_params(rest)
        refresher_text = get_param(params, "refresher")
        refresher: Refresher | None = None
        if refresher_text:
            try:
                refresher = Refresher(refresher_text.lower())
            except ValueError:
                raise ParseError(f"bad refresher {refresher_text[:20]!r}") from None
        return cls(interval_s=parse_uint(number, "Session-Expires"), refresher=refresher)

    def __str__(self) -> str:
        if self.refresher is None:
            return str(self.interval_s)
        return f"{self.interval_s}{format_params([('refresher', self.refresher.value)])}"


class IntervalTooSmall(SipError):
    """The offered Session-Expires is below our Min-SE: answer 422 with ``headers``."""

    status = 422
    reason = "Session Interval Too Small"

    def __init__(self, detail: str, *, min_se_s: int) -> None:
        super().__init__(detail)
        self.min_se_s = min_se_s

    @property
    def headers(self) -> HeaderPairs:
        return (("Min-SE", str(self.min_se_s)),)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionInterval:
    """The agreed interval and whether we are the refresher."""

    interval_s: int
    we_refresh: bool

    @property
    def refresh_after_s(self) -> float:
        """When the refresher sends its refresh (§10: half the interval)."""
        return self.interval_s / 2

    @property
    def expiry_after_s(self) -> float:
        """When the other side gives up and sends BYE (§10)."""
        return self.interval_s - min(32.0, self.interval_s / 3)


def session_expires_of(message: Request | Response) -> SessionExpires | None:
    value = message.headers.get("Session-Expires")
    return None if value is None else SessionExpires.parse(value)


def min_se_of(message: Request | Response) -> int | None:
    value = message.headers.get("Min-SE")
    return None if value is None else parse_uint(value.split(";")[0], "Min-SE")


def _supports_timer(message: Request | Response) -> bool:
    try:
        return "timer" in message.header_tokens("Supported")
    except ParseError:
        return False


def request_headers(settings: SessionTimerSettings, *, interval_s: int | None = None,
                    refresher: Refresher | None = None) -> HeaderPairs:
    """``Supported``, ``Session-Expires`` and ``Min-SE`` for an INVITE or UPDATE we send."""
    expires = SessionExpires(interval_s=interval_s or settings.session_expires_s,
                             refresher=refresher or settings.refresher)
    return (("Supported", "timer"), ("Session-Expires", str(expires)),
            ("Min-SE", str(settings.min_se_s)))


def negotiate_as_uas(request: Request, settings: SessionTimerSettings
                     ) -> tuple[SessionInterval, HeaderPairs]:
    """The interval for our 2xx to ``request`` and the headers that carry it.

    Raises IntervalTooSmall (422) or ParseError (400) for a bad header.
    """
    asked = session_expires_of(request)
    if asked is None:
        interval = SessionInterval(interval_s=settings.session_expires_s, we_refresh=True)
        expires = SessionExpires(interval_s=interval.interval_s, refresher=Refresher.UAS)
        return interval, (("Supported", "timer"), ("Session-Expires", str(expires)))
    if asked.interval_s < settings.min_se_s:
        raise IntervalTooSmall(f"Session-Expires {asked.interval_s} below our Min-SE",
                               min_se_s=settings.min_se_s)
    floor_s = max(min_se_of(request) or MIN_SE_FLOOR_S, settings.min_se_s)
    interval_s = max(min(asked.interval_s, settings.session_expires_s), floor_s)
    refresher = asked.refresher
    if refresher is None:
        refresher = Refresher.UAC if _supports_timer(request) else Refresher.UAS
    headers: HeaderPairs = (("Supported", "timer"),
                        ("Session-Expires", str(SessionExpires(interval_s=interval_s,
                                                               refresher=refresher))))
    if refresher is Refresher.UAC:
        headers = (*headers, ("Require", "timer"))
    return SessionInterval(interval_s=interval_s, we_refresh=refresher is Refresher.UAS), headers


def negotiate_as_uac(response: Response, asked_s: int) -> SessionInterval:
    """The interval a 2xx to our INVITE/UPDATE (which asked ``asked_s``) agreed."""
    given = session_expires_of(response)
    if given is None:
        return SessionInterval(interval_s=asked_s, we_refresh=True)
    return SessionInterval(interval_s=given.interval_s,
                           we_refresh=given.refresher is not Refresher.UAS)


def retry_after_422(request: Request, response: Response, *, branch: str) -> Request:
    """``request`` again (new branch, CSeq + 1) asking at least the 422's Min-SE.

    Raises SipError when the 422 names no usable Min-SE, or one we already asked.
    """
    min_se_s = min_se_of(response)
    asked = session_expires_of(request)
    if min_se_s is None or (asked is not None and min_se_s <= asked.interval_s):
        raise SipError("422 without a larger Min-SE", status=422)
    headers = request.headers.copy()
    refresher = asked.refresher if asked is not None else None
    headers.set("Session-Expires", str(SessionExpires(interval_s=min_se_s, refresher=refresher)))
    headers.set("Min-SE", str(min_se_s))
    for name in ("Authorization", "Proxy-Authorization"):
        headers.remove(name)  # their nonce-count would be replayed
    cseq = request.cseq
    headers.set("CSeq", str(CSeq(number=cseq.number + 1, method=cseq.method)))
    retried = Request(request.method, request.uri, headers, request.body,
                      version=request.version)
    top = request.top_via
    retried.replace_top_via(replace(top, params=set_param(top.params, "branch", branch)))
    return retried


def _nothing() -> None:
    """The callback of a closed SessionTimer."""


class SessionTimer:
    """The one timer of a live session: refresh due (we refresh) or the
    session expired (they refresh). Call ``start`` on every 2xx that agreed
    an interval (sent or received), ``stop`` when the call ends."""

    __slots__ = ("_handle", "call_id", "interval", "on_expired", "on_refresh_due", "scheduler")

    def __init__(self, *, scheduler: Scheduler, call_id: str,
                 on_refresh_due: Callable[[], None], on_expired: Callable[[], None]) -> None:
        self.scheduler = scheduler
        self.call_id = call_id
        self.on_refresh_due = on_refresh_due
        self.on_expired = on_expired
        self.interval: SessionInterval | None = None
        self._handle: TimerHandle | None = None

    def start(self, interval: SessionInterval) -> None:
        self.stop()
        self.interval = interval
        if interval.we_refresh:
            delay_s, callback = interval.refresh_after_s, self._refresh_due
        else:
            delay_s, callback = interval.expiry_after_s, self._expired
        log.debug("call_id=%s session interval %d s, %s in %.1f s", self.call_id,
                  interval.interval_s, "refresh" if interval.we_refresh else "expiry", delay_s)
        self._handle = self.scheduler.call_at(self.scheduler.time() + delay_s, callback)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def close(self) -> None:
        """Stop for good and let go of the callbacks: they are the leg's own
        methods, and holding them after the call keeps a leg <-> timer cycle
        that only the cyclic garbage collector could free."""
        self.stop()
        self.on_refresh_due = _nothing
        self.on_expired = _nothing

    def _refresh_due(self) -> None:
        self._handle = None
        self.on_refresh_due()

    def _expired(self) -> None:
        self._handle = None
        log.info("call_id=%s no session refresh in %s s: session expired", self.call_id,
                 self.interval.interval_s if self.interval else "?")
        self.on_expired()


__all__ = [
    "MIN_SE_FLOOR_S",
    "IntervalTooSmall",
    "Refresher",
    "SessionExpires",
    "SessionInterval",
    "SessionTimer",
    "SessionTimerSettings",
    "min_se_of",
    "negotiate_as_uac",
    "negotiate_as_uas",
    "request_headers",
    "retry_after_422",
    "session_expires_of",
]
