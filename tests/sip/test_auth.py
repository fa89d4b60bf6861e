"""Digest authentication: RFC vectors, round trips, and every way verify says no."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boomerang.sip import auth
from boomerang.sip.auth import (
    SUPPORTED_ALGORITHMS,
    AuthResult,
    Challenge,
    DigestClient,
    DigestServer,
    parse_challenge,
    parse_credentials,
)
from boomerang.sip.errors import AuthError, ParseError
from boomerang.sip.grammar import quote
from boomerang.sip.message import Request

REALM = "boomerang.example"
SECRET = b"0123456789abcdef0123456789abcdef"
URI = "sip:registrar.boomerang.example"
PASSWORDS = {"101": "s3cret", "alice": "alicepw"}


def server(**kwargs: object) -> DigestServer:
    return DigestServer(realm=REALM, secret=SECRET, **kwargs)  # type: ignore[arg-type]


def request(value: str | None, *, method: str = "REGISTER", uri: str = URI,
            header: str = "Authorization") -> Request:
    headers = [] if value is None else [(header, value)]
    return Request(method, uri, headers)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def answer(srv: DigestServer, now: float, *, username: str = "101", password: str = "s3cret",
           uri: str = URI, method: str = "REGISTER", index: int = 0, cnonce: str = "c0ffee") -> str:
    challenge = parse_challenge(srv.challenge(now)[index])
    return DigestClient(username=username, password=password).authorize(
        challenge, method, uri, cnonce=cnonce
    )


# -- RFC worked examples -----------------------------------------------------

RFC7616_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


@pytest.mark.parametrize(
    ("alg", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_example(alg: str, expected: str) -> None:
    challenge = parse_challenge(RFC7616_CHALLENGE.format(alg=alg))
    client = DigestClient(username="Mufasa", password="Circle of Life")
    value = client.authorize(
        challenge, "GET", "/dir/index.html", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    )
    credentials = parse_credentials(value)
    assert credentials.response == expected
    assert credentials.qop == "auth"
    assert credentials.nc == "00000001"
    assert credentials.algorithm == alg
    assert credentials.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    assert credentials.uri == "/dir/index.html"


def test_rfc2617_section_3_5_example() -> None:
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    client = DigestClient(username="Mufasa", password="Circle Of Life")
    value = client.authorize(challenge, "GET", "/dir/index.html", cnonce="0a4f113b")
    credentials = parse_credentials(value)
    assert credentials.response == "6629fae49393a05397450978507c4ef1"
    assert credentials.algorithm == "MD5"  # absent: the default
    assert credentials.param("algorithm") is None


# -- parsing -----------------------------------------------------------------


def test_parse_challenge_fields_and_case_insensitive_names() -> None:
    challenge = parse_challenge(
        'digest REALM="a \\"quoted\\" realm",Nonce=abc ,  QOP="auth,auth-int", stale=TRUE'
    )
    assert challenge.is_digest
    assert challenge.realm == 'a "quoted" realm'
    assert challenge.nonce == "abc"
    assert challenge.qop_options == ("auth", "auth-int")
    assert challenge.stale is True
    assert challenge.algorithm == "MD5"


def test_str_gives_the_value_back() -> None:
    text = 'Digest realm="r\\"x", nonce="n", algorithm=SHA-256, qop="auth", stale=true'
    assert str(parse_challenge(text)) == text
    creds = ('Digest username="a", realm="r", nonce="n", uri="sip:x", response="ab", '
             'algorithm=MD5, cnonce="c", qop=auth, nc=0000000a')
    assert str(parse_credentials(creds)) == creds


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "Digest realm",
        'Digest realm="unterminated',
        'Digest realm="a" nonce="b"',  # missing comma
        'Digest realm="a", realm="b", nonce="n"',  # repeated
        'Digest realm=a b, nonce="n"',
        'Digest nonce="n"',  # no realm
        "Digest=realm",
        'Digest realm="r", nonce="n", =x',
        'Digest realm=",nonce="n"',
    ],
)
def test_malformed_challenges_raise_parse_error_400(value: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_challenge(value)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "value",
    [
        'Digest username="a", realm="r", nonce="n", uri="sip:x"',  # no response
        'Digest username="a", realm="r", nonce="n", uri="sip:x", response="1", nc=1',
        'Digest username="a", realm="r", nonce="n", uri="sip:x", response="1", nc=0000000g',
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",  # token68 is not an auth-param list
    ],
)
def test_malformed_credentials_raise_parse_error(value: str) -> None:
    with pytest.raises(ParseError):
        parse_credentials(value)


@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_parse_error(text: str) -> None:
    for parse in (parse_challenge, parse_credentials):
        try:
            parsed = parse(text)
        except ParseError:
            continue
        assert parse(str(parsed)) == parsed


@given(st.text(alphabet='Digest realm="\\,= \tnoc\r', max_size=60))
def test_header_like_text_raises_only_parse_error(text: str) -> None:
    for parse in (parse_challenge, parse_credentials):
        try:
            parsed = parse(text)
        except ParseError:
            continue
        assert parse(str(parsed)) == parsed


_param_values = st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=20)


@given(st.lists(st.tuples(st.sampled_from(["realm", "nonce", "opaque", "domain", "x-y"]),
                          _param_values), unique_by=lambda p: p[0]))
def test_quoted_values_round_trip(pairs: list[tuple[str, str]]) -> None:
    params = dict(pairs)
    params.setdefault("realm", "r")
    params.setdefault("nonce", "n")
    text = "Digest " + ", ".join(f"{k}={quote(v)}" for k, v in params.items())
    challenge = parse_challenge(text)
    for name, value in params.items():
        assert challenge.param(name) == value
    assert parse_challenge(str(challenge)) == challenge


# -- server and client together ---------------------------------------------


@pytest.mark.parametrize("algorithm", sorted(SUPPORTED_ALGORITHMS))
def test_round_trip_for_every_algorithm(algorithm: str) -> None:
    srv = server(algorithms=(algorithm,))
    value = answer(srv, 10.0)
    assert f"algorithm={algorithm}" in value
    result = srv.verify(request(value), PASSWORDS.get, 11.0)
    assert result == AuthResult(True, "101", False, "ok")


def test_challenge_offers_sha256_first_then_md5_with_qop_auth() -> None:
    values = server().challenge(0.0)
    challenges = [parse_challenge(v) for v in values]
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert all(c.qop_options == ("auth",) and c.realm == REALM for c in challenges)
    assert all(c.opaque is None and not c.stale for c in challenges)
    assert challenges[0].nonce == challenges[1].nonce


def test_every_challenge_has_a_fresh_nonce() -> None:
    srv = server()
    nonces = {parse_challenge(srv.challenge(5.0)[0]).nonce for _ in range(100)}
    assert len(nonces) == 100


def test_client_chooses_sha256_and_server_accepts_it() -> None:
    srv = server()
    challenges = [parse_challenge(v) for v in reversed(srv.challenge(0.0))]
    chosen = DigestClient.choose(challenges)
    assert chosen.algorithm == "SHA-256"
    value = DigestClient(username="alice", password="alicepw").authorize(
        chosen, "INVITE", URI, cnonce="x"
    )
    assert srv.verify(request(value, method="INVITE"), PASSWORDS.get, 1.0).ok


def test_choose_skips_unknown_algorithms_and_schemes() -> None:
    unknown = parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-999')
    bearer = parse_challenge('Bearer realm="r"')
    md5_challenge = parse_challenge('Digest realm="r", nonce="n", algorithm=MD5')
    assert DigestClient.choose([unknown, bearer, md5_challenge]) is md5_challenge
    with pytest.raises(AuthError):
        DigestClient.choose([unknown, bearer])


def test_client_increments_nonce_count_per_nonce() -> None:
    srv = server()
    challenge = parse_challenge(srv.challenge(0.0)[0])
    other = parse_challenge(srv.challenge(0.0)[0])
    client = DigestClient(username="101", password="s3cret")
    first = client.authorize(challenge, "REGISTER", URI, cnonce="a")
    second = client.authorize(challenge, "REGISTER", URI, cnonce="b")
    third = client.authorize(other, "REGISTER", URI, cnonce="c")
    assert [parse_credentials(v).nc for v in (first, second, third)] == [
        "00000001", "00000002", "00000001"]
    for value in (first, second, third):
        assert srv.verify(request(value), PASSWORDS.get, 1.0).ok


def test_auth_int_response_covers_the_body() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth-int"')
    body = b"v=0\r\n"
    value = DigestClient(username="u", password="p").authorize(
        challenge, "INVITE", "sip:x", cnonce="c", body=body)
    ha2 = md5("INVITE:sip:x:" + hashlib.md5(body).hexdigest())
    expected = md5(f"{md5('u:r:p')}:n:00000001:c:auth-int:{ha2}")
    assert parse_credentials(value).response == expected
    assert parse_credentials(value).qop == "auth-int"


def test_md5_sess_response() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth", algorithm=MD5-sess')
    value = DigestClient(username="u", password="p").authorize(challenge, "BYE", "sip:x",
                                                              cnonce="c")
    ha1 = md5(f"{md5('u:r:p')}:n:c")
    expected = md5(f"{ha1}:n:00000001:c:auth:{md5('BYE:sip:x')}")
    assert parse_credentials(value).response == expected


# -- the formats real peers send ---------------------------------------------


def test_sipp_authorization_header_format() -> None:
    # SIPp's [authentication] keyword: no spaces, cnonce="%x" of rand(), qop
    # and nc before uri, algorithm last (sipp/src/auth.cpp createAuthHeaderMD5).
    srv = server()
    nonce = parse_challenge(srv.challenge(0.0)[1]).nonce
    uri = "sip:127.0.0.1:5060"
    ha1 = md5(f"101:{REALM}:s3cret")
    response = md5(f"{ha1}:{nonce}:00000001:6b8b4567:auth:{md5('REGISTER:' + uri)}")
    value = (f'Digest username="101",realm="{REALM}",cnonce="6b8b4567",nc=00000001,'
             f'qop=auth,uri="{uri}",nonce="{nonce}",response="{response}",algorithm=MD5')
    result = srv.verify(request(value, uri=uri), PASSWORDS.get, 1.0)
    assert result.ok, result


def test_baresip_authorization_header_format() -> None:
    # libre (baresip 1.0.0) sip/auth.c: no algorithm, cnonce as %016llx,
    # qop and nc unquoted at the end.
    srv = server()
    nonce = parse_challenge(srv.challenge(0.0)[1]).nonce
    uri = "sip:127.0.0.1"
    cnonce = "0000004d2a1f7c3b"
    ha1 = md5(f"alice:{REALM}:alicepw")
    response = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{md5('REGISTER:' + uri)}")
    value = (f'Digest username="alice", realm="{REALM}", nonce="{nonce}", uri="{uri}", '
             f'response="{response}", cnonce="{cnonce}", qop=auth, nc=00000001')
    result = srv.verify(request(value, uri=uri), PASSWORDS.get, 1.0)
    assert result == AuthResult(True, "alice", False, "ok")


# -- every way verify says no ------------------------------------------------


def test_missing_credentials() -> None:
    result = server().verify(request(None), PASSWORDS.get, 0.0)
    assert (result.ok, result.reason, result.respond_status) == (False, "missing", 401)
    assert result.challenge_header == "WWW-Authenticate"


def test_proxy_authorization_answers_407() -> None:
    srv = server()
    value = answer(srv, 0.0)
    good = srv.verify(request(value, header="Proxy-Authorization"), PASSWORDS.get, 0.0,
                      header="Proxy-Authorization")
    assert good.ok
    missing = srv.verify(request(value), PASSWORDS.get, 0.0, header="Proxy-Authorization")
    assert (missing.reason, missing.respond_status) == ("missing", 407)
    assert missing.challenge_header == "Proxy-Authenticate"


@given(st.text(max_size=120), st.text(max_size=40))
def test_verify_never_raises_on_hostile_input(value: str, uri_text: str) -> None:
    srv = server()
    nonce = srv.make_nonce(0.0)
    for header_value in (value, f'Digest username="101", realm="{REALM}", nonce="{nonce}", '
                                f'uri="{uri_text}", response="{value}", qop=auth, '
                                f'cnonce="x", nc=00000001'):
        result = srv.verify(request(header_value), PASSWORDS.get, 0.0)
        assert not result.ok
        assert result.reason in auth.AUTH_REASONS


def test_malformed_header_value() -> None:
    result = server().verify(request('Digest username="101'), PASSWORDS.get, 0.0)
    assert (result.ok, result.reason) == (False, "malformed")


def test_stale_nonce_with_right_password_is_stale() -> None:
    srv = server(nonce_lifetime_s=300.0)
    value = answer(srv, 0.0)
    result = srv.verify(request(value), PASSWORDS.get, 300.5)
    assert (result.ok, result.reason, result.stale) == (False, "stale_nonce", True)
    assert "stale=true" in srv.challenge(300.5, stale=result.stale)[0]
    # Within the lifetime the same answer is good.
    assert srv.verify(request(value), PASSWORDS.get, 299.0).ok


def test_stale_nonce_with_wrong_password_is_not_stale() -> None:
    srv = server()
    value = answer(srv, 0.0, password="wrong")
    result = srv.verify(request(value), PASSWORDS.get, 1000.0)
    assert (result.reason, result.stale) == ("bad_response", False)


def test_nonce_from_the_future_is_stale() -> None:
    # After a restart the monotonic clock may be behind an old nonce.
    srv = server()
    value = answer(srv, 5000.0)
    assert srv.verify(request(value), PASSWORDS.get, 10.0).reason == "stale_nonce"


def test_forged_nonce_is_bad_nonce() -> None:
    srv = server()
    forged_challenge = parse_challenge(f'Digest realm="{REALM}", nonce="{"ab" * 28}", '
                                       'algorithm=SHA-256, qop="auth"')
    value = DigestClient(username="101", password="s3cret").authorize(
        forged_challenge, "REGISTER", URI, cnonce="c")
    assert srv.verify(request(value), PASSWORDS.get, 0.0).reason == "bad_nonce"


def test_altered_nonce_is_bad_nonce() -> None:
    srv = server()
    nonce = parse_challenge(srv.challenge(100.0)[0]).nonce
    # Move the issue time forward by one digit (a client trying to extend it).
    altered = nonce[:14] + ("0" if nonce[14] != "0" else "1") + nonce[15:]
    challenge = parse_challenge(f'Digest realm="{REALM}", nonce="{altered}", '
                                'algorithm=SHA-256, qop="auth"')
    value = DigestClient(username="101", password="s3cret").authorize(
        challenge, "REGISTER", URI, cnonce="c")
    assert srv.verify(request(value), PASSWORDS.get, 100.0).reason == "bad_nonce"


def test_nonce_of_another_secret_is_bad_nonce() -> None:
    other = DigestServer(realm=REALM, secret=b"another secret")
    value = answer(other, 0.0)
    assert other.verify(request(value), PASSWORDS.get, 0.0).ok
    assert server().verify(request(value), PASSWORDS.get, 0.0).reason == "bad_nonce"


def test_replayed_nonce_count_is_replay() -> None:
    srv = server()
    value = answer(srv, 0.0)
    assert srv.verify(request(value), PASSWORDS.get, 1.0).ok
    result = srv.verify(request(value), PASSWORDS.get, 2.0)
    assert (result.ok, result.reason, result.stale) == (False, "replay", False)


def test_lower_nonce_count_is_replay_and_failures_do_not_advance_it() -> None:
    srv = server()
    challenge = parse_challenge(srv.challenge(0.0)[0])
    good = DigestClient(username="101", password="s3cret")
    values = [good.authorize(challenge, "REGISTER", URI, cnonce="c") for _ in range(3)]
    # A wrong password with a high nc must not burn the counts of the real client.
    bad = DigestClient(username="101", password="guess")
    for _ in range(5):
        bad_value = bad.authorize(challenge, "REGISTER", URI, cnonce="c")
    assert srv.verify(request(bad_value), PASSWORDS.get, 0.0).reason == "bad_response"
    assert srv.verify(request(values[1]), PASSWORDS.get, 0.0).ok  # nc 2
    assert srv.verify(request(values[0]), PASSWORDS.get, 0.0).reason == "replay"  # nc 1
    assert srv.verify(request(values[2]), PASSWORDS.get, 0.0).ok  # nc 3


def test_evicted_nonce_counts_never_allow_a_replay() -> None:
    srv = server(max_tracked_nonces=2)
    values = [answer(srv, float(i)) for i in range(3)]
    for value in values:
        assert srv.verify(request(value), PASSWORDS.get, 5.0).ok
    assert srv.tracked_nonces == 2
    replay = srv.verify(request(values[0]), PASSWORDS.get, 6.0)
    assert not replay.ok
    assert replay.reason == "stale_nonce" and replay.stale
    assert srv.verify(request(values[2]), PASSWORDS.get, 6.0).reason == "replay"


def test_unknown_user_is_indistinguishable_from_wrong_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real = auth.digest_response

    def counting(*args: object, **kwargs: object) -> str:
        calls.append(str(kwargs["username"]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    srv_a, srv_b = server(), server()
    wrong_value = answer(srv_a, 0.0, password="nope")
    unknown_value = answer(srv_b, 0.0, username="nobody", password="nope")
    monkeypatch.setattr(auth, "digest_response", counting)
    wrong = srv_a.verify(request(wrong_value), PASSWORDS.get, 1.0)
    unknown = srv_b.verify(request(unknown_value), PASSWORDS.get, 1.0)
    assert (wrong.reason, unknown.reason) == ("bad_response", "unknown_user")
    assert (wrong.ok, wrong.stale, wrong.respond_status, wrong.challenge_header) == (
        unknown.ok, unknown.stale, unknown.respond_status, unknown.challenge_header)
    # Same next challenge on the wire from servers in the same state.
    assert srv_a.challenge(2.0, stale=wrong.stale) == srv_b.challenge(2.0, stale=unknown.stale)
    # The same digest work was done for both (the unknown one against a dummy password).
    assert calls == ["101", "nobody"]


def test_realm_mismatch() -> None:
    elsewhere = DigestServer(realm="other.example", secret=SECRET)
    value = answer(elsewhere, 0.0)
    result = server().verify(request(value), PASSWORDS.get, 0.0)
    assert (result.ok, result.reason) == (False, "realm_mismatch")


def test_credentials_for_our_realm_are_found_among_others() -> None:
    srv = server()
    elsewhere = DigestServer(realm="other.example", secret=b"x")
    req = Request("INVITE", URI, [("Authorization", answer(elsewhere, 0.0, method="INVITE")),
                                  ("Authorization", answer(srv, 0.0, method="INVITE"))])
    assert srv.verify(req, PASSWORDS.get, 0.0).ok


def test_uri_mismatch() -> None:
    srv = server()
    value = answer(srv, 0.0, uri="sip:other.example")
    result = srv.verify(request(value), PASSWORDS.get, 0.0)
    assert (result.ok, result.reason) == (False, "uri_mismatch")


@pytest.mark.parametrize(
    ("digest_uri", "request_uri", "same"),
    [
        ("sip:101@Example.COM", "sip:101@example.com", True),
        ("sip:101@example.com;transport=UDP", "sip:101@example.com;transport=udp", True),
        ("sip:101@example.com", "sip:101@example.com;transport=tcp", True),
        ("sip:%31%30%31@example.com", "sip:101@example.com", True),
        ("sip:101@example.com", "sip:101@example.com:5060", False),
        ("sip:101@example.com", "sip:102@example.com", False),
        ("sip:101@example.com", "sips:101@example.com", False),
        ("sip:101@example.com;user=phone", "sip:101@example.com", False),
        ("sip:101@example.com;maddr=10.0.0.1", "sip:101@example.com", False),
        ("tel:+48-22-1234567", "tel:+48221234567", True),
        ("/dir/index.html", "/dir/index.html", True),
        ("not a uri", "sip:x", False),
    ],
)
def test_uri_comparison(digest_uri: str, request_uri: str, same: bool) -> None:
    assert auth.uri_matches(digest_uri, request_uri) is same


def test_equivalent_uri_is_accepted() -> None:
    srv = server()
    value = answer(srv, 0.0, uri="sip:REGISTRAR.boomerang.example;transport=udp")
    assert srv.verify(request(value), PASSWORDS.get, 0.0).ok


def test_algorithm_not_offered() -> None:
    srv = server(algorithms=("SHA-256",))
    md5_only = DigestServer(realm=REALM, secret=SECRET, algorithms=("MD5",))
    value = answer(md5_only, 0.0)  # same secret: the nonce itself is valid
    result = srv.verify(request(value), PASSWORDS.get, 0.0)
    assert (result.ok, result.reason) == (False, "algorithm")


def test_legacy_response_without_qop_only_when_allowed() -> None:
    strict = server()
    legacy = server(allow_legacy_no_qop=True)
    nonce = parse_challenge(strict.challenge(0.0)[1]).nonce
    challenge = parse_challenge(f'Digest realm="{REALM}", nonce="{nonce}", algorithm=MD5')
    value = DigestClient(username="101", password="s3cret").authorize(
        challenge, "REGISTER", URI, cnonce="unused")
    credentials = parse_credentials(value)
    assert credentials.qop is None and credentials.nc is None and credentials.cnonce is None
    ha1 = md5(f"101:{REALM}:s3cret")
    assert credentials.response == md5(f"{ha1}:{nonce}:{md5('REGISTER:' + URI)}")
    assert strict.verify(request(value), PASSWORDS.get, 0.0).reason == "malformed"
    assert legacy.verify(request(value), PASSWORDS.get, 0.0).ok


def test_qop_offered_but_cnonce_missing_is_malformed() -> None:
    srv = server()
    value = answer(srv, 0.0)
    stripped = ", ".join(p for p in value.split(", ") if not p.startswith("cnonce="))
    assert srv.verify(request(stripped), PASSWORDS.get, 0.0).reason == "malformed"


def test_server_refuses_bad_configuration() -> None:
    with pytest.raises(ValueError):
        DigestServer(realm=REALM, secret=SECRET, algorithms=("SHA-1",))
    with pytest.raises(ValueError):
        DigestServer(realm=REALM, secret=b"")
    with pytest.raises(ValueError):
        DigestServer(realm=REALM, secret=SECRET, algorithms=())


def test_challenge_type_is_the_parsed_value() -> None:
    assert isinstance(parse_challenge(server().challenge(0.0)[0]), Challenge)
