"""Settings of the calls: trunks, extensions (and their limits), registrar,
numbering.

Part of the file of SPEC §4; ``boomerang.config`` re-exports these models and
runs ``cross_check`` when a ``Config`` is built, so nothing starts with two
trunks of one name, a mobile on two extensions or a number that is not one.
Mobiles, caller IDs and the company number come out in E.164, normalised
with ``numbers.country``.

An extension's ``callback_hours`` is a ``HoursRange`` read in the local time
of ``numbers.timezone`` (``NumberingSettings.zone``): the service converts
its UTC clock with it and asks ``hours.contains(local.time())``. Ranges
may run overnight (``22:00-06:00``); ``null`` allows any time.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import warnings
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, PlainValidator, field_validator, model_validator

from .call import numbers
from .config_base import Section as _Section
from .config_base import problem as _problem

if TYPE_CHECKING:
    from .config import Config

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# What a right value looks like, by field path ([*] for any list index).
CALL_EXAMPLES: dict[str, str] = {
    "trunks": "trunks: [{name: carrier, host: 192.0.2.10}]",
    "extensions": 'extensions: [{number: "101", password: s3cret}]',
    "trunks[*]": "{name: carrier, host: sip.example.com, sources: [192.0.2.0/24]}",
    "trunks[*].name": "carrier",
    "trunks[*].host": "sip.example.com or 192.0.2.10",
    "trunks[*].port": "5060 (or null for a DNS SRV lookup)",
    "trunks[*].transport": "udp",
    "trunks[*].username": "boomerang",
    "trunks[*].password": "s3cret",
    "trunks[*].register": "false",
    "trunks[*].register_expires_s": "3600",
    "trunks[*].sources": "[192.0.2.0/24, 198.51.100.7]",
    "trunks[*].sources[*]": "192.0.2.0/24",
    "trunks[*].country": "PL",
    "trunks[*].dial_format": "e164",
    "trunks[*].outside_prefix": "\"0\"",
    "trunks[*].caller_id_header": "pai",
    "trunks[*].max_call_seconds": "180 (0 = unlimited)",
    "trunks[*].max_channels": "30 (0 = unlimited)",
    "trunks[*].did_from": "request_uri",
    "trunks[*].keepalive_s": "30 (0 = off)",
    "extensions[*]": '{number: "101", name: Anna, password: s3cret}',
    "extensions[*].number": '"101"',
    "extensions[*].name": "Anna",
    "extensions[*].password": "s3cret (or null: cannot register)",
    "extensions[*].mobiles": '["+48600100200"]',
    "extensions[*].mobiles[*]": '"+48600100200"',
    "extensions[*].callback": "true",
    "extensions[*].transit": "false",
    "extensions[*].caller_id": '"+48221234567"',
    "extensions[*].max_concurrent_calls": "2 (0 = unlimited)",
    "extensions[*].allow_premium": "false",
    "extensions[*].max_contacts": "5",
    "extensions[*].max_minutes_per_day": "120 (0 = unlimited)",
    "extensions[*].callback_hours": '"07:00-22:00" (or null: any time)',
    "registrar": "registrar: {min_expires_s: 60, max_expires_s: 3600}",
    "registrar.min_expires_s": "60",
    "registrar.max_expires_s": "3600",
    "registrar.default_expires_s": "3600",
    "registrar.keepalive_s": "30 (0 = off)",
    "registrar.keepalive_failures": "3",
    "numbers": "numbers: {country: PL, company_number: \"+48221234567\"}",
    "numbers.country": "PL",
    "numbers.company_number": '"+48221234567"',
    "numbers.blocked_prefixes": '["+4870", "+48300"]',
    "numbers.blocked_prefixes[*]": '"+4870"',
    "numbers.premium_blocked": "true",
    "numbers.timezone": "Europe/Warsaw",
}


_NAME = re.compile(r"[a-z0-9_-]+")


def _is_host_name(value: str) -> bool:
    labels = value.rstrip(".").split(".")
    return bool(value) and len(value) <= 253 and all(
        label and len(label) <= 63 and not label.startswith("-") and not label.endswith("-")
        and all(c.isalnum() or c == "-" for c in label) for label in labels)


def parse_host(value: object) -> str:
    """An IP address or a DNS host name (looked up by RFC 3263 when used)."""
    if isinstance(value, str):
        text = value[1:-1] if value.startswith("[") and value.endswith("]") else value
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            pass
        if _is_host_name(text) and not text.replace(".", "").isdigit():
            return text.lower()
    raise _problem(f"{value!r} is neither an IP address nor a DNS host name; "
                   "e.g. sip.example.com or 192.0.2.10")


def parse_network(value: object) -> IpNetwork:
    """``192.0.2.0/24``, ``2001:db8::/32`` or one address (``192.0.2.7`` is a /32)."""
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value.strip(), strict=True)
        except ValueError:
            try:
                loose = ipaddress.ip_network(value.strip(), strict=False)
            except ValueError:
                pass
            else:
                raise _problem(f"{value!r} has host bits set after the /{loose.prefixlen}; "
                               f"write the network address, e.g. {loose}") from None
    raise _problem(f"{value!r} is not an IP address or network (CIDR); "
                   "e.g. 192.0.2.0/24 or 198.51.100.7")


def parse_digits(value: object) -> str:
    """Digits written as text (a YAML number would lose leading zeros)."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise _problem(f"{value} is a YAML number; write it in quotes, e.g. \"{value}\"")
    if isinstance(value, str) and value.isdigit() and value.isascii():
        return value
    raise _problem(f"{value!r} is not a string of digits; e.g. \"101\"")


