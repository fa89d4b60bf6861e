"""The rtpengine ng client and backend: wire format, retransmission, a real rtpengine.

The real-daemon tests skip only when the ``rtpengine`` binary is missing
(Debian package ``rtpengine-daemon``); it runs in userspace (``--table=-1``)
on 127.0.0.1 under ``timeout`` and is stopped by PID.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from boomerang.media.relay import LegMedia, MediaTimedOut, RelayEvent
from boomerang.transport.rtpengine import (
    NgClient,
    NgError,
    RtpengineMediaRelay,
    decode_message,
    encode_message,
    leg_sdp,
    sdp_media_address,
)

LOOPBACK = "127.0.0.1"
RTPENGINE = shutil.which("rtpengine")
needs_rtpengine = pytest.mark.skipif(RTPENGINE is None,
                                     reason="rtpengine missing (apt-get install rtpengine-daemon)")


# -- a real rtpengine ---------------------------------------------------------------


@dataclass
class RtpengineProcess:
    process: subprocess.Popen[bytes]
    ng: tuple[str, int]
    port_min: int
    port_max: int
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _pong(ng: tuple[str, int]) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(encode_message("probe", {"command": "ping"}), ng)
        try:
            return decode_message(sock.recv(2048))[1].get("result") == "pong"
        except (OSError, NgError):
            return False


def start_rtpengine(directory: Path, *, limit_s: int = 120) -> RtpengineProcess:
    """rtpengine in userspace on 127.0.0.1, ng on a free port, media ports
    in a random 100-port window of 40000-59999."""
    assert RTPENGINE is not None
    for _ in range(5):
        ng = (LOOPBACK, _free_udp_port())
        port_min = random.randrange(40000, 59900, 2)
        port_max = port_min + 99
        log_path = directory / f"rtpengine-{ng[1]}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                ["timeout", "--kill-after=5", str(limit_s), RTPENGINE, "--config-file=none",
                 "--foreground", "--log-stderr", "--table=-1", f"--interface={LOOPBACK}",
                 f"--listen-ng={ng[0]}:{ng[1]}", f"--port-min={port_min}",
                 f"--port-max={port_max}", "--delete-delay=0", "--log-level=5"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        engine = RtpengineProcess(process, ng, port_min, port_max, log_path)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            if _pong(ng):
                return engine
            time.sleep(0.05)
        engine.stop()  # the ng port was taken meanwhile, or it is slow: try again
    raise AssertionError("rtpengine did not start:\n" + log_path.read_text()[-2000:])


@pytest.fixture
def rtpengine(tmp_path: Path) -> Iterator[RtpengineProcess]:
    if RTPENGINE is None:
        pytest.skip("rtpengine missing (apt-get install rtpengine-daemon)")
    engine = start_rtpengine(tmp_path)
    yield engine
    engine.stop()


# -- wire format --------------------------------------------------------------------


def test_messages_are_cookie_space_bencode() -> None:
    data = encode_message("c7", {"command": "offer", "call-id": "x", "flags": ["trust-address"],
                                 "n": 3})
    assert data == (b"c7 d7:call-id1:x7:command5:offer5:flagsl13:trust-addresse"
                    b"1:ni3ee")
    assert decode_message(b"c7 d6:result4:pong4:listli1ei2eee") == (
        "c7", {"result": "pong", "list": [1, 2]})


@pytest.mark.parametrize("broken", [b"nocookie", b"c1 d6:resul", b"c1 i4e"])
def test_broken_replies_raise(broken: bytes) -> None:
    with pytest.raises(NgError):
        decode_message(broken)


def test_leg_sdp_describes_the_leg_and_round_trips_its_address() -> None:
    media = LegMedia(remote_address="192.0.2.1", remote_port=4000,
                     codecs=((8, "PCMA", 8000),), telephone_event_payload_type=101,
                     receives=False)
    sdp = leg_sdp(media)
    assert "m=audio 4000 RTP/AVP 8 101\r\n" in sdp
    assert "a=rtpmap:101 telephone-event/8000\r\n" in sdp
    assert "a=recvonly\r\n" in sdp
    assert sdp_media_address(sdp) == ("192.0.2.1", 4000)
    assert sdp_media_address(leg_sdp(None))[1] == 9


class FakeEngine(asyncio.DatagramProtocol):
    """Drops the first ``drop`` requests, then answers ``reply`` with the cookie."""

    def __init__(self, drop: int, reply: dict[str, object]) -> None:
        self.drop = drop
        self.reply = reply
        self.requests: list[bytes] = []
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.requests.append(data)
        if len(self.requests) > self.drop and self.transport is not None:
            cookie, _ = decode_message(data)
            self.transport.sendto(encode_message(cookie, self.reply), addr)


async def fake_engine(drop: int, reply: dict[str, object]) -> tuple[FakeEngine,
                                                                    asyncio.DatagramTransport]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: FakeEngine(drop, reply), local_addr=(LOOPBACK, 0))
    return protocol, transport


async def test_client_retransmits_with_the_same_cookie() -> None:
    engine, transport = await fake_engine(1, {"result": "pong"})
    client = await NgClient(transport.get_extra_info("sockname"), timeout_s=0.1).open()
    try:
        assert await client.ping()
        assert len(engine.requests) == 2
        assert engine.requests[0] == engine.requests[1]
    finally:
        client.close()
        transport.close()


async def test_client_reports_errors_and_silence() -> None:
    engine, transport = await fake_engine(0, {"result": "error",
                                              "error-reason": "Unknown call-id"})
    client = await NgClient(transport.get_extra_info("sockname"), timeout_s=0.05,
                            attempts=2).open()
    try:
        with pytest.raises(NgError, match="Unknown call-id"):
            await client.command("query", call_id="nope")
        engine.drop = 100
        with pytest.raises(NgError, match="did not answer"):
            await client.command("ping")
        assert len(engine.requests) == 3
    finally:
        client.close()
        transport.close()


# -- a real rtpengine ---------------------------------------------------------------


@needs_rtpengine
async def test_real_rtpengine_answers_ping_and_errors(rtpengine: RtpengineProcess) -> None:
    client = await NgClient(rtpengine.ng).open()
    try:
        assert await client.ping()
        with pytest.raises(NgError):
            await client.command("query", call_id="no-such-call")
    finally:
        client.close()


@needs_rtpengine
async def test_allocate_gives_ports_in_rtpengine_range(rtpengine: RtpengineProcess) -> None:
    relay = await RtpengineMediaRelay.connect(rtpengine.ng)
    try:
        a = await relay.allocate("call-p", "a")
        b = await relay.allocate("call-p", "b")
        for address, port in (a, b):
            assert address == LOOPBACK
            assert rtpengine.port_min <= port <= rtpengine.port_max
        assert a != b
    finally:
        await relay.close()


@needs_rtpengine
async def test_poll_reports_a_silent_leg(rtpengine: RtpengineProcess) -> None:
    events: list[RelayEvent] = []
    clock = [0.0]
    relay = await RtpengineMediaRelay.connect(rtpengine.ng, on_event=events.append,
                                              no_media_timeout_s=30.0, poll_interval_s=0,
                                              clock=lambda: clock[0])
    try:
        for leg in ("a", "b"):
            await relay.allocate("call-t", leg)
            await relay.update("call-t", leg, LegMedia(
                remote_address=LOOPBACK, remote_port=9, codecs=((0, "PCMU", 8000),)))
        await relay.bridge("call-t", "a", "b")
        await relay.poll_once()
        clock[0] = 29.0
        await relay.poll_once()
        assert events == []
        clock[0] = 30.0
        await relay.poll_once()
        await relay.poll_once()
        assert sorted((e.leg, e.silent_s) for e in events if isinstance(e, MediaTimedOut)) == [
            ("a", 30.0), ("b", 30.0)]
    finally:
        await relay.close()
