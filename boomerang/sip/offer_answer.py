"""RFC 3264 offer/answer for one audio stream.

We speak PCMU (PT 0), PCMA (8) and G722 (9; RTP clock 8000 though it
samples at 16 kHz, RFC 3551 §4.5.2), plus RFC 4733 telephone-event on a
dynamic payload type. One audio stream is used; any other m-line of an offer
(video, a second audio stream, SRTP profiles...) is rejected with port 0 and
keeps its position (RFC 3264 §6).

Directions follow the table of RFC 3264 §6.1, written here as bits: the
answerer sends only if it wants to and the offerer receives, and receives
only if it wants to and the offerer sends. An offer whose connection
address is ``0.0.0.0`` (RFC 2543 hold, §8.4) is taken as "do not send to me".
"""

from __future__ import annotations

from dataclasses import dataclass

from .sdp import (
    Attribute,
    Codec,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
    Timing,
    not_acceptable,
)

PCMU = Codec("PCMU", 8000, 0)
PCMA = Codec("PCMA", 8000, 8)
G722 = Codec("G722", 8000, 9)

TELEPHONE_EVENT = "telephone-event"
TELEPHONE_EVENT_CLOCK_RATE = 8000
# RFC 4733 events we handle: DTMF 0-9 * # A-D (0-15) and flash (16).
SUPPORTED_EVENTS = frozenset(range(17))
_MAX_EVENT = 255
_AUDIO_PROTOCOLS = frozenset({"RTP/AVP", "RTP/AVPF"})


@dataclass(frozen=True, slots=True)
class MediaCapabilities:
    """What we can do: audio codecs in our preference order, DTMF, packetisation."""

    codecs: tuple[Codec, ...] = (PCMU, PCMA)
    telephone_event: bool = True
    telephone_event_payload_type: int = 101
    ptime_ms: int = 20

    def __post_init__(self) -> None:
        if not self.codecs:
            raise ValueError("MediaCapabilities needs at least one codec")
        if not 96 <= self.telephone_event_payload_type <= 127:
            raise ValueError("telephone-event needs a dynamic payload type (96-127)")

    def find(self, codec: Codec) -> Codec | None:
        for ours in self.codecs:
            if ours.same_format(codec):
                return ours
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class NegotiatedMedia:
    """The outcome of an offer/answer exchange for our audio stream.

    ``direction`` is ours (``sendonly`` means we send and do not receive).
    ``held_by_remote`` tells that the peer does not want our media
    (sendonly, inactive or the old ``c=0.0.0.0``): it has put us on hold.
    ``codec`` is what we send; ``codecs`` every codec agreed, ``codec``
    first. ``ptime_ms`` is the packetisation we send with (the peer's
    ptime, capped by its maxptime, else ours).
    """

    media_index: int
    remote_address: str
    remote_port: int
    codec: Codec
    codecs: tuple[Codec, ...]
    telephone_event_payload_type: int | None
    direction: Direction
    ptime_ms: int
    remote_rtcp_port: int
    remote_rtcp_address: str
    held_by_remote: bool = False

    @property
    def sends(self) -> bool:
        return self.direction.sends

    @property
    def receives(self) -> bool:
        return self.direction.receives


# ---------------------------------------------------------------------------
# telephone-event fmtp: "0-15,66,70"
# ---------------------------------------------------------------------------


def parse_events(fmtp: str | None) -> frozenset[int]:
    """The RFC 4733 events of an fmtp; 0-15 when there is none (RFC 4733 §2.4.1)."""
    if fmtp is None or not fmtp.strip():
        return frozenset(range(16))
    events: set[int] = set()
    for part in fmtp.replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise SdpError(f"bad telephone-event fmtp {fmtp!r}")
        first, last = int(low), int(high) if dash else int(low)
        if first > last or last > _MAX_EVENT:
            raise SdpError(f"bad telephone-event fmtp {fmtp!r}")
        events.update(range(first, last + 1))
    return frozenset(events)


def format_events(events: frozenset[int]) -> str:
    """``{0..16, 32}`` -> ``"0-16,32"``."""
    out: list[str] = []
    ordered = sorted(events)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


# ---------------------------------------------------------------------------
# Building our SDP
# ---------------------------------------------------------------------------


def _address_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _session(
    address: str, session_id: int | str, session_version: int, username: str,
    timings: list[Timing] | None = None,
) -> SessionDescription:
    address_type = _address_type(address)
    return SessionDescription(
        origin=Origin(username, str(session_id), session_version, address, "IN", address_type),
        session_name="-",
        connection=Connection(address, "IN", address_type),
        timings=timings if timings is not None else [Timing()],
    )


