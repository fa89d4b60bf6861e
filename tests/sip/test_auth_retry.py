"""Retrying a challenged request with credentials, against our DigestServer."""

from __future__ import annotations

import pytest

from boomerang.sip.auth import DigestClient, DigestServer
from boomerang.sip.auth_retry import retry_with_credentials
from boomerang.sip.errors import AuthError
from boomerang.sip.message import Request, make_response

PASSWORDS = {"101": "s3cret"}


def _register() -> Request:
    return Request("REGISTER", "sip:pbx.example.com", [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-first;rport"),
        ("Max-Forwards", "70"),
        ("From", "<sip:101@pbx.example.com>;tag=f1"),
        ("To", "<sip:101@pbx.example.com>"),
        ("Call-ID", "reg-1"),
        ("CSeq", "7 REGISTER"),
        ("Contact", "<sip:101@192.0.2.10:5060>"),
    ])


def _challenge(server: DigestServer, request: Request, status: int, now: float,
               *, stale: bool = False):
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    values = server.challenge(now, stale=stale)
    return make_response(request, status, to_tag="s1",
                         headers=[(header, value) for value in values])


@pytest.mark.parametrize(("status", "header"), [(401, "Authorization"),
                                                (407, "Proxy-Authorization")])
def test_retry_answers_the_challenge_with_next_cseq_and_new_branch(status: int,
                                                                   header: str) -> None:
    server = DigestServer(realm="pbx.example.com", secret=b"k" * 32,
                          algorithms=("MD5", "SHA-256"))
    request = _register()
    response = _challenge(server, request, status, now=100.0)
    retried = retry_with_credentials(request, response, DigestClient(username="101",
                                     password="s3cret"), branch="z9hG4bK-second", cnonce="c1")
    assert retried.cseq.number == 8 and retried.cseq.method == "REGISTER"
    assert retried.branch == "z9hG4bK-second"
    assert retried.call_id == "reg-1" and retried.from_tag == "f1"
    assert retried.uri == request.uri
    result = server.verify(retried, PASSWORDS.get, 101.0, header=header)
    assert result.ok, result.reason
    assert "algorithm=SHA-256" in (retried.headers.get(header) or "")  # strongest offered


def test_wrong_password_is_retried_once_then_refused() -> None:
    server = DigestServer(realm="pbx.example.com", secret=b"k" * 32)
    request = _register()
    client = DigestClient(username="101", password="wrong")
    retried = retry_with_credentials(request, _challenge(server, request, 401, 100.0), client,
                                     branch="z9hG4bK-2", cnonce="c1")
    assert not server.verify(retried, PASSWORDS.get, 100.5).ok
    again = _challenge(server, retried, 401, 100.5)
    with pytest.raises(AuthError):
        retry_with_credentials(retried, again, client, branch="z9hG4bK-3", cnonce="c2")


def test_stale_nonce_is_answered_again_with_the_same_credentials() -> None:
    server = DigestServer(realm="pbx.example.com", secret=b"k" * 32, nonce_lifetime_s=30)
    request = _register()
    client = DigestClient(username="101", password="s3cret")
    first = retry_with_credentials(request, _challenge(server, request, 401, 100.0), client,
                                   branch="z9hG4bK-2", cnonce="c1")
    late = server.verify(first, PASSWORDS.get, 200.0)
    assert late.stale
    stale = _challenge(server, first, 401, 200.0, stale=True)
    second = retry_with_credentials(first, stale, client, branch="z9hG4bK-3", cnonce="c2")
    assert len(second.headers.get_all("Authorization")) == 1
    assert server.verify(second, PASSWORDS.get, 200.5).ok


def test_a_response_without_a_usable_challenge_raises() -> None:
    request = _register()
    response = make_response(request, 401, to_tag="s1",
                             headers=[("WWW-Authenticate", 'Basic realm="x"')])
    with pytest.raises(AuthError):
        retry_with_credentials(request, response, DigestClient(username="a", password="b"),
                               branch="z9hG4bK-2", cnonce="c")


def test_a_non_challenge_status_is_a_programming_error() -> None:
    request = _register()
    with pytest.raises(ValueError):
        retry_with_credentials(request, make_response(request, 403, to_tag="s"),
                               DigestClient(username="a", password="b"),
                               branch="z9hG4bK-2", cnonce="c")
