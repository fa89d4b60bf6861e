"""Small lexical helpers of the RFC 3261 §25 grammar shared by the parsers.

Everything here works on ``str`` (the head of a message decoded as UTF-8,
undecodable bytes kept as surrogates) and raises ParseError (400) on bad
input, never anything else.
"""

from __future__ import annotations

import re

from .errors import ParseError

# RFC 3261 §25.1 token characters.
TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# A generic-param value: token, host (IPv6 reference included) or quoted-string.
# ':' '[' ']' are accepted for IPv6 addresses with and without brackets (RFC 5118 §4.5).
_PARAM_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+\Z")
_ASCII_DIGITS_RE = re.compile(r"[0-9]+\Z")

# RFC 3261 §25.1 "word" (Call-ID halves): token characters plus ( ) < > : \ " / [ ] ? { }
WORD_CHARS = TOKEN_CHARS | frozenset('()<>:\\"/[]?{}')


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return _TOKEN_RE.match(text) is not None


def is_digits(text: str) -> bool:
    """True when ``text`` is one or more ASCII digits (``str.isdigit`` accepts '²')."""
    return _ASCII_DIGITS_RE.match(text) is not None


def parse_uint(text: str, what: str, *, maximum: int | None = None) -> int:
    """An unsigned decimal (leading zeros allowed); ParseError when not digits or too big."""
    text = text.strip()
    if len(text) < 10 and text.isdigit() and text.isascii():
        value = int(text)
        if maximum is not None and value > maximum:
            raise ParseError(f"{what} out of range: {value}")
        return value
    if not is_digits(text):
        raise ParseError(f"bad {what} {text[:40]!r}")
    # int() of thousands of digits is slow and limited; nothing we read is that long.
    if len(text.lstrip("0")) > 40:
        raise ParseError(f"{what} out of range: {text[:40]!r}...")
    value = int(text)
    if maximum is not None and value > maximum:
        raise ParseError(f"{what} out of range: {value}")
    return value


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split ``text`` on ``separator`` where it is outside quotes and <...>.

    Backslash escapes inside quoted strings are honoured. Raises ParseError
    for an unterminated quoted string or angle bracket.
    """
    if separator not in text and '"' not in text:
        if "<" in text and ">" not in text:
            raise ParseError(f"unterminated '<' in {text[:80]!r}")
        return [text]
    parts: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if in_quotes:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == separator and not in_angle:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quotes:
        raise ParseError(f"unterminated quoted string in {text[:80]!r}")
    if in_angle:
        raise ParseError(f"unterminated '<' in {text[:80]!r}")
    parts.append(text[start:])
    return parts


def quoted_string_end(text: str, start: int) -> int:
    """Index just past the quoted-string that opens at ``text[start] == '"'``."""
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    raise ParseError(f"unterminated quoted string in {text[:80]!r}")


def unquote(text: str) -> str:
    """Remove the quotes of an RFC 3261 quoted-string and undo its escapes."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ParseError(f"not a quoted string: {text[:80]!r}")
    inner = text[1:-1]
    if "\\" not in inner:
        if '"' in inner:
            raise ParseError(f"stray quote in {text[:80]!r}")
        return inner
    out: list[str] = []
    i = 0
    n = len(inner)
    while i < n:
        c = inner[i]
        if c == "\\":
            if i + 1 >= n:
                raise ParseError(f"dangling escape in {text[:80]!r}")
            out.append(inner[i + 1])
            i += 2
        elif c == '"':
            raise ParseError(f"stray quote in {text[:80]!r}")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def quote(text: str) -> str:
    """Make an RFC 3261 quoted-string of ``text``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


Params = list[tuple[str, str | None]]


def _check_param_value(value: str, whole: str) -> None:
    if value.startswith('"'):
        if quoted_string_end(value, 0) != len(value):
            raise ParseError(f"junk after quoted parameter value in {whole[:80]!r}")
    elif _PARAM_VALUE_RE.match(value) is None:
        raise ParseError(f"bad parameter value {value[:40]!r}")


def parse_params(text: str) -> Params:
    """Parse ``;name=value;flag`` (the text after the first ';').

    LWS around ';' and '=' is allowed (RFC 3261 §25.1 SEMI, EQUAL). Names
    keep their case as sent (compare with ``get_param``, which folds case);
    values keep quotes as sent so that forwarding is exact.
    """
    params: Params = []
    if not text:
        return params
    for raw in split_outside_quotes(text, ";") if '"' in text else text.split(";"):
        name, eq, value = raw.partition("=")
        name = name.strip()
        if not is_token(name):
            raise ParseError(f"bad parameter name {name[:40]!r} in {text[:80]!r}")
        if eq:
            value = value.strip()
            if not value:
                raise ParseError(f"empty value of parameter {name!r}")
            _check_param_value(value, text)
            params.append((name, value))
        else:
            params.append((name, None))
    return params


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def get_param(params: Params, name: str) -> str | None:
    """Value of parameter ``name`` (case-insensitive); '' for a flag; None if absent."""
    lname = name.lower()
    for k, v in params:
        if k.lower() == lname:
            return "" if v is None else v
    return None


def has_param(params: Params, name: str) -> bool:
    lname = name.lower()
    return any(k.lower() == lname for k, _ in params)


def set_param(params: Params, name: str, value: str | None) -> Params:
    """Return a copy of ``params`` with ``name`` set (replaced or appended)."""
    lname = name.lower()
    out: Params = []
    done = False
    for k, v in params:
        if k.lower() == lname:
            if not done:
                out.append((k, value))
                done = True
        else:
            out.append((k, v))
    if not done:
        out.append((name, value))
    return out