def _audio_media(
    port: int, protocol: str, codecs: list[Codec], telephone_event: Codec | None,
    ptime_ms: int, direction: Direction, rtcp_port: int | None,
) -> MediaDescription:
    formats = [str(c.payload_type) for c in codecs]
    attributes: list[Attribute] = []
    for codec in codecs:
        attributes.append(Attribute("rtpmap", _rtpmap_text(codec)))
        if codec.fmtp is not None:
            attributes.append(Attribute("fmtp", f"{codec.payload_type} {codec.fmtp}"))
    if telephone_event is not None:
        formats.append(str(telephone_event.payload_type))
        attributes.append(Attribute("rtpmap", _rtpmap_text(telephone_event)))
        if telephone_event.fmtp is not None:
            attributes.append(
                Attribute("fmtp", f"{telephone_event.payload_type} {telephone_event.fmtp}")
            )
    attributes.append(Attribute("ptime", str(ptime_ms)))
    if rtcp_port is not None:
        attributes.append(Attribute("rtcp", str(rtcp_port)))
    attributes.append(Attribute(direction.value))
    return MediaDescription("audio", port, protocol, formats, attributes=attributes)


def _rtpmap_text(codec: Codec) -> str:
    out = f"{codec.payload_type} {codec.name}/{codec.clock_rate}"
    return out + (f"/{codec.channels}" if codec.channels != 1 else "")


def build_offer(
    capabilities: MediaCapabilities,
    address: str,
    port: int,
    session_id: int | str,
    session_version: int,
    direction: Direction | str = "sendrecv",
    *,
    rtcp_port: int | None = None,
    username: str = "boomerang",
) -> SessionDescription:
    """Our offer: one audio m-line with our codecs in preference order."""
    telephone_event = None
    if capabilities.telephone_event:
        telephone_event = Codec(
            TELEPHONE_EVENT, TELEPHONE_EVENT_CLOCK_RATE,
            capabilities.telephone_event_payload_type,
            fmtp=format_events(SUPPORTED_EVENTS),
        )
    sdp = _session(address, session_id, session_version, username)
    sdp.media.append(_audio_media(
        port, "RTP/AVP", list(capabilities.codecs), telephone_event,
        capabilities.ptime_ms, Direction(direction), rtcp_port,
    ))
    return sdp


def next_version(
    own: SessionDescription, *, direction: Direction | str | None = None
) -> SessionDescription:
    """A copy of our SDP for a re-offer: session version + 1 (RFC 3264 §8).

    With ``direction`` every active m-line gets that direction and the
    session-level direction attribute is dropped (for hold: ``sendonly``,
    or ``inactive`` if the peer had put us on hold; ``sendrecv`` to resume).
    """
    sdp = own.copy()
    sdp.origin.session_version += 1
    if direction is not None:
        wanted = Direction(direction)
        sdp.set_direction(None)
        for media in sdp.media:
            if media.port != 0:
                media.set_direction(wanted)
    return sdp


def hold_direction(current: Direction | str) -> Direction:
    """The direction to re-offer to put the peer on hold (RFC 3264 §8.4)."""
    return Direction.from_flags(Direction(current).sends, False)


# ---------------------------------------------------------------------------
# Answering
# ---------------------------------------------------------------------------


def _remote_endpoint(
    sdp: SessionDescription, media: MediaDescription
) -> tuple[Connection, int, str]:
    """The peer's connection, its RTCP port and RTCP address (RFC 3605, else port+1)."""
    connection = sdp.connection_of(media)
    if connection is None:
        raise SdpError(f"no c= line for m={media.media} {media.port}")
    rtcp = media.rtcp
    if rtcp is None:
        return connection, media.port + 1, connection.address
    rtcp_port, rtcp_connection = rtcp
    return connection, rtcp_port, (
        rtcp_connection.address if rtcp_connection is not None else connection.address
    )


def _telephone_event(
    codecs: list[Codec], clock_rate: int
) -> Codec | None:
    """The peer's telephone-event at ``clock_rate`` (else at any rate)."""
    events = [c for c in codecs if c.is_telephone_event]
    for codec in events:
        if codec.clock_rate == clock_rate:
            return codec
    return events[0] if events else None


def _sending_ptime(media: MediaDescription, default_ms: int) -> int:
    ptime = media.ptime_ms or default_ms
    maxptime = media.maxptime_ms
    return min(ptime, maxptime) if maxptime is not None else ptime


def _is_usable_audio(media: MediaDescription) -> bool:
    return (
        media.port != 0
        and media.media.lower() == "audio"
        and media.protocol.upper() in _AUDIO_PROTOCOLS
    )


def _rejected(media: MediaDescription) -> MediaDescription:
    """An m-line refused with port 0, same media, protocol and formats (RFC 3264 §6)."""
    return MediaDescription(media.media, 0, media.protocol, list(media.formats) or ["0"])


