"""Boomerang's DigestClient registers to Kamailio, a real registrar.

Kamailio (``kamailio/registrar.cfg``) challenges with qop=auth and MD5 or
SHA-256; a good password gets 401 then 200, a wrong one 401 again.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from boomerang.sip.auth import DigestClient, parse_challenge

from .conftest import KamailioServer
from .uac_helper import LOOPBACK, Exchange, PeerClient

pytestmark = pytest.mark.peers


async def _register(
    client: PeerClient, registrar: tuple[str, int], *, user: str, call_id: str, cseq: int,
    authorization: str | None = None,
) -> Exchange:
    host = registrar[0]
    headers = [("Contact", client.contact), ("Expires", "60")]
    if authorization is not None:
        headers.append(("Authorization", authorization))
    register = client.new_request(
        "REGISTER", f"sip:{host}",
        from_header=f"<sip:{user}@{host}>;tag={client.ids.tag()}",
        to_header=f"<sip:{user}@{host}>",
        call_id=call_id, cseq=cseq, headers=headers,
    )  # fmt: skip
    return await client.request(register, registrar)


async def _register_with_password(
    kamailio_server: KamailioServer, transport: str, user: str, password: str
) -> tuple[Exchange, Exchange, str]:
    """REGISTER, answer the challenge, REGISTER again: (first, second, challenge)."""
    client = await PeerClient.open(transport, kamailio_server.address)
    try:
        call_id = client.ids.call_id()
        first = await _register(client, kamailio_server.address, user=user,
                                call_id=call_id, cseq=1)
        assert first.statuses == [401], kamailio_server.log()[-2000:]
        challenge_text = first.responses[-1].headers.get("WWW-Authenticate") or ""
        challenge = parse_challenge(challenge_text)
        digest = DigestClient(username=user, password=password)
        authorization = digest.authorize(
            challenge, "REGISTER", f"sip:{LOOPBACK}", cnonce="0a4f113b"
        )
        second = await _register(client, kamailio_server.address, user=user,
                                 call_id=call_id, cseq=2, authorization=authorization)
    finally:
        await client.close()
    return first, second, challenge_text


@pytest.mark.parametrize(
    ("algorithm", "transport"), [("MD5", "udp"), ("SHA-256", "udp"), ("SHA-256", "tcp")]
)
async def test_register_answers_the_challenge_and_gets_200(
    kamailio: Callable[..., KamailioServer], algorithm: str, transport: str
) -> None:
    server = kamailio(algorithm=algorithm)
    _, second, challenge = await _register_with_password(server, transport, "101", "s3cret")
    assert f"algorithm={algorithm}" in challenge.replace('"', "")
    assert 'qop="auth"' in challenge
    assert second.statuses == [200], server.log()[-3000:]
    assert any(contact.uri for contact in second.responses[-1].contacts)
    assert server.wait_for_log("REGISTERED sip:101@"), server.log()[-3000:]


async def test_register_with_a_wrong_password_is_challenged_again(
    kamailio: Callable[..., KamailioServer],
) -> None:
    server = kamailio(algorithm="MD5")
    _, second, _ = await _register_with_password(server, "udp", "101", "not-the-password")
    assert second.statuses == [401], server.log()[-3000:]
    assert server.wait_for_log("REGISTER refused for '101'"), server.log()[-3000:]
