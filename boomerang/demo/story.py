"""The demo's story, step by step, each step proved by what the peers saw.

``Demo.run()`` starts the simulated carrier and phone (peers.py), writes
and loads the Boomerang config (setup.py), runs ``boomerang.app.serve`` in
this process, and plays the story:

| step | what must be observed (by a peer, on its socket)                     |
|------|-----------------------------------------------------------------------|
|  1   | Boomerang starts: ``serve`` reports its listen address               |
|  2   | phone 101 registers: REGISTER, 401, REGISTER with digest, 200        |
|  3   | the mobile rings the DID: the trigger INVITE gets 100 and 180        |
|  4   | the trigger is rejected, never answered: a final >= 300, no 2xx      |
|  5   | Boomerang calls the mobile back: an INVITE to the mobile's number    |
|      | presenting the DID as caller ID (the trunk's ``caller_id_header``)   |
|  6   | the mobile answers the callback: 200 OK, ACK                         |
|  7   | the mobile hears dial tone: the tone plan's frequency, measured      |
|  8   | the mobile dials 101 (RFC 4733) and phone 101 gets an INVITE         |
|  9   | phone 101 answers: 180, 200 OK, ACK                                  |
| 10   | the call is bridged both ways: 101 hears 440 Hz, the mobile 660 Hz   |
| 11   | the mobile hangs up: its BYE gets 200 OK, phone 101 gets a BYE       |
| 12   | the call records: trigger, callback and destination legs of one      |
|      | story, billed to extension 100, with a cost and a saving estimate    |

Each step has a watchdog (``*_TIMEOUT_S``); the first that expires or
sees the wrong thing raises ``StepFailed(step, reason)``: the timeline so
far stays printed and the demo ends with ``FAILED at step N (what):
reason``. Whatever happens, the peers hang up and close and ``serve`` is
stopped through its ``stop`` event.

``fail_at`` (the hidden ``--fail-at`` option) breaks one step on purpose,
at a peer, so the failure path can be tested: ``register`` (the phone
uses a wrong password), ``callback`` (the mobile refuses the callback
603), ``answer`` (phone 101 refuses the call 486).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..app import StartError, serve
from ..call.events import EndCause
from ..config import Config, ConfigError
from ..media.tones import tone_plan
from ..sip.address import Address
from ..sip.message import Request, Response
from ..sip.uri import SipUri
from ..store import CallRecord
from .audio import NoTelephoneEvent, ToneNotHeard
from .ladder import Ladder, MediaEvent
from .peers import MobilePeer, PeerCall, PhonePeer, RegistrationFailed, WireMessage
from .records import RecordsIncomplete, print_records, wait_for_story
from .setup import DemoPlan, free_port_range, write_demo_config

log = logging.getLogger(__name__)

STEPS = (
    "Boomerang starts",
    "phone 101 registers",
    "the mobile rings the DID",
    "the trigger is rejected, never answered",
    "Boomerang calls the mobile back",
    "the mobile answers the callback",
    "the mobile hears dial tone",
    "the mobile dials 101 and Boomerang calls phone 101",
    "phone 101 answers",
    "the call is bridged both ways",
    "the mobile hangs up and both legs end",
    "the call records are written",
)

START_TIMEOUT_S = 15.0
REGISTER_TIMEOUT_S = 5.0
RINGING_TIMEOUT_S = 3.0
REJECT_GRACE_S = 5.0  # beyond ring_time
CALLBACK_TIMEOUT_S = 10.0  # after the reject
ANSWER_TIMEOUT_S = 5.0
DIAL_TONE_TIMEOUT_S = 5.0
DIGITS_TIMEOUT_S = 5.0
DESTINATION_TIMEOUT_S = 10.0  # after the last digit
BRIDGE_TIMEOUT_S = 5.0
HANGUP_TIMEOUT_S = 5.0
RECORDS_TIMEOUT_S = 10.0
TALK_S = 1.0  # talking on after both sides heard each other
MOBILE_ANSWER_AFTER_S = 0.5
PHONE_ANSWER_AFTER_S = 1.0
TONE_TOLERANCE_HZ = 8.0
SHUTDOWN_SETTLE_S = 0.3
RTP_PORTS_EACH = 100
DATABASE_FILES = ("demo.db", "demo.db-wal", "demo.db-shm", "demo.db-journal")

_T = TypeVar("_T")


class StepFailed(Exception):
    """Step ``step`` (1-based, of STEPS) was not observed; ``reason`` says why."""

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"step {step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    plan: DemoPlan = field(default_factory=DemoPlan)
    fail_at: str | None = None
    keep_folder: Path | None = None  # write the config and database there, keep them


class Demo:
    """One run of the story (see the module doc). ``write`` prints a line."""

    def __init__(self, options: DemoOptions, write: Callable[[str], None]) -> None:
        self.options = options
        self.plan = options.plan
        self.write = write
        self.step = 0
        self.passed: list[tuple[int, str]] = []  # (step, what was observed)
        self.ladder: Ladder | None = None
        self.mobile: MobilePeer | None = None
        self.phone: PhonePeer | None = None
        self.config: Config | None = None
        self.boomerang: Address | None = None
        self.stop = asyncio.Event()
        self.serve_task: asyncio.Task[int] | None = None
        self.wire: list[WireMessage] = []
        self._wire_changed = asyncio.Event()
        self.records: list[CallRecord] = []
        self.started_at = 0.0
        self.on_started: Callable[[], None] | None = None  # once Boomerang listens

    # -- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Play the story; raises StepFailed at the first step not observed."""
        loop = asyncio.get_running_loop()
        self.started_at = loop.time()
        self.ladder = Ladder(started_at=self.started_at, write=self.write)
        keep = self.options.keep_folder
        with contextlib.ExitStack() as stack:
            if keep is None:
                folder = Path(stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="boomerang-demo-")))
            else:
                keep.mkdir(parents=True, exist_ok=True)
                folder = keep
                for name in DATABASE_FILES:  # a fresh story: no phone bindings of a past run
                    (folder / name).unlink(missing_ok=True)
            try:
                await self._story(folder)
            finally:
                await self._shut_down()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def _begin(self, step: int) -> None:
        self.step = step

    def _pass(self, detail: str) -> None:
        self.passed.append((self.step, detail))

    def _fail(self, reason: str) -> StepFailed:
        return StepFailed(self.step, reason)

    async def _within(self, awaitable: Awaitable[_T], timeout_s: float, reason: str) -> _T:
        """``awaitable``'s result; StepFailed(reason) after ``timeout_s``, or at
        once when Boomerang stopped meanwhile (a crash, a signal)."""
        task = asyncio.ensure_future(awaitable)
        waiting: set[asyncio.Future[Any]] = {task}
        if self.serve_task is not None:
            waiting.add(self.serve_task)
        try:
            done, _ = await asyncio.wait(waiting, timeout=timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
        if task in done:
            return task.result()
        if self.serve_task is not None and self.serve_task in done:
            raise self._fail(f"Boomerang stopped ({_ending(self.serve_task)}) while waiting: "
                             f"{reason}")
        raise self._fail(reason)

    def _on_wire(self, wire: WireMessage) -> None:
        self.wire.append(wire)
        self._wire_changed.set()
        if self.ladder is not None:
            self.ladder.sip(wire)

    def _media(self, peer: str, text: str) -> None:
        assert self.ladder is not None
        self.ladder.media(MediaEvent(at=self.now(), peer=peer, text=text))

    # -- the story ----------------------------------------------------------------------

    async def _story(self, folder: Path) -> None:
        plan = self.plan
        fail_at = self.options.fail_at
        self._begin(1)
        try:  # one range, three parts: Boomerang's media, the mobile's, the phone's
            first, _ = free_port_range(3 * RTP_PORTS_EACH)
        except OSError as error:
            raise self._fail(str(error)) from None
        boomerang_rtp, mobile_rtp, phone_rtp = (
            (first + i * RTP_PORTS_EACH, first + (i + 1) * RTP_PORTS_EACH - 1) for i in range(3))
        self.mobile = MobilePeer(mobile_number=plan.mobile, tap=self._on_wire,
                                 rtp_ports=mobile_rtp, answer_after_s=MOBILE_ANSWER_AFTER_S,
                                 refuse_status=603 if fail_at == "callback" else None)
        self.phone = PhonePeer(extension=plan.callee, tap=self._on_wire, rtp_ports=phone_rtp,
                               voice_hz=plan.phone_voice_hz,
                               answer_after_s=PHONE_ANSWER_AFTER_S)
        if fail_at == "answer":
            self.phone.refuse_status = 486
        try:
            carrier = await self.mobile.start()
            await self.phone.start()
        except OSError as error:
            raise self._fail(f"the simulated peers cannot open their sockets: {error}") from None
        password = secrets.token_hex(12)
        try:
            self.config = write_demo_config(plan, folder=folder, carrier_port=carrier.port,
                                            rtp_ports=boomerang_rtp, password=password)
        except ConfigError as error:
            raise self._fail("the generated config was refused: "
                             + "; ".join(error.problems)) from None
        await self._start_boomerang(self.config)
        assert self.ladder is not None
        self.ladder.header()
        await self._register(password if fail_at != "register" else password + "-wrong")
        trigger = await self._trigger()
        callback = await self._callback(trigger)
        await self._dial_tone(callback)
        destination = await self._dial(callback)
        await self._bridge(callback, destination)
        await self._hang_up(callback, destination)
        await self._records(trigger, callback, destination)

    async def _start_boomerang(self, config: Config) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[list[Address]] = loop.create_future()

        def on_ready(bound: list[Address]) -> None:
            if not ready.done():
                ready.set_result(bound)

        self.serve_task = loop.create_task(serve(config, on_ready=on_ready, stop=self.stop))
        waiting: set[asyncio.Future[Any]] = {ready, self.serve_task}
        done, _ = await asyncio.wait(waiting, timeout=START_TIMEOUT_S,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            if self.serve_task in done:
                task = self.serve_task
                error = None if task.cancelled() else task.exception()
                raise self._fail(str(error) if isinstance(error, StartError)
                                 else f"serve() ended before it was ready: {_ending(task)}")
            raise self._fail(f"not ready within {START_TIMEOUT_S:.0f} s")
        bound = ready.result()
        udp = next((address for address in bound if address.transport == "udp"), None)
        if udp is None:
            raise self._fail("Boomerang listens on no UDP address")
        self.boomerang = udp
        if self.on_started is not None:
            self.on_started()
        where = (f"in {self.options.keep_folder}" if self.options.keep_folder is not None
                 else "in a temporary folder")
        self._pass(f"listening on {udp}; config, rate table and SQLite database {where}")

    async def _register(self, password: str) -> None:
        assert self.phone is not None and self.boomerang is not None
        self._begin(2)
        try:
            responses = await self._within(
                self.phone.register(self.boomerang, password=password,
                                    timeout_s=REGISTER_TIMEOUT_S),
                3 * REGISTER_TIMEOUT_S, f"no answer to REGISTER within {REGISTER_TIMEOUT_S:.0f} s")
        except RegistrationFailed as error:
            why = f"REGISTER refused: {error}"
            if self.options.fail_at == "register":
                why += " (the phone was told to use a wrong password: --fail-at register)"
            raise self._fail(why) from None
        except TimeoutError:
            raise self._fail(f"no answer to REGISTER within {REGISTER_TIMEOUT_S:.0f} s") from None
        statuses = " then ".join(str(response.status) for response in responses)
        if not any(response.status == 401 for response in responses):
            raise self._fail(f"registered without a digest challenge ({statuses}): "
                             "extension 101 has a password")
        self._pass(f"REGISTER answered {statuses}: digest challenge, then registered")

    async def _trigger(self) -> PeerCall:
        assert self.mobile is not None and self.boomerang is not None
        plan = self.plan
        self._begin(3)
        trigger = await self.mobile.call(plan.did, self.boomerang)
        sent_at = self.now()
        ended = trigger.progress.ended
        await self._within(_first(trigger.progress.ringing, ended),
                           RINGING_TIMEOUT_S,
                           f"no 180 Ringing within {RINGING_TIMEOUT_S:.0f} s of the INVITE")
        if not trigger.progress.ringing.done():
            raise self._fail(f"the trigger ended before it rang: {_cause(ended.result())}")
        rang_after_ms = 1000 * (self.now() - sent_at)
        if not self._responses(trigger.request.call_id, "INVITE", lambda status: status == 100):
            raise self._fail("180 Ringing came without 100 Trying")
        self._pass(f"100 Trying, then 180 Ringing {rang_after_ms:.0f} ms after the INVITE")

        self._begin(4)
        rang_at = self.now()
        limit_s = plan.ring_time_s + REJECT_GRACE_S
        cause = await self._within(asyncio.shield(ended), limit_s,
                                   f"the trigger was not rejected within {limit_s:.0f} s")
        answered = self._responses(trigger.request.call_id, "INVITE", lambda s: 200 <= s < 300)
        if answered or trigger.progress.answered.done():
            raise self._fail("the trigger call was ANSWERED (200 OK): the caller would pay")
        finals = self._responses(trigger.request.call_id, "INVITE", lambda s: s >= 300)
        if not finals:
            raise self._fail(f"the trigger ended without a final response: {_cause(cause)}")
        rejected = finals[0]
        self._pass(f"{rejected.status} {rejected.reason} after "
                   f"{self.now() - rang_at:.1f} s of ringing; no 200 OK was sent")
        return trigger

    async def _callback(self, trigger: PeerCall) -> PeerCall:
        assert self.mobile is not None and self.config is not None
        plan = self.plan
        self._begin(5)
        rejected_at = self.now()
        callback = await self._within(
            self.mobile.incoming.get(), plan.delay_s + CALLBACK_TIMEOUT_S,
            f"no callback INVITE within {plan.delay_s + CALLBACK_TIMEOUT_S:.0f} s of the "
            "reject")
        request = callback.request
        called = _uri_user(request)
        if called != plan.mobile:
            raise self._fail(f"the callback dialled {called!r}, not the mobile {plan.mobile}")
        header = self.config.trunks[0].caller_id_header
        presented = _presented_caller(request, header)
        if presented != plan.did:
            raise self._fail(f"the callback presents caller ID {presented!r} in "
                             f"{_HEADER_NAMES[header]}, not the DID {plan.did}")
        self._pass(f"INVITE to {called} {self.now() - rejected_at:.1f} s after the reject, "
                   f"caller ID {presented} ({_HEADER_NAMES[header]})")

        self._begin(6)
        progress = callback.progress
        await self._within(_first(progress.answered, progress.ended),
                           ANSWER_TIMEOUT_S + MOBILE_ANSWER_AFTER_S,
                           f"the mobile's 200 OK got no ACK within {ANSWER_TIMEOUT_S:.0f} s")
        if not progress.answered.done():
            why = _cause(progress.ended.result())
            if self.options.fail_at == "callback":
                why += " (the mobile was told to refuse it: --fail-at callback)"
            raise self._fail(f"the callback was not answered: {why}")
        self._pass(f"200 OK and ACK; audio {callback.audio.codec_name}")
        return callback

    async def _dial_tone(self, callback: PeerCall) -> None:
        self._begin(7)
        plan_tones = tone_plan(self.plan.tone_plan)
        expected = plan_tones.dial.segments[0].frequencies_hz[0]
        try:
            heard = await self._within(
                callback.audio.wait_for_tone(expected, timeout_s=DIAL_TONE_TIMEOUT_S,
                                             tolerance_hz=TONE_TOLERANCE_HZ),
                DIAL_TONE_TIMEOUT_S + 1, "the dial tone check did not end")
        except ToneNotHeard as error:
            raise self._fail(f"no {expected:.0f} Hz dial tone within "
                             f"{DIAL_TONE_TIMEOUT_S:.0f} s of the answer; {error}") from None
        self._media("mobile", f"dial tone heard: {heard.frequency_hz:.0f} Hz, "
                              f"{heard.level_dbm0:.0f} dBm0")
        self._pass(f"measured {heard.frequency_hz:.1f} Hz at {heard.level_dbm0:.0f} dBm0 "
                   f"({plan_tones.country.upper()} dial tone: {expected:.0f} Hz)")

    async def _dial(self, callback: PeerCall) -> PeerCall:
        assert self.phone is not None
        plan = self.plan
        self._begin(8)
        pressed: list[float] = []

        def key(digit: str) -> None:
            pressed.append(self.now())
            self._media("mobile", f"DTMF {digit} sent (RFC 4733 telephone-event)")

        try:
            await self._within(callback.audio.send_digits(plan.callee, on_key=key),
                               DIGITS_TIMEOUT_S, "the digits could not be sent")
        except NoTelephoneEvent as error:
            raise self._fail(str(error)) from None
        callback.audio.play(plan.mobile_voice_hz)  # talks from now on
        sent_at = pressed[-1]
        destination = await self._within(
            self.phone.incoming.get(), DESTINATION_TIMEOUT_S,
            f"phone {plan.callee} got no INVITE within {DESTINATION_TIMEOUT_S:.0f} s of the "
            f"digits")
        self._pass(f"DTMF {' '.join(plan.callee)} sent as RFC 4733 events; INVITE at phone "
                   f"{plan.callee} {1000 * (self.now() - sent_at):.0f} ms after the last key")
        return destination

    async def _bridge(self, callback: PeerCall, destination: PeerCall) -> None:
        plan = self.plan
        self._begin(9)
        progress = destination.progress
        await self._within(_first(progress.answered, progress.ended),
                           ANSWER_TIMEOUT_S + PHONE_ANSWER_AFTER_S,
                           f"phone {plan.callee}'s 200 OK got no ACK within "
                           f"{ANSWER_TIMEOUT_S:.0f} s")
        if not progress.answered.done():
            why = _cause(progress.ended.result())
            if self.options.fail_at == "answer":
                why += " (the phone was told to refuse it: --fail-at answer)"
            raise self._fail(f"phone {plan.callee} did not answer: {why}")
        self._pass("180 Ringing, 200 OK, ACK")

        self._begin(10)
        checks = {
            "phone": asyncio.ensure_future(destination.audio.wait_for_tone(
                plan.mobile_voice_hz, timeout_s=BRIDGE_TIMEOUT_S,
                tolerance_hz=TONE_TOLERANCE_HZ)),
            "mobile": asyncio.ensure_future(callback.audio.wait_for_tone(
                plan.phone_voice_hz, timeout_s=BRIDGE_TIMEOUT_S,
                tolerance_hz=TONE_TOLERANCE_HZ)),
        }
        try:
            await self._within(asyncio.wait(checks.values()), BRIDGE_TIMEOUT_S + 1,
                               "the speech checks did not end")
        finally:
            for check in checks.values():
                check.cancel()
        missing = [f"{'the mobile' if peer == 'mobile' else plan.callee}: {error}"
                   for peer, check in checks.items()
                   if not check.cancelled() and (error := check.exception()) is not None]
        if missing:
            raise self._fail(f"no speech both ways within {BRIDGE_TIMEOUT_S:.0f} s: "
                             + "; ".join(missing))
        heard_by_phone, heard_by_mobile = checks["phone"].result(), checks["mobile"].result()
        self._media("phone", f"{plan.callee} hears {heard_by_phone.frequency_hz:.0f} Hz "
                             "(the mobile's voice)")
        self._media("mobile", f"mobile hears {heard_by_mobile.frequency_hz:.0f} Hz "
                              f"({plan.callee}'s voice)")
        self._pass(f"{plan.callee} hears {heard_by_phone.frequency_hz:.0f} Hz from the mobile, "
                   f"the mobile hears {heard_by_mobile.frequency_hz:.0f} Hz from {plan.callee}")

    async def _hang_up(self, callback: PeerCall, destination: PeerCall) -> None:
        plan = self.plan
        await asyncio.sleep(TALK_S)
        self._begin(11)
        callback.leg.hangup()
        mobile_call, phone_call = callback.request.call_id, destination.request.call_id
        await self._wire_shows(
            lambda: bool(self._responses(mobile_call, "BYE", lambda s: 200 <= s < 300)),
            HANGUP_TIMEOUT_S, f"the mobile's BYE got no 200 OK within {HANGUP_TIMEOUT_S:.0f} s")
        await self._wire_shows(
            lambda: any(wire.peer == "phone" and not wire.sent
                        and isinstance(wire.message, Request) and wire.message.method == "BYE"
                        and wire.message.call_id == phone_call for wire in self.wire),
            HANGUP_TIMEOUT_S,
            f"phone {plan.callee} got no BYE within {HANGUP_TIMEOUT_S:.0f} s of the mobile's")
        cause = await self._within(asyncio.shield(destination.progress.ended), HANGUP_TIMEOUT_S,
                                   f"phone {plan.callee}'s call did not end on the BYE")
        self._pass(f"the mobile's BYE answered 200 OK; phone {plan.callee} got BYE "
                   f"({_cause(cause)})")

    async def _wire_shows(self, seen: Callable[[], bool], timeout_s: float,
                          reason: str) -> None:
        """Until ``seen()`` holds of the messages on the wire; StepFailed(reason)."""
        async def until() -> None:
            while not seen():
                self._wire_changed.clear()
                await self._wire_changed.wait()

        await self._within(until(), timeout_s, reason)

    async def _records(self, trigger: PeerCall, callback: PeerCall,
                       destination: PeerCall) -> None:
        assert self.config is not None
        self._begin(12)
        try:
            self.records = await wait_for_story(
                self.config, trigger_call_id=trigger.request.call_id,
                callback_call_id=callback.request.call_id,
                destination_call_id=destination.request.call_id,
                owner=self.plan.owner, timeout_s=RECORDS_TIMEOUT_S)
        except RecordsIncomplete as error:
            raise self._fail(str(error)) from None
        self._pass(f"{len(self.records)} records of one story, billed to extension "
                   f"{self.plan.owner}, with cost and saving estimates")

    def print_records(self) -> None:
        assert self.config is not None
        print_records(self.records, self.config, self.plan, self.write)

    # -- reading the wire ---------------------------------------------------------------

    def _responses(self, call_id: str, method: str, status: Callable[[int], bool]
                   ) -> list[Response]:
        """Responses the peers received for ``method`` in ``call_id``."""
        return [wire.message for wire in self.wire
                if not wire.sent and isinstance(wire.message, Response)
                and wire.message.call_id == call_id and wire.message.cseq.method == method
                and status(wire.message.status)]

    # -- the end ------------------------------------------------------------------------

    async def _shut_down(self) -> None:
        peers = [peer for peer in (self.mobile, self.phone) if peer is not None]
        live = [call for peer in peers for call in peer.calls if not call.leg.ended]
        if live and self.ladder is not None:
            self.ladder.text(self.now(), "(the demo hangs up what is left)")
        for call in live:
            call.leg.hangup()
        if live:  # let the BYE/CANCEL and their answers through while Boomerang listens
            await asyncio.sleep(SHUTDOWN_SETTLE_S)
        for peer in peers:
            with contextlib.suppress(Exception):
                await peer.close()
        task = self.serve_task
        if task is None:
            return
        self.stop.set()
        for wait_s in (3.0, 3.0):
            done, _ = await asyncio.wait({task}, timeout=wait_s)
            if done:
                break
            self.stop.set()  # a second stop cuts the drain short
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


_HEADER_NAMES = {"pai": "P-Asserted-Identity", "rpid": "Remote-Party-ID", "from": "From"}


async def _first(*futures: asyncio.Future[Any]) -> None:
    """Until the first of ``futures`` is done."""
    await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)


def _uri_user(request: Request) -> str:
    uri = request.request_uri
    return (uri.user_unescaped or "") if isinstance(uri, SipUri) else str(uri)


def _presented_caller(request: Request, header: str) -> str | None:
    """The caller number the callback presents in the trunk's caller-ID header."""
    name = _HEADER_NAMES[header]
    try:
        found = request.from_ if header == "from" else next(iter(request.name_addrs(name)),
                                                            None)
    except Exception:  # an unreadable header presents nothing
        return None
    if found is None or not isinstance(found.uri, SipUri):
        return None
    return found.uri.user_unescaped


def _cause(cause: EndCause) -> str:
    parts = [cause.outcome.value]
    if cause.sip_status is not None:
        parts.append(f"SIP {cause.sip_status}")
    if cause.q850_cause is not None:
        parts.append(f"Q.850 {cause.q850_cause}")
    return " ".join(parts)


def _ending(task: asyncio.Task[int]) -> str:
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    return f"serve() exited {task.result()}" if error is None else f"{error!r}"


def describe_step(step: int) -> str:
    return STEPS[step - 1] if 1 <= step <= len(STEPS) else "setting up"


__all__ = ["STEPS", "Demo", "DemoOptions", "StepFailed", "describe_step"]

