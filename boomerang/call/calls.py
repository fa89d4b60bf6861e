"""Thin asyncio wrappers over the sans-I/O legs: what a flow component uses.

``InboundCall`` wraps the ``UasLeg`` of an INVITE we received, and
``OutboundCall`` the ``UacLeg`` (one per contact when forking) of a call we
place. Both are built by listening to the legs' call-control events; they
never read a SIP message.

- Both: ``ended`` (a future of the ``EndCause``), ``hangup()``, and media
  where Boomerang terminates the call itself (before a bridge): ``await
  attach_media_session()`` gives the leg's ``MediaSession`` (tones,
  prompts, digits; see media_session.py), then ``play_tone(name)``,
  ``stop_tone()`` and ``digits()`` are shortcuts to it. SIP INFO DTMF
  (``application/dtmf-relay``, ``application/dtmf``) of the leg goes to
  its session, merged there with RFC 4733 and in-band digits.
- ``InboundCall``: ``ring()``, ``progress()``, ``await answer()`` (returns
  once the ACK arrived; raises ``CallEndedError`` if the call ended first),
  ``reject(status, cause)``.
- ``OutboundCall``: ``await outcome()`` resolves when a fork answers
  (``Outcome.ANSWERED``) or when every fork ended (the best failure:
  busy first). Cancelling the task awaiting ``outcome()`` sends CANCEL
  to every fork. The first fork to answer wins; the others get CANCEL.
  ``hangup()`` ends the call whatever its state. Its media is the
  answered fork's: attach a session after the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from ..media.digits import DigitEvent
from ..media.dtmf_info import DtmfBodyError, is_dtmf_content_type, parse_dtmf_info
from ..sip.address import Address
from .b2bua import end_leg
from .events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRinging,
    EndCause,
    InfoReceived,
    Outcome,
)
from .leg import CallLeg
from .media_port import RelayMediaPort
from .media_session import MediaSession, MediaSessionError
from .uac_leg import UacLeg
from .uas_leg import UasLeg

log = logging.getLogger(__name__)

# Which failure of several forks tells the caller most (RFC 3261 §16.7 in spirit).
_FAILURE_RANK = {Outcome.BUSY: 0, Outcome.REJECTED: 1, Outcome.NO_ANSWER: 2,
                 Outcome.FAILED: 3, Outcome.CANCELLED: 4}

ANSWERED = EndCause(outcome=Outcome.ANSWERED, sip_status=200)


class CallEndedError(Exception):
    """The call ended before what was awaited happened; ``status`` is the
    SIP status that tells why (480 when there was none)."""

    def __init__(self, cause: EndCause) -> None:
        super().__init__(f"call ended: {cause.outcome}")
        self.cause = cause
        self.status = cause.sip_status or 480


class _Call:
    """What both wrappers share: futures fed by leg events, media, listeners."""

    __slots__ = ("_answered", "answered_at", "correlation_id", "ended", "ended_at",
                 "listeners", "owner_extension", "started_at")

    def __init__(self, *, correlation_id: str, owner_extension: str | None,
                 started_at: float) -> None:
        loop = asyncio.get_running_loop()
        self.correlation_id = correlation_id
        self.owner_extension = owner_extension
        self.started_at = started_at
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self._answered: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[EndCause] = loop.create_future()
        self.listeners: list[Callable[[CallEvent], None]] = []

    @property
    def is_answered(self) -> bool:
        return self._answered.done()

    def _set_answered(self, when: float) -> None:
        if not self._answered.done():
            self.answered_at = when
            self._answered.set_result(None)

    def _set_ended(self, cause: EndCause, when: float) -> None:
        if not self.ended.done():
            self.ended_at = when
            self.ended.set_result(cause)
        if not self._answered.done():
            self._answered.set_exception(CallEndedError(cause))
            self._answered.exception()  # retrieved: nobody may be waiting

    def _tell(self, event: CallEvent) -> None:
        for listener in list(self.listeners):
            listener(event)

    # -- media (the subclasses say which port) ---------------------------------------

    @property
    def call_id(self) -> str:
        raise NotImplementedError

    def _port(self) -> RelayMediaPort:
        raise NotImplementedError

    def _info(self, event: InfoReceived, port: RelayMediaPort) -> None:
        """A DTMF INFO of the leg of ``port`` goes to its session, if any."""
        session = port.session
        if session is None or not event.content_type \
                or not is_dtmf_content_type(event.content_type):
            return
        try:
            session.info_digit(parse_dtmf_info(event.content_type, event.body))
        except DtmfBodyError as error:
            log.info("call_id=%s INFO not a digit: %s", event.call_id, error.detail)

    async def attach_media_session(self) -> MediaSession:
        """The leg's media session (opened once; the same one afterwards)."""
        return await self._port().open_session()

    @property
    def session(self) -> MediaSession | None:
        """The media session attached, None before ``attach_media_session``
        or after the bridge took the media over."""
        return self._port().session

    def _session(self) -> MediaSession:
        session = self._port().session
        if session is None:
            raise MediaSessionError(f"call_id={self.call_id}: no media session attached")
        return session

    def play_tone(self, name: str = "dial") -> None:
        self._session().play_tone(name)

    def stop_tone(self) -> None:
        self._session().stop_tone()

    async def digits(self) -> AsyncIterator[DigitEvent]:
        """Starts a digit collection; yields digits until it ends."""
        session = self._session()
        session.start_collecting()
        async for event in session.digits():
            yield event


