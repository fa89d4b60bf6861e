"""Settings of the service around the calls: ``records`` and ``service``.

``records`` says how call records estimate what a call cost and what the
user saved (SPEC §6): a rate table file and per-country roaming rates.
``service`` is this node of the callback service: its id among the nodes
sharing one database (the job lease holder), how long SIGTERM lets calls
finish, where Prometheus scrapes metrics, how long a claimed job stays this
node's and how often due jobs are looked for.

``existing_file`` is the check of every path in the file (the licence and
its public key, TLS files, the rate table): relative paths are read from the
config file's folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, PlainValidator, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .call import numbers
from .config_base import Section, problem
from .config_calls import parse_host


def existing_file(value: Path, info: ValidationInfo, what: str, example: str) -> Path:
    """``value`` resolved against the config file's folder (``base_dir`` of the
    validation context); a problem when no file is there."""
    base = (info.context or {}).get("base_dir")
    path = value if value.is_absolute() or base is None else Path(base) / value
    if not path.is_file():
        raise problem(f"{what} file {str(value)!r} does not exist (looked for {str(path)!r}); "
                      f"give the path of a readable file, e.g. {example}")
    return path


def ed25519_public_key_file(value: Path, info: ValidationInfo) -> Path:
    """An existing PEM file holding an Ed25519 public key (to verify licences)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    path = existing_file(value, info, "public key", "/etc/boomerang/licence-key.pem")
    try:
        key = load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError, OSError) as error:
        raise problem(f"{str(value)!r} is not a PEM public key ({error}); give the Ed25519 "
                      "public key the licences are signed for, as written by openssl pkey "
                      "-pubout") from None
    if not isinstance(key, Ed25519PublicKey):
        raise problem(f"{str(value)!r} holds another kind of public key, not Ed25519; give "
                      "the Ed25519 public key the licences are signed for")
    return path


def parse_host_port(value: object) -> str:
    """``host:port`` of a TCP listener, checked and written back normalised
    (``[::1]:9464`` for IPv6): split it with ``rpartition(":")``."""
    example = "e.g. 127.0.0.1:9464 or [::1]:9464"
    text = value if isinstance(value, str) else ""
    if text.startswith("["):
        host, bracket, tail = text[1:].partition("]")
        port_text = tail[1:] if bracket and tail.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":")
    bare_ipv6 = ":" in host and not text.startswith("[")
    if not host or bare_ipv6 or not port_text.isdigit() or int(port_text) > 65535:
        raise problem(f"{value!r} is not an address and port; write HOST:PORT (an IPv6 "
                      f"address in brackets; port 0 picks a free one), {example}")
    try:
        host = parse_host(host)
    except PydanticCustomError:
        raise problem(f"{value!r} has host {host!r}, which is neither an IP address nor a "
                      f"host name; {example}") from None
    return f"[{host}]:{int(port_text)}" if ":" in host else f"{host}:{int(port_text)}"


class RecordsSettings(Section):
    """Call records: the rate table and the roaming rates that estimate cost
    and saving (SPEC §6)."""

    rate_table: Path | None = None
    currency: str = "EUR"
    # Per minute, what a user abroad would have paid calling the destination
    # directly from the mobile, by ISO country of the destination (the
    # company's country for an extension), or "default" for any other.
    roaming_rates: dict[str, float] = {}

    @field_validator("rate_table")
    @classmethod
    def _rate_table_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        return existing_file(value, info, "rate table", "/etc/boomerang/rates.csv")

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", value):
            raise problem(f"{value!r} is not a currency code; give the three letters of "
                          "ISO 4217, e.g. EUR, PLN or USD")
        return value.upper()

    @field_validator("roaming_rates")
    @classmethod
    def _countries(cls, value: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, rate in value.items():
            name = "default" if key.lower() == "default" else key.upper()
            if name != "default" and not numbers.is_region(name):
                raise problem(f"{key!r} is not a country; use ISO 3166 codes or default, "
                              "e.g. {default: 1.50, PL: 0.80}")
            if name in out:
                raise problem(f"{name} is listed twice; list each country once")
            if not rate >= 0:
                raise problem(f"{key}: {rate} is not a price; give the price of a minute, 0 "
                              "or more, e.g. {default: 1.50, PL: 0.80}")
            out[name] = rate
        return out


class ServiceSettings(Section):
    """The callback service on this node: its identity among the nodes that
    share a database, how it drains, how it polls for due jobs."""

    node_id: str | None = None            # None: the host name
    drain_grace_s: Annotated[float, Field(ge=0)] = 30.0
    metrics_listen: Annotated[str, PlainValidator(parse_host_port)] | None = None
    lease_s: Annotated[float, Field(ge=10)] = 120.0
    poll_interval_s: Annotated[float, Field(ge=0.05, le=60)] = 1.0

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
            raise problem(f"{value!r} is not a node id; use 1-64 letters, digits, _, . and -, "
                          "or null for the host name, e.g. node-1")
        return value


__all__ = [
    "RecordsSettings",
    "ServiceSettings",
    "ed25519_public_key_file",
    "existing_file",
    "parse_host_port",
]
