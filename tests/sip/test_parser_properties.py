"""Hypothesis properties of the message layer: no crash, round trip, framing."""

from __future__ import annotations

import contextlib
import pathlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boomerang.sip.errors import SipError
from boomerang.sip.message import Message, Request
from boomerang.sip.parser import StreamFramer, parse_message

FIXTURE_DIR = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "sip"
FIXTURES = sorted(FIXTURE_DIR.glob("*.sip"))
SEEDS = [path.read_bytes() for path in FIXTURES]
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# generating whole messages is slower: fewer examples keep the file at a few seconds
GENERATED = settings(max_examples=120, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


def exercise(message: Message) -> None:
    """Every reader may raise SipError, nothing else."""
    for read in (lambda: message.validate(), lambda: message.vias, lambda: message.contacts,
                 lambda: message.from_tag, lambda: message.to_tag, lambda: message.privacy,
                 lambda: message.reasons, lambda: message.expires, lambda: message.max_forwards):
        with contextlib.suppress(SipError):
            read()
    if isinstance(message, Request):
        with contextlib.suppress(SipError):
            message.request_uri  # noqa: B018
    message.serialize()


@SETTINGS
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_parse_or_raise_sip_error(data: bytes) -> None:
    try:
        message = parse_message(data)
    except SipError:
        return
    exercise(message)


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from([b"\r\n", b" ", b":", b";", b",", b'"', b"<", b">", b"@",
                                      b"[", b"]", b"%", b"\x00", b"\xff", b"\r\n ", b"=", b"?"]))
        if action == "insert":
            data[position:position] = piece
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 4))]
        else:
            data[position : position + len(piece)] = piece
    return bytes(data)


@SETTINGS
@given(mutated_fixture())
def test_mutated_torture_messages_parse_or_raise_sip_error(data: bytes) -> None:
    try:
        message = parse_message(data)
    except SipError:
        return
    exercise(message)


@SETTINGS
@given(st.binary(max_size=1024), st.lists(st.integers(1, 64), max_size=40))
def test_stream_framer_takes_arbitrary_chunks(data: bytes, sizes: list[int]) -> None:
    framer = StreamFramer()
    position = 0
    try:
        for size in [*sizes, len(data)]:
            for framed in framer.feed(data[position : position + size]):
                with contextlib.suppress(SipError):
                    parse_message(framed, stream=True)
            position += size
    except SipError:
        pass


TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
TOKEN = st.text(alphabet=TOKEN_ALPHABET, min_size=1, max_size=12)
VALUE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.just(" ")
                | st.sampled_from("łżé大"), min_size=0, max_size=30).map(str.strip)
HOST = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}", fullmatch=True) | \
    st.from_regex(r"\[2001:db8::[0-9a-f]{1,4}\]", fullmatch=True)


@st.composite
def valid_messages(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["INVITE", "BYE", "OPTIONS", "REGISTER", "X-CUSTOM"]))
    host = draw(HOST)
    number = draw(st.integers(0, 2**31 - 1))
    lines = []
    if draw(st.booleans()):
        lines.append(f"{method} sip:{draw(TOKEN)}@{host} SIP/2.0")
    else:
        status = draw(st.integers(100, 699))
        reason = draw(VALUE)
        lines.append(f"SIP/2.0 {status} {reason}" if reason or draw(st.booleans())
                     else f"SIP/2.0 {status}")
    lines += [
        f"Via: SIP/2.0/{draw(st.sampled_from(['UDP', 'TCP', 'TLS']))} {host}"
        f";branch=z9hG4bK{draw(TOKEN)}",
        f"From: <sip:{draw(TOKEN)}@{host}>;tag={draw(TOKEN)}",
        f"To: \"{draw(TOKEN)}\" <sip:{draw(TOKEN)}@{host}>",
        f"Call-ID: {draw(TOKEN)}@{host}",
        f"CSeq: {number} {method}",
    ]
    for _ in range(draw(st.integers(0, 6))):
        lines.append(f"X-{draw(TOKEN)}: {draw(VALUE)}")
    order = draw(st.permutations(lines[1:]))
    body = draw(st.binary(max_size=64))
    head = "\r\n".join([lines[0], *order, f"Content-Length: {len(body)}"]) + "\r\n\r\n"
    return head.encode() + body


@GENERATED
@given(valid_messages())
def test_generated_messages_round_trip(data: bytes) -> None:
    first = parse_message(data)
    again = parse_message(first.serialize())
    assert again.start_line() == first.start_line()
    assert list(again.headers) == list(first.headers)
    assert again.body == first.body
    assert again.serialize() == first.serialize()


@GENERATED
@given(st.lists(valid_messages(), min_size=1, max_size=4), st.data())
def test_stream_split_anywhere_gives_the_same_messages(
    messages: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    framer = StreamFramer()
    out: list[bytes] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        out += framer.feed(stream[previous:cut])
        previous = cut
    assert out == messages
