"""Who is ringing: the caller number of a trigger call, or why there is none.

A trunk's caller identity is taken from P-Asserted-Identity when the
carrier sends one (RFC 3325: the network asserts it; the trunk is trusted
because the INVITE came from its ``sources``), else from the From user.
The number is normalised to E.164 for the trunk's country, so
``+48600100200``, ``0048600100200`` and ``600100200`` are one number on a
Polish trunk (SPEC §2).

A number is *withheld* when the caller asked for privacy (``Privacy: id``,
``header`` or ``user``, RFC 3323), when the user part is one of the words
carriers put there (anonymous, unknown, restricted, unavailable, private,
withheld), when the host is ``anonymous.invalid``, or when nothing is left.
A withheld number never triggers method ``caller``; the callback dials the
number stored for the mobile, never the raw caller ID.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..call.numbers import NumberError, normalise
from ..call.trunk_shaping import strip_number
from ..sip.errors import SipError
from ..sip.message import Request
from ..sip.uri import SipUri, TelUri, Uri

WITHHELD_WORDS = frozenset({"anonymous", "unknown", "restricted", "unavailable", "private",
                            "withheld", "anonymous.invalid", ""})
PRIVACY_WITHHOLDS = frozenset({"id", "header", "user"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerIdentity:
    """``e164`` when the number is known and valid; ``raw`` as received
    (for logs and records); ``withheld`` when the caller hid it."""

    raw: str
    e164: str | None
    withheld: bool


def _user_of(uri: Uri) -> tuple[str, str]:
    if isinstance(uri, TelUri):
        return uri.number, ""
    if isinstance(uri, SipUri):
        return (uri.user_unescaped or "").split(";", 1)[0], uri.host.lower()
    return "", ""


def caller_identity(request: Request, country: str) -> CallerIdentity:
    """The caller of ``request`` (see the module doc)."""
    try:
        privacy = set(request.privacy)
    except SipError:
        privacy = {"id"}  # an unreadable Privacy header: assume the caller asked for it
    uri: Uri | None = None
    try:
        asserted = request.name_addrs("P-Asserted-Identity")
    except SipError:
        asserted = []
    if asserted:
        uri = asserted[0].uri
    else:
        try:
            uri = request.from_.uri
        except SipError:
            uri = None
    raw, host = _user_of(uri) if uri is not None else ("", "")
    raw = strip_number(raw)
    if privacy & PRIVACY_WITHHOLDS or raw.lower() in WITHHELD_WORDS \
            or host == "anonymous.invalid":
        return CallerIdentity(raw=raw, e164=None, withheld=True)
    try:
        e164 = normalise(raw, country)
    except NumberError:
        e164 = None
    return CallerIdentity(raw=raw, e164=e164, withheld=False)


__all__ = ["CallerIdentity", "caller_identity"]