def build_answer(
    offer: SessionDescription,
    capabilities: MediaCapabilities,
    address: str,
    port: int,
    session_id: int | str,
    session_version: int,
    *,
    direction: Direction | str = "sendrecv",
    rtcp_port: int | None = None,
    username: str = "boomerang",
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer ``offer`` (RFC 3264 §6): our SDP and what was agreed.

    The first usable audio m-line is accepted with the codecs common to
    both sides in the offerer's order and the offerer's telephone-event
    payload type; every other m-line is rejected with port 0. ``direction``
    is what we would like; the answer's is narrowed by the offer's. Raises
    SdpError 488 when no audio stream can be used, 400 when the offer is
    malformed.
    """
    wish = Direction(direction)
    answer = _session(address, session_id, session_version, username,
                      [Timing(t.start_time, t.stop_time) for t in offer.timings] or None)
    negotiated: NegotiatedMedia | None = None
    for index, offered in enumerate(offer.media):
        if negotiated is None and _is_usable_audio(offered):
            offered_codecs = offered.codecs()
            common: list[Codec] = []
            for codec in offered_codecs:
                ours = capabilities.find(codec)
                if ours is not None and not codec.is_telephone_event:
                    common.append(Codec(codec.name, codec.clock_rate, codec.payload_type,
                                        codec.channels, ours.fmtp))
            if common:
                negotiated, media = _accept(
                    offer, offered, index, common, offered_codecs, capabilities, wish,
                    port, rtcp_port,
                )
                answer.media.append(media)
                continue
        answer.media.append(_rejected(offered))
    if negotiated is None:
        raise not_acceptable("no audio stream with a codec in common")
    return answer, negotiated


def _accept(
    offer: SessionDescription,
    offered: MediaDescription,
    index: int,
    common: list[Codec],
    offered_codecs: list[Codec],
    capabilities: MediaCapabilities,
    wish: Direction,
    port: int,
    rtcp_port: int | None,
) -> tuple[NegotiatedMedia, MediaDescription]:
    connection, remote_rtcp_port, remote_rtcp_address = _remote_endpoint(offer, offered)
    offer_direction = offer.direction_of(offered)
    on_hold = connection.is_null
    offer_receives = offer_direction.receives and not on_hold
    ours = Direction.from_flags(
        wish.sends and offer_receives, wish.receives and offer_direction.sends
    )
    telephone_event: Codec | None = None
    if capabilities.telephone_event:
        theirs = _telephone_event(offered_codecs, common[0].clock_rate)
        if theirs is not None:
            events = parse_events(theirs.fmtp) & SUPPORTED_EVENTS
            if events:
                telephone_event = Codec(
                    theirs.name, theirs.clock_rate, theirs.payload_type,
                    fmtp=format_events(events),
                )
    media = _audio_media(port, offered.protocol, common, telephone_event,
                         capabilities.ptime_ms, ours, rtcp_port)
    negotiated = NegotiatedMedia(
        media_index=index,
        remote_address=connection.address,
        remote_port=offered.port,
        codec=common[0],
        codecs=tuple(common),
        telephone_event_payload_type=(
            None if telephone_event is None else telephone_event.payload_type
        ),
        direction=ours,
        ptime_ms=_sending_ptime(offered, capabilities.ptime_ms),
        remote_rtcp_port=remote_rtcp_port,
        remote_rtcp_address=remote_rtcp_address,
        held_by_remote=not offer_direction.receives or on_hold,
    )
    return negotiated, media


def negotiate_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """The offerer's side: what the peer's ``answer`` to our ``offer`` agreed.

    Raises SdpError 400 when the answer does not match the offer's m-lines,
    488 when it accepts no audio stream with a codec we offered.
    """
    if len(answer.media) != len(offer.media):
        raise SdpError(
            f"answer has {len(answer.media)} m-lines, the offer had {len(offer.media)}"
        )
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if ours.port == 0 or not _is_usable_audio(theirs):
            continue
        offered_codecs = ours.codecs()
        answered_codecs = theirs.codecs()
        common = [
            codec for codec in answered_codecs
            if not codec.is_telephone_event
            and any(codec.same_format(o) for o in offered_codecs)
        ]
        if not common:
            continue
        connection, remote_rtcp_port, remote_rtcp_address = _remote_endpoint(answer, theirs)
        answer_direction = answer.direction_of(theirs)
        on_hold = connection.is_null
        our_offer = offer.direction_of(ours)
        direction = Direction.from_flags(
            our_offer.sends and answer_direction.receives and not on_hold,
            our_offer.receives and answer_direction.sends,
        )
        telephone_event = None
        if any(c.is_telephone_event for c in offered_codecs):
            telephone_event = _telephone_event(answered_codecs, common[0].clock_rate)
        return NegotiatedMedia(
            media_index=index,
            remote_address=connection.address,
            remote_port=theirs.port,
            codec=common[0],
            codecs=tuple(common),
            telephone_event_payload_type=(
                None if telephone_event is None else telephone_event.payload_type
            ),
            direction=direction,
            ptime_ms=_sending_ptime(theirs, ours.ptime_ms or 20),
            remote_rtcp_port=remote_rtcp_port,
            remote_rtcp_address=remote_rtcp_address,
            held_by_remote=not answer_direction.receives or on_hold,
        )
    raise not_acceptable("the answer accepts no audio stream with a codec we offered")


__all__ = [
    "G722",
    "PCMA",
    "PCMU",
    "SUPPORTED_EVENTS",
    "MediaCapabilities",
    "NegotiatedMedia",
    "build_answer",
    "build_offer",
    "format_events",
    "hold_direction",
    "negotiate_answer",
    "next_version",
    "parse_events",
]
