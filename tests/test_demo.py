"""``boomerang demo``: the whole story as the console script runs it, its
failure path, and the parts it judges with (tone measurement, RFC 4733
sending, the ladder).

The two subprocess runs start together (a module fixture) so the file
takes about one demo's time (~10 s), not two.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from commands import boomerang_command

from boomerang.demo.audio import PeerAudio, analyse, sine_frames
from boomerang.demo.ladder import Ladder, MediaEvent
from boomerang.demo.peers import WireMessage
from boomerang.media.codecs import PCMU
from boomerang.media.dtmf_rfc4733 import parse_telephone_events
from boomerang.media.g711 import ulaw_decode
from boomerang.media.rtp import RtpPacket
from boomerang.sip.address import Address
from boomerang.sip.parser import parse_message
from boomerang.transport.rtp_socket import PortAllocator

DEMO_LIMIT_S = 60  # the subprocess is killed past this; the demo itself must take < 30 s


@dataclass
class Run:
    returncode: int
    output: str
    elapsed_s: float


def _start(*args: str) -> tuple[subprocess.Popen[str], float]:
    process = subprocess.Popen(
        ["timeout", "--kill-after=5", str(DEMO_LIMIT_S), *boomerang_command(), "demo", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, time.monotonic()


def _finish(started: tuple[subprocess.Popen[str], float]) -> Run:
    process, at = started
    output, _ = process.communicate(timeout=DEMO_LIMIT_S + 10)
    return Run(returncode=process.returncode, output=output,
               elapsed_s=time.monotonic() - at)


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Run]]:
    """``boomerang demo`` and ``boomerang demo --fail-at callback``, run at once."""
    started = {"ok": _start(), "callback": _start("--fail-at", "callback")}
    try:
        yield {name: _finish(value) for name, value in started.items()}
    finally:
        for process, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.wait(5)


def _line(output: str, pattern: str) -> re.Match[str]:
    match = re.search(pattern, output, re.MULTILINE)
    assert match is not None, f"no line matching {pattern!r} in:\n{output}"
    return match


def test_the_demo_plays_the_whole_story_and_exits_0(runs: dict[str, Run]) -> None:
    run = runs["ok"]
    out = run.output
    assert run.returncode == 0, out
    assert run.elapsed_s < 30, f"the demo took {run.elapsed_s:.1f} s"
    # the trigger: rings, then rejected, never answered
    trigger = _line(out, r"^ *(\d+\.\d+)s .*INVITE \+48221234567 .*trigger from \+48600100200$")
    _line(out, r"<-+ 180 Ringing -+\|")
    reject = _line(out, r"^ *(\d+\.\d+)s .*<-+ 486 Busy Here -+\|.*rejected, never answered$")
    assert 1.8 <= float(reject.group(1)) - float(trigger.group(1)) <= 4.0  # ring_time 2 s
    assert "ANSWERED" not in out
    # the callback, with the DID as caller ID
    _line(out, r"INVITE \+48600100200 .*callback, caller ID \+48221234567 \(PAI\)$")
    # the dial tone, measured: PL is 425 Hz
    tone = _line(out, r"\*.*dial tone heard: (\d+) Hz")
    assert abs(int(tone.group(1)) - 425) <= 5
    # the digits 1 0 1, in order, then the INVITE to 101
    keys = re.findall(r"DTMF (\d) sent \(RFC 4733", out)
    assert keys == ["1", "0", "1"]
    _line(out, r"-+ INVITE 101 -+>\|.*call for 101")
    # the bridge both ways
    _line(out, r"\*  101 hears 440 Hz")
    _line(out, r"^ *\d+\.\d+s +\*.*mobile hears 660 Hz")
    _line(out, r"-+ BYE -+>\|.*mobile hangs up")
    # the records: three legs of one story, billed to 100, with a saving
    for kind in ("trigger", "callback", "internal|destination"):
        _line(out, rf"^  (?:{kind}) .* 100 ")
    _line(out, r"^  trigger +\+48600100200 -> \+48221234567 +100 +no .* rejected +486 ")
    saving = _line(out, r"Estimated saving for extension 100: (-?\d+\.\d+) EUR")
    assert float(saving.group(1)) > 0
    _line(out, r"^PASSED: all 12 steps observed on the wire")
    assert "FAILED" not in out


def test_a_broken_step_exits_1_naming_it(runs: dict[str, Run]) -> None:
    run = runs["callback"]
    out = run.output
    assert run.returncode == 1, out
    # the timeline so far is there, up to the refused callback
    _line(out, r"INVITE \+48600100200 .*callback, caller ID \+48221234567")
    _line(out, r"-+ 603 Decline -+>\|")
    last = out.strip().splitlines()[-1]
    assert last.startswith("FAILED at step 6 (the mobile answers the callback): "), last
    assert "603" in last
    assert re.search(r"^ +7 - +the mobile hears dial tone: not reached$", out, re.MULTILINE)
    assert "PASSED" not in out


def test_the_fail_at_option_is_hidden_from_the_help() -> None:
    help_text = subprocess.run([*boomerang_command(), "demo", "--help"], capture_output=True,
                               text=True, timeout=30, check=True).stdout
    assert "--quiet" in help_text
    assert "fail-at" not in help_text


# -- the parts -------------------------------------------------------------------------


@pytest.mark.parametrize("frequency_hz", [350.0, 425.0, 427.3, 440.0, 660.0, 1004.0])
def test_analyse_measures_a_tone_to_within_a_hertz(frequency_hz: float) -> None:
    frames = sine_frames(frequency_hz, -16.0, PCMU)
    samples = np.concatenate([ulaw_decode(frame) for frame in frames[:10]])
    hearing = analyse(samples)
    assert abs(hearing.frequency_hz - frequency_hz) < 1.0
    assert abs(hearing.level_dbm0 + 16.0) < 0.5
    assert hearing.purity > 0.95


def test_analyse_tells_silence_and_mixtures_from_a_tone() -> None:
    silence = analyse(np.zeros(1600, dtype=np.int16))
    assert silence.silent
    n = np.arange(1600)
    mixed = (3000 * np.sin(2 * np.pi * 350 * n / 8000)
             + 3000 * np.sin(2 * np.pi * 440 * n / 8000)).astype(np.int16)
    hearing = analyse(mixed)
    assert not hearing.silent
    assert hearing.purity < 0.8  # two equal tones: not "a" tone


class StubLeg:
    call_id = "stub-leg"


class SpyAudio(PeerAudio):
    """A PeerAudio that also keeps every RTP packet it receives."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.packets: list[RtpPacket] = []

    def rtp_received(self, data: bytes, source: tuple[str, int]) -> None:
        self.packets.append(RtpPacket.parse(data))
        super().rtp_received(data, source)


