"""The media engine against real peers: SIPp and baresip call the harness UAS
(``media_endpoint.py``: Boomerang's Endpoint + ``MediaSession``), which plays
the Polish dial tone and collects digits.

- SIPp plays RTP streams written by ``pcap_writer.py`` (RFC 4733 events, or
  in-band DTMF in PCMU) and sends SIP INFO dtmf-relay: the endpoint reports
  exactly the digits sent, each from the right source.
- baresip (headless: aubridge, an 8 kHz wav as microphone, ctrl_tcp) dials
  the endpoint and presses keys (``sndcode``, RFC 4733); and its sndfile
  recording of what it heard shows the 425 Hz dial tone.
"""

from __future__ import annotations

import asyncio
import subprocess
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from boomerang.media.dtmf_inband import power_to_dbm0

from .baresip import Baresip
from .conftest import LOOPBACK, SippRun, require_tool
from .media_endpoint import CallRecord, MediaEndpoint, media_endpoint
from .pcap_writer import duration_s, inband_stream, rfc4733_stream, write_pcap

pytestmark = pytest.mark.peers

# The largest delay allowed between a key going down and the dial tone
# stopping (the in-band detector needs two 20 ms windows to be sure).
TONE_STOP_LIMIT_S = 0.1

_UAC_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="{name}">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipp" <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 8 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=ptime:20
      a=sendrecv

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipp" <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""

_UAC_IN_DIALOG = """
  <send retrans="500">
    <![CDATA[

      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipp" <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Max-Forwards: 70
{headers}      Content-Length: [len]

{body}
    ]]>
  </send>
  <recv response="200" crlf="true"/>
"""


def _in_dialog(method: str, cseq: int, *, headers: str = "", body: str = "") -> str:
    return _UAC_IN_DIALOG.format(method=method, cseq=cseq, headers=headers, body=body)


def play_scenario(directory: Path, pcap: Path, play_s: float) -> Path:
    """INVITE/200/ACK, play ``pcap`` for ``play_s``, BYE."""
    path = directory / "uac_play_pcap.xml"
    path.write_text(
        _UAC_HEAD.format(name="uac_play_pcap")
        + f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
        + f'  <pause milliseconds="{round(play_s * 1000)}"/>\n'
        + _in_dialog("BYE", 2) + "</scenario>\n")
    return path


def info_scenario(directory: Path, digits: str) -> Path:
    """INVITE/200/ACK, one INFO application/dtmf-relay per digit, BYE."""
    parts = [_UAC_HEAD.format(name="uac_info_dtmf"), '  <pause milliseconds="300"/>\n']
    for index, digit in enumerate(digits):
        parts.append(_in_dialog(
            "INFO", 2 + index, headers="      Content-Type: application/dtmf-relay\n",
            body=f"      Signal={digit}\n      Duration=160\n"))
        parts.append('  <pause milliseconds="150"/>\n')
    parts.append(_in_dialog("BYE", 2 + len(digits)))
    parts.append("</scenario>\n")
    path = directory / "uac_info_dtmf.xml"
    path.write_text("".join(parts))
    return path


@pytest.fixture
def rtp_ports(free_port_factory: Callable[[], int]) -> tuple[int, int]:
    """A small RTP range for the endpoint (ports held by others are skipped)."""
    first = free_port_factory() & ~1
    return (first, min(first + 40, 65535))


async def run_sipp_call(endpoint: MediaEndpoint, sipp: Callable[..., SippRun],
                        scenario: Path) -> tuple[SippRun, CallRecord]:
    # SIPp runs to completion in a thread; the endpoint answers on this loop.
    run = await asyncio.to_thread(sipp, str(scenario), endpoint.address, service="100",
                                  limit_s=14)
    assert run.returncode == 0, run.explain()
    record = await endpoint.wait_for_call(timeout_s=1)
    return run, await endpoint.wait_for_end(record.call_id, timeout_s=2)


