"""The licence with real peers (the "Proof" list, 6).

Two extensions with callback, one mobile each (100: +48600100200 first in
the file, 102: +48600100202). Both mobiles ring the DID at once from the
carrier; a SIPp UAS on the carrier's port counts the callback INVITEs over
a window past ``delay`` and every retry.

- DEMO (no licence file): one mobile only. ``boomerang check`` and the
  start-up log name the refused one (102's); only 100's mobile is called
  back.
- A licence for two mobiles, issued here with ``boomerang licence keygen``
  and ``issue`` and verified with the config's ``licence_public_key``: both
  are called back, and ``check`` refuses nobody.
- The same licence with ``max_mobiles`` raised by hand (the signature no
  longer matches): ``boomerang run`` refuses to start, exit 1, naming the
  licence file; ``boomerang check`` refuses it too.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .callback_world import (
    MOBILE,
    ServerProcess,
    Timers,
    boomerang_cli,
    boomerang_command,
    callback_config,
    extension_yaml,
    make_licence,
    port_range,
    require_peers,
    silence_pcap,
    sipp_peers,
    start_server,
    start_sipp,
    trigger,
)

pytestmark = [pytest.mark.peers, pytest.mark.slow]

StartServer = Callable[..., ServerProcess]

SECOND_MOBILE = "+48600100202"
TIMERS = Timers(ring_time_s=1.0, delay_s=1.0, retries=1, retry_interval_s=2.0,
                first_digit_s=1.5)


def two_mobiles() -> str:
    return (extension_yaml("100", mobiles=[MOBILE], callback=True)
            + extension_yaml("102", mobiles=[SECOND_MOBILE], callback=True))


async def run_world(tmp_path: Path, free_port_factory: Callable[[], int],
                    run_boomerang: StartServer, *, licence: Path | None = None,
                    public_key: Path | None = None) -> tuple[list[str], str, str]:
    """(users of the callback INVITEs, ``check`` output, server log)."""
    carrier_port = free_port_factory()
    config = callback_config(
        database=tmp_path / "boomerang.db", rtp_ports=port_range(free_port_factory),
        carrier_port=carrier_port, timers=TIMERS, extensions=two_mobiles(),
        licence=licence, licence_public_key=public_key)
    with sipp_peers() as peers:
        carrier = start_sipp("callback_mobile_uas.xml", tmp_path / "carrier", port=carrier_port,
                             media_port=free_port_factory(), calls=6, limit_s=60,
                             keys={"rtp_pcap": str(silence_pcap(tmp_path / "s.pcap"))})
        peers.append(carrier)
        server = await start_server(run_boomerang, config)
        check = await asyncio.to_thread(boomerang_cli, "check", "-c", str(server.config_path),
                                        cwd=tmp_path)
        assert check.returncode == 0, (check.stdout, check.stderr)
        rang = await asyncio.gather(*(
            trigger(tmp_path / f"trigger-{index}", server, free_port_factory, caller=mobile)
            for index, mobile in enumerate((MOBILE, SECOND_MOBILE))))
        peers.extend(result.peer for result in rang)
        for result in rang:
            assert result.final_status == 486, result.explain()
        last_s = max(r.final_at_s or r.invite_at_s for r in rang)
        await asyncio.sleep(max(0.0, last_s + TIMERS.quiet_window_s - time.time()))
        users = [invite.request_user for invite in carrier.invites()]
        print(carrier.explain())
        return users, check.stdout + check.stderr, server.output()


async def test_demo_mode_calls_back_the_first_mobile_only_and_names_the_other(
        tmp_path: Path, free_port_factory: Callable[[], int],
        run_boomerang: StartServer) -> None:
    require_peers("sipp")
    users, check, log = await run_world(tmp_path, free_port_factory, run_boomerang)
    print(check)
    assert users == [MOBILE], users
    # the refused mobile is named, with what happens to it ("no callback")
    assert "DEMO" in check, check
    assert any(SECOND_MOBILE in line and "no callback" in line for line in check.splitlines()), \
        check
    assert any(SECOND_MOBILE in line and "no callback" in line and "WARNING" in line
               for line in log.splitlines()), log[-3000:]
    assert "refused: not_licensed" in log, log[-3000:]


async def test_a_licence_for_two_mobiles_calls_both_back(
        tmp_path: Path, free_port_factory: Callable[[], int],
        run_boomerang: StartServer) -> None:
    require_peers("sipp")
    licence, public_key = await asyncio.to_thread(make_licence, tmp_path, max_mobiles=2)
    users, check, log = await run_world(tmp_path, free_port_factory, run_boomerang,
                                        licence=licence, public_key=public_key)
    print(check)
    assert sorted(users) == sorted([MOBILE, SECOND_MOBILE]), users
    assert "refused" not in check and "DEMO" not in check, check
    assert "not_licensed" not in log


async def test_a_tampered_licence_refuses_the_start(
        tmp_path: Path, free_port_factory: Callable[[], int]) -> None:
    licence, public_key = await asyncio.to_thread(make_licence, tmp_path, max_mobiles=2)
    document = json.loads(licence.read_text())
    document["licence"]["max_mobiles"] = 50
    tampered = tmp_path / "tampered-licence.json"
    tampered.write_text(json.dumps(document, indent=2))
    config_path = tmp_path / "boomerang.yaml"
    config_path.write_text(callback_config(
        database=tmp_path / "boomerang.db", rtp_ports=port_range(free_port_factory),
        carrier_port=free_port_factory(), timers=TIMERS, extensions=two_mobiles(),
        licence=tampered, licence_public_key=public_key))
    run = await asyncio.to_thread(boomerang_cli_run, config_path)
    check = await asyncio.to_thread(boomerang_cli, "check", "-c", str(config_path),
                                    cwd=tmp_path)
    print(f"run: exit {run[0]}: {run[1].strip()[-500:]}\ncheck: exit {check.returncode}: "
          f"{check.stderr.strip()}")
    exit_code, output = run
    assert exit_code == 1, output
    assert "licence" in output and str(tampered) in output, output
    assert "listening on" not in output, output
    assert check.returncode != 0 and str(tampered) in check.stderr, (check.stdout,
                                                                      check.stderr)
    # the untouched licence still verifies: it is the tampering that was refused
    verify = await asyncio.to_thread(boomerang_cli, "licence", "verify", str(licence),
                                     "--public-key", str(public_key), cwd=tmp_path)
    assert verify.returncode == 0, (verify.stdout, verify.stderr)


def boomerang_cli_run(config_path: Path) -> tuple[int, str]:
    """``boomerang run`` that should refuse to start: (exit, all output)."""
    done = subprocess.run(["timeout", "--foreground", "--kill-after=3", "20",
                           *boomerang_command(), "run", "-c", str(config_path)],
                          cwd=config_path.parent, capture_output=True, text=True,
                          timeout=30, check=False)
    return done.returncode, done.stdout + done.stderr
