"""rtpengine as the media relay: an ng-protocol client and a ``MediaRelay``.

The ng control protocol: one UDP datagram per message, ``<cookie> <bencoded
dict>``; the reply carries the same cookie and a dict whose ``result`` is
``ok``, ``pong`` or ``error`` (with ``error-reason``). rtpengine keeps the
replies of recent cookies, so a retransmission with the same cookie is
answered without running the command twice. Bencode is written here (about
40 lines): the PyPI packages tried (``fastbencode``) insist on sorted
dictionary keys when decoding, and rtpengine's replies do not sort theirs.

How ``MediaRelay`` maps onto rtpengine's offer/answer (legs are tags):

- ``allocate`` of the first leg ``A`` sends an ``offer`` with from-tag ``A``
  and a placeholder SDP (discard port 9): rtpengine then holds ports on
  both sides. The port facing ``A`` is read with ``query``; the port in the
  returned SDP faces the other side, and is what ``allocate`` of the second
  leg gives.
- ``update(A)`` re-sends the ``offer`` with ``A``'s real SDP (and, when
  ``B`` is known, the ``answer`` again); ``update(B)`` sends the ``answer``
  (from-tag ``A``, to-tag ``B``) with ``B``'s SDP.
- ``bridge`` checks the legs; rtpengine relays as soon as both are known.
- ``stats`` is a ``query``; ``release`` a ``delete``.
- No-media timeouts: rtpengine's own timer ends a dead call by itself; here
  a poll (``query`` every ``poll_interval_s``) raises ``MediaTimedOut`` when
  a leg's packet count has not moved for ``no_media_timeout_s``.

``flags: [trust-address]`` makes rtpengine use the SDP address rather than
the source of the ng datagram; it still latches to where media comes from.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..media.relay import (
    DEFAULT_NO_MEDIA_TIMEOUT_S,
    Address,
    CallStats,
    LegMedia,
    LegStats,
    MediaTimedOut,
    RelayError,
    RelayEvent,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 1.0
DEFAULT_ATTEMPTS = 3
DEFAULT_POLL_INTERVAL_S = 5.0
PLACEHOLDER_PORT = 9  # discard: nothing is sent there before the real SDP arrives

_MEDIA_PORT = re.compile(r"^m=audio (\d+) ", re.MULTILINE)
_CONNECTION = re.compile(r"^c=IN IP[46] (\S+)", re.MULTILINE)


class NgError(RelayError):
    """rtpengine answered ``error`` (or did not answer at all)."""


# ---------------------------------------------------------------------------
# bencode (BEP 3): int, byte string, list, dict. Keys are written sorted;
# read in any order. Text becomes UTF-8 bytes; bytes read back as str.


def bencode(value: Any) -> bytes:
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Any, out: list[bytes]) -> None:
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        out.append(b"%d:" % len(value))
        out.append(value)
    elif isinstance(value, (bool, int)):
        out.append(b"i%de" % int(value))
    elif isinstance(value, (list, tuple)):
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")
    elif isinstance(value, dict):
        out.append(b"d")
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        for key, item in items:
            _encode(key, out)
            _encode(item, out)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    """Decode one value; raises ``NgError`` on anything malformed."""
    try:
        value, end = _decode(data, 0)
    except (IndexError, ValueError) as error:
        raise NgError(f"ng reply is not bencode: {error}") from None
    if end != len(data):
        raise NgError(f"ng reply has {len(data) - end} octets after the bencoded value")
    return value


def _decode(data: bytes, index: int) -> tuple[Any, int]:
    kind = data[index]
    if kind == 0x69:  # i<digits>e
        end = data.index(b"e", index)
        return int(data[index + 1:end]), end + 1
    if kind == 0x6C:  # l ... e
        items = []
        index += 1
        while data[index] != 0x65:
            item, index = _decode(data, index)
            items.append(item)
        return items, index + 1
    if kind == 0x64:  # d ... e
        result: dict[str, Any] = {}
        index += 1
        while data[index] != 0x65:
            key, index = _decode(data, index)
            if not isinstance(key, str):
                raise ValueError("dictionary key is not a string")
            result[key], index = _decode(data, index)
        return result, index + 1
    if 0x30 <= kind <= 0x39:  # <length>:<octets>
        colon = data.index(b":", index)
        length = int(data[index:colon])
        start = colon + 1
        if start + length > len(data):
            raise ValueError("string runs past the end")
        return data[start:start + length].decode("utf-8", "replace"), start + length
    raise ValueError(f"unexpected octet {kind:#04x} at {index}")


def encode_message(cookie: str, command: dict[str, Any]) -> bytes:
    return cookie.encode() + b" " + bencode(command)


def decode_message(data: bytes) -> tuple[str, dict[str, Any]]:
    cookie, space, body = data.partition(b" ")
    if not space:
        raise NgError(f"ng reply without a cookie: {data[:60]!r}")
    decoded = bdecode(body)
    if not isinstance(decoded, dict):
        raise NgError("ng reply is not a dictionary")
    return cookie.decode("ascii", "replace"), decoded


# ---------------------------------------------------------------------------
# The client


class _NgProtocol(asyncio.DatagramProtocol):
    def __init__(self, client: NgClient) -> None:
        self.client: NgClient | None = client

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self.client is not None:
            self.client.reply_received(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("ng socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client = None


class NgClient:
    """Commands to one rtpengine over UDP, retransmitted on silence."""

    def __init__(self, address: Address, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 attempts: int = DEFAULT_ATTEMPTS,
                 cookie_prefix: str | None = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.attempts = attempts
        self._prefix = cookie_prefix if cookie_prefix is not None else secrets.token_hex(4)
        self._counter = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._transport: asyncio.DatagramTransport | None = None

    async def open(self) -> NgClient:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _NgProtocol(self), remote_addr=self.address)
        return self

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def reply_received(self, data: bytes) -> None:
        try:
            cookie, reply = decode_message(data)
        except NgError as error:
            log.warning("rtpengine %s:%d: %s", *self.address, error)
            return
        future = self._pending.get(cookie)
        if future is not None and not future.done():
            future.set_result(reply)

    async def command(self, name: str, **fields: Any) -> dict[str, Any]:
        """Send ``name`` with ``fields`` (``call_id`` -> ``call-id``); the
        reply dict. Raises ``NgError`` on ``result: error`` or silence."""
        if self._transport is None:
            raise NgError("ng client is not open")
        message = {"command": name}
        message.update({key.replace("_", "-"): value for key, value in fields.items()})
        cookie = f"{self._prefix}{next(self._counter)}"
        data = encode_message(cookie, message)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cookie] = future
        try:
            for _ in range(self.attempts):
                self._transport.sendto(data)
                try:
                    reply = await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
                    break
                except TimeoutError:
                    continue
            else:
                raise NgError(f"rtpengine {self.address[0]}:{self.address[1]} did not answer "
                              f"{name} after {self.attempts} tries")
        finally:
            self._pending.pop(cookie, None)
            future.cancel()
        if reply.get("result") == "error":
            raise NgError(f"rtpengine {name}: {reply.get('error-reason', 'error')}")
        return reply

    async def ping(self) -> bool:
        return (await self.command("ping")).get("result") == "pong"


# ---------------------------------------------------------------------------
# SDP for rtpengine (only what it needs: address, port, formats, direction)


def leg_sdp(media: LegMedia | None, *, session_version: int = 1) -> str:
    """An SDP describing a leg's remote side, for offer/answer."""
    if media is None:
        address, port = "127.0.0.1", PLACEHOLDER_PORT
        codecs: tuple[tuple[int, str, int], ...] = ((0, "PCMU", 8000), (8, "PCMA", 8000))
        event_type: int | None = None
        direction = "sendrecv"
        ptime_ms = 20
    else:
        address, port, codecs = media.remote_address, media.remote_port, media.codecs
        event_type = media.telephone_event_payload_type
        direction = {(True, True): "sendrecv", (True, False): "recvonly",
                     (False, True): "sendonly", (False, False): "inactive"}[
            (media.sends, media.receives)]
        ptime_ms = media.ptime_ms
    family = "IP6" if ":" in address else "IP4"
    formats = [pt for pt, _, _ in codecs] + ([event_type] if event_type is not None else [])
    lines = [
        "v=0",
        f"o=- 1 {session_version} IN {family} {address}",
        "s=-",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(map(str, formats))}",
    ]
    lines += [f"a=rtpmap:{pt} {name}/{rate}" for pt, name, rate in codecs]
    if event_type is not None:
        lines += [f"a=rtpmap:{event_type} telephone-event/8000", f"a=fmtp:{event_type} 0-16"]
    lines += [f"a=ptime:{ptime_ms}", f"a={direction}"]
    return "\r\n".join(lines) + "\r\n"