def assert_collected(record: CallRecord, digits: str, source: str) -> None:
    assert record.digit_string == digits, record
    assert record.sources == {source}, record
    assert record.ended is not None, record
    if digits.endswith("#"):
        assert (record.ended.digits, str(record.ended.reason)) == (digits[:-1], "terminator")


def assert_tone_stopped_at_first_key(record: CallRecord, digit: str) -> None:
    assert record.tone_frames_sent > 0, record
    assert record.tone_stop_reason == f"key {digit} down", record
    assert record.first_key_at is not None and record.tone_stopped_at is not None
    stop_delay_s = record.tone_stopped_at - record.first_key_at
    assert stop_delay_s < TONE_STOP_LIMIT_S, record
    print(f"{record.sources}: dial tone stopped {stop_delay_s * 1000:.0f} ms after key down")


# -- SIPp ----------------------------------------------------------------------------


async def test_sipp_rfc4733_digits_are_reported_exactly_from_rfc4733(
        tmp_path: Path, sipp: Callable[..., SippRun], rtp_ports: tuple[int, int]) -> None:
    packets = rfc4733_stream("4711#")
    pcap = write_pcap(tmp_path / "rfc4733.pcap", packets)
    scenario = play_scenario(tmp_path, pcap, duration_s(packets) + 0.3)
    async with media_endpoint(rtp_ports) as endpoint:
        _, record = await run_sipp_call(endpoint, sipp, scenario)
    assert_collected(record, "4711#", "rfc4733")
    assert all(digit.duration_ms == 100 for digit in record.digits), record.digits
    assert_tone_stopped_at_first_key(record, "4")
    # The first key was pressed 0.6 s into the stream, which starts at the ACK.
    assert record.acked_at is not None and record.first_key_at is not None
    assert 0.4 < record.first_key_at - record.acked_at < 1.2, record


async def test_sipp_inband_pcmu_digits_are_reported_exactly_from_inband(
        tmp_path: Path, sipp: Callable[..., SippRun], rtp_ports: tuple[int, int]) -> None:
    packets = inband_stream("359#")
    pcap = write_pcap(tmp_path / "inband.pcap", packets)
    scenario = play_scenario(tmp_path, pcap, duration_s(packets) + 0.3)
    async with media_endpoint(rtp_ports) as endpoint:
        _, record = await run_sipp_call(endpoint, sipp, scenario)
    assert_collected(record, "359#", "inband")
    assert_tone_stopped_at_first_key(record, "3")


async def test_sipp_info_dtmf_relay_digits_are_reported_exactly_from_info(
        tmp_path: Path, sipp: Callable[..., SippRun], rtp_ports: tuple[int, int]) -> None:
    scenario = info_scenario(tmp_path, "42#")
    async with media_endpoint(rtp_ports) as endpoint:
        run, record = await run_sipp_call(endpoint, sipp, scenario)
    assert_collected(record, "42#", "info")
    assert record.info_requests == 3
    assert record.tone_stop_reason == "key 4", record
    assert [row.messages for row in run.rows("INFO")] == [1, 1, 1], run.explain()


async def test_sipp_inter_digit_timeout_ends_the_collection_without_terminator(
        tmp_path: Path, sipp: Callable[..., SippRun], rtp_ports: tuple[int, int]) -> None:
    packets = rfc4733_stream("58", tail_s=1.2)
    pcap = write_pcap(tmp_path / "rfc4733.pcap", packets)
    scenario = play_scenario(tmp_path, pcap, duration_s(packets) + 0.2)
    async with media_endpoint(rtp_ports, inter_digit_timeout_s=0.8) as endpoint:
        _, record = await run_sipp_call(endpoint, sipp, scenario)
    assert record.digit_string == "58"
    assert record.ended is not None
    assert (record.ended.digits, str(record.ended.reason)) == ("58", "inter_digit_timeout")


# -- baresip -------------------------------------------------------------------------


