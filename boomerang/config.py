"""Typed settings loaded from the YAML file of SPEC §4.

``load_config(path)`` returns a ``Config`` or raises ``ConfigError`` listing
EVERY problem found, each as ``FILE:LINE: path.to.field: what is wrong; what
would be right (example)``. Nothing starts half-configured: the server only
runs on a file that validated completely.

The sections live in four modules: this one (``sip``, ``media``,
``database``, the licence and its key, and the loader), ``config_calls``
(``trunks``, ``extensions`` and their limits, ``registrar``, ``numbers``),
``config_service`` (``records``, ``service``) and ``config_flows`` (``dids``
and ``flows``, whose nodes are validated with each flow component's own
``Params`` model and then checked as a graph by ``boomerang.flow.validate``).
Checks across sections (a DID's trunk exists, a mobile is on one extension,
numbers normalise with the right country) run when the ``Config`` is built,
so a ``Config`` made in Python is checked like a file; each returns
``(loc, text)`` pairs that the loader turns into lines.

Validation never stops at the first problem of a section it can go past:
a field error of one node still lets the other nodes, flows and sections be
checked. Cross-section checks run once every field is valid.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import ssl
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from . import __version__ as VERSION
from .config_base import Section, problem
from .config_calls import (
    CALL_EXAMPLES,
    ExtensionSettings,
    HoursRange,
    NumberingSettings,
    RegistrarSettings,
    TrunkSettings,
    cross_check,
)
from .config_flows import (
    DID_EXAMPLES,
    DidSettings,
    build_flows,
    cross_check_flows,
)
from .config_service import RecordsSettings, ServiceSettings, ed25519_public_key_file
from .config_service import existing_file as _existing_file
from .flow.model import Flow

TRANSPORTS = ("udp", "tcp", "tls")
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
# ITU-T E.180 tone plans the media layer knows (lower-case country codes).
TONE_PLANS = ("de", "es", "eu", "fr", "gb", "it", "nl", "pl", "uk", "us")  # media/tones.py
DIGEST_ALGORITHMS = ("MD5", "SHA-256", "SHA-512-256")
DATABASE_SCHEMES = ("sqlite", "sqlite+aiosqlite", "postgresql", "postgresql+asyncpg")

# What a right value looks like, by field path ([*] for any list index).
EXAMPLES: dict[str, str] = {
    "sip": "sip: {listen: [udp:0.0.0.0:5060]}",
    "sip.listen": "listen: [udp:0.0.0.0:5060, tcp:0.0.0.0:5060]",
    "sip.listen[*]": "udp:0.0.0.0:5060",
    "sip.public_address": "auto, or 203.0.113.10",
    "sip.user_agent": f"Boomerang/{VERSION}",
    "sip.realm": "pbx.example.com",
    "sip.tls": "tls: {cert: /etc/boomerang/cert.pem, key: /etc/boomerang/key.pem}",
    "sip.tls.cert": "/etc/boomerang/cert.pem",
    "sip.tls.key": "/etc/boomerang/key.pem",
    "sip.tls.ca": "/etc/ssl/certs/ca-certificates.crt",
    "sip.tls.verify_peer": "true",
    "sip.connection_idle_s": "300",
    "sip.shutdown_grace_s": "3",
    "sip.overload_lag_ms": "200",
    "sip.max_transactions": "50000",
    "sip.session_expires_s": "1800 (0 = no session timers)",
    "sip.min_se_s": "90",
    "media": "media: {rtp_ports: 20000-20999, tone_plan: pl}",
    "media.rtp_ports": "20000-20999",
    "media.tone_plan": "pl",
    "database": "sqlite:///boomerang.db",
    "licence": "null, or /etc/boomerang/licence.json",
    "licence_public_key": "null, or /etc/boomerang/licence-key.pem",
    "records": "records: {rate_table: rates.csv, currency: EUR}",
    "records.rate_table": "null, or /etc/boomerang/rates.csv",
    "records.currency": "EUR",
    "records.roaming_rates": "{default: 1.50, PL: 0.80}",
    "service": "service: {node_id: null, drain_grace_s: 30}",
    "service.node_id": "null (the host name), or node-1",
    "service.drain_grace_s": "30",
    "service.metrics_listen": "null (no metrics endpoint), or 127.0.0.1:9464",
    "service.lease_s": "120",
    "service.poll_interval_s": "1.0",
    **CALL_EXAMPLES,
    **DID_EXAMPLES,
}


class ConfigError(Exception):
    """The file cannot be used; ``problems`` lists every reason, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_problem = problem


