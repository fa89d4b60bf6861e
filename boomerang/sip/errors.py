"""Errors of the SIP core.

Every error carries the SIP status the edge should answer with, so the
transport can reply without parsing text (h11's LocalProtocolError /
RemoteProtocolError carry a status hint the same way).
"""

from __future__ import annotations


class SipError(Exception):
    """Base of all SIP core errors; ``status`` is the response to send."""

    status: int = 500
    reason: str = "Server Internal Error"

    def __init__(self, detail: str, *, status: int | None = None, reason: str | None = None):
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if reason is not None:
            self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.detail!r}, status={self.status})"


class ParseError(SipError):
    """The bytes are not a well-formed SIP message (the remote's fault): 400."""

    status = 400
    reason = "Bad Request"


class MessageTooLarge(ParseError):
    """A message, header or body exceeds the configured limits: 513."""

    status = 513
    reason = "Message Too Large"


class UnsupportedExtension(SipError):
    """A Require header names an extension we do not support: 420."""

    status = 420
    reason = "Bad Extension"


class TransactionDoesNotExist(SipError):
    """A request within a dialog or a CANCEL matches nothing: 481."""

    status = 481
    reason = "Call/Transaction Does Not Exist"


class LoopDetected(SipError):
    """RFC 3261 §8.2.2.2 merged request / loop: 482."""

    status = 482
    reason = "Loop Detected"


class TooManyHops(SipError):
    """Max-Forwards reached zero: 483."""

    status = 483
    reason = "Too Many Hops"


class ProtocolError(SipError):
    """An input that the state machine in its current state cannot take.

    Raised by the transaction and dialog machines for a (state, input) pair
    that RFC 3261 does not allow. ``local`` tells whether our own code (the
    transaction user) misbehaved or the remote sent it.
    """

    status = 500
    reason = "Server Internal Error"

    def __init__(self, detail: str, *, local: bool = True, status: int | None = None):
        super().__init__(detail, status=status)
        self.local = local


class AuthError(SipError):
    """Digest credentials missing, stale or wrong: answer with a challenge."""

    status = 401
    reason = "Unauthorized"