class InboundCall(_Call):
    """An INVITE we received (see the module doc)."""

    __slots__ = ("leg", "media", "source")

    def __init__(self, leg: UasLeg, media: RelayMediaPort, *, correlation_id: str,
                 source: Address, owner_extension: str | None = None) -> None:
        super().__init__(correlation_id=correlation_id, owner_extension=owner_extension,
                         started_at=leg.scheduler.time())
        self.leg = leg
        self.media = media
        self.source = source
        leg.add_listener(self._on_event)

    @property
    def call_id(self) -> str:
        return self.leg.call_id

    def _port(self) -> RelayMediaPort:
        return self.media

    def _on_event(self, event: CallEvent) -> None:
        if isinstance(event, CallAnswered):
            self._set_answered(event.time)
        elif isinstance(event, CallEnded):
            self._set_ended(event.cause, event.time)
        elif isinstance(event, InfoReceived):
            self._info(event, self.media)
        self._tell(event)

    # -- the calls ---------------------------------------------------------------------

    def ring(self) -> None:
        self.leg.ring()

    def progress(self) -> None:
        self.leg.progress()

    async def answer(self) -> None:
        """Send 200 with our SDP and wait for the ACK; CallEndedError when
        the call ended first (CANCEL, no ACK...)."""
        if self.ended.done():
            raise CallEndedError(self.ended.result())
        await self.media.allocate()
        if not self.leg.answered:
            self.leg.answer()
        await asyncio.shield(self._answered)

    def reject(self, status: int = 486, cause: EndCause | None = None) -> None:
        if not self.leg.ended:
            self.leg.reject(status, cause=cause)

    def hangup(self, cause: EndCause | None = None) -> None:
        """End the call the way its state needs (reject before the answer, BYE after)."""
        if not self.leg.ended:
            end_leg(self.leg, cause)


class OutboundCall(_Call):
    """A call we place, to one or several contacts at once (see the module doc)."""

    __slots__ = ("_outcome", "forks", "media_of", "target", "winner")

    def __init__(self, forks: list[tuple[UacLeg, RelayMediaPort]], *, correlation_id: str,
                 target: str, owner_extension: str | None = None) -> None:
        if not forks:
            raise ValueError("an outbound call needs at least one leg")
        super().__init__(correlation_id=correlation_id, owner_extension=owner_extension,
                         started_at=forks[0][0].scheduler.time())
        self.target = target
        self.forks = [leg for leg, _ in forks]
        self.media_of = {id(leg): media for leg, media in forks}
        self.winner: UacLeg | None = None
        self._outcome: asyncio.Future[EndCause] = asyncio.get_running_loop().create_future()
        for leg in self.forks:
            leg.add_listener(self._listener_for(leg))

    @property
    def leg(self) -> UacLeg:
        """The answered fork (the only one when not forking)."""
        return self.winner if self.winner is not None else self.forks[0]

    @property
    def media(self) -> RelayMediaPort:
        return self.media_of[id(self.leg)]

    @property
    def call_id(self) -> str:
        return self.leg.call_id

    def _port(self) -> RelayMediaPort:
        return self.media

    def _listener_for(self, leg: UacLeg) -> Callable[[CallEvent], None]:
        return lambda event: self._on_event(leg, event)

    def _on_event(self, leg: UacLeg, event: CallEvent) -> None:
        if isinstance(event, CallAnswered):
            if self.winner is None:
                self.winner = leg
                self._set_answered(event.time)
                if not self._outcome.done():
                    self._outcome.set_result(ANSWERED)
                for other in self.forks:
                    if other is not leg and not other.ended:
                        log.info("call_id=%s answered elsewhere (call_id=%s): CANCEL",
                                 other.call_id, leg.call_id)
                        other.cancel()
        elif isinstance(event, CallEnded):
            if leg is self.winner:
                self._finish(event.cause, event.time)
            elif self.winner is None and all(fork.ended for fork in self.forks):
                causes = [fork.end_cause for fork in self.forks if fork.end_cause is not None]
                self._finish(min(causes, key=lambda c: _FAILURE_RANK.get(c.outcome, 9)),
                             event.time)
            if self.winner is not None and leg is not self.winner:
                return  # a losing fork: nobody above cares
        elif isinstance(event, CallRinging | InfoReceived) and self.winner is not None \
                and leg is not self.winner:
            return
        if isinstance(event, InfoReceived):
            self._info(event, self.media_of[id(leg)])
        self._tell(event)

    def _finish(self, cause: EndCause, when: float) -> None:
        if not self._outcome.done():
            self._outcome.set_result(cause)
        self._set_ended(cause, when)

    async def outcome(self) -> EndCause:
        """``Outcome.ANSWERED`` (status 200) at the answer, else why it ended.
        Cancelling the awaiting task sends CANCEL."""
        try:
            return await asyncio.shield(self._outcome)
        except asyncio.CancelledError:
            if not self._outcome.done():
                self.cancel()
            raise

    def cancel(self, cause: EndCause | None = None) -> None:
        """Give up ringing: CANCEL every fork still ringing."""
        for leg in self.forks:
            if not leg.ended:
                leg.cancel(cause)

    def hangup(self, cause: EndCause | None = None) -> None:
        """BYE once answered, CANCEL before."""
        if self.winner is not None:
            if not self.winner.ended:
                end_leg(self.winner, cause)
        else:
            self.cancel(cause)


AnyCall = InboundCall | OutboundCall


def leg_of(call: AnyCall) -> CallLeg:
    return call.leg


__all__ = ["ANSWERED", "AnyCall", "CallEndedError", "InboundCall", "OutboundCall", "leg_of"]