@pytest.fixture
async def baresip(tmp_path: Path, free_port_factory: Callable[[], int]
                  ) -> AsyncIterator[Baresip]:
    require_tool("baresip")
    sox = require_tool("sox")
    directory = tmp_path / "baresip"
    directory.mkdir()
    microphone = directory / "mic.wav"
    subprocess.run([sox, "-q", "-n", "-r", "8000", "-c", "1", "-b", "16", str(microphone),
                    "synth", "20", "sine", "440", "vol", "0.1"], check=True, timeout=10)
    first = free_port_factory() & ~1
    sip_port = free_port_factory()
    phone = Baresip(directory, sip_port=sip_port, ctrl_port=free_port_factory(),
                    rtp_ports=(first, min(first + 10, 65535)), record=True,
                    accounts=f"<sip:phone@{LOOPBACK}:{sip_port}>;regint=0\n")
    phone.write_config(microphone)
    phone.start()
    try:
        await phone.connect()
        yield phone
    finally:
        await phone.stop()


async def test_baresip_sndcode_digits_are_reported_from_rfc4733(
        baresip: Baresip, rtp_ports: tuple[int, int]) -> None:
    async with media_endpoint(rtp_ports) as endpoint:
        await baresip.command("dial", f"sip:100@{LOOPBACK}:{endpoint.sip_port}")
        await baresip.wait_event("CALL_ESTABLISHED")
        record = await endpoint.wait_for_call(timeout_s=1)
        await asyncio.sleep(0.4)
        for digit in "123#":
            await baresip.command("sndcode", digit)
            await asyncio.sleep(0.35)
        async with asyncio.timeout(3):
            while record.ended is None:
                await asyncio.sleep(0.02)
        await baresip.command("hangup")
        await baresip.wait_event("CALL_CLOSED", timeout_s=5)
        record = await endpoint.wait_for_end(record.call_id, timeout_s=3)
    assert_collected(record, "123#", "rfc4733")
    assert_tone_stopped_at_first_key(record, "1")


def dominant_frequency_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    spectrum[0] = 0
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


async def test_baresip_hears_the_425_hz_dial_tone(baresip: Baresip,
                                                  rtp_ports: tuple[int, int]) -> None:
    async with media_endpoint(rtp_ports, plan="pl") as endpoint:
        await baresip.command("dial", f"sip:100@{LOOPBACK}:{endpoint.sip_port}")
        await baresip.wait_event("CALL_ESTABLISHED")
        record = await endpoint.wait_for_call(timeout_s=1)
        await asyncio.sleep(1.5)
        await baresip.command("hangup")
        await baresip.wait_event("CALL_CLOSED", timeout_s=5)
        record = await endpoint.wait_for_end(record.call_id, timeout_s=3)
        await baresip.quit()  # closes the recording files
    assert record.digits == [] and record.tone_stop_reason == "closed", record
    recordings = baresip.recordings("dec")
    assert len(recordings) == 1, (recordings, baresip.log[-3000:])
    with wave.open(str(recordings[0])) as heard:
        rate = heard.getframerate()
        assert heard.getnchannels() == 1 and heard.getsampwidth() == 2
        pcm = np.frombuffer(heard.readframes(heard.getnframes()), "<i2").astype(float)
    # 20 ms blocks: the tone fills the call once the jitter buffer has started.
    block = rate // 50
    levels = np.sqrt(np.mean(pcm[:len(pcm) // block * block].reshape(-1, block) ** 2, axis=1))
    sounding = np.flatnonzero(levels > 300)
    assert sounding.size, f"baresip heard silence ({len(pcm) / rate:.2f} s recorded)"
    tone = pcm[sounding[0] * block:(sounding[-1] + 1) * block]
    heard_s = len(tone) / rate
    assert heard_s > 1.0, heard_s
    assert np.mean(levels[sounding[0]:sounding[-1] + 1] > 300) > 0.95  # no gaps
    frequency_hz = dominant_frequency_hz(tone, rate)
    level_dbm0 = power_to_dbm0(float(np.mean(tone**2)))
    assert abs(frequency_hz - 425) <= 5, frequency_hz
    assert -12 < level_dbm0 < -8, level_dbm0  # the PL plan's dial tone is -10 dBm0
    print(f"baresip heard {heard_s:.2f} s at {frequency_hz:.1f} Hz, {level_dbm0:.1f} dBm0")
