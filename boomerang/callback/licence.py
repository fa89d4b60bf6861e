"""The licence: how many mobiles may get a callback (SPEC §2, last rule).

Without a licence file Boomerang runs in DEMO mode: callback for one mobile.
A licence file raises that number; nothing else in the system is limited.

The file is JSON::

    {"licence": {"id": "L-123", "licensee": "ACME", "max_mobiles": 25,
                 "issued": "2026-11-22", "expires": "2027-11-22"},
     "signature": "<base64 Ed25519 signature>"}

The signature covers the canonical bytes of the ``licence`` object
(``canonical_json``: sorted keys, no spaces, UTF-8), so the file itself may
be indented or reordered freely, and every key inside ``licence`` is signed,
including keys this version does not know (future fields: signed, read by
nobody yet). Keys beside ``licence`` and ``signature`` are not signed and
not read. Dates are UTC days, written ``YYYY-MM-DD``: a licence is valid from
``issued`` through ``expires`` inclusive (``expires: null``: it never expires).

``load_licence`` checks, in this order, and the first failure raises
``LicenceError`` with the reason and what to do about it: the file exists and
is readable, it is JSON of the shape above, every field is present and well
formed, the signature verifies with the public key in use (the project's
shipped key, ``licence_key.py``, or the deployment's own, config
``licence_public_key``), and today is within the dates. Fields are checked
before the signature only to name a precise problem; nothing of an unverified
file is ever used.

``entitlement`` applies a licence to the configured extensions: the mobiles
of callback-enabled extensions, counted in config order, the first
``max_mobiles`` allowed and each further one refused with a message saying
what happens to it and how to fix it. The lead's start-up code logs
``describe(entitlement)`` and hands ``entitlement.allowed`` to the trigger
authorisation (``authorise.py``, reason ``not_licensed``).

Signing (``issue_licence``) and key generation (``generate_key_pair``) live
here too, so the format has one owner; ``boomerang licence`` (cli_licence.py)
is their command line. No clock is read here: callers pass ``today``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .licence_key import PROJECT_PUBLIC_KEY_PEM

if TYPE_CHECKING:
    from ..config import Config, ExtensionSettings

REQUIRED_FIELDS = ("id", "licensee", "max_mobiles", "issued", "expires")
SIGNATURE_BYTES = 64  # Ed25519 (RFC 8032)
DEMO_MAX_MOBILES = 1
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SHAPE = ('a licence file looks like {"licence": {"id": ..., "licensee": ..., '
          '"max_mobiles": ..., "issued": ..., "expires": ...}, "signature": "..."}, '
          "as written by `boomerang licence issue`")


class LicenceError(Exception):
    """A licence file that grants nothing: ``reason`` says why and what to do."""

    def __init__(self, reason: str, *, path: Path | str | None = None) -> None:
        self.reason = reason
        self.path = None if path is None else Path(path)
        super().__init__(reason if path is None else f"{path}: {reason}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Licence:
    """What a verified licence grants (or DEMO mode: ``demo=True``)."""

    id: str
    licensee: str
    max_mobiles: int
    issued: date | None
    expires: date | None          # last valid day (UTC); None: never expires
    demo: bool = False


DEMO_LICENCE = Licence(id="DEMO", licensee="", max_mobiles=DEMO_MAX_MOBILES,
                       issued=None, expires=None, demo=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class RefusedMobile:
    """A configured callback mobile beyond what the licence grants."""

    mobile: str                   # E.164
    extension: str                # the owner extension's number
    message: str                  # what happens and how to fix it, for logs and check


@dataclass(frozen=True, slots=True, kw_only=True)
class Entitlement:
    """A licence applied to the configured extensions."""

    allowed: frozenset[str]       # E.164 mobiles that may get a callback
    refused: tuple[RefusedMobile, ...]
    licence: Licence


# -- keys ------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """The bytes a licence signature covers."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def project_public_key_pem() -> bytes:
    return PROJECT_PUBLIC_KEY_PEM.encode("ascii")


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise LicenceError(f"not a PEM public key ({error}); give the Ed25519 public key "
                           "written by `boomerang licence keygen`") from None
    if not isinstance(key, Ed25519PublicKey):
        raise LicenceError(f"a {type(key).__name__.lstrip('_')}, not an Ed25519 public key; "
                           "give the key written by `boomerang licence keygen`")
    return key


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise LicenceError("the private key is encrypted with a passphrase; decrypt it "
                           "first (openssl pkey -in KEY -out PLAIN), or use the unencrypted "
                           "key `boomerang licence keygen` writes") from None
    except (ValueError, UnsupportedAlgorithm) as error:
        raise LicenceError(f"not a PEM private key ({error}); give the private key written "
                           "by `boomerang licence keygen`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LicenceError(f"a {type(key).__name__.lstrip('_')}, not an Ed25519 private key; "
                           "make one with `boomerang licence keygen`")
    return key


