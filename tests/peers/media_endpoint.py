"""A test-harness UAS on Boomerang's Endpoint that terminates media.

What it does with a call (the dial-tone phase of a callback leg, alone):

- INVITE with an SDP offer: 200 OK with our answer (PCMU/PCMA and
  telephone-event, from ``build_answer``) and a ``MediaSession`` on a port
  of the harness's range; no offer or no common codec gives 488.
- ACK: the dialog is confirmed; the session plays the tone plan's dial
  tone and collects digits until ``#``, the inter-digit timeout or the
  first-digit timeout.
- INFO (``application/dtmf-relay`` or ``application/dtmf``) in the dialog:
  200, and the digit goes to the session; a body we cannot read gets 400,
  another content type 415.
- BYE in the dialog: 200, the session is closed.

Per call it records the digits received (with their source), the end of
the collection, and the times of answer, ACK, first key, tone stop and BYE
(``CallRecord``). Not product code: no 2xx retransmission (loopback does
not lose packets), one audio stream, no re-INVITE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field

from boomerang.app import Endpoint
from boomerang.call.media_session import MediaSession
from boomerang.config import load_config_text
from boomerang.media.digits import DigitCollectionEnded, DigitCollector, DigitReceived
from boomerang.media.dtmf_info import DtmfBodyError, parse_dtmf_info
from boomerang.media.tones import ToneBank
from boomerang.sip.auth import DigestServer
from boomerang.sip.dialog import Dialog, DialogError
from boomerang.sip.errors import SipError
from boomerang.sip.ids import CountingIds
from boomerang.sip.message import Request, make_response
from boomerang.sip.offer_answer import MediaCapabilities, build_answer
from boomerang.sip.sdp import SessionDescription
from boomerang.sip.transaction.events import Event, RequestReceived, TransactionKey
from boomerang.transport.rtp_socket import PortAllocator

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


@dataclass
class CallRecord:
    """What happened to one call (times from ``time.monotonic``; ``first_key_at``
    is the first digit's estimated key-down time, ``tone_stopped_at`` when the
    dial tone stopped)."""

    call_id: str
    invite_at: float
    codec: str = ""
    remote_rtp: tuple[str, int] = ("", 0)
    local_rtp_port: int = 0
    answered_at: float | None = None
    acked_at: float | None = None
    first_key_at: float | None = None
    tone_stopped_at: float | None = None
    tone_stop_reason: str | None = None
    tone_frames_sent: int = 0
    bye_at: float | None = None
    info_requests: int = 0
    digits: list[DigitReceived] = field(default_factory=list)
    ended: DigitCollectionEnded | None = None

    @property
    def digit_string(self) -> str:
        return "".join(digit.digit for digit in self.digits)

    @property
    def sources(self) -> set[str]:
        return {str(digit.source) for digit in self.digits}


class _Call:
    __slots__ = ("collecting", "dialog", "done", "record", "session")

    def __init__(self, record: CallRecord, dialog: Dialog, session: MediaSession) -> None:
        self.record = record
        self.dialog = dialog
        self.session = session
        self.collecting: asyncio.Task[None] | None = None
        self.done = asyncio.Event()


class MediaEndpoint(Endpoint):
    """An ``Endpoint`` whose INVITEs are answered with dial tone (see module doc)."""

    def __init__(self, *, rtp_ports: tuple[int, int], plan: str = "pl",
                 first_digit_timeout_s: float = 10.0, inter_digit_timeout_s: float = 3.0,
                 capabilities: MediaCapabilities | None = None) -> None:
        config = load_config_text(
            f"sip:\n  listen: [udp:{LOOPBACK}:0]\n  shutdown_grace_s: 0.2\n", "harness.yaml")
        super().__init__(config, challenger=DigestServer(realm="harness", secret=b"h" * 32),
                         ids=CountingIds("media"), invite_policy=lambda request: None)
        self.allocator = PortAllocator(*rtp_ports)
        self.tone_bank = ToneBank()
        self.plan = plan
        self.first_digit_timeout_s = first_digit_timeout_s
        self.inter_digit_timeout_s = inter_digit_timeout_s
        self.capabilities = capabilities or MediaCapabilities()
        self.records: dict[str, CallRecord] = {}
        self._calls: dict[str, _Call] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._call_started = asyncio.Event()
        self.sip_port = 0

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.sip_port)

    async def start_listening(self) -> None:
        bound = await self.start()
        self.sip_port = bound[0].port

    # -- waiting (for tests) -------------------------------------------------------

    async def wait_for_call(self, timeout_s: float = 10.0) -> CallRecord:
        async with asyncio.timeout(timeout_s):
            while not self.records:
                self._call_started.clear()
                await self._call_started.wait()
        return next(iter(self.records.values()))

    async def wait_for_end(self, call_id: str, timeout_s: float = 15.0) -> CallRecord:
        """Wait until BYE closed the call ``call_id``."""
        async with asyncio.timeout(timeout_s):
            while call_id not in self._calls:
                await asyncio.sleep(0.01)
            await self._calls[call_id].done.wait()
        return self.records[call_id]

    async def shutdown(self) -> None:
        for call in self._calls.values():
            call.session.close()
            if call.collecting is not None:
                call.collecting.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.close()

    # -- SIP -----------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            request = event.request
            call = self._calls.get(request.call_id)
            if call is not None and request.to_tag:
                self._in_dialog(call, request, event.transaction)
                return
            if event.transaction is not None and request.method == "INVITE" \
                    and not request.to_tag:
                super().handle(event)
                if event.transaction in self.pending_invites:
                    self._spawn(self._answer_invite(event.transaction, request))
                return
        super().handle(event)

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_invite(self, key: TransactionKey, request: Request) -> None:
        call_id = request.call_id
        record = CallRecord(call_id=call_id, invite_at=time.monotonic())
        self.records[call_id] = record
        self._call_started.set()
        try:
            offer = SessionDescription.parse(request.body)
        except SipError as error:
            log.info("call_id=%s unusable offer: %s", call_id, error.detail)
            self.answer_invite(key, 488)
            return
        collector = DigitCollector(first_digit_timeout_s=self.first_digit_timeout_s,
                                   inter_digit_timeout_s=self.inter_digit_timeout_s)
        session = await MediaSession.open(self.allocator, LOOPBACK, call_id=call_id,
                                          tone_bank=self.tone_bank, plan=self.plan,
                                          collector=collector)
        try:
            answer, negotiated = build_answer(offer, self.capabilities, LOOPBACK,
                                              session.local_port, session_id=int(time.time()),
                                              session_version=1)
        except SipError as error:
            session.close()
            log.info("call_id=%s offer refused: %s", call_id, error.detail)
            self.answer_invite(key, error.status)
            return
        session.configure(negotiated)
        record.codec = negotiated.codec.name
        record.remote_rtp = (negotiated.remote_address, negotiated.remote_port)
        record.local_rtp_port = session.local_port
        if self.pending_invites.pop(key, None) is None:  # cancelled meanwhile
            session.close()
            return
        response = make_response(request, 200, to_tag=self._ids.tag(), headers=(
            ("Contact", f"<sip:media@{LOOPBACK}:{self.sip_port}>"),
            ("Content-Type", "application/sdp"),
            *self.server_headers,
        ), body=bytes(answer))
        assert self.driver is not None
        self.driver.send_response(response)
        dialog = Dialog.from_uas(request, response)
        dialog.response_sent(request, response)
        self._calls[call_id] = _Call(record, dialog, session)
        record.answered_at = time.monotonic()
        log.info("call_id=%s answered: %s to %s:%d", call_id, record.codec,
                 *record.remote_rtp)

    def _in_dialog(self, call: _Call, request: Request, key: TransactionKey | None) -> None:
        try:
            call.dialog.receive_request(request)
        except DialogError as error:
            if request.method != "ACK":
                self._reply(request, error.status)
            return
        method = request.method
        if method == "ACK":
            self._on_ack(call)
        elif method == "INFO":
            self._on_info(call, request)
        elif method == "BYE":
            self._reply(request, 200)
            self._on_bye(call)
        elif key is not None:
            self._reply(request, 501 if method not in ("INVITE", "UPDATE") else 488)

    def _reply(self, request: Request, status: int) -> None:
        self._answer(request, status)

    def _on_ack(self, call: _Call) -> None:
        record = call.record
        if record.acked_at is not None:
            return  # a retransmitted ACK
        record.acked_at = time.monotonic()
        call.session.play_tone("dial")
        call.session.start_collecting()
        call.collecting = asyncio.ensure_future(self._collect(call))

    async def _collect(self, call: _Call) -> None:
        record = call.record
        async for event in call.session.digits():
            if isinstance(event, DigitReceived):
                if record.first_key_at is None:
                    record.first_key_at = event.time  # when the key went down
                record.digits.append(event)
            else:
                record.ended = event
        self._note_tone(call)

    def _note_tone(self, call: _Call) -> None:
        session, record = call.session, call.record
        if record.tone_stop_reason is None:
            record.tone_stop_reason = session.tone_stop_reason
            record.tone_stopped_at = session.tone_stopped_at
        record.tone_frames_sent = session.frames_sent

    def _on_info(self, call: _Call, request: Request) -> None:
        call.record.info_requests += 1
        try:
            info = parse_dtmf_info(request.content_type or "", request.body)
        except DtmfBodyError as error:
            log.info("call_id=%s INFO refused: %s", request.call_id, error.detail)
            self._reply(request, error.status)
            return
        self._reply(request, 200)
        call.session.info_digit(info)

    def _on_bye(self, call: _Call) -> None:
        record = call.record
        record.bye_at = time.monotonic()
        call.session.close()
        self._note_tone(call)
        if call.collecting is not None and not call.collecting.done():
            call.collecting.cancel()
        call.done.set()
        log.info("call_id=%s ended by BYE; digits %r", record.call_id, record.digit_string)


@contextlib.asynccontextmanager
async def media_endpoint(rtp_ports: tuple[int, int], **options: object
                         ) -> AsyncIterator[MediaEndpoint]:
    """A listening ``MediaEndpoint`` (UDP on 127.0.0.1, ephemeral SIP port)."""
    endpoint = MediaEndpoint(rtp_ports=rtp_ports, **options)  # type: ignore[arg-type]
    await endpoint.start_listening()
    try:
        yield endpoint
    finally:
        await endpoint.shutdown()
