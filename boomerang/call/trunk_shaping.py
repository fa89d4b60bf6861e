"""Pure helpers for trunk traffic: the number formats a carrier expects, the
DID of an inbound request, and the headers of an outbound INVITE.

Nothing here does I/O. ``build_outbound_invite_headers`` gives the call layer
what it needs to place a call through a trunk:

| trunk ``caller_id_header`` | From                      | identity header                       |
|----------------------------|---------------------------|---------------------------------------|
| ``from``                   | caller ID                 | none                                  |
| ``pai``                    | caller ID                 | P-Asserted-Identity (RFC 3325 §9.1)   |
| ``rpid``                   | caller ID                 | Remote-Party-ID (draft-ietf-sip-      |
|                            |                           | privacy-04 §6: party, screen, privacy)|

With ``privacy`` the From becomes ``"Anonymous" <sip:anonymous@anonymous.invalid>``
(RFC 3323 §4.1.1.3), the asserted identity stays for the carrier, and
``Privacy: id`` asks it to withhold that identity from the called party
(RFC 3325 §9.3); Remote-Party-ID carries ``privacy=full`` instead of ``off``.

Caller IDs are presented in E.164 (``+48221234567``), the form RFC 3325
recommends; the dialled number takes the trunk's ``dial_format``.
"""

from __future__ import annotations

from ..config import TrunkSettings
from ..sip.grammar import quote
from ..sip.message import Request
from ..sip.uri import SipUri, TelUri
from .numbers import NumberError, format_for_dial, normalise

# RFC 3966 §3 visual separators, plus the space people type.
VISUAL_SEPARATORS = str.maketrans("", "", "-.() /")
ANONYMOUS_FROM = '"Anonymous" <sip:anonymous@anonymous.invalid>'


def strip_number(text: str) -> str:
    """``+48 (22) 123-45.67`` -> ``+48221234567``: visual separators go, a
    leading ``+`` stays, other characters are kept."""
    return text.translate(VISUAL_SEPARATORS)


def dial_string(number_e164: str, trunk: TrunkSettings) -> str:
    """The user part of the Request-URI dialling ``number_e164`` through
    ``trunk``: ``numbers.format_for_dial`` in the trunk's ``dial_format``.

    The trunk's ``outside_prefix`` is what an extension dials to get an
    outside line; it is stripped by the dial plan and never sent to the
    carrier (a PL carrier expects ``600100200``, not ``0600100200``). Raises
    NumberError (484) for a number not written in E.164; whether it is a
    valid number is ``numbers.normalise``'s business, before this."""
    text = strip_number(number_e164)
    if not text.startswith("+") or not text[1:].isdigit():
        raise NumberError(f"{number_e164!r} is not an E.164 number (+CC...)")
    return format_for_dial(text, trunk.dial_format, trunk.country)


def did_of(request: Request, trunk: TrunkSettings) -> str:
    """The DID an inbound request is for: the Request-URI user, or the To
    user when the trunk's ``did_from`` is ``to``; scheme, URI parameters and
    visual separators removed, then normalised to E.164 for the trunk's
    country (``numbers.normalise``). A number that does not normalise (a
    short internal number, an account name) is returned as received."""
    uri = request.to.uri if trunk.did_from == "to" else request.request_uri
    if isinstance(uri, TelUri):
        raw = uri.number
    elif isinstance(uri, SipUri):
        raw = (uri.user_unescaped or "").split(";", 1)[0]
    else:
        raw = ""
    number = strip_number(raw)
    if not number:
        return number
    try:
        return normalise(number, trunk.country)
    except NumberError:
        return number


# -- outbound INVITE ------------------------------------------------------------------


def _host(trunk: TrunkSettings) -> str:
    host = trunk.host
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def trunk_uri(trunk: TrunkSettings, user: str | None = None) -> str:
    """``sip:[user@]host[:port][;transport=tcp]`` of the trunk."""
    user_part = f"{user}@" if user else ""
    port = f":{trunk.port}" if trunk.port is not None else ""
    transport = "" if trunk.transport == "udp" else f";transport={trunk.transport}"
    return f"sip:{user_part}{_host(trunk)}{port}{transport}"


def build_outbound_invite_headers(
    trunk: TrunkSettings,
    *,
    dialled_e164: str,
    caller_id_e164: str,
    privacy: bool = False,
    display_name: str | None = None,
) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """``(request_uri, from_header, headers)`` for an INVITE through ``trunk``.

    ``from_header`` has no tag: the call layer adds ``;tag=``. ``headers``
    holds the identity header (P-Asserted-Identity or Remote-Party-ID, per
    the trunk's ``caller_id_header``) and ``Privacy: id`` when asked.
    Raises NumberError (SIP status 484/404) when a number is not usable.
    """
    request_uri = trunk_uri(trunk, dial_string(dialled_e164, trunk))
    caller = strip_number(caller_id_e164)
    if not caller.startswith("+") or not caller[1:].isdigit():
        raise NumberError(f"caller ID {caller_id_e164!r} is not an E.164 number (+CC...)")
    host = _host(trunk)
    name = f"{quote(display_name)} " if display_name else ""
    identity = f"{name}<sip:{caller}@{host}>"
    from_header = ANONYMOUS_FROM if privacy else identity
    headers: list[tuple[str, str]] = []
    if trunk.caller_id_header == "pai":
        headers.append(("P-Asserted-Identity", identity))
    elif trunk.caller_id_header == "rpid":
        screen = f";party=calling;screen=yes;privacy={'full' if privacy else 'off'}"
        headers.append(("Remote-Party-ID", identity + screen))
    if privacy:
        headers.append(("Privacy", "id"))
    return request_uri, from_header, tuple(headers)


__all__ = [
    "ANONYMOUS_FROM",
    "build_outbound_invite_headers",
    "dial_string",
    "did_of",
    "strip_number",
    "trunk_uri",
]