async def test_peer_audio_hears_the_other_peer_and_sends_rfc4733_keys() -> None:
    first = 42000 + (time.monotonic_ns() // 1000 % 500) * 2
    a = await PeerAudio.open(PortAllocator(first, first + 9), "127.0.0.1", name="a")
    b = await SpyAudio.open(PortAllocator(first + 10, first + 19), "127.0.0.1", name="b")
    assert isinstance(b, SpyAudio)
    try:
        leg = StubLeg()
        offer = a.offer(leg)
        b.play(660.0)
        a.remote_answer(leg, b.answer(leg, offer))
        a.play(440.0)
        heard_by_b = await b.wait_for_tone(440.0, timeout_s=3.0)
        heard_by_a = await a.wait_for_tone(660.0, timeout_s=3.0)
        assert abs(heard_by_b.frequency_hz - 440.0) < 2
        assert abs(heard_by_a.frequency_hz - 660.0) < 2

        b.packets.clear()
        keys: list[str] = []
        await asyncio.wait_for(a.send_digits("101", on_key=keys.append), 5.0)
        await asyncio.sleep(0.1)
        assert keys == ["1", "0", "1"]
        assert a.negotiated is not None
        event_type = a.negotiated.telephone_event_payload_type
        events = [p for p in b.packets if p.payload_type == event_type]
        starts = [p for p in events if p.marker]
        assert [parse_telephone_events(p.payload)[0].event for p in starts] == [1, 0, 1]
        for start in starts:  # every packet of a key carries its start timestamp
            blocks = [parse_telephone_events(p.payload)[0] for p in events
                      if p.timestamp == start.timestamp]
            assert [block.end for block in blocks][-3:] == [True] * 3  # the end sent 3 times
            assert not any(block.end for block in blocks[:-3])
            assert blocks[-1].duration == 800  # 100 ms at 8 kHz
        sequence = [p.sequence_number for p in b.packets]  # audio and events: one stream
        assert all((later - earlier) % 65536 == 1
                   for earlier, later in itertools.pairwise(sequence))
    finally:
        a.close()
        b.close()


TRIGGER = (
    "INVITE sip:+48221234567@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n"
    "From: <sip:+48600100200@127.0.0.1:5070>;tag=a\r\n"
    "To: <sip:+48221234567@127.0.0.1:5060>\r\n"
    "Call-ID: trigger-1\r\n"
    "CSeq: 1 INVITE\r\n"
    "P-Asserted-Identity: <sip:+48600100200@127.0.0.1:5070>\r\n"
    "Content-Length: 0\r\n\r\n")


def _response(status: int, reason: str) -> str:
    return (f"SIP/2.0 {status} {reason}\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n"
            "From: <sip:+48600100200@127.0.0.1:5070>;tag=a\r\n"
            "To: <sip:+48221234567@127.0.0.1:5060>;tag=b\r\n"
            "Call-ID: trigger-1\r\n"
            "CSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n")


def _wire(text: str, *, at: float, sent: bool, peer: str = "mobile") -> WireMessage:
    data = text.encode()
    return WireMessage(at=at, peer=peer, sent=sent, message=parse_message(data),
                       remote=Address("udp", "127.0.0.1", 5060), data=data)


def test_the_ladder_draws_who_sent_what_with_its_meaning() -> None:
    lines: list[str] = []
    ladder = Ladder(started_at=100.0, write=lines.append)
    ladder.sip(_wire(TRIGGER, at=100.5, sent=True))
    ladder.sip(_wire(_response(486, "Busy Here"), at=102.5, sent=False))
    ladder.sip(_wire(_response(486, "Busy Here"), at=103.0, sent=False))
    ladder.sip(_wire(_response(200, "OK"), at=103.5, sent=False))
    ladder.media(MediaEvent(at=104.0, peer="phone", text="101 hears 440 Hz"))
    invite, reject, again, answered, media = lines
    assert invite.startswith("  0.500s ")
    assert re.search(r"\|-+ INVITE \+48221234567 -+>\|", invite)
    assert invite.endswith("trigger from +48600100200")
    assert re.search(r"\|<-+ 486 Busy Here -+\|", reject)
    assert reject.endswith("rejected, never answered")
    assert again.endswith("(retransmission) rejected, never answered")
    assert answered.endswith("ANSWERED: the caller would pay")
    assert media.rstrip().endswith("*  101 hears 440 Hz")
    assert media.index("*") > invite.index(">|")  # the phone's lane, right of Boomerang's