# -- value types parsed from strings ------------------------------------------


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """``transport:host:port`` to bind; port 0 binds an ephemeral port."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def parse_listen(value: object) -> ListenAddress:
    if not isinstance(value, str):
        raise _problem(f"{value!r} is not a listen address; write transport:address:port, "
                       "e.g. udp:0.0.0.0:5060")
    transport, colon, rest = value.partition(":")
    transport = transport.lower()
    if not colon or transport not in TRANSPORTS:
        raise _problem(f"{value!r} does not start with a transport; use udp, tcp or tls, "
                       "e.g. udp:0.0.0.0:5060")
    example = f"{transport}:0.0.0.0:{DEFAULT_PORTS[transport]}"
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or not tail.startswith(":"):
            raise _problem(f"{value!r} has no port after the IPv6 address; "
                           f"e.g. {transport}:[::]:{DEFAULT_PORTS[transport]}")
        port_text = tail[1:]
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon or ":" in host:
            raise _problem(f"{value!r} needs an address and a port; e.g. {example}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise _problem(f"{value!r} has address {host!r}, which is not an IP address to bind; "
                       f"use 0.0.0.0, :: or an address of this host, e.g. {example}") from None
    if not port_text.isdigit() or int(port_text) > 65535:
        raise _problem(f"{value!r} has port {port_text}; a port is 1-65535 (0 picks a free "
                       f"one), e.g. {example}")
    return ListenAddress(transport=transport, host=host, port=int(port_text))


@dataclass(frozen=True, slots=True)
class PortRange:
    first: int
    last: int

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


def parse_port_range(value: object) -> PortRange:
    text = str(value) if isinstance(value, (str, int)) else ""
    first, dash, last = text.partition("-")
    if not dash or not first.strip().isdigit() or not last.strip().isdigit():
        raise _problem(f"{value!r} is not a port range; write FIRST-LAST, e.g. 20000-20999")
    low, high = int(first), int(last)
    if not (1024 <= low < high <= 65535):
        raise _problem(f"{value!r} is not a range of unprivileged ports from low to high; "
                       "both ends within 1024-65535 and the first below the last, "
                       "e.g. 20000-20999")
    if high - low + 1 < 4:
        raise _problem(f"{value!r} holds {high - low + 1} ports; each call needs 2, give at "
                       "least 4, e.g. 20000-20999")
    return PortRange(first=low, last=high)


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    url: str
    scheme: str

    def __str__(self) -> str:
        return self.url


def parse_database(value: object) -> DatabaseUrl:
    if not isinstance(value, str):
        raise _problem(f"{value!r} is not a database URL; e.g. sqlite:///boomerang.db or "
                       "postgresql://boomerang:secret@db.example.com/boomerang")
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in DATABASE_SCHEMES:
        hint = ""
        if scheme.lower() == "postgres":
            hint = " (write postgresql://, not postgres://)"
        raise _problem(f"{value!r} is not a supported database URL{hint}; use "
                       "sqlite:///PATH or postgresql://USER:PASSWORD@HOST/NAME, "
                       "e.g. sqlite:///boomerang.db")
    if scheme.lower().startswith("sqlite"):
        if not rest.startswith("/") or rest == "/":
            raise _problem(f"{value!r} has no file path (sqlite URLs have three slashes); "
                           "e.g. sqlite:///boomerang.db or sqlite:////var/lib/boomerang.db")
    else:
        host = rest.rpartition("@")[2].partition("/")[0]
        if not host or "/" not in rest.rpartition("@")[2]:
            raise _problem(f"{value!r} needs a host and a database name; "
                           "e.g. postgresql://boomerang:secret@db.example.com/boomerang")
    return DatabaseUrl(url=value, scheme=scheme.lower())


def parse_public_address(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _problem(f"{value!r} is not an address; write auto, an IP address or a host "
                       "name, e.g. 203.0.113.10")
    if value == "auto":
        return value
    host = value
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    try:
        ipaddress.ip_address(host)
        return value
    except ValueError:
        pass
    labels = host.split(".")
    if all(label and all(c.isalnum() or c == "-" for c in label) for label in labels):
        return value
    raise _problem(f"{value!r} is neither auto, an IP address nor a host name; "
                   "e.g. auto or 203.0.113.10")


# -- the file shape -----------------------------------------------------------


_Section = Section


class TlsSettings(_Section):
    """Certificate and key of the TLS listeners; ``ca`` verifies peers we call."""

    cert: Path
    key: Path
    ca: Path | None = None
    verify_peer: bool = False

    @field_validator("cert")
    @classmethod
    def _cert_exists(cls, value: Path, info: ValidationInfo) -> Path:
        return _existing_file(value, info, "certificate", EXAMPLES["sip.tls.cert"])

    @field_validator("key")
    @classmethod
    def _key_exists(cls, value: Path, info: ValidationInfo) -> Path:
        return _existing_file(value, info, "key", EXAMPLES["sip.tls.key"])

    @field_validator("ca")
    @classmethod
    def _ca_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        return _existing_file(value, info, "CA", EXAMPLES["sip.tls.ca"])

    @model_validator(mode="after")
    def _loads(self) -> TlsSettings:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as error:
            raise _problem(f"the certificate {str(self.cert)!r} and key {str(self.key)!r} "
                           f"do not load together ({error}); give a PEM certificate and "
                           "its matching private key") from None
        return self


class SipSettings(_Section):
    listen: Annotated[list[Annotated[ListenAddress, PlainValidator(parse_listen)]],
                      Field(min_length=1)]
    public_address: Annotated[str, PlainValidator(parse_public_address)] = "auto"
    user_agent: str = f"Boomerang/{VERSION}"
    realm: str = "boomerang"
    tls: TlsSettings | None = None
    connection_idle_s: Annotated[float, Field(gt=0)] = 300.0
    shutdown_grace_s: Annotated[float, Field(ge=0, le=60)] = 3.0
    # Overload control: new INVITEs get 503 + Retry-After while the event
    # loop runs this late (0: off), or while this many transactions live.
    overload_lag_ms: Annotated[float, Field(ge=0)] = 200.0
    max_transactions: Annotated[int, Field(ge=0)] = 50_000
    # Challenge order matters for interoperability: many phones and SIPp 3.6
    # answer only the first challenge and know only MD5, so MD5 leads and
    # clients that prefer SHA-256 (RFC 8760) still find it offered.
    digest_algorithms: Annotated[list[str], Field(min_length=1)] = ["MD5", "SHA-256"]
    # Session timers (RFC 4028) on every call leg: the interval we ask for
    # (0: no session timers) and the least we accept (422 below it).
    session_expires_s: Annotated[int, Field(ge=0)] = 1800
    min_se_s: Annotated[int, Field(ge=90)] = 90

    @model_validator(mode="after")
    def _session_interval(self) -> SipSettings:
        if self.session_expires_s and self.session_expires_s < self.min_se_s:
            raise _problem(f"session_expires_s {self.session_expires_s} is below min_se_s "
                           f"{self.min_se_s}; ask for at least min_se_s (or 0: no session "
                           "timers), e.g. session_expires_s: 1800, min_se_s: 90")
        return self

    @field_validator("digest_algorithms")
    @classmethod
    def _known_algorithms(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for name in value:
            canonical = next((a for a in DIGEST_ALGORITHMS if a.lower() == name.lower()), None)
            if canonical is None:
                raise _problem(f"{name!r} is not a digest algorithm we offer; use "
                               f"{', '.join(DIGEST_ALGORITHMS)}, e.g. [MD5, SHA-256]")
            if canonical in out:
                raise _problem(f"{canonical} is listed twice; list each algorithm once")
            out.append(canonical)
        return out

    @field_validator("listen")
    @classmethod
    def _no_duplicates(cls, value: list[ListenAddress]) -> list[ListenAddress]:
        seen: set[ListenAddress] = set()
        for item in value:
            if item in seen and item.port != 0:
                raise _problem(f"{item} is listed twice; list each address once")
            seen.add(item)
        return value

    @field_validator("realm", "user_agent")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value or any(c in value for c in '"\r\n\\') or not value.isprintable():
            raise _problem(f"{value!r} must be non-empty printable text without quotes or "
                           "backslashes; e.g. pbx.example.com")
        return value


class MediaSettings(_Section):
    rtp_ports: Annotated[PortRange, PlainValidator(parse_port_range)] = PortRange(20000, 20999)
    tone_plan: str = "pl"

    @field_validator("tone_plan")
    @classmethod
    def _known_plan(cls, value: str) -> str:
        if value.lower() not in TONE_PLANS:
            raise _problem(f"{value!r} is not a known tone plan; use one of "
                           f"{', '.join(TONE_PLANS)}, e.g. pl")
        return value.lower()


def _flows(value: Any, info: ValidationInfo) -> dict[str, Flow]:
    base = (info.context or {}).get("base_dir")
    flows, problems = build_flows(value, base_dir=None if base is None else Path(base),
                                  tone_plans=TONE_PLANS, describe=_describe_node)
    if problems:
        raise _located(problems)
    return flows


def _located(problems: list[tuple[tuple[int | str, ...], str]]) -> PydanticCustomError:
    """Problems with their own locations; ``load_config_text`` lines them up."""
    return PydanticCustomError(
        "boomerang_cross_check", "{text}",
        {"text": "\n".join(f"{_loc_path(loc)}: {text}" for loc, text in problems),
         "problems": problems})


class Config(_Section):
    """The whole file. Paths in it are resolved against the file's folder."""

    sip: SipSettings
    media: MediaSettings = MediaSettings()
    database: Annotated[DatabaseUrl, PlainValidator(parse_database)] = DatabaseUrl(
        "sqlite:///boomerang.db", "sqlite")
    licence: Path | None = None
    licence_public_key: Path | None = None
    registrar: RegistrarSettings = RegistrarSettings()
    numbers: NumberingSettings = NumberingSettings()
    trunks: list[TrunkSettings] = []
    extensions: list[ExtensionSettings] = []
    dids: list[DidSettings] = []
    flows: Annotated[dict[str, Flow], PlainValidator(_flows)] = {}
    records: RecordsSettings = RecordsSettings()
    service: ServiceSettings = ServiceSettings()

    @field_validator("trunks", "extensions", "dids", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("records", "service", mode="before")
    @classmethod
    def _null_is_defaults(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="wrap")
    @classmethod
    def _cross_checks(cls, data: Any, handler: Any) -> Config:
        config: Config = handler(data)
        problems, update = cross_check(config)
        flow_problems, flow_update = cross_check_flows(config)
        if problems or flow_problems:
            raise _located(problems + flow_problems)
        return config.model_copy(update={**update, **flow_update})

    def trunk(self, name: str) -> TrunkSettings | None:
        return next((t for t in self.trunks if t.name == name), None)

    def extension(self, number: str) -> ExtensionSettings | None:
        return next((e for e in self.extensions if e.number == number), None)

    def flow(self, name: str) -> Flow | None:
        return self.flows.get(name)

    def did(self, number: str) -> DidSettings | None:
        """The DID ``number`` reaches: E.164, or a form of the DID's trunk country."""
        found = next((d for d in self.dids if d.number == number), None)
        if found is not None:
            return found
        from .call import numbers

        countries = {t.name: t.country for t in self.trunks}
        by_country: dict[str, list[DidSettings]] = {}
        for did in self.dids:
            by_country.setdefault(countries.get(did.trunk, self.numbers.country), []).append(did)
        for country, dids in by_country.items():  # one parse per country, not per DID
            try:
                e164 = numbers.normalise(number, country)
            except numbers.NumberError:
                continue
            found = next((d for d in dids if d.number == e164), None)
            if found is not None:
                return found
        return None

    @field_validator("licence")
    @classmethod
    def _licence_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        return _existing_file(value, info, "licence", "/etc/boomerang/licence.json")

    @field_validator("licence_public_key")
    @classmethod
    def _public_key(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else ed25519_public_key_file(value, info)


# -- loading with line numbers ----------------------------------------------------


def _loc_path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _generic(loc: Iterable[int | str]) -> str:
    return "".join("[*]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _line_of(root: object, loc: tuple[int | str, ...]) -> int:
    """1-based line of the deepest node of ``loc`` present in the YAML."""
    node = root
    line = 1
    for part in loc:
        if (isinstance(node, CommentedMap) and isinstance(part, str) and part not in node
                and part.isdigit() and int(part) in node):
            part = int(part)  # a menu key written 1, not "1"
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class whose fields are the keys at ``loc``."""
    current: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            models = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = models[0] if len(models) == 1 else annotation
            if len(models) != 1:
                return annotation
        elif origin is list:
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def _describe_node(error: Mapping[str, Any], params: type[BaseModel],
                   example: str | None) -> str:
    """``_describe`` for a field of a flow node (``params``: its component's model)."""
    return _describe(error, known=sorted(params.model_fields), example=example or "")


def _describe(error: Mapping[str, Any], *, known: list[str] | None = None,
              example: str | None = None) -> str:
    """What is wrong with one pydantic error, and what would be right.

    ``known`` (the keys allowed where the error is) and ``example`` default to
    what ``Config`` and ``EXAMPLES`` say about the error's location.
    """
    loc: tuple[int | str, ...] = tuple(error["loc"])
    kind = error["type"]
    if example is None:
        example = EXAMPLES.get(_generic(loc))
    if kind == "boomerang_config":
        return str(error["ctx"]["text"])
    if kind == "extra_forbidden":
        if known is None:
            model = _model_at(loc[:-1])
            known = sorted(model.model_fields) if model else []
        key = str(loc[-1])
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        guess = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key {key!r}; {guess}known keys here: {', '.join(known)}"
    if kind == "missing":
        return "is required but missing; add it" + (f", e.g. {example}" if example else "")
    suffix = f", e.g. {example}" if example else ""
    given = error.get("input")
    shown = f"{given!r}" if not isinstance(given, (dict, list)) else "this value"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{shown} is not a mapping of keys; write key: value pairs{suffix}"
    if kind == "list_type":
        return f"{shown} is not a list; write [a, b]{suffix}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{shown} is not true or false; write true or false"
    if kind in ("string_type",):
        return f"{shown} is not text{suffix}"
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing"):
        return f"{shown} is not a number{suffix}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{shown} is not one of {expected}{suffix}"
    if kind == "too_short":
        return f"is empty; give at least one entry{suffix}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{shown} is out of range ({error['msg'].lower()}){suffix}"
    if kind in ("path_type",):
        return f"{shown} is not a file path{suffix}"
    return f"{error['msg']}{suffix}"


def _raw_cross_checks(data: Any, name: str) -> list[tuple[int, str]]:
    """Problems visible on the raw data even when other fields are wrong."""
    found: list[tuple[int, str]] = []
    sip = data.get("sip") if isinstance(data, Mapping) else None
    if not isinstance(sip, Mapping):
        return found
    listen = sip.get("listen")
    if isinstance(listen, list) and sip.get("tls") is None:
        for index, item in enumerate(listen):
            if isinstance(item, str) and item.lower().startswith("tls:"):
                found.append((_line_of(data, ("sip", "listen", index)),
                              f"sip.listen[{index}]: {item!r} needs a certificate; add "
                              f"sip.tls, e.g. {EXAMPLES['sip.tls']}"))
    return found


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def load_config_text(text: str, name: str, base_dir: Path | None = None) -> Config:
    """Validate YAML text; ``name`` is the file name used in the messages."""
    try:
        data = _yaml().load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        duplicate = re.match(r'found duplicate key "(.*?)" with value', error.problem or "")
        if duplicate:  # do not echo the values: they may hold passwords
            raise ConfigError([f"{name}:{line}: {duplicate.group(1)}: this key appears twice "
                               "in the same mapping; keep one (merge the two)"]) from None
        what = " ".join(p for p in (error.context, error.problem) if p)
        raise ConfigError([f"{name}:{line}: YAML syntax error: {what}; fix the syntax "
                           "(indentation, colons, closing brackets and quotes)"]) from None
    except YAMLError as error:
        raise ConfigError([f"{name}:1: YAML error: {error}"]) from None
    if data is None:
        raise ConfigError([f"{name}:1: the file is empty; start from the file "
                           "`boomerang init` writes"])
    if not isinstance(data, CommentedMap):
        raise ConfigError([f"{name}:1: the file is not a mapping of sections; it should look "
                           "like sip: {listen: [udp:0.0.0.0:5060]}"])
    problems: list[tuple[int, str]] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as error:
        for item in error.errors(include_url=False):
            loc = tuple(item["loc"])
            if item["type"] == "boomerang_cross_check":
                for where, text in item["ctx"]["problems"]:
                    problems.append((_line_of(data, where), f"{_loc_path(where)}: {text}"))
                continue
            path = _loc_path(loc) or "(top)"
            problems.append((_line_of(data, loc), f"{path}: {_describe(item)}"))
    problems.extend(_raw_cross_checks(data, name))
    if problems:
        unique = sorted(set(problems))
        raise ConfigError([f"{name}:{line}: {text}" for line, text in unique])
    assert config is not None
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raises ConfigError with every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: no such file; create one with `boomerang init -o {file}`"]
                          ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{file}: cannot be read ({error})"]) from None
    return load_config_text(text, str(file), base_dir=file.resolve().parent)


STARTER_CONFIG = f"""\
# Boomerang {VERSION} configuration. Check it with: boomerang check -c FILE
# Every key is described in docs/CONFIG.md. The trunk, extension, DID and
# flow below are the example of the documentation: a callback for Anna's
# mobile through a carrier on this machine. Replace them with your own.

sip:
  # Where to listen, as transport:address:port (udp, tcp or tls).
  # Port 0 picks any free port. Example with TLS:
  #   listen: [udp:0.0.0.0:5060, tcp:0.0.0.0:5060, tls:0.0.0.0:5061]
  #   tls: {{cert: /etc/boomerang/cert.pem, key: /etc/boomerang/key.pem}}
  listen: [udp:0.0.0.0:5060, tcp:0.0.0.0:5060]
  # The address peers should use to reach us: auto, or an IP or host name.
  public_address: auto
  # Sent in the Server and User-Agent headers.
  user_agent: Boomerang/{VERSION}
  # Digest authentication realm (usually your SIP domain).
  realm: boomerang
  # Digest algorithms offered in 401 challenges, first one first. Many phones
  # answer only the first challenge and know only MD5: keep MD5 first unless
  # every client you have does SHA-256.
  digest_algorithms: [MD5, SHA-256]
  # Close TCP/TLS connections idle this long (seconds).
  connection_idle_s: 300
  # On SIGTERM: answer new requests 503 and finish transactions for up to this long.
  shutdown_grace_s: 3
  # Overload control: while the server runs this late, new calls get 503 with
  # Retry-After instead of collapsing every call (0 turns it off) ...
  overload_lag_ms: 200
  # ... and likewise while this many SIP transactions are alive (0: no cap).
  max_transactions: 50000

media:
  rtp_ports: 20000-20999      # RTP/RTCP port range (FIRST-LAST)
  tone_plan: pl               # dial tone country: {", ".join(TONE_PLANS)}

database: sqlite:///boomerang.db   # or postgresql://USER:PASSWORD@HOST/NAME
licence: null                      # path of a licence file; null = DEMO mode

registrar:                     # phones registering to extensions
  min_expires_s: 60
  max_expires_s: 3600
  default_expires_s: 3600
  keepalive_s: 30              # OPTIONS ping to registered phones; 0 = off

# How numbers are read (national forms) and which are never dialled. Example:
# numbers:
#   country: PL                          # ISO 3166 region
#   company_number: "+48221234567"       # shown on external calls
#   blocked_prefixes: ["+4870", "+48300"]
#   premium_blocked: true                # premium-rate only with allow_premium
#   timezone: Europe/Warsaw              # callback_hours are read in this zone

# SIP trunks to your carrier.
trunks:
  - name: carrier
    host: 127.0.0.1                     # or a DNS name (SRV/A lookups)
    port: 5070                          # or null for a DNS SRV lookup
    transport: udp                      # udp | tcp | tls
    username: null                      # digest auth for outbound calls / REGISTER
    password: null
    register: false
    sources: [127.0.0.1/32]             # who may send us calls on this trunk
    country: PL                         # number normalisation
    dial_format: e164                   # e164 | national | international
    caller_id_header: pai               # from | pai | rpid
    max_call_seconds: 0                 # 0 = unlimited

# Extensions: internal users; phones register with number and password
# (change it). mobiles may ring the DID for a callback. Limits, e.g.:
# max_minutes_per_day: 120, callback_hours: "07:00-22:00".
extensions:
  - {{number: "101", name: Anna, password: s3cret, mobiles: ["+48600100200"],
     callback: true, transit: true}}

# Public numbers and the flow a call to each runs.
dids:
  - {{number: "+48221234567", trunk: carrier, flow: roaming}}

# Call flows: lists of nodes; the first is the entry. Components: callback,
# disa, dial, play, menu, hangup (docs/CONFIG.md lists their parameters).
# next: NODE goes on after any outcome; next: {{busy: NODE, _: NODE}} branches.
flows:
  roaming:
    - {{id: cb, type: callback, method: caller, caller_id: "+48221234567", delay: 5,
       timeout: 5, next: tone}}
    - {{id: tone, type: disa}}

# Call records: cost and saving estimates. Example:
# records:
#   rate_table: rates.csv                # per destination prefix, per minute
#   currency: EUR
#   roaming_rates: {{default: 1.50, PL: 0.80}}

# The callback service of this node. Example (the defaults):
# service:
#   node_id: null                        # null = the host name
#   drain_grace_s: 30                    # on SIGTERM, calls may finish this long
#   metrics_listen: null                 # e.g. 127.0.0.1:9464 for Prometheus
#   lease_s: 120                         # a claimed callback job is this node's this long
#   poll_interval_s: 1.0                 # how often due callbacks are looked for
"""


__all__ = [
    "STARTER_CONFIG",
    "Config",
    "ConfigError",
    "DatabaseUrl",
    "DidSettings",
    "ExtensionSettings",
    "Flow",
    "HoursRange",
    "ListenAddress",
    "MediaSettings",
    "NumberingSettings",
    "PortRange",
    "RecordsSettings",
    "RegistrarSettings",
    "ServiceSettings",
    "SipSettings",
    "TlsSettings",
    "TrunkSettings",
    "load_config",
    "load_config_text",
]
