"""Call limits over real UDP sockets on 127.0.0.1 (the fake phones of
test_manager.py, each with an RTP socket where its SDP says it listens):

- a trunk's ``max_call_seconds`` (scaled down: 3 s, the warning 1.5 s
  before): both bridged legs hear the warning tone (425 Hz for the ``pl``
  plan, decoded from the RTP that reached each phone's socket), then both
  get BYE with ``Reason: Q.850;cause=16``;
- the pure concurrent-call counting of ``call_limits``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from test_manager import EXTENSION_101, FakePhone, trunk_yaml, world

from boomerang.call.call_limits import MAX_DURATION, calls_of, over_concurrent_cap
from boomerang.call.events import Q850_NORMAL_CLEARING, Outcome
from boomerang.call.manager import TrunkTarget, UriTarget
from boomerang.config import ExtensionSettings
from boomerang.media.g711 import ulaw_decode
from boomerang.media.rtp import RtpPacket
from boomerang.sip.address import Address


@dataclass
class RtpSink(asyncio.DatagramProtocol):
    """Keeps (arrival time, packet) of every RTP datagram."""

    packets: list[tuple[float, RtpPacket]] = field(default_factory=list)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.packets.append((asyncio.get_running_loop().time(), RtpPacket.parse(data)))


def dominant_hz(payloads: list[bytes]) -> float:
    pcm = np.concatenate([ulaw_decode(p) for p in payloads]).astype(float)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    spectrum[0] = 0
    return float(np.fft.rfftfreq(len(pcm), 1 / 8000)[int(np.argmax(spectrum))])


async def test_max_call_seconds_warns_both_legs_then_ends_both_with_a_reason(
        free_port_factory: Callable[[], int]) -> None:
    loop = asyncio.get_running_loop()
    sinks: list[RtpSink] = []
    transports = []
    phone = FakePhone("anna")
    carrier = FakePhone("carrier")
    for who in (phone, carrier):
        who.media_port = free_port_factory()
        transport, sink = await loop.create_datagram_endpoint(
            RtpSink, local_addr=("127.0.0.1", who.media_port))
        transports.append(transport)
        sinks.append(sink)
    try:
        async with world(free_port_factory, phone, carrier, warning_lead_s=1.5,
                         extra=lambda: trunk_yaml(carrier, max_call_seconds=3)
                         + EXTENSION_101) as manager:
            assert phone.address is not None
            a = await manager.originate(
                UriTarget(phone.uri, Address("udp", "127.0.0.1", phone.address.port)),
                caller_id="+48221234567", ring_timeout_s=5, correlation_id="story-max")
            b = await manager.originate(TrunkTarget("carrier", "+48600100200"),
                                        caller_id="+48221234567", ring_timeout_s=5,
                                        correlation_id="story-max")
            for call in (a, b):
                assert (await asyncio.wait_for(call.outcome(), 2)).outcome is Outcome.ANSWERED
            assert b.answered_at is not None
            await asyncio.wait_for(manager.bridge(a, b), 6)
            cut_after_s = loop.time() - b.answered_at
            await asyncio.wait_for(_until(lambda: phone.legs[0].ended
                                          and carrier.legs[0].ended), 2)
    finally:
        for transport in transports:
            transport.close()
    assert 2.95 <= cut_after_s < 3.6, cut_after_s
    for who in (phone, carrier):
        cause = who.legs[0].end_cause
        assert cause is not None
        assert (cause.outcome, cause.q850_cause) == (Outcome.HUNG_UP_REMOTE,
                                                      Q850_NORMAL_CLEARING)
        assert cause.reason_text == MAX_DURATION.reason_text
    for call in (a, b):
        assert call.ended.result().outcome is Outcome.HUNG_UP_LOCAL
    for sink in sinks:
        # nobody sent RTP: all a phone received is our warning, from 1.5 s before the end
        assert sink.packets, "no warning tone reached the phone"
        first_at = sink.packets[0][0] - b.answered_at
        assert 1.4 <= first_at <= 1.8, first_at
        sounding = [p.payload for _, p in sink.packets
                    if np.abs(ulaw_decode(p.payload).astype(float)).mean() > 300]
        assert len(sounding) >= 25, len(sounding)  # three 200 ms beeps: 30 frames
        assert abs(dominant_hz(sounding) - 425) <= 10


def test_concurrent_calls_are_counted_per_story() -> None:
    @dataclass
    class Call:
        correlation_id: str
        owner_extension: str | None
        ended: asyncio.Future[object]

    loop = asyncio.new_event_loop()
    try:
        def call(story: str, owner: str | None, done: bool = False) -> Call:
            ended: asyncio.Future[object] = loop.create_future()
            if done:
                ended.set_result(None)
            return Call(story, owner, ended)

        live = [call("s1", "101"), call("s1", "101"), call("s2", "102"),
                call("s3", "101", done=True)]
        capped = ExtensionSettings(number="101", max_concurrent_calls=1)
        uncapped = ExtensionSettings(number="101")
        assert calls_of(live, "101") == {"s1"}  # type: ignore[arg-type]
        assert over_concurrent_cap(live, capped)  # type: ignore[arg-type]
        assert not over_concurrent_cap(live, capped, joining="s1")  # type: ignore[arg-type]
        assert not over_concurrent_cap(live, uncapped)  # type: ignore[arg-type]
        assert not over_concurrent_cap(  # type: ignore[arg-type]
            live, ExtensionSettings(number="101", max_concurrent_calls=2))
    finally:
        loop.close()


async def _until(condition: Callable[[], bool]) -> bool:
    for _ in range(400):
        if condition():
            return True
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 4 s")
