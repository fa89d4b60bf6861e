"""Sending a request again with credentials after a 401 or 407 (client side).

RFC 3261 §22.2 and §22.3: the retried request keeps Call-ID, From tag and
Request-URI, takes the next CSeq and a new branch (it is a new transaction,
§8.1.3.5), and answers the strongest challenge it can. A 401 is answered in
Authorization, a 407 in Proxy-Authorization.

It retries at most once per realm: when the request already carried
credentials for the challenge's realm and the challenge is not ``stale``,
those credentials were wrong and asking again would loop, so AuthError is
raised instead.
"""

from __future__ import annotations

from dataclasses import replace

from .auth import Challenge, DigestClient, parse_challenge, parse_credentials
from .errors import AuthError, ParseError
from .grammar import set_param
from .headers import CSeq
from .message import Request, Response

_HEADERS_FOR_STATUS = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}


def _realm_of(credentials_value: str) -> str | None:
    try:
        return parse_credentials(credentials_value).realm
    except ParseError:
        return None


def retry_with_credentials(
    request: Request,
    response: Response,
    client: DigestClient,
    *,
    branch: str,
    cnonce: str,
) -> Request:
    """The request to send after ``response`` (401 or 407) challenged ``request``.

    ``branch`` is a fresh Via branch and ``cnonce`` a fresh client nonce,
    both from the caller's id generator. Raises AuthError when no challenge
    can be answered or when the same realm already refused these
    credentials (wrong password: no endless retry).
    """
    names = _HEADERS_FOR_STATUS.get(response.status)
    if names is None:
        raise ValueError(f"a {response.status} is not a challenge")
    challenge_header, credentials_header = names
    challenges: list[Challenge] = []
    for value in response.headers.get_all(challenge_header):
        try:
            challenges.append(parse_challenge(value))
        except ParseError:
            continue  # an unparsable challenge among good ones is skipped
    challenge = DigestClient.choose(challenges)
    previous = request.headers.get_all(credentials_header)
    kept = [value for value in previous if _realm_of(value) != challenge.realm]
    if len(kept) != len(previous) and not challenge.stale:
        raise AuthError(f"credentials for realm {challenge.realm!r} were refused",
                        status=response.status)
    value = client.authorize(challenge, request.method, request.uri, cnonce=cnonce,
                             body=request.body)
    headers = request.headers.copy()
    headers.remove(credentials_header)
    for old in kept:
        headers.add(credentials_header, old)
    headers.add(credentials_header, value)
    cseq = request.cseq
    headers.set("CSeq", str(CSeq(number=cseq.number + 1, method=cseq.method)))
    retried = Request(request.method, request.uri, headers, request.body, version=request.version)
    top = request.top_via
    retried.replace_top_via(replace(top, params=set_param(top.params, "branch", branch)))
    return retried


__all__ = ["retry_with_credentials"]