def key_fingerprint(public_key_pem: bytes) -> str:
    """``sha256:`` and the first 16 hex digits of the SHA-256 of the raw key."""
    raw = load_public_key(public_key_pem).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


def generate_key_pair() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as PEM: (private PKCS#8 unencrypted, public SPKI)."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    return private_pem, public_pem_of(private)


def public_pem_of(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


# -- reading -----------------------------------------------------------------------


def load_licence(path: Path | str, *, public_key_pem: bytes | None = None,
                 today: date) -> Licence:
    """The verified licence in ``path``; ``public_key_pem`` None: the project's key.

    Raises ``LicenceError`` (with ``path``) when the file grants nothing."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise LicenceError("licence file not found; check the path (licence: in the "
                           "config), or remove licence: to run in DEMO mode (one mobile)",
                           path=path) from None
    except OSError as error:
        raise LicenceError(f"licence file cannot be read ({error.strerror or error})",
                           path=path) from None
    try:
        return parse_licence(data, public_key_pem=public_key_pem, today=today)
    except LicenceError as error:
        raise LicenceError(error.reason, path=path) from None


def parse_licence(data: bytes, *, public_key_pem: bytes | None = None,
                  today: date) -> Licence:
    """``load_licence`` on the bytes of a file (the rules in the module doc)."""
    try:
        document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                              parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise LicenceError(f"not JSON: not UTF-8 text; {_SHAPE}") from None
    except json.JSONDecodeError as error:
        raise LicenceError(f"not JSON (line {error.lineno} column {error.colno}: "
                           f"{error.msg}); {_SHAPE}") from None
    except ValueError as error:  # duplicate key, NaN
        raise LicenceError(f"not a licence: {error}; {_SHAPE}") from None
    if not isinstance(document, dict):
        raise LicenceError(f"not a licence: the JSON is not an object; {_SHAPE}")
    body, signature_text = document.get("licence"), document.get("signature")
    if not isinstance(body, dict):
        raise LicenceError(f'missing field "licence" (an object); {_SHAPE}')
    if not isinstance(signature_text, str):
        raise LicenceError(f'missing field "signature" (a base64 string); {_SHAPE}')
    licence = licence_from_fields(body)
    key_pem = project_public_key_pem() if public_key_pem is None else public_key_pem
    _verify(body, signature_text, key_pem)
    if licence.issued is not None and today < licence.issued:
        raise LicenceError(f"not valid yet: issued for {licence.issued} (today is {today} "
                           "UTC); check the system date, or wait")
    if licence.expires is not None and today > licence.expires:
        raise LicenceError(f"expired: it was valid until {licence.expires} (today is {today} "
                           "UTC); install a renewed licence, or remove licence: from the "
                           "config to run in DEMO mode (one mobile)")
    return licence


def licence_from_fields(body: Mapping[str, Any]) -> Licence:
    """The typed fields of a ``licence`` object; ``LicenceError`` names every
    missing field, or the first malformed one."""
    missing = [name for name in REQUIRED_FIELDS if name not in body]
    if missing:
        names = ", ".join(missing)
        raise LicenceError(f"missing field{'s' if len(missing) > 1 else ''} {names} in "
                           f'"licence"; {_SHAPE}')
    licence_id, licensee, max_mobiles = body["id"], body["licensee"], body["max_mobiles"]
    if not isinstance(licence_id, str) or not licence_id.strip():
        raise LicenceError(f"field id is {licence_id!r}; it must be a non-empty string")
    if not isinstance(licensee, str) or not licensee.strip():
        raise LicenceError(f"field licensee is {licensee!r}; it must be a non-empty string")
    if isinstance(max_mobiles, bool) or not isinstance(max_mobiles, int) or max_mobiles < 1:
        raise LicenceError(f"field max_mobiles is {max_mobiles!r}; it must be a whole "
                           "number of at least 1")
    issued = _date_field(body, "issued")
    expires = None if body["expires"] is None else _date_field(body, "expires")
    if issued is None:
        raise LicenceError("field issued is null; it must be a date, e.g. 2026-11-22")
    if expires is not None and expires < issued:
        raise LicenceError(f"field expires ({expires}) is before issued ({issued}); the "
                           "licence could never be valid")
    return Licence(id=licence_id, licensee=licensee, max_mobiles=max_mobiles,
                   issued=issued, expires=expires)


def _date_field(body: Mapping[str, Any], name: str) -> date | None:
    value = body[name]
    if value is None:
        return None
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise LicenceError(f"field {name} is {value!r}; it must be a date YYYY-MM-DD, "
                       "e.g. 2027-11-22")


def _verify(body: Mapping[str, Any], signature_text: str, public_key_pem: bytes) -> None:
    try:
        key = load_public_key(public_key_pem)
    except LicenceError as error:
        raise LicenceError(f"the public key to verify it with is {error.reason}") from None
    fingerprint = key_fingerprint(public_key_pem)
    try:
        signature = base64.b64decode(signature_text, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != SIGNATURE_BYTES:
        raise LicenceError(f"bad signature: not {SIGNATURE_BYTES} bytes of base64; the file "
                           "was damaged or edited, ask its issuer for a new copy")
    try:
        key.verify(signature, canonical_json(body))
    except InvalidSignature:
        raise LicenceError(
            "bad signature: the licence was changed after it was signed, or it was signed "
            f"with another key than the public key in use ({fingerprint}); ask its issuer "
            "for an unaltered file, or set licence_public_key to the issuer's public key"
        ) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} appears twice")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_for_config(config: Config, today: date) -> Licence:
    """The licence ``config.licence`` names (None: DEMO mode), verified with
    ``config.licence_public_key`` or, when that is not set, the project's key."""
    path: Path | None = config.licence
    if path is None:
        return DEMO_LICENCE
    key_path: Path | None = getattr(config, "licence_public_key", None)
    if key_path is None:
        return load_licence(path, public_key_pem=None, today=today)
    try:
        key_pem = Path(key_path).read_bytes()
        load_public_key(key_pem)
    except OSError as error:
        raise LicenceError(f"licence public key cannot be read ({error.strerror or error})",
                           path=key_path) from None
    except LicenceError as error:
        raise LicenceError(f"licence public key is {error.reason}", path=key_path) from None
    return load_licence(path, public_key_pem=key_pem, today=today)


# -- writing -----------------------------------------------------------------------


def issue_licence(private_key_pem: bytes, *, licence_id: str, licensee: str,
                  max_mobiles: int, issued: date, expires: date | None,
                  extra: Mapping[str, Any] | None = None) -> bytes:
    """A signed licence file (indented JSON, UTF-8). ``extra``: further signed
    fields. Raises ``LicenceError`` for a bad key or fields this module would refuse."""
    private = load_private_key(private_key_pem)
    body: dict[str, Any] = dict(extra or {})
    body.update({"id": licence_id, "licensee": licensee, "max_mobiles": max_mobiles,
                 "issued": issued.isoformat(),
                 "expires": None if expires is None else expires.isoformat()})
    licence_from_fields(body)  # never sign what load_licence would refuse
    signature = base64.b64encode(private.sign(canonical_json(body))).decode("ascii")
    document = {"licence": body, "signature": signature}
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# -- applying ----------------------------------------------------------------------


def entitlement(extensions: Iterable[ExtensionSettings], licence: Licence) -> Entitlement:
    """The mobiles of callback-enabled extensions in config order: the first
    ``licence.max_mobiles`` allowed, the others refused (each with its message)."""
    allowed: list[tuple[str, str]] = []
    refused: list[RefusedMobile] = []
    seen: set[str] = set()
    for extension in extensions:
        if not extension.callback:
            continue
        for mobile in extension.mobiles:
            if mobile in seen:
                continue
            seen.add(mobile)
            if len(allowed) < licence.max_mobiles:
                allowed.append((mobile, extension.number))
            else:
                refused.append(RefusedMobile(
                    mobile=mobile, extension=extension.number,
                    message=_refusal(licence, allowed, mobile, extension.number)))
    return Entitlement(allowed=frozenset(mobile for mobile, _ in allowed),
                       refused=tuple(refused), licence=licence)


def _refusal(licence: Licence, allowed: list[tuple[str, str]], mobile: str,
             extension: str) -> str:
    if not allowed:  # only a hand-made Licence(max_mobiles=0) gets here
        which = "none"
    elif len(allowed) == 1:
        which = f"{allowed[0][0]} of extension {allowed[0][1]}"
    else:
        which = (f"the first {len(allowed)} in config order, up to {allowed[-1][0]} of "
                 f"extension {allowed[-1][1]}")
    lost = f"{mobile} of extension {extension} will get no callback"
    if licence.demo:
        return (f"DEMO mode: callback is enabled for one mobile only ({which}); {lost}: "
                "install a licence file (licence: in the config) or remove the mobile")
    return (f"licence {licence.id} for {licence.licensee} allows callback for "
            f"{_mobiles(licence.max_mobiles)} ({which}); {lost}: install a licence for "
            "more mobiles (licence: in the config) or remove the mobile")


def describe(granted: Entitlement) -> list[str]:
    """Lines for ``boomerang check`` and the start-up log: the licence, the
    count, then one line per refused mobile (these contain "no callback")."""
    licence = granted.licence
    if licence.demo:
        lines = [f"DEMO mode: {_mobiles(licence.max_mobiles)} (no licence file; set "
                 "licence: in the config to allow more)"]
    else:
        until = ("never expires" if licence.expires is None
                 else f"expires {licence.expires.isoformat()}")
        lines = [f"licence {licence.id} for {licence.licensee}: "
                 f"{_mobiles(licence.max_mobiles)}, {until}"]
    in_use = len(granted.allowed)
    if granted.refused:
        lines.append(f"callback mobiles: {in_use} allowed, {len(granted.refused)} refused "
                     f"(beyond the {_mobiles(licence.max_mobiles)} granted)")
    else:
        lines.append(f"callback mobiles: {in_use} in use of {licence.max_mobiles}")
    lines.extend(refused.message for refused in granted.refused)
    return lines


def _mobiles(count: int) -> str:
    return f"{count} mobile{'' if count == 1 else 's'}"


__all__ = [
    "DEMO_LICENCE",
    "Entitlement",
    "Licence",
    "LicenceError",
    "RefusedMobile",
    "canonical_json",
    "describe",
    "entitlement",
    "generate_key_pair",
    "issue_licence",
    "key_fingerprint",
    "load_for_config",
    "load_licence",
    "load_private_key",
    "load_public_key",
    "parse_licence",
    "project_public_key_pem",
    "public_pem_of",
]