def parse_phone_number(value: object) -> str:
    """A telephone number as text: E.164 (``+48600100200``) or a national form.

    National forms are normalised to E.164 by ``Config`` with
    ``numbers.country``; an E.164 form is checked here already.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        raise _problem(f"{value} is a YAML number (a leading + or 0 is lost); write the "
                       f"number in quotes in E.164, e.g. \"+{value}\"")
    if not isinstance(value, str) or not value.strip():
        raise _problem(f"{value!r} is not a telephone number; write it in quotes in E.164, "
                       "e.g. \"+48600100200\"")
    text = value.strip()
    if text.startswith("+"):
        try:
            return numbers.normalise(text, "PL")
        except numbers.NumberError as error:
            raise _problem(str(error)) from None
    return text


def parse_region(value: object) -> str:
    if isinstance(value, str) and numbers.is_region(value):
        return value.upper()
    raise _problem(f"{value!r} is not a country code the numbering plan knows; give an "
                   "ISO 3166 region, e.g. PL, DE, GB or US")


def parse_prefix(value: object) -> str:
    if isinstance(value, str) and value.startswith("+") and value[1:].isdigit():
        return value
    raise _problem(f"{value!r} is not an E.164 prefix; write + and digits in quotes, "
                   "e.g. \"+4870\"")


def _password(value: str | None) -> str | None:
    if value is not None and value == "":
        raise _problem("an empty password is refused; give a password, or null for none")
    if value is not None and any(c in value for c in "\r\n"):
        raise _problem("a password cannot hold line breaks")
    return value


_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")


@dataclass(frozen=True, slots=True, kw_only=True)
class HoursRange:
    """Hours of the day, ``start`` included and ``end`` excluded, in local time.

    An ``end`` before the ``start`` runs overnight (``22:00-06:00``);
    ``00:00-24:00`` is the whole day (``end`` midnight is kept as 00:00).
    """

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        """True when the local time of day ``moment`` is inside the range."""
        moment = moment.replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end  # overnight, or the whole day

    def __str__(self) -> str:
        end = "24:00" if self.end == time(0) else f"{self.end:%H:%M}"
        return f"{self.start:%H:%M}-{end}"


def parse_hours(value: object) -> HoursRange:
    """``"07:00-22:00"`` (24-hour clock, minutes required) into a ``HoursRange``."""
    example = 'e.g. "07:00-22:00", "22:00-06:00" overnight, or null for any time'
    text = value.replace(" ", "") if isinstance(value, str) else ""
    first, dash, last = text.partition("-")
    start, end = _CLOCK.fullmatch(first), _CLOCK.fullmatch(last)
    if not dash or start is None or end is None or first == "24:00":
        raise _problem(f"{value!r} is not a range of hours; write \"HH:MM-HH:MM\" on a "
                       f"24-hour clock, {example}")
    if first == last:
        raise _problem(f"{value!r} starts and ends at the same time; for any time write "
                       f"null, otherwise give two different times, {example}")
    begin = time(int(start.group(1)), int(start.group(2)))
    finish = time(0) if last == "24:00" else time(int(end.group(1)), int(end.group(2)))
    return HoursRange(start=begin, end=finish)


def parse_timezone(value: object) -> str:
    if isinstance(value, str) and value:
        try:
            zoneinfo.ZoneInfo(value)
            return value
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    close = difflib.get_close_matches(str(value), sorted(zoneinfo.available_timezones()),
                                      n=1, cutoff=0.6)
    guess = f"did you mean {close[0]!r}? " if close else ""
    raise _problem(f"{value!r} is not a time zone of the IANA database; {guess}write "
                   "Area/City or UTC, e.g. Europe/Warsaw")


Digits = Annotated[str, PlainValidator(parse_digits)]
PhoneNumberText = Annotated[str, PlainValidator(parse_phone_number)]
Region = Annotated[str, PlainValidator(parse_region)]
Count = Annotated[int, Field(ge=0)]


# ``register`` (a field name fixed by the contract) is also ABCMeta.register, a
# method of the models' metaclass; instances see the field, so pydantic's
# shadowing warning is silenced for this one name.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class TrunkSettings(_Section):
        """A SIP connection to a carrier or another PBX (SPEC §1, §4)."""

        name: str
        host: Annotated[str, PlainValidator(parse_host)]
        port: Annotated[int, Field(ge=1, le=65535)] | None = None
        transport: Literal["udp", "tcp", "tls"] = "udp"
        username: str | None = None
        password: str | None = None
        register: bool = False
        register_expires_s: Annotated[int, Field(ge=60, le=86400)] = 3600
        # Defaults to the host when it is an IP address; required for a DNS
        # host (checked by cross_check: an empty list admits no one).
        sources: list[Annotated[IpNetwork, PlainValidator(parse_network)]] = []
        country: Region = "PL"
        dial_format: Literal["e164", "national", "international"] = "e164"
        outside_prefix: Digits | None = None
        caller_id_header: Literal["from", "pai", "rpid"] = "pai"
        max_call_seconds: Count = 0
        max_channels: Count = 0
        did_from: Literal["request_uri", "to"] = "request_uri"
        keepalive_s: Annotated[float, Field(ge=0)] = 30.0

        @model_validator(mode="before")
        @classmethod
        def _default_sources(cls, data: Any) -> Any:
            """``sources`` defaults to the host itself when the host is an IP address."""
            if isinstance(data, Mapping) and data.get("sources") is None:
                host = data.get("host")
                try:
                    address = ipaddress.ip_address(str(host).strip("[]"))
                except ValueError:
                    return data
                return {**data, "sources": [str(ipaddress.ip_network(address))]}
            return data

        @field_validator("name")
        @classmethod
        def _name(cls, value: str) -> str:
            if not _NAME.fullmatch(value):
                raise _problem(f"{value!r} is not a trunk name; use lower-case letters, digits, "
                               "_ and -, e.g. carrier")
            return value

        @field_validator("password")
        @classmethod
        def _password(cls, value: str | None) -> str | None:
            return _password(value)

        @field_validator("sources")
        @classmethod
        def _some_sources(cls, value: list[IpNetwork]) -> list[IpNetwork]:
            if not value:
                raise _problem("is empty: no one could send calls on this trunk; list the "
                               "carrier's addresses, e.g. [192.0.2.0/24]")
            return value


class ExtensionSettings(_Section):
    """An internal user; phones register with ``number`` and ``password``."""

    number: Digits
    name: str = ""
    password: str | None = None
    mobiles: list[PhoneNumberText] = []
    callback: bool = False
    transit: bool = False
    caller_id: PhoneNumberText | None = None
    max_concurrent_calls: Count = 0
    allow_premium: bool = False
    max_contacts: Annotated[int, Field(ge=1, le=100)] = 5
    # Callback limits (SPEC §3): minutes of callback calls a day (0: no cap)
    # and the local hours (numbers.timezone) a trigger may get a callback.
    max_minutes_per_day: Count = 0
    callback_hours: Annotated[HoursRange, PlainValidator(parse_hours)] | None = None

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        return _password(value)


class RegistrarSettings(_Section):
    """Bindings of registered phones (RFC 3261 §10)."""

    min_expires_s: Annotated[int, Field(ge=1)] = 60
    max_expires_s: Annotated[int, Field(ge=1)] = 3600
    default_expires_s: Annotated[int, Field(ge=1)] = 3600
    keepalive_s: Annotated[float, Field(ge=0)] = 30.0
    keepalive_failures: Annotated[int, Field(ge=1)] = 3


class NumberingSettings(_Section):
    """How numbers are read and which ones are never dialled."""

    country: Region = "PL"
    company_number: PhoneNumberText | None = None
    blocked_prefixes: list[Annotated[str, PlainValidator(parse_prefix)]] = []
    premium_blocked: bool = True
    timezone: Annotated[str, PlainValidator(parse_timezone)] = "UTC"

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The time zone in which ``callback_hours`` are read."""
        return zoneinfo.ZoneInfo(self.timezone)


