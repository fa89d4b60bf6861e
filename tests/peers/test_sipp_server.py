"""Boomerang's client transactions against a SIPp UAS (UDP and TCP).

The client is ``uac_helper.PeerClient``: our TransactionLayer on plain
asyncio sockets. SIPp runs the scenarios in ``scenarios/`` and exits 0 only
when every message it expected arrived in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from boomerang.sip.dialog import Dialog
from boomerang.sip.uri import SipUri

from .conftest import SippServer
from .uac_helper import LOOPBACK, PeerClient

pytestmark = pytest.mark.peers

TRANSPORTS = ["udp", "tcp"]

OFFER = (
    b"v=0\r\n"
    b"o=boomerang 1 1 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
)


def _next_hop(dialog: Dialog) -> tuple[str, int]:
    """Where in-dialog requests go: the first route or the remote target."""
    uri = dialog.next_hop()
    assert isinstance(uri, SipUri), uri
    return uri.host, uri.port or 5060


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_options_to_sipp_gets_200(
    sipp_server: Callable[..., SippServer], transport: str
) -> None:
    server = sipp_server("options_uas.xml", transport=transport)
    client = await PeerClient.open(transport, server.address)
    try:
        host, port = server.address
        options = client.new_request(
            "OPTIONS", f"sip:{host}:{port}",
            from_header=f"<sip:uac@{LOOPBACK}>;tag={client.ids.tag()}",
            to_header=f"<sip:{host}:{port}>",
            call_id=client.ids.call_id(), cseq=1,
            headers=[("Contact", client.contact), ("Accept", "application/sdp")],
        )  # fmt: skip
        exchange = await client.request(options, server.address)
        # SIPp fails a call whose TCP connection closes early: let it finish first
        run = await asyncio.to_thread(server.wait)
    finally:
        await client.close()
    assert exchange.statuses == [200]
    assert run.returncode == 0, run.explain()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invite_ringing_answer_ack_and_bye(
    sipp_server: Callable[..., SippServer], transport: str
) -> None:
    server = sipp_server("uas_answer.xml", transport=transport)
    client = await PeerClient.open(transport, server.address)
    host, port = server.address
    try:
        invite = client.new_request(
            "INVITE", f"sip:far@{host}:{port}",
            from_header=f"\"Boomerang\" <sip:uac@{LOOPBACK}>;tag={client.ids.tag()}",
            to_header=f"<sip:far@{host}:{port}>",
            call_id=client.ids.call_id(), cseq=1,
            headers=[("Contact", client.contact), ("Content-Type", "application/sdp")],
            body=OFFER,
        )  # fmt: skip
        exchange = await client.request(invite, server.address)
        answer = exchange.responses[-1]
        assert answer.status == 200
        assert 180 in exchange.statuses
        assert exchange.statuses.index(180) < exchange.statuses.index(200)
        assert answer.to_tag, "the 200 has no To tag"
        assert answer.content_type == "application/sdp"

        dialog = Dialog.from_uac(invite, answer)
        assert dialog.is_confirmed
        sent_by = f"{client.local.host}:{client.local.port}"
        wire = transport.upper()
        ack = dialog.create_ack(invite.cseq.number, client.ids, sent_by=sent_by, transport=wire)
        client.send_stateless(ack, _next_hop(dialog))

        bye = dialog.create_request("BYE", client.ids, sent_by=sent_by, transport=wire)
        assert bye.cseq.number == 2 and bye.to_tag == answer.to_tag
        hangup = await client.request(bye, _next_hop(dialog))
        assert dialog.is_terminated
        run = await asyncio.to_thread(server.wait)
    finally:
        await client.close()
    assert hangup.statuses == [200]
    assert run.returncode == 0, run.explain()
    (ack_row,) = run.rows("ACK")
    assert ack_row.direction == "received" and ack_row.messages == 1, run.explain()
    (bye_row,) = run.rows("BYE")
    assert bye_row.messages == 1 and bye_row.retransmissions == 0, run.explain()
