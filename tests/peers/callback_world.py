"""The world of the callback acceptance tests: ``boomerang run`` (a
subprocess, started by the ``run_boomerang`` fixture) between real peers.

- The **carrier** is a trunk whose ``host:port`` is the peer that plays the
  mobile phone behind it: a SIPp UAS (``scenarios/callback_*_uas.xml``) or
  a baresip. Its ``sources`` are 127.0.0.1/32, so a trigger INVITE from any
  127.0.0.1 port arrives "from the carrier"; SIPp bound to 127.0.0.2 is a
  stranger. Trunk keep-alives are off: an OPTIONS would be an unexpected
  message for a SIPp UAS.
- The **trigger** is ``scenarios/callback_trigger_uac.xml`` (the mobile
  ringing the DID) or a baresip ``dial``.
- Extension **101** is a baresip registered with digest
  (``test_phone_calls.phones`` / ``register``).

What the peers saw is read back from their own traces: SIPp's
``-trace_msg`` file has every message with the wall-clock time it was sent
or received (``parse_message_log``), so gaps such as "ACK -> BYE" or
"INVITE -> INVITE" are measured where the peer stood. baresip's control
events get their arrival time stamped (``stamp_events``). What Boomerang
stored is read with its own command line: ``boomerang cdr --format json``
and ``boomerang calls --format json`` (``cdr_records``,
``pending_callbacks``), as an administrator would.

Audio: ``frequency_track`` cuts a recording into blocks and gives each its
level and dominant frequency, so a test can ask "what did the phone hear
between these two moments" (the 425 Hz dial tone, the special information
tone's 950/1400/1800 Hz, the other phone's microphone).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from boomerang.sip.address import Address

from .conftest import LOOPBACK, SCENARIOS, require_tool
from .pcap_writer import rfc4733_stream, write_pcap

# A trigger is answered with 180 at once and rejected ring_time later, a
# callback placed when due: how late either may be on a loaded 2-core machine.
LATE_S = 1.2

DID = "+48221234567"
CALLBACK_CALLER_ID = "+48221234599"  # presented on the callback leg (not the DID)
MOBILE = "+48600100200"
MOBILE_NATIONAL = "600100200"        # the same mobile as a Polish carrier writes it
UNKNOWN_MOBILE = "+48600999999"
STRANGER = "127.0.0.2"               # a loopback address outside the trunk's sources

# "----------------------------------------------- 2026-11-22 07:17:14.175961"
_SEPARATOR = re.compile(r"^-{20,} (\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*$")
# "UDP message received [515] bytes :" / "UDP message sent (246 bytes):"
_DIRECTION = re.compile(r"^\w+ message (received|sent)\b")


def require_peers(*tools: str) -> None:
    """Skip the test, before anything starts, when a peer is not installed."""
    for tool in tools:
        require_tool(tool)


# -- configuration ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Timers:
    """The callback flow's timers, short so that a story takes seconds."""

    ring_time_s: float = 1.0
    delay_s: float = 1.0
    retries: int = 1
    retry_interval_s: float = 2.0
    inter_digit_s: float = 2.0          # the callback's ``timeout``
    first_digit_s: float = 3.0          # disa ``first_digit_timeout``
    answer_timeout_s: float = 8.0

    @property
    def quiet_window_s(self) -> float:
        """How long after a trigger's reject no callback may still come:
        delay, every retry, and a margin."""
        return self.delay_s + self.retries * self.retry_interval_s + 2.5


def port_range(ports: Callable[[], int], size: int = 40) -> tuple[int, int]:
    first = ports() & ~1
    return (first, min(first + size, 65535))


def extension_yaml(number: str, *, password: str | None = None,
                   mobiles: Sequence[str] = (), callback: bool = False,
                   transit: bool = False) -> str:
    items = [f'number: "{number}"']
    if password is not None:
        items.append(f"password: {password}")
    if mobiles:
        items.append("mobiles: [" + ", ".join(f'"{m}"' for m in mobiles) + "]")
    items.append(f"callback: {str(callback).lower()}")
    items.append(f"transit: {str(transit).lower()}")
    return "  - {" + ", ".join(items) + "}\n"