Loc = tuple[int | str, ...]


def _normalised(value: str, country: str, loc: Loc,
                problems: list[tuple[Loc, str]]) -> str | None:
    try:
        return numbers.normalise(value, country)
    except numbers.NumberError as error:  # names numbers.country and the E.164 form
        problems.append((loc, str(error)))
        return None


def cross_check(config: Config) -> tuple[list[tuple[Loc, str]], dict[str, Any]]:
    """Problems across fields, each with its location; and the normalised values.

    The second result updates ``Config``: extensions with E.164 mobiles and
    caller IDs, the E.164 company number.
    """
    problems: list[tuple[Loc, str]] = []
    country = config.numbers.country
    names: dict[str, int] = {}
    for index, trunk in enumerate(config.trunks):
        if trunk.name in names:
            problems.append((("trunks", index, "name"),
                             f"trunk name {trunk.name!r} is already used by "
                             f"trunks[{names[trunk.name]}]; give each trunk its own name"))
        names.setdefault(trunk.name, index)
        if not trunk.sources:
            problems.append((("trunks", index, "sources"),
                             f"is required because host {trunk.host} is a DNS name (only "
                             "an IP host is its own default); list the addresses the "
                             "carrier sends calls from, e.g. sources: [192.0.2.0/24]"))
        if trunk.register:
            for field in ("username", "password"):
                if getattr(trunk, field) is None:
                    problems.append((("trunks", index, field),
                                     f"is required because register is true; add it, "
                                     f"e.g. {CALL_EXAMPLES['trunks[*].' + field]}"))
    numbers_seen: dict[str, int] = {}
    owners: dict[str, str] = {}
    extensions: list[ExtensionSettings] = []
    prefixes = {t.name: t.outside_prefix for t in config.trunks if t.outside_prefix}
    for index, extension in enumerate(config.extensions):
        if extension.number in numbers_seen:
            problems.append((("extensions", index, "number"),
                             f"extension {extension.number} is already defined at "
                             f"extensions[{numbers_seen[extension.number]}]; give each "
                             "extension its own number"))
        numbers_seen.setdefault(extension.number, index)
        for trunk_name, prefix in prefixes.items():
            if extension.number.startswith(prefix):
                problems.append((("extensions", index, "number"),
                                 f"extension {extension.number} starts with the outside "
                                 f"prefix {prefix!r} of trunk {trunk_name}, so external "
                                 "numbers could not be dialled; renumber the extension "
                                 "or change the prefix"))
        mobiles: list[str] = []
        for position, mobile in enumerate(extension.mobiles):
            loc: Loc = ("extensions", index, "mobiles", position)
            e164 = _normalised(mobile, country, loc, problems)
            if e164 is None:
                continue
            owner = owners.get(e164)
            if owner is not None and owner != extension.number:
                problems.append((loc, f"{e164} is already a mobile of extension {owner}; "
                                      f"a mobile belongs to one extension only: remove it "
                                      f"from extension {owner} or {extension.number}"))
            elif e164 in mobiles:
                problems.append((loc, f"{e164} is listed twice; list each mobile once"))
            else:
                mobiles.append(e164)
                owners[e164] = extension.number
        caller_id = extension.caller_id
        if caller_id is not None:
            caller_id = _normalised(caller_id, country, ("extensions", index, "caller_id"),
                                    problems)
        extensions.append(extension.model_copy(
            update={"mobiles": mobiles, "caller_id": caller_id}))
    company = config.numbers.company_number
    if company is not None:
        company = _normalised(company, country, ("numbers", "company_number"), problems)
    registrar = config.registrar
    if not registrar.min_expires_s <= registrar.default_expires_s <= registrar.max_expires_s:
        problems.append((("registrar", "default_expires_s"),
                         f"min_expires_s {registrar.min_expires_s}, default_expires_s "
                         f"{registrar.default_expires_s} and max_expires_s "
                         f"{registrar.max_expires_s} must be in rising order; e.g. 60, "
                         "3600, 3600"))
    numbering = config.numbers.model_copy(update={"company_number": company})
    return problems, {"extensions": extensions, "numbers": numbering}


__all__ = [
    "CALL_EXAMPLES",
    "ExtensionSettings",
    "HoursRange",
    "IpNetwork",
    "NumberingSettings",
    "RegistrarSettings",
    "TrunkSettings",
    "cross_check",
    "parse_host",
    "parse_hours",
    "parse_network",
    "parse_phone_number",
]
