"""Boomerang's DigestClient and retry_with_credentials register to Kamailio.

Kamailio (``kamailio/registrar.cfg``) challenges with qop=auth and MD5 or
SHA-256; a good password gets 401 then 200, a wrong one 401 again.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from boomerang.sip.auth import DigestClient
from boomerang.sip.auth_retry import retry_with_credentials
from boomerang.sip.errors import AuthError
from boomerang.sip.message import Request

from .conftest import KamailioServer
from .uac_helper import Exchange, PeerClient

pytestmark = pytest.mark.peers


def _register(client: PeerClient, registrar: tuple[str, int], *, user: str) -> Request:
    host = registrar[0]
    return client.new_request(
        "REGISTER", f"sip:{host}",
        from_header=f"<sip:{user}@{host}>;tag={client.ids.tag()}",
        to_header=f"<sip:{user}@{host}>",
        call_id=client.ids.call_id(), cseq=1,
        headers=[("Contact", client.contact), ("Expires", "60")],
    )  # fmt: skip


async def _register_with_password(
    kamailio_server: KamailioServer, transport: str, user: str, password: str
) -> tuple[Exchange, Exchange, str, Request]:
    """REGISTER, then retry_with_credentials() and REGISTER again.

    Returns the two exchanges, the challenge text and the retried request.
    """
    client = await PeerClient.open(transport, kamailio_server.address)
    try:
        register = _register(client, kamailio_server.address, user=user)
        first = await client.request(register, kamailio_server.address)
        assert first.statuses == [401], kamailio_server.log()[-2000:]
        challenged = first.responses[-1]
        retried = retry_with_credentials(
            register, challenged, DigestClient(username=user, password=password),
            branch=client.ids.branch(), cnonce="0a4f113b")
        second = await client.request(retried, kamailio_server.address)
    finally:
        await client.close()
    return first, second, challenged.headers.get("WWW-Authenticate") or "", retried


@pytest.mark.parametrize(
    ("algorithm", "transport"), [("MD5", "udp"), ("SHA-256", "udp"), ("SHA-256", "tcp")]
)
async def test_register_answers_the_challenge_and_gets_200(
    kamailio: Callable[..., KamailioServer], algorithm: str, transport: str
) -> None:
    server = kamailio(algorithm=algorithm)
    _, second, challenge, retried = await _register_with_password(
        server, transport, "101", "s3cret")
    assert retried.cseq.number == 2
    assert f"algorithm={algorithm}" in challenge.replace('"', "")
    assert 'qop="auth"' in challenge
    assert second.statuses == [200], server.log()[-3000:]
    assert any(contact.uri for contact in second.responses[-1].contacts)
    assert server.wait_for_log("REGISTERED sip:101@"), server.log()[-3000:]


async def test_register_with_a_wrong_password_is_challenged_again(
    kamailio: Callable[..., KamailioServer],
) -> None:
    server = kamailio(algorithm="MD5")
    _, second, _, retried = await _register_with_password(
        server, "udp", "101", "not-the-password")
    assert second.statuses == [401], server.log()[-3000:]
    assert server.wait_for_log("REGISTER refused for '101'"), server.log()[-3000:]
    # the same credentials refused again: no endless retry
    with pytest.raises(AuthError):
        retry_with_credentials(retried, second.responses[-1],
                               DigestClient(username="101", password="not-the-password"),
                               branch="z9hG4bK-third", cnonce="1b2c")
