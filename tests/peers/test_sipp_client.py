"""SIPp as the client, ``boomerang run`` as the server (UDP and TCP).

This version of the server answers OPTIONS with 200, an INVITE to any number
with 100 then 404, and REGISTER with a 401 digest challenge.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import SippRun

pytestmark = pytest.mark.peers

TRANSPORTS = ["udp", "tcp"]

# Timer G first fires T1 = 500 ms after the 404 on UDP: waiting 1.2 s after
# the ACK would see a retransmission if the ACK had not stopped it.
AFTER_ACK_MS = {"udp": 1200, "tcp": 200}


def _received_per_call(run: SippRun, status: int) -> Counter[str]:
    """How many responses with ``status`` each Call-ID received (from -trace_msg)."""
    counts: Counter[str] = Counter()
    for block in run.messages.split("-----------------------------------------------"):
        if " message received" not in block:
            continue
        if not re.search(rf"^SIP/2\.0 {status} ", block, re.MULTILINE):
            continue
        call_id = re.search(r"^(?:Call-ID|i):\s*(\S+)", block, re.MULTILINE | re.IGNORECASE)
        counts[call_id.group(1) if call_id else "?"] += 1
    return counts


def _assert_all_passed(run: SippRun, calls: int) -> None:
    assert run.returncode == 0, run.explain()
    assert run.counter("SuccessfulCall(C)") == calls, run.explain()
    assert run.counter("FailedCall(C)") == 0, run.explain()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_options_is_answered_200(
    run_boomerang: Callable[..., Any], sipp: Callable[..., SippRun], transport: str
) -> None:
    server = run_boomerang()
    run = sipp("options_uac.xml", server.address(transport), transport=transport)
    _assert_all_passed(run, 1)
    assert [row.messages for row in run.rows("200")] == [1], run.explain()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_invite_to_unknown_number_gets_100_then_404_and_the_ack_stops_it(
    run_boomerang: Callable[..., Any], sipp: Callable[..., SippRun], transport: str
) -> None:
    server = run_boomerang()
    run = sipp(
        "invite_404_uac.xml", server.address(transport),
        transport=transport, service="999000111", pause_ms=AFTER_ACK_MS[transport],
    )  # fmt: skip
    _assert_all_passed(run, 1)
    (trying,) = run.rows("100")
    (not_found,) = run.rows("404")
    assert trying.messages == 1, run.explain()
    assert not_found.messages == 1, run.explain()
    assert not_found.retransmissions == 0, "404 retransmitted after the ACK\n" + run.explain()
    assert list(_received_per_call(run, 404).values()) == [1], run.explain()
    # the 100 came before the 404 on the wire
    assert run.messages.index("SIP/2.0 100 ") < run.messages.index("SIP/2.0 404 "), run.explain()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_register_is_challenged_with_sha256_and_md5_digest(
    run_boomerang: Callable[..., Any], sipp: Callable[..., SippRun], transport: str
) -> None:
    server = run_boomerang()
    run = sipp(
        "register_401_uac.xml", server.address(transport),
        transport=transport, service="101",
    )  # fmt: skip
    _assert_all_passed(run, 1)
    challenges = re.findall(r"^WWW-Authenticate:\s*(.*)$", run.messages, re.MULTILINE | re.I)
    algorithms = {
        match.group(1).upper()
        for value in challenges
        if (match := re.search(r'algorithm="?([\w-]+)"?', value, re.I))
    }
    assert {"MD5", "SHA-256"} <= algorithms, challenges
    assert all(value.strip().lower().startswith("digest ") for value in challenges), challenges
    assert all(re.search(r'nonce="[^"]+"', value) for value in challenges), challenges


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_twenty_calls_in_a_row_all_pass(
    run_boomerang: Callable[..., Any], sipp: Callable[..., SippRun], transport: str
) -> None:
    server = run_boomerang()
    run = sipp(
        "invite_404_uac.xml", server.address(transport),
        transport=transport, calls=20, rate=10, service="999000111",
        pause_ms=AFTER_ACK_MS[transport],
    )  # fmt: skip
    _assert_all_passed(run, 20)
    (not_found,) = run.rows("404")
    assert not_found.messages == 20, run.explain()
    assert not_found.retransmissions == 0, run.explain()
    per_call = _received_per_call(run, 404)
    assert len(per_call) == 20 and set(per_call.values()) == {1}, per_call


def test_boomerang_exits_0_on_sigterm(run_boomerang: Callable[..., Any]) -> None:
    server = run_boomerang()
    assert server.stop() == 0, server.output()
