"""Small lexical helpers of the RFC 3261 §25 grammar shared by the parsers."""

from __future__ import annotations

from .errors import ParseError

# RFC 3261 §25.1 token characters.
TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return bool(text) and all(c in TOKEN_CHARS for c in text)


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split ``text`` on ``separator`` where it is outside quotes and <...>.

    Backslash escapes inside quoted strings are honoured. Raises ParseError
    for an unterminated quoted string or angle bracket.
    """
    if separator not in text:
        if '"' in text and text.count('"') % 2 and "\\" not in text:
            raise ParseError(f"unterminated quoted string in {text!r}")
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
        raise ParseError(f"unterminated quoted string in {text!r}")
    if in_angle:
        raise ParseError(f"unterminated '<' in {text!r}")
    parts.append(text[start:])
    return parts


def unquote(text: str) -> str:
    """Remove the quotes of an RFC 3261 quoted-string and undo its escapes."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ParseError(f"not a quoted string: {text!r}")
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    while i < len(inner):
        c = inner[i]
        if c == "\\":
            if i + 1 >= len(inner):
                raise ParseError(f"dangling escape in {text!r}")
            out.append(inner[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def quote(text: str) -> str:
    """Make an RFC 3261 quoted-string of ``text``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


Params = list[tuple[str, str | None]]


def parse_params(text: str) -> Params:
    """Parse ``;name=value;flag`` (the text after the first ';').

    Names keep their case as sent (compare with ``param()``, which folds
    case); values keep quotes as sent so that forwarding is exact.
    """
    params: Params = []
    if not text:
        return params
    for raw in split_outside_quotes(text, ";"):
        item = raw.strip()
        if not item:
            raise ParseError(f"empty parameter in {text!r}")
        name, eq, value = item.partition("=")
        name = name.strip()
        if not is_token(name):
            raise ParseError(f"bad parameter name {name!r}")
        params.append((name, value.strip() if eq else None))
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
