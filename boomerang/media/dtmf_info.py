"""DTMF in SIP INFO bodies: application/dtmf-relay and application/dtmf.

Neither format has an RFC; what phones and carriers send in practice:

``application/dtmf-relay`` (Cisco style, also SIPp, Asterisk, FreeSWITCH)::

    Signal=5
    Duration=160

Lines end in CRLF or LF; keys are case-insensitive and may have spaces
around ``=`` (``Signal= *``); ``Signal=10`` / ``11`` mean ``*`` / ``#`` and
``12``..``15`` mean ``A``..``D``; ``Duration`` is in milliseconds and may be
missing. Unknown keys are ignored.

``application/dtmf``: the body is the digit itself (``5``), possibly followed
by a line break; the same numeric codes are accepted.

A malformed body raises ``DtmfBodyError`` (status 400); a content type that is
neither raises ``UnsupportedDtmfType`` (status 415). Both are ``ValueError``
subclasses and ``SipError`` subclasses, so the SIP edge answers with
``error.status``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sip.errors import SipError
from .digits import DTMF_DIGITS, DigitReceived, DigitSource

CONTENT_TYPE_DTMF_RELAY = "application/dtmf-relay"
CONTENT_TYPE_DTMF = "application/dtmf"
MAX_BODY_BYTES = 512
MAX_DURATION_MS = 60_000


class DtmfBodyError(SipError, ValueError):
    """The INFO body is not a DTMF body we understand: 400."""

    status = 400
    reason = "Bad Request"


class UnsupportedDtmfType(DtmfBodyError):
    """The INFO carries a content type other than the two DTMF ones: 415."""

    status = 415
    reason = "Unsupported Media Type"


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfInfo:
    """A digit from an INFO body; ``duration_ms`` None when not given."""

    digit: str
    duration_ms: int | None

    def received(self, now: float) -> DigitReceived:
        """As a ``DigitReceived`` for a ``DigitCollector``, stamped ``now``."""
        return DigitReceived(
            digit=self.digit, source=DigitSource.INFO, time=now, duration_ms=self.duration_ms
        )


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_dtmf_content_type(content_type: str) -> bool:
    return _media_type(content_type) in (CONTENT_TYPE_DTMF_RELAY, CONTENT_TYPE_DTMF)


def _digit(value: str) -> str:
    text = value.strip()
    if len(text) == 1:
        upper = text.upper()
        if upper in DTMF_DIGITS:
            return upper
    elif text.isdigit() and len(text) <= 2 and int(text) < 16:
        return DTMF_DIGITS[int(text)]
    raise DtmfBodyError(f"not a DTMF signal: {value.strip()[:20]!r}")


def _text(body: bytes) -> str:
    if len(body) > MAX_BODY_BYTES:
        raise DtmfBodyError(f"DTMF body of {len(body)} bytes is too long")
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        raise DtmfBodyError("DTMF body is not ASCII") from None


def parse_dtmf_relay(body: bytes) -> DtmfInfo:
    """Parse an ``application/dtmf-relay`` body."""
    signal: str | None = None
    duration_ms: int | None = None
    for line in _text(body).splitlines():
        if not line.strip():
            continue
        key, equals, value = line.partition("=")
        if not equals:
            raise DtmfBodyError(f"dtmf-relay line without '=': {line[:40]!r}")
        name = key.strip().lower()
        if name == "signal":
            if signal is not None:
                raise DtmfBodyError("dtmf-relay body with two Signal lines")
            signal = _digit(value)
        elif name == "duration":
            number = value.strip()
            if not number.isdigit() or int(number) > MAX_DURATION_MS:
                raise DtmfBodyError(f"bad dtmf-relay Duration: {number[:20]!r}")
            duration_ms = int(number)
    if signal is None:
        raise DtmfBodyError("dtmf-relay body without a Signal line")
    return DtmfInfo(digit=signal, duration_ms=duration_ms)


def parse_dtmf(body: bytes) -> DtmfInfo:
    """Parse an ``application/dtmf`` body (the digit alone)."""
    return DtmfInfo(digit=_digit(_text(body)), duration_ms=None)


def parse_dtmf_info(content_type: str, body: bytes) -> DtmfInfo:
    """Parse an INFO body by its Content-Type (parameters are ignored)."""
    media_type = _media_type(content_type)
    if media_type == CONTENT_TYPE_DTMF_RELAY:
        return parse_dtmf_relay(body)
    if media_type == CONTENT_TYPE_DTMF:
        return parse_dtmf(body)
    raise UnsupportedDtmfType(f"INFO content type {media_type[:60]!r} is not DTMF")


def _check_digit(digit: str) -> str:
    if len(digit) != 1 or digit.upper() not in DTMF_DIGITS:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return digit.upper()


def build_dtmf_relay(digit: str, duration_ms: int = 160) -> bytes:
    """An ``application/dtmf-relay`` body: ``Signal=5\\r\\nDuration=160\\r\\n``."""
    if not 0 < duration_ms <= MAX_DURATION_MS:
        raise ValueError(f"duration_ms {duration_ms} out of range")
    return f"Signal={_check_digit(digit)}\r\nDuration={duration_ms}\r\n".encode("ascii")


def build_dtmf(digit: str) -> bytes:
    """An ``application/dtmf`` body: the digit alone."""
    return _check_digit(digit).encode("ascii")