def sdp_media_address(sdp: str) -> Address:
    port = _MEDIA_PORT.search(sdp)
    address = _CONNECTION.search(sdp)
    if port is None or address is None:
        raise NgError("rtpengine returned an SDP without an audio port or address")
    return (address.group(1), int(port.group(1)))


# ---------------------------------------------------------------------------
# The backend


@dataclass(slots=True)
class _EngineCall:
    legs: list[str] = field(default_factory=list)
    addresses: dict[str, Address] = field(default_factory=dict)
    media: dict[str, LegMedia] = field(default_factory=dict)
    other_side: Address | None = None
    answered: bool = False
    versions: int = 1
    # per leg: (packets seen, clock when that count last moved, timed out already)
    activity: dict[str, tuple[int, float, bool]] = field(default_factory=dict)


class RtpengineMediaRelay:
    """``MediaRelay`` driving an rtpengine (see the module doc)."""

    def __init__(self, client: NgClient, *,
                 no_media_timeout_s: float = DEFAULT_NO_MEDIA_TIMEOUT_S,
                 poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
                 on_event: Callable[[RelayEvent], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 flags: tuple[str, ...] = ("trust-address",)) -> None:
        self.client = client
        self.no_media_timeout_s = no_media_timeout_s
        self.poll_interval_s = poll_interval_s
        self.on_event = on_event
        self.clock = clock
        self.flags = list(flags)
        self._calls: dict[str, _EngineCall] = {}
        self._poller: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, address: Address, **options: Any) -> RtpengineMediaRelay:
        """Open the ng client and check rtpengine answers a ping."""
        client = await NgClient(address).open()
        try:
            if not await client.ping():
                raise NgError(f"rtpengine {address[0]}:{address[1]} did not answer pong")
        except BaseException:
            client.close()
            raise
        return cls(client, **options)

    def __len__(self) -> int:
        return len(self._calls)

    def _call(self, call_id: str) -> _EngineCall:
        try:
            return self._calls[call_id]
        except KeyError:
            raise RelayError(f"no media relay for call {call_id}") from None

    def _start_poller(self) -> None:
        if self._poller is None and self.on_event is not None and self.poll_interval_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _offer(self, call_id: str, call: _EngineCall) -> dict[str, Any]:
        first = call.legs[0]
        fields: dict[str, Any] = {"call_id": call_id, "from_tag": first,
                                  "sdp": leg_sdp(call.media.get(first),
                                                 session_version=call.versions),
                                  "flags": self.flags}
        if call.answered:
            fields["to_tag"] = call.legs[1]
        call.versions += 1
        return await self.client.command("offer", **fields)

    async def _answer(self, call_id: str, call: _EngineCall) -> dict[str, Any]:
        first, second = call.legs
        reply = await self.client.command(
            "answer", call_id=call_id, from_tag=first, to_tag=second,
            sdp=leg_sdp(call.media.get(second), session_version=call.versions),
            flags=self.flags)
        call.versions += 1
        call.answered = True
        return reply

    async def allocate(self, call_id: str, leg: str) -> Address:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _EngineCall(legs=[leg])
            try:
                reply = await self._offer(call_id, call)
                call.other_side = sdp_media_address(str(reply.get("sdp", "")))
                call.addresses[leg] = await self._local_address(call_id, leg)
            except BaseException:
                self._calls.pop(call_id, None)
                with contextlib.suppress(NgError):
                    await self.client.command("delete", call_id=call_id)
                raise
            self._start_poller()
            return call.addresses[leg]
        if leg in call.legs:
            raise RelayError(f"call {call_id}: leg {leg!r} exists already")
        if len(call.legs) == 2 or call.other_side is None:
            raise RelayError(f"call {call_id}: rtpengine relays two legs, not three")
        call.legs.append(leg)
        call.addresses[leg] = call.other_side
        return call.other_side

    async def _local_address(self, call_id: str, tag: str) -> Address:
        reply = await self.client.command("query", call_id=call_id)
        try:
            stream = reply["tags"][tag]["medias"][0]["streams"][0]
            return (str(stream["local address"]), int(stream["local port"]))
        except (KeyError, IndexError, TypeError, ValueError):
            raise NgError(f"rtpengine query of {call_id} has no local port for {tag}") from None

    async def update(self, call_id: str, leg: str, media: LegMedia) -> None:
        call = self._call(call_id)
        if leg not in call.legs:
            raise RelayError(f"call {call_id}: no leg {leg!r}")
        call.media[leg] = media
        if leg == call.legs[0]:
            await self._offer(call_id, call)
            if len(call.legs) == 2 and call.legs[1] in call.media:
                await self._answer(call_id, call)
        else:
            await self._answer(call_id, call)

    async def bridge(self, call_id: str, leg_a: str, leg_b: str) -> None:
        call = self._call(call_id)
        if sorted((leg_a, leg_b)) != sorted(call.legs):
            raise RelayError(f"call {call_id}: rtpengine bridges its two legs {call.legs}, "
                             f"not {leg_a!r} and {leg_b!r}")
        if not call.answered:
            await self._answer(call_id, call)

    async def hand_over(self, call_id: str, leg: str, *, ssrc: int, last_sequence_number: int,
                        last_timestamp: int, last_sent_at: float) -> None:
        self._call(call_id)  # rtpengine keeps its own SSRC handling

    async def stats(self, call_id: str) -> CallStats:
        call = self._call(call_id)
        reply = await self.client.command("query", call_id=call_id)
        tags = reply.get("tags", {})
        received: dict[str, tuple[int, int, Address | None, int]] = {}
        for leg in call.legs:
            packets = octets = rtcp = 0
            target: Address | None = None
            for media in tags.get(leg, {}).get("medias", []):
                for stream in media.get("streams", []):
                    stats = stream.get("stats", {})
                    if "RTCP" in stream.get("flags", []):
                        rtcp += int(stats.get("packets", 0))
                        continue
                    packets += int(stats.get("packets", 0))
                    octets += int(stats.get("bytes", 0))
                    endpoint = stream.get("endpoint", {})
                    if "address" in endpoint:
                        target = (str(endpoint["address"]), int(endpoint["port"]))
            received[leg] = (packets, octets, target, rtcp)
        legs = []
        for leg in call.legs:
            peer = next((other for other in call.legs if other != leg), None)
            packets, octets, target, rtcp = received[leg]
            sent = received[peer] if peer is not None else (0, 0, None, 0)
            legs.append(LegStats(
                leg=leg, packets_received=packets, octets_received=octets,
                packets_sent=sent[0], octets_sent=sent[1], packets_dropped=0, packets_lost=0,
                jitter_ms=0.0, input_ssrc=None, output_ssrc=None, rtp_target=target,
                rtcp_packets_received=rtcp, last_received_at=None))
        return CallStats(call_id=call_id, legs=tuple(legs))

    async def release(self, call_id: str) -> None:
        if self._calls.pop(call_id, None) is None:
            return
        try:
            await self.client.command("delete", call_id=call_id)
        except NgError as error:
            log.warning("call %s: rtpengine delete failed: %s", call_id, error)

    async def close(self) -> None:
        for call_id in list(self._calls):
            await self.release(call_id)
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        self.client.close()

    async def poll_once(self) -> None:
        """Query every call once; raise ``MediaTimedOut`` for silent legs."""
        for call_id, call in list(self._calls.items()):
            if len(call.media) < len(call.legs) or not call.answered:
                continue
            try:
                stats = await self.stats(call_id)
            except RelayError:
                continue
            now = self.clock()
            for leg in stats.legs:
                media = call.media.get(leg.leg)
                count, since, timed_out = call.activity.get(leg.leg, (-1, now, False))
                if leg.packets_received != count:
                    call.activity[leg.leg] = (leg.packets_received, now, False)
                    continue
                if media is not None and media.receives and not timed_out \
                        and now - since >= self.no_media_timeout_s:
                    call.activity[leg.leg] = (count, since, True)
                    if self.on_event is not None:
                        self.on_event(MediaTimedOut(time=now, call_id=call_id, leg=leg.leg,
                                                    silent_s=now - since))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await self.poll_once()
            except Exception:
                log.exception("rtpengine poll failed")
