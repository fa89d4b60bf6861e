"""The endpoint application over real UDP, TCP and TLS sockets on 127.0.0.1.

Each test starts an Endpoint (real TransactionLayer, real DigestServer) on
ephemeral ports in the test's own event loop and talks to it with plain
asyncio sockets.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import re
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from transport.sip_test_support import make_self_signed, on_both_loops

from boomerang.app import Endpoint, reject_every_invite, serve
from boomerang.config import load_config_text
from boomerang.sip.address import Address
from boomerang.sip.auth import DigestServer
from boomerang.sip.ids import CountingIds
from boomerang.sip.message import Response
from boomerang.sip.parser import parse_message
from boomerang.sip.transaction.layer import TimerSettings, TransactionLayer

LOOPBACK = "127.0.0.1"

STEP_S = 2.0
FAST_TIMERS = TimerSettings(t1=0.05, t2=0.4, t4=0.2, timer_d=0.5)


def make_endpoint(config_text: str, *, base_dir: Path | None = None,
                  invite_policy: Callable[..., int | None] = reject_every_invite) -> Endpoint:
    config = load_config_text(config_text, "test.yaml", base_dir=base_dir)
    return Endpoint(
        config,
        challenger=DigestServer(realm="test.example", secret=b"k" * 32),
        ids=CountingIds("e"),
        layer=TransactionLayer(timers=FAST_TIMERS),
        invite_policy=invite_policy,
    )


@asynccontextmanager
async def running(endpoint: Endpoint) -> AsyncIterator[dict[str, Address]]:
    bound = await endpoint.start()
    try:
        yield {address.transport: address for address in bound}
    finally:
        await endpoint.close()


UDP_TCP = "sip:\n  listen: [udp:127.0.0.1:0, tcp:127.0.0.1:0]\n  shutdown_grace_s: 0.5\n"


class Peer:
    """A SIP peer on one transport: sends requests, reads responses."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.local_port = 0
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._udp: asyncio.DatagramTransport | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self, target: Address, context: ssl.SSLContext | None = None) -> Peer:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            queue = self.queue

            class Client(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                    queue.put_nowait(data)

            self._udp, _ = await loop.create_datagram_endpoint(
                Client, local_addr=(LOOPBACK, 0), remote_addr=(target.host, target.port))
            self.local_port = self._udp.get_extra_info("sockname")[1]
        else:
            self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(
                target.host, target.port, ssl=context,
                server_hostname="localhost" if context else None), STEP_S)
            self.local_port = self._writer.get_extra_info("sockname")[1]
        return self

    def send_bytes(self, data: bytes) -> None:
        if self._udp is not None:
            self._udp.sendto(data)
        else:
            assert self._writer is not None
            self._writer.write(data)

    def request(self, method: str, *, uri: str = "sip:100@127.0.0.1", branch: str = "z9hG4bK-1",
                call_id: str = "call-1@peer", cseq_method: str | None = None,
                headers: tuple[str, ...] = (), to_tag: str | None = None) -> bytes:
        via_transport = self.transport.upper()
        to = "<sip:100@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/{via_transport} 127.0.0.1:{self.local_port};branch={branch};rport",
            "From: <sip:alice@127.0.0.1>;tag=peer-tag",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: 1 {cseq_method or method}",
            *(h for h in headers if h.startswith("Max-Forwards")),
            *(() if any(h.startswith("Max-Forwards") for h in headers) else ("Max-Forwards: 70",)),
            *(h for h in headers if not h.startswith("Max-Forwards")),
            "Content-Length: 0",
            "",
            "",
        ]
        data = "\r\n".join(lines).encode()
        self.send_bytes(data)
        return data

    async def response(self, timeout_s: float = STEP_S) -> Response:
        if self._reader is not None:
            head = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), timeout_s)
            length = int(re.search(rb"Content-Length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            data = head + (await self._reader.readexactly(length) if length else b"")
        else:
            data = await asyncio.wait_for(self.queue.get(), timeout_s)
        message = parse_message(data)
        assert isinstance(message, Response), data
        return message

    async def nothing_arrives(self, within_s: float) -> bool:
        try:
            await self.response(within_s)
        except (TimeoutError, asyncio.IncompleteReadError):
            return True
        return False

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()


@asynccontextmanager
async def peer(bound: dict[str, Address], transport: str,
               context: ssl.SSLContext | None = None) -> AsyncIterator[Peer]:
    client = await Peer(transport).connect(bound[transport], context)
    try:
        yield client
    finally:
        client.close()


# -- OPTIONS and the generic checks ----------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@on_both_loops
async def test_options_gets_200_with_allow_accept_supported_and_server(transport: str) -> None:
    async with running(make_endpoint(UDP_TCP)) as bound, peer(bound, transport) as client:
        client.request("OPTIONS")
        response = await client.response()
        assert response.status == 200
        assert {"invite", "options", "register", "ack", "cancel"} <= set(
            response.header_tokens("Allow"))
        assert response.headers.get("Accept") == "application/sdp"
        assert "Supported" in response.headers
        assert response.headers.get("Server") == "Boomerang/0.1.0"
        assert response.to_tag  # a UAS adds a To tag
        assert response.call_id == "call-1@peer"
        assert response.top_via.received == LOOPBACK or response.top_via.rport == client.local_port


@on_both_loops
async def test_options_for_another_domain_is_still_answered() -> None:
    async with running(make_endpoint(UDP_TCP)) as bound, peer(bound, "udp") as client:
        client.request("OPTIONS", uri="sip:someone@elsewhere.example.com")
        assert (await client.response()).status == 200


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(
    ("method", "uri", "headers", "status", "check"),
    [
        ("FROBNICATE", "sip:100@127.0.0.1", (), 501,
         lambda r: "invite" in r.header_tokens("Allow")),
        ("OPTIONS", "sip:100@127.0.0.1", ("Max-Forwards: 0",), 483, lambda r: True),
        ("INVITE", "sip:100@127.0.0.1", ("Max-Forwards: 0",), 483, lambda r: True),
        ("OPTIONS", "sip:100@127.0.0.1", ("Require: foo, 100rel",), 420,
         lambda r: r.header_tokens("Unsupported") == ["foo", "100rel"]),
        ("OPTIONS", "mailto:someone@example.com", (), 416, lambda r: True),
        ("BYE", "sip:100@127.0.0.1", (), 481, lambda r: True),
        ("INFO", "sip:100@127.0.0.1", (), 481, lambda r: True),
        ("UPDATE", "sip:100@127.0.0.1", (), 481, lambda r: True),
    ],
    ids=["501-unknown-method", "483-options", "483-invite", "420-require", "416-scheme",
         "481-bye", "481-info", "481-update"],
)
@on_both_loops
async def test_generic_rejections(transport: str, method: str, uri: str,
                                  headers: tuple[str, ...], status: int,
                                  check: Callable[[Response], bool]) -> None:
    async with running(make_endpoint(UDP_TCP)) as bound, peer(bound, transport) as client:
        client.request(method, uri=uri, headers=headers)
        response = await client.response()
        if response.status == 100:  # an INVITE gets 100 Trying from the layer first
            response = await client.response()
        assert response.status == status
        assert response.cseq.method == method
        assert response.to_tag
        assert check(response)


# -- INVITE, ACK, CANCEL -------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@on_both_loops
async def test_invite_gets_100_then_404_with_a_to_tag_and_the_ack_is_absorbed(
        transport: str) -> None:
    endpoint = make_endpoint(UDP_TCP)
    async with running(endpoint) as bound, peer(bound, transport) as client:
        client.request("INVITE")
        trying = await client.response()
        assert trying.status == 100 and trying.to_tag is None
        final = await client.response()
        assert final.status == 404 and final.to_tag
        client.request("ACK", to_tag=final.to_tag)
        # with T1 = 50 ms an unacknowledged 404 would be resent within 0.3 s
        assert await client.nothing_arrives(0.3)


@on_both_loops
async def test_an_unacknowledged_404_is_retransmitted_over_udp() -> None:
    """The counterpart of the test above: without the ACK, the 404 comes again."""
    async with running(make_endpoint(UDP_TCP)) as bound, peer(bound, "udp") as client:
        client.request("INVITE")
        assert (await client.response()).status == 100
        first = await client.response()
        again = await client.response(1.0)
        assert first.status == again.status == 404
        assert first.to_tag == again.to_tag


def hold_every_invite(request: object) -> None:
    return None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@on_both_loops
async def test_cancel_gets_200_and_the_pending_invite_487(transport: str) -> None:
    endpoint = make_endpoint(UDP_TCP, invite_policy=hold_every_invite)
    async with running(endpoint) as bound, peer(bound, transport) as client:
        client.request("INVITE", branch="z9hG4bK-inv")
        assert (await client.response()).status == 100
        assert len(endpoint.pending_invites) == 1
        client.request("CANCEL", branch="z9hG4bK-inv")
        answers = {r.cseq.method: r for r in [await client.response(), await client.response()]}
        assert answers["CANCEL"].status == 200
        assert answers["INVITE"].status == 487
        assert answers["INVITE"].to_tag
        assert endpoint.pending_invites == {}
        client.request("ACK", branch="z9hG4bK-inv", to_tag=answers["INVITE"].to_tag)
        assert await client.nothing_arrives(0.3)


@on_both_loops
async def test_cancel_after_the_final_answer_gets_200_and_nothing_else() -> None:
    async with running(make_endpoint(UDP_TCP)) as bound, peer(bound, "tcp") as client:
        client.request("INVITE", branch="z9hG4bK-late")
        assert (await client.response()).status == 100
        assert (await client.response()).status == 404
        client.request("CANCEL", branch="z9hG4bK-late")
        answer = await client.response()
        assert answer.cseq.method == "CANCEL" and answer.status == 200
        assert await client.nothing_arrives(0.3)


# -- REGISTER: a challenge for everyone, the same shape for everyone -------------------------


def shape(response: Response) -> list[tuple[str, str]]:
    """Header names and values with the parts that must differ masked out."""
    masked = []
    for name, value in response.headers:
        if name in ("Call-ID", "Via", "From", "To", "CSeq"):
            value = "*"
        value = re.sub(r'nonce="[0-9a-f]+"', 'nonce="*"', value)
        masked.append((name, value))
    return masked


@on_both_loops
async def test_register_gets_the_same_401_for_unknown_and_known_looking_users() -> None:
    async with running(make_endpoint(UDP_TCP)) as bound, peer(bound, "udp") as client:
        client.request("REGISTER", uri="sip:127.0.0.1", branch="z9hG4bK-r1", call_id="r1")
        unknown = await client.response()
        credentials = (
            'Authorization: Digest username="101", realm="test.example", '
            'nonce="0123456789abcdef", uri="sip:127.0.0.1", '
            'response="0123456789abcdef0123456789abcdef", algorithm=MD5')
        client.request("REGISTER", uri="sip:127.0.0.1", branch="z9hG4bK-r2", call_id="r2",
                       headers=(credentials,))
        known_looking = await client.response()
        assert unknown.status == known_looking.status == 401
        challenges = unknown.headers.get_all("WWW-Authenticate")
        assert challenges and all(c.startswith("Digest ") for c in challenges)
        assert 'realm="test.example"' in challenges[0] and 'qop="auth"' in challenges[0]
        assert shape(unknown) == shape(known_looking)
        assert unknown.reason == known_looking.reason


# -- robustness -------------------------------------------------------------------------------


@on_both_loops
async def test_garbage_and_truncated_datagrams_do_not_stop_the_endpoint(
        caplog: pytest.LogCaptureFixture) -> None:
    endpoint = make_endpoint(UDP_TCP)
    async with running(endpoint) as bound, peer(bound, "udp") as client:
        with caplog.at_level(logging.WARNING, "boomerang.transport.sip_transport"):
            client.send_bytes(b"\x00\xff garbage")
            full = client.request("OPTIONS", branch="z9hG4bK-trunc")
            assert await client.response() is not None  # the complete one is answered
            truncated = full.replace(b"Content-Length: 0", b"Content-Length: 40")
            client.send_bytes(truncated.replace(b"z9hG4bK-trunc", b"z9hG4bK-trunc2"))
            answer = await client.response()
            assert answer.status == 400  # Content-Length larger than what arrived
            client.request("OPTIONS", branch="z9hG4bK-after")
            assert (await client.response()).status == 200
        driver = endpoint.driver
        assert driver is not None
        assert sum(driver.malformed_counts.values()) == 2
        assert len([r for r in caplog.records if "malformed" in r.message]) == 1


@on_both_loops
async def test_a_thousand_junk_datagrams_then_options_still_gets_200(
        caplog: pytest.LogCaptureFixture) -> None:
    endpoint = make_endpoint(UDP_TCP)
    junk = random.Random(20240601)
    async with running(endpoint) as bound, peer(bound, "udp") as client:
        driver = endpoint.driver
        assert driver is not None
        with caplog.at_level(logging.WARNING, "boomerang.transport.sip_transport"):
            for batch in range(10):
                for _ in range(100):
                    client.send_bytes(junk.randbytes(junk.randint(1, 300)))
                for _ in range(200):  # bounded wait for the batch to be read
                    if sum(driver.malformed_counts.values()) >= 100 * (batch + 1):
                        break
                    await asyncio.sleep(0.01)
            assert sum(driver.malformed_counts.values()) == 1000
            client.request("OPTIONS", branch="z9hG4bK-survivor")
            response = await client.response()
            assert response.status == 200 and response.cseq.method == "OPTIONS"
        assert len([r for r in caplog.records if "malformed" in r.message]) == 1


@on_both_loops
async def test_a_100_kb_header_over_tcp_gets_an_error_response_and_the_connection_closes() -> None:
    endpoint = make_endpoint(UDP_TCP)
    async with running(endpoint) as bound, peer(bound, "tcp") as client:
        data = client.request("OPTIONS", headers=("X-Huge: " + "h" * 100_000,))
        assert len(data) > 100_000
        response = await client.response()
        assert response.status == 513
        assert response.call_id == "call-1@peer"
        assert client._reader is not None
        assert await asyncio.wait_for(client._reader.read(), STEP_S) == b""
        assert endpoint.driver is not None
        assert endpoint.driver.connections("tcp") == 0


# -- TLS -----------------------------------------------------------------------------------------


@on_both_loops
async def test_options_over_tls(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path)
    config = (f"sip:\n  listen: [tls:127.0.0.1:0]\n"
              f"  tls: {{cert: {cert.name}, key: {key.name}}}\n")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    async with running(make_endpoint(config, base_dir=tmp_path)) as bound, \
            peer(bound, "tls", context) as client:
        client.request("OPTIONS")
        response = await client.response()
        assert response.status == 200
        assert response.top_via.transport == "TLS"


# -- shutdown --------------------------------------------------------------------------------------


@on_both_loops
async def test_while_draining_new_requests_get_503_with_retry_after_and_held_invites_too() -> None:
    endpoint = make_endpoint(UDP_TCP, invite_policy=hold_every_invite)
    async with running(endpoint) as bound, peer(bound, "udp") as client:
        client.request("INVITE", branch="z9hG4bK-held")
        assert (await client.response()).status == 100
        endpoint.begin_shutdown()
        held = await client.response()
        assert held.status == 503 and held.cseq.method == "INVITE"
        assert held.headers.get("Retry-After")
        client.request("ACK", branch="z9hG4bK-held", to_tag=held.to_tag)
        client.request("OPTIONS", branch="z9hG4bK-new", call_id="new")
        late = await client.response()
        assert late.status == 503 and late.cseq.method == "OPTIONS"
        assert int(late.headers.get("Retry-After") or "0") > 0


@on_both_loops
async def test_serve_stops_on_request_and_returns_0_within_the_grace_time() -> None:
    endpoint = make_endpoint(UDP_TCP)
    stop = asyncio.Event()
    ready: list[list[Address]] = []

    def on_ready(bound: list[Address]) -> None:
        ready.append(bound)
        stop.set()

    loop = asyncio.get_running_loop()
    started = loop.time()
    status = await asyncio.wait_for(serve(endpoint.config, on_ready=on_ready, endpoint=endpoint,
                                          stop=stop), 5.0)
    assert status == 0
    assert [a.transport for a in ready[0]] == ["udp", "tcp"]
    assert all(a.port != 0 for a in ready[0])
    assert loop.time() - started < 0.5 + 1.0  # shutdown_grace_s is 0.5
    assert endpoint.driver is None  # closed


async def test_serve_freezes_start_up_objects_while_running_and_unfreezes_after() -> None:
    """DESIGN.md: objects built at start-up live as long as the process, so
    serve() moves them out of the cyclic collector's way (gc.freeze) once
    ready, and gives them back when it returns."""
    endpoint = make_endpoint(UDP_TCP)
    stop = asyncio.Event()
    frozen_while_ready: list[int] = []

    def on_ready(bound: list[Address]) -> None:
        frozen_while_ready.append(gc.get_freeze_count())
        stop.set()

    before = gc.get_freeze_count()
    assert await asyncio.wait_for(serve(endpoint.config, on_ready=on_ready, endpoint=endpoint,
                                        stop=stop), 5.0) == 0
    assert frozen_while_ready[0] > before + 1000  # the modules, config, endpoint...
    assert gc.get_freeze_count() == 0