def callback_config(*, database: Path, rtp_ports: tuple[int, int], carrier_port: int,
                    extensions: str, timers: Timers | None = None,
                    caller_id_header: str = "pai", carrier_extra: str = "",
                    more_trunks: str = "", disa_extra: str = "",
                    licence: Path | None = None, licence_public_key: Path | None = None
                    ) -> str:
    """A ``boomerang.yaml``: the carrier trunk at ``127.0.0.1:carrier_port``,
    the DID on it, flow ``roaming`` = callback (method caller) -> disa."""
    t = timers or Timers()
    licence_lines = ""
    if licence is not None:
        licence_lines += f"licence: {licence}\n"
    if licence_public_key is not None:
        licence_lines += f"licence_public_key: {licence_public_key}\n"
    return f"""\
sip:
  listen: [udp:127.0.0.1:0]
  shutdown_grace_s: 0.2
  digest_algorithms: [MD5]     # baresip 1.0 fails a SHA-256 challenge (ENOSYS)
media: {{rtp_ports: {rtp_ports[0]}-{rtp_ports[1]}, tone_plan: pl}}
database: sqlite:///{database}
{licence_lines}registrar: {{min_expires_s: 60, default_expires_s: 600, max_expires_s: 600}}
numbers: {{country: PL, company_number: "{DID}"}}
service: {{poll_interval_s: 0.2, drain_grace_s: 1}}
trunks:
  - {{name: carrier, host: 127.0.0.1, port: {carrier_port}, sources: [127.0.0.1/32],
     keepalive_s: 0, dial_format: e164, caller_id_header: {caller_id_header}{carrier_extra}}}
{more_trunks}extensions:
{extensions}dids:
  - {{number: "{DID}", trunk: carrier, flow: roaming}}
flows:
  roaming:
    - {{id: cb, type: callback, method: caller, caller_id: "{CALLBACK_CALLER_ID}",
       delay: {t.delay_s}, ring_time: {t.ring_time_s}, retries: {t.retries},
       retry_interval: {t.retry_interval_s}, timeout: {t.inter_digit_s},
       answer_timeout: {t.answer_timeout_s}, next: tone}}
    - {{id: tone, type: disa, first_digit_timeout: {t.first_digit_s}{disa_extra}}}
"""


# -- boomerang, the process and its command line -----------------------------------------


class ServerProcess(Protocol):
    """What the tests use of ``tests/conftest.py``'s ``BoomerangProcess``."""

    process: subprocess.Popen[bytes]
    config_path: Path

    def output(self) -> str: ...

    def address(self, transport: str = "udp") -> tuple[str, int]: ...

    def stop(self, timeout_s: float = 10.0) -> int: ...


def boomerang_command() -> list[str]:
    beside = Path(sys.executable).with_name("boomerang")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("boomerang")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from boomerang.cli import main; sys.exit(main())"]


async def start_server(run_boomerang: Callable[..., ServerProcess], config: str
                       ) -> ServerProcess:
    """``run_boomerang`` (tests/conftest.py) off the event loop, with full SIP
    traces in its log (``-vv``) for the assertion messages."""
    return await asyncio.to_thread(run_boomerang, config, args=("-vv",), limit_s=120)


def server_address(server: ServerProcess) -> Address:
    host, port = server.address("udp")
    return Address("udp", host, port)


