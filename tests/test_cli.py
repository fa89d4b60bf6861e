"""The ``boomerang`` command: init, check, run (as a real subprocess), placeholders."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from boomerang import __version__
from boomerang.cli import main
from boomerang.config import STARTER_CONFIG

LOOPBACK = "127.0.0.1"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == f"boomerang {__version__}"


def test_init_writes_a_starter_config_and_never_overwrites_without_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "boomerang.yaml"
    assert main(["init", "-o", str(target)]) == 0
    assert target.read_text() == STARTER_CONFIG
    assert "# " in target.read_text()  # commented
    target.write_text("sip: {listen: [udp:127.0.0.1:0]}\n")
    assert main(["init", "-o", str(target)]) == 2
    assert "--force" in capsys.readouterr().err
    assert target.read_text() == "sip: {listen: [udp:127.0.0.1:0]}\n"
    assert main(["init", "-o", str(target), "--force"]) == 0
    assert target.read_text() == STARTER_CONFIG


def test_check_prints_ok_for_a_good_file(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "boomerang.yaml"
    main(["init", "-o", str(target)])
    capsys.readouterr()
    assert main(["check", "-c", str(target)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{target}: OK"
    # the starter has one callback mobile: DEMO mode covers it, nothing refused
    assert any(line.startswith("DEMO mode") for line in lines[1:])
    assert not any("refused" in line for line in lines[1:])


def test_check_lists_every_problem_and_exits_2(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "bad.yaml"
    target.write_text("sip:\n  listen: [udp:0.0.0.0:5060, tcp:0.0.0.0:99999]\n"
                      "  lisen: x\nmedia: {tone_plan: xx}\n")
    assert main(["check", "-c", str(target)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines == [
        f"{target}:2: sip.listen[1]: 'tcp:0.0.0.0:99999' has port 99999; a port is 1-65535 "
        "(0 picks a free one), e.g. tcp:0.0.0.0:5060",
        f"{target}:3: sip.lisen: unknown key 'lisen'; did you mean 'listen'? known keys here: "
        "connection_idle_s, digest_algorithms, listen, max_transactions, min_se_s, "
        "overload_lag_ms, public_address, realm, session_expires_s, shutdown_grace_s, "
        "tls, user_agent",
        f"{target}:4: media.tone_plan: 'xx' is not a known tone plan; use one of "
        "de, es, eu, fr, gb, it, nl, pl, uk, us, e.g. pl",
    ]
    assert "OK" not in captured.out


def test_run_refuses_a_bad_config_before_starting(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "bad.yaml"
    target.write_text("sip:\n  listen: [udp:0.0.0.0:99999]\n")
    assert main(["run", "-c", str(target)]) == 2
    captured = capsys.readouterr()
    assert "sip.listen[0]" in captured.err
    assert "listening on" not in captured.out


def options_request(transport: str, host: str, port: int, local_port: int, branch: str
                    ) -> bytes:
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {LOOPBACK}:{local_port};branch={branch};rport\r\n"
        f"From: <sip:probe@{LOOPBACK}>;tag=p1\r\nTo: <sip:{host}:{port}>\r\n"
        f"Call-ID: {branch}@cli-test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def options_over_udp(host: str, port: int, branch: str = "z9hG4bK-cli") -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.bind((LOOPBACK, 0))
        sock.sendto(options_request("UDP", host, port, sock.getsockname()[1], branch),
                    (host, port))
        return sock.recv(65535)


def options_over_tcp(host: str, port: int, branch: str = "z9hG4bK-cli-tcp") -> bytes:
    with socket.create_connection((host, port), timeout=2.0) as sock:
        sock.sendall(options_request("TCP", host, port, sock.getsockname()[1], branch))
        data = b""
        for _ in range(100):  # bounded: one response of a few hundred bytes
            if b"\r\n\r\n" in data:
                break
            chunk = sock.recv(65535)
            if not chunk:
                break
            data += chunk
        return data


def test_init_check_run_round_trip(tmp_path: Path, run_boomerang: Callable[..., object],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    starter = tmp_path / "starter.yaml"
    assert main(["init", "-o", str(starter)]) == 0
    text = starter.read_text()
    text = text.replace("listen: [udp:0.0.0.0:5060, tcp:0.0.0.0:5060]",
                        "listen: [udp:127.0.0.1:0, tcp:127.0.0.1:0]")
    text = text.replace("shutdown_grace_s: 3", "shutdown_grace_s: 1")
    assert "udp:127.0.0.1:0" in text
    starter.write_text(text)
    assert main(["check", "-c", str(starter)]) == 0

    proc = run_boomerang(text)
    host, port = proc.address("udp")  # type: ignore[attr-defined]
    assert port != 0  # the ready line shows the real port
    assert proc.address("tcp")[1] != 0  # type: ignore[attr-defined]
    reply = options_over_udp(host, port)
    assert reply.startswith(b"SIP/2.0 200 OK\r\n")
    assert b"Allow: " in reply
    assert options_over_tcp(*proc.address("tcp")).startswith(  # type: ignore[attr-defined]
        b"SIP/2.0 200 OK\r\n")
    started = time.monotonic()
    assert proc.stop() == 0  # type: ignore[attr-defined]
    assert time.monotonic() - started < 1 + 3  # grace of 1 s, plus process exit
    output = proc.output()  # type: ignore[attr-defined]
    assert "stopped" in output
    assert "Traceback" not in output


def test_run_exits_1_when_a_listen_address_is_taken(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOOPBACK, 0))
        port = taken.getsockname()[1]
        config = tmp_path / "b.yaml"
        config.write_text(f"sip:\n  listen: [tcp:127.0.0.1:0, udp:127.0.0.1:{port}]\n")
        done = subprocess.run(
            ["timeout", "20", sys.executable, "-m", "boomerang.cli", "run", "-c", str(config)],
            capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert f"cannot listen on udp:127.0.0.1:{port}" in done.stderr
    assert "listening on" not in done.stdout


SIPP_OPTIONS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="options">
  <send retrans="500"><![CDATA[
      OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"""


@pytest.mark.peers
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipp_gets_200_for_options(transport: str, tmp_path: Path,
                                   run_boomerang: Callable[..., object]) -> None:
    """Sanity check against a SIP implementation nobody here wrote (SIPp)."""
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.skip("sipp is not installed")
    scenario = tmp_path / "options.xml"
    scenario.write_text(SIPP_OPTIONS)
    proc = run_boomerang()
    host, port = proc.address(transport)  # type: ignore[attr-defined]
    done = subprocess.run(
        ["timeout", "20", sipp, "-sf", str(scenario), "-s", "boomerang", f"{host}:{port}",
         "-t", "u1" if transport == "udp" else "t1", "-i", LOOPBACK, "-p", "0",
         "-m", "10", "-r", "50", "-nostdin", "-timeout", "10s"],
        capture_output=True, text=True, timeout=30, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
