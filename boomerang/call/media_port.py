"""The real ``MediaPort`` of a call leg: one RTP port for the leg's whole
life, taken from the media relay; SDP offer/answer with ``offer_answer``.

- ``RelayMediaPort.allocate()`` reserves the leg's port on the relay
  (``MediaRelay.allocate(media_key, leg_name)``) before the leg sends or
  answers any SDP. All legs that may be bridged together share one
  ``media_key`` (the story's correlation id); each has its own
  ``leg_name``.
- ``offer`` / ``answer`` / ``remote_answer`` (the ``MediaPort`` protocol,
  called synchronously by the leg) build our SDP and, once an exchange is
  complete, tell the relay what the peer's SDP said (``MediaRelay.update``,
  scheduled as a task: ``settled()`` waits for it).
- ``open_session()`` attaches a ``MediaSession`` (tones, digits) to the
  leg, on the leg's own relay socket: the relay hands every datagram of the
  leg to the session too (``PythonMediaRelay.set_tap``), while it keeps
  counting, latching and watching for the no-media timeout; the session
  sends through the same socket. ``hand_over()`` (at the bridge) stops the
  tone, tells the relay where our stream stopped (so the phone hears one
  continuous stream) and detaches the session. The socket is closed once,
  by the relay's ``release``.

Only ``PythonMediaRelay`` can carry a media session: with rtpengine the
leg's port is rtpengine's, and moving the leg between rtpengine and a
local session needs a re-INVITE, which is not done (``open_session``
raises ``MediaSessionError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

from ..media.relay import LegMedia, RelayError
from ..media.tones import ToneBank, TonePlan
from ..sip.offer_answer import (
    MediaCapabilities,
    NegotiatedMedia,
    build_answer,
    build_offer,
    negotiate_answer,
)
from ..sip.sdp import SdpError, SessionDescription
from ..transport.media_relay import MediaRelay, PythonMediaRelay
from ..transport.rtp_socket import RtpEndpoint, SocketPair
from .media_session import MediaSession, MediaSessionError
from .ports import LegView

log = logging.getLogger(__name__)

RandomBits = Callable[[int], int]


class _BorrowedSockets(SocketPair):
    """The relay's socket pair as a media session sees it: closing it only
    stops the session's use; the relay's ``release`` closes the sockets."""

    __slots__ = ("_released", "_shared")

    def __init__(self, shared: SocketPair) -> None:  # no super(): nothing of its own to bind
        self._shared = shared
        self._released = False
        self.local_address = shared.local_address
        self.port = shared.port
        self.rtp_transport = shared.rtp_transport
        self.rtcp_transport = shared.rtcp_transport

    @property
    def closed(self) -> bool:
        return self._released or self._shared.closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self._released = value

    def close(self) -> None:
        self._released = True


class RelayMediaPort:
    """SDP and media of one leg on a ``MediaRelay`` (see the module doc)."""

    __slots__ = (
        "_offer",
        "_pending",
        "_random_bits",
        "_session_id",
        "_version",
        "advertised_host",
        "capabilities",
        "leg_name",
        "local",
        "media_key",
        "negotiated",
        "relay",
        "session",
        "tone_bank",
        "tone_plan",
    )

    def __init__(self, relay: MediaRelay, *, media_key: str, leg_name: str,
                 capabilities: MediaCapabilities | None = None,
                 tone_bank: ToneBank | None = None, tone_plan: TonePlan | str = "pl",
                 random_bits: RandomBits = secrets.randbits,
                 advertised_host: str | None = None) -> None:
        """``advertised_host``: the address for our SDP when the relay is bound
        to a wildcard address (0.0.0.0 / ::) and no public address is set;
        the caller passes the one its Via and Contact use toward this leg's
        peer, so the peer sends media where it sends signalling."""
        self.relay = relay
        self.advertised_host = advertised_host
        self.media_key = media_key
        self.leg_name = leg_name
        self.capabilities = capabilities or MediaCapabilities()
        self.tone_bank = tone_bank
        self.tone_plan = tone_plan
        self.local: tuple[str, int] | None = None
        self.negotiated: NegotiatedMedia | None = None
        self.session: MediaSession | None = None
        self._random_bits = random_bits
        self._session_id = random_bits(31)
        self._version = 0
        self._offer: SessionDescription | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def allocate(self) -> tuple[str, int]:
        """Reserve the leg's RTP port (once); the (address, port) for our SDP."""
        if self.local is None:
            self.local = await self.relay.allocate(self.media_key, self.leg_name)
        return self.local

    # -- the MediaPort protocol ------------------------------------------------------

    def _where(self) -> tuple[str, int]:
        if self.local is None:
            raise SdpError(f"media {self.media_key}/{self.leg_name}: no port allocated",
                           status=500, reason="Server Internal Error")
        address, port = self.local
        if self.advertised_host is not None and address in ("0.0.0.0", "::"):
            return self.advertised_host, port
        return address, port

    def offer(self, leg: LegView, *, hold: bool = False) -> bytes:
        address, port = self._where()
        self._version += 1
        sdp = build_offer(self.capabilities, address, port, self._session_id, self._version,
                          "sendonly" if hold else "sendrecv")
        self._offer = sdp
        return sdp.serialize()

    def answer(self, leg: LegView, remote_offer: bytes) -> bytes:
        address, port = self._where()
        offer = SessionDescription.parse(remote_offer)
        self._version += 1
        sdp, negotiated = build_answer(offer, self.capabilities, address, port,
                                       self._session_id, self._version)
        self._apply(leg, negotiated)
        return sdp.serialize()

    def remote_answer(self, leg: LegView, sdp: bytes) -> None:
        if self._offer is None:
            raise SdpError(f"call_id={leg.call_id}: an answer without our offer")
        self._apply(leg, negotiate_answer(self._offer, SessionDescription.parse(sdp)))

    def _apply(self, leg: LegView, negotiated: NegotiatedMedia) -> None:
        self.negotiated = negotiated
        log.debug("call_id=%s media %s/%s -> %s:%d %s", leg.call_id, self.media_key,
                  self.leg_name, negotiated.remote_address, negotiated.remote_port,
                  negotiated.codec.name)
        task = asyncio.get_running_loop().create_task(self.relay.update(
            self.media_key, self.leg_name, LegMedia.from_negotiated(negotiated)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        if self.session is not None:
            self.session.configure(negotiated)

    async def settled(self) -> None:
        """Wait until the relay knows every SDP exchanged so far."""
        while self._pending:
            await asyncio.gather(*self._pending)

    # -- media session (tones and digits) ------------------------------------------------

    async def open_session(self) -> MediaSession:
        """A ``MediaSession`` on the leg's socket (once); configured as soon
        as the offer/answer is complete."""
        if self.session is not None:
            return self.session
        relay = self.relay
        if not isinstance(relay, PythonMediaRelay):
            raise MediaSessionError("media sessions need the Python relay (rtpengine would "
                                    "need a re-INVITE, not implemented)")
        if self.tone_bank is None:
            raise MediaSessionError("no tone bank given to the media port")
        await self.allocate()
        await self.settled()
        endpoint = RtpEndpoint(_BorrowedSockets(relay.leg_sockets(self.media_key,
                                                                 self.leg_name)),
                               clock=relay.clock)
        session = MediaSession(endpoint, call_id=self.media_key, tone_bank=self.tone_bank,
                               plan=self.tone_plan, random_bits=self._random_bits,
                               clock=relay.clock)
        relay.set_tap(self.media_key, self.leg_name, endpoint)
        if self.negotiated is not None:
            session.configure(self.negotiated)
        self.session = session
        return session

    async def hand_over(self) -> None:
        """Give the leg's media to the relay (the bridge): our tone stops,
        the relay continues its stream. Nothing to do without a session."""
        session = self.session
        if session is None:
            return
        self.session = None
        session.stop_tone(reason="bridged")
        relay = self.relay
        if isinstance(relay, PythonMediaRelay):
            relay.set_tap(self.media_key, self.leg_name, None)
        sender = session.sender
        if sender is not None and sender.packet_count:
            await relay.hand_over(
                self.media_key, self.leg_name, ssrc=sender.ssrc,
                last_sequence_number=(sender.sequence_number - 1) & 0xFFFF,
                last_timestamp=(sender.timestamp - sender.timestamp_step) & 0xFFFFFFFF,
                last_sent_at=session.tone_stopped_at or session.clock())
        session.close()

    def close(self) -> None:
        """Close the media session, if any (the relay's ``release`` frees the port)."""
        if self.session is not None:
            if isinstance(self.relay, PythonMediaRelay):
                with contextlib.suppress(RelayError, KeyError):  # already released
                    self.relay.set_tap(self.media_key, self.leg_name, None)
            self.session.close()
            self.session = None
        for task in self._pending:
            task.cancel()


__all__ = ["RelayMediaPort"]