def boomerang_cli(*args: str, cwd: Path, timeout_s: float = 30.0
                  ) -> subprocess.CompletedProcess[str]:
    """Run one ``boomerang`` command to completion (output as text)."""
    return subprocess.run([*boomerang_command(), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout_s, check=False,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _json_of(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, (done.args, done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout)


def cdr_records(config_path: Path) -> list[dict[str, Any]]:
    """``boomerang cdr -c FILE --format json``: every leg, as the CLI prints it."""
    records = _json_of(boomerang_cli("cdr", "-c", str(config_path), "--format", "json",
                                     cwd=config_path.parent))
    assert isinstance(records, list), records
    return records


def pending_callbacks(config_path: Path) -> list[dict[str, Any]]:
    """``boomerang calls -c FILE --format json``: the unfinished callback jobs."""
    state = _json_of(boomerang_cli("calls", "-c", str(config_path), "--format", "json",
                                   cwd=config_path.parent))
    callbacks = state["callbacks"]
    assert isinstance(callbacks, list), state
    return callbacks


def server_pid(server: ServerProcess) -> int:
    """The PID of ``boomerang`` itself: ``run_boomerang`` starts it under
    ``timeout``, whose only child it is."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def kill_server(server: ServerProcess) -> int:
    """``kill -9`` the server (not ``timeout``: it would leave boomerang
    running); returns the PID killed once ``timeout`` has reported its end."""
    pid = server_pid(server)
    os.kill(pid, signal.SIGKILL)
    server.process.wait(10)
    return pid


# -- SIPp ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SipMessage:
    """One message of a SIPp ``-trace_msg`` file."""

    at_s: float                      # wall clock (time.time()) when SIPp logged it
    sent: bool                       # sent by SIPp, else received
    start_line: str
    headers: tuple[tuple[str, str], ...]
    body: str

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    @property
    def method(self) -> str | None:
        """The request's method; None for a response."""
        return None if self.start_line.startswith("SIP/2.0") else self.start_line.split()[0]

    @property
    def status(self) -> int | None:
        if not self.start_line.startswith("SIP/2.0"):
            return None
        return int(self.start_line.split()[1])

    @property
    def request_user(self) -> str:
        """The user part of the Request-URI (``INVITE sip:USER@host``)."""
        uri = self.start_line.split()[1]
        return uri.split(":", 1)[1].split("@", 1)[0] if "@" in uri else ""

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or self.header("i") or ""

    @property
    def cseq(self) -> str:
        return " ".join((self.header("CSeq") or "").split())


def parse_message_log(text: str) -> list[SipMessage]:
    """Every message of a SIPp ``-trace_msg`` file, in order."""
    messages: list[SipMessage] = []
    blocks: list[tuple[float, list[str]]] = []
    for line in text.splitlines():
        separator = _SEPARATOR.match(line)
        if separator:
            stamp = datetime.strptime(f"{separator.group(1)} {separator.group(2)}",
                                      "%Y-%m-%d %H:%M:%S.%f")
            blocks.append((stamp.timestamp(), []))  # SIPp writes local time
        elif blocks:
            blocks[-1][1].append(line)
    for at_s, lines in blocks:
        direction = next((_DIRECTION.match(line) for line in lines if _DIRECTION.match(line)),
                         None)
        if direction is None:
            continue
        start = lines.index(direction.string) + 1
        while start < len(lines) and not lines[start].strip():
            start += 1
        if start >= len(lines):
            continue
        head, body = lines[start:], []
        if "" in head:
            split = head.index("")
            head, body = head[:split], head[split + 1:]
        headers = tuple((name.strip(), value.strip()) for name, _, value in
                        (line.partition(":") for line in head[1:]) if name)
        messages.append(SipMessage(at_s=at_s, sent=direction.group(1) == "sent",
                                   start_line=head[0].strip(), headers=headers,
                                   body="\n".join(body).strip()))
    return messages


def first_of_each(messages: Sequence[SipMessage]) -> list[SipMessage]:
    """Retransmissions dropped: the first message per start line, Call-ID,
    CSeq and direction."""
    seen: set[tuple[str, str, str, bool]] = set()
    unique = []
    for message in messages:
        key = (message.start_line.split()[0] if message.method else message.start_line,
               message.call_id, message.cseq, message.sent)
        if key not in seen:
            seen.add(key)
            unique.append(message)
    return unique


class SippPeer:
    """One SIPp process (UAC or UAS) and its traces."""

    def __init__(self, process: subprocess.Popen[bytes], directory: Path, host: str,
                 port: int) -> None:
        self.process = process
        self.directory = directory
        self.host = host
        self.port = port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def messages(self) -> list[SipMessage]:
        path = self.directory / "messages.log"
        return parse_message_log(path.read_text(errors="replace") if path.exists() else "")

    def received(self, method_or_status: str | int) -> list[SipMessage]:
        """Received requests of a method (or responses of a status), no
        retransmissions."""
        return [m for m in first_of_each(self.messages()) if not m.sent
                and (m.method == method_or_status or m.status == method_or_status)]

    def sent(self, method_or_status: str | int) -> list[SipMessage]:
        return [m for m in first_of_each(self.messages()) if m.sent
                and (m.method == method_or_status or m.status == method_or_status)]

    def invites(self) -> list[SipMessage]:
        """The INVITEs this peer received (a new one per call, not resent copies)."""
        return self.received("INVITE")

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            return self.process.wait(5)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(3)
        return int(self.process.returncode)

    def output(self) -> str:
        path = self.directory / "output.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def explain(self) -> str:
        """The peer's exit, its errors and the start of each message it saw."""
        errors = self.directory / "errors.log"
        lines = [f"sipp {self.directory.name} exit {self.process.poll()}"]
        lines += [f"  {time.strftime('%H:%M:%S', time.localtime(m.at_s))}"
                  f".{int(m.at_s % 1 * 1000):03d} {'>>' if m.sent else '<<'} {m.start_line}"
                  f"  [{m.cseq}] {m.call_id[:24]}" for m in self.messages()]
        if errors.exists():
            lines.append("errors: " + errors.read_text(errors="replace")[-1500:])
        return "\n".join(lines)


def _bound(host: str, port: int) -> bool:
    """True when some process holds UDP ``host:port`` (our bind fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def start_sipp(scenario: str, directory: Path, *, port: int, media_port: int,
               host: str = LOOPBACK, remote: tuple[str, int] | None = None,
               service: str | None = None, calls: int = 1,
               keys: Mapping[str, str] | None = None, limit_s: int = 40,
               extra: Sequence[str] = ()) -> SippPeer:
    """Start SIPp in the background: a UAS on ``host:port`` (``remote`` None,
    returns once it listens) or a UAC calling ``remote``."""
    binary = require_tool("sipp")
    directory.mkdir(parents=True)
    command = [
        "timeout", "--kill-after=3", str(limit_s), binary,
        *([f"{remote[0]}:{remote[1]}"] if remote else []),
        "-sf", str(SCENARIOS / scenario), "-t", "u1",
        "-i", host, "-mi", host, "-p", str(port), "-mp", str(media_port),
        "-m", str(calls), "-nostdin",
        "-trace_msg", "-message_file", str(directory / "messages.log"),
        "-trace_err", "-error_file", str(directory / "errors.log"),
        *(["-s", service] if service else []),
        *([] if remote else ["-aa"]),  # a UAS answers in-dialog INFO/UPDATE/OPTIONS
        *[item for name, value in (keys or {}).items() for item in ("-key", name, value)],
        *extra,
    ]  # fmt: skip
    with (directory / "output.log").open("wb") as output:
        process = subprocess.Popen(command, cwd=directory, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT)
    peer = SippPeer(process, directory, host, port)
    if remote is None:
        deadline = time.monotonic() + 5
        while not _bound(host, port):
            if process.poll() is not None:
                raise AssertionError(f"sipp {scenario} exited {process.returncode}:\n"
                                     + peer.output()[-2000:])
            assert time.monotonic() < deadline, f"sipp {scenario} did not bind {port}"
            time.sleep(0.02)
    return peer


def silence_pcap(path: Path, duration_s: float = 15.0) -> Path:
    """PCMU silence for ``play_pcap_audio``: media flows, no key is pressed."""
    return write_pcap(path, rfc4733_stream("", lead_s=0.0, tail_s=duration_s))


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerResult:
    """What the mobile saw of its trigger call."""

    peer: SippPeer
    returncode: int
    invite_at_s: float
    provisional: tuple[tuple[float, int], ...]   # (time, status) of each 1xx
    final_at_s: float | None
    final_status: int | None

    @property
    def ringing_at_s(self) -> float | None:
        return next((at for at, status in self.provisional if status == 180), None)

    def explain(self) -> str:
        return self.peer.explain()


async def trigger(directory: Path, server: ServerProcess, ports: Callable[[], int], *,
                  caller: str, caller_host: str = LOOPBACK, host: str = LOOPBACK,
                  did: str = DID, limit_s: int = 20) -> TriggerResult:
    """The mobile rings the DID (``callback_trigger_uac.xml``) and hangs on
    until the final response; returns what it received and when."""
    peer = start_sipp("callback_trigger_uac.xml", directory, port=ports(),
                      media_port=ports(), host=host, remote=server.address("udp"),
                      service=did, keys={"caller": caller, "caller_host": caller_host},
                      limit_s=limit_s, extra=("-recv_timeout", "15000"))
    returncode = await asyncio.to_thread(peer.wait, limit_s + 5)
    messages = first_of_each(peer.messages())
    invite = next(m for m in messages if m.sent and m.method == "INVITE")
    responses = [m for m in messages if not m.sent and m.status is not None
                 and m.cseq.endswith("INVITE")]
    finals = [m for m in responses if m.status is not None and m.status >= 200]
    return TriggerResult(
        peer=peer, returncode=returncode, invite_at_s=invite.at_s,
        provisional=tuple((m.at_s, m.status) for m in responses
                          if m.status is not None and m.status < 200),
        final_at_s=finals[0].at_s if finals else None,
        final_status=finals[0].status if finals else None)


@contextmanager
def sipp_peers() -> Iterator[list[SippPeer]]:
    """A list to put started peers in; each is stopped (by PID) on the way out."""
    peers: list[SippPeer] = []
    try:
        yield peers
    finally:
        for peer in peers:
            peer.stop()


# -- baresip ---------------------------------------------------------------------------


class StampedEvents(list[dict[str, Any]]):
    """baresip's event list, each event stamped ``at_s`` (time.monotonic())."""

    def append(self, event: dict[str, Any]) -> None:
        event["at_s"] = time.monotonic()
        super().append(event)


class HasEvents(Protocol):
    events: list[dict[str, Any]]


def stamp_events(phone: HasEvents) -> None:
    phone.events = StampedEvents(phone.events)


def events_of(phone: HasEvents, kind: str) -> list[dict[str, Any]]:
    return [event for event in phone.events if event.get("type") == kind]


async def wait_count(phone: HasEvents, kind: str, count: int, timeout_s: float
                     ) -> dict[str, Any]:
    """The ``count``-th event of ``kind`` (1-based), waiting up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while len(events_of(phone, kind)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {kind} #{count} within {timeout_s} s; events "
                                 f"{[e.get('type') for e in phone.events]}")
        await asyncio.sleep(0.02)
    return events_of(phone, kind)[count - 1]


def mobile_account(number: str = MOBILE) -> str:
    """The mobile behind the carrier: no registration, answers by itself."""
    return f"<sip:{number}@{LOOPBACK}>;regint=0;answermode=auto"


# -- audio -----------------------------------------------------------------------------


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as heard:
        assert heard.getnchannels() == 1 and heard.getsampwidth() == 2, path
        rate = heard.getframerate()
        pcm = np.frombuffer(heard.readframes(heard.getnframes()), "<i2").astype(float)
    return pcm, rate


def longest(paths: Sequence[Path]) -> Path:
    assert paths, "no recording"
    return max(paths, key=lambda path: path.stat().st_size)


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    start_s: float                   # from the start of the recording
    level: float                     # RMS, 16-bit scale
    frequency_hz: float              # dominant frequency (0 when silent)


SOUNDING_LEVEL = 300.0


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    if len(pcm) < 16:
        return 0.0
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    spectrum[0] = 0
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spectrum))])


def frequency_track(pcm: np.ndarray, rate: int, block_s: float = 0.05) -> list[Block]:
    """The recording cut into ``block_s`` blocks: level and dominant frequency."""
    size = max(1, int(rate * block_s))
    blocks = []
    for index in range(len(pcm) // size):
        chunk = pcm[index * size:(index + 1) * size]
        level = float(np.sqrt(np.mean(chunk**2)))
        blocks.append(Block(start_s=index * block_s, level=level,
                            frequency_hz=dominant_hz(chunk, rate)
                            if level > SOUNDING_LEVEL else 0.0))
    return blocks


def sounding_spans(blocks: Sequence[Block], near_hz: float, *, tolerance_hz: float = 25.0,
                   ) -> list[tuple[float, float]]:
    """(start, end) of each run of sounding blocks near ``near_hz``."""
    spans: list[tuple[float, float]] = []
    for block in blocks:
        hit = block.level > SOUNDING_LEVEL and abs(block.frequency_hz - near_hz) <= tolerance_hz
        if not hit:
            continue
        width = blocks[1].start_s if len(blocks) > 1 else 0.0
        if spans and block.start_s - spans[-1][1] < width / 2:
            spans[-1] = (spans[-1][0], block.start_s + width)
        else:
            spans.append((block.start_s, block.start_s + width))
    return spans


def describe_track(blocks: Sequence[Block], step: int = 4) -> str:
    """A compact picture of a track for assertion messages."""
    return " ".join(f"{b.start_s:.1f}:{b.frequency_hz:.0f}" if b.frequency_hz else
                    f"{b.start_s:.1f}:-" for b in blocks[::step])


def span_hz(pcm: np.ndarray, rate: int, start_s: float, end_s: float) -> float:
    """The dominant frequency between two moments of a recording."""
    return dominant_hz(pcm[int(start_s * rate):int(end_s * rate)], rate)


# -- licences --------------------------------------------------------------------------


def make_licence(directory: Path, *, max_mobiles: int) -> tuple[Path, Path]:
    """A key pair and a licence for ``max_mobiles`` signed with it, by the
    ``boomerang licence`` command line; returns (licence, public key)."""
    private_key = directory / "licence-private.pem"
    public_key = directory / "licence-public.pem"
    licence = directory / f"licence-{max_mobiles}.json"
    if not private_key.exists():
        done = boomerang_cli("licence", "keygen", "--private-key", str(private_key),
                             "--public-key", str(public_key), cwd=directory)
        assert done.returncode == 0, (done.stdout, done.stderr)
    done = boomerang_cli("licence", "issue", "--private-key", str(private_key),
                         "--licensee", "Acceptance Tests", "--max-mobiles", str(max_mobiles),
                         "-o", str(licence), cwd=directory)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return licence, public_key


__all__ = [
    "CALLBACK_CALLER_ID",
    "DID",
    "LATE_S",
    "MOBILE",
    "MOBILE_NATIONAL",
    "STRANGER",
    "UNKNOWN_MOBILE",
    "Block",
    "ServerProcess",
    "SipMessage",
    "SippPeer",
    "StampedEvents",
    "Timers",
    "TriggerResult",
    "boomerang_cli",
    "boomerang_command",
    "callback_config",
    "cdr_records",
    "describe_track",
    "events_of",
    "extension_yaml",
    "first_of_each",
    "frequency_track",
    "kill_server",
    "longest",
    "make_licence",
    "mobile_account",
    "parse_message_log",
    "pending_callbacks",
    "port_range",
    "read_wav",
    "require_peers",
    "server_address",
    "server_pid",
    "silence_pcap",
    "sipp_peers",
    "sounding_spans",
    "span_hz",
    "stamp_events",
    "start_server",
    "start_sipp",
    "trigger",
    "wait_count",
]
