"""Rate table, and the cost and saving estimates of a story (SPEC §6).

A *story* is every call record sharing one ``correlation_id``: the trigger
call, the callback leg(s) and the destination leg(s). When it has ended,
``estimate_story`` writes two figures on its rows:

- **cost** (every row): what the company's trunks charge. Only the legs
  Boomerang places through a trunk cost anything: the callback leg (priced
  at its ``callback_target``) and a destination leg (priced at its
  ``dialed_destination``). Per-second billing: ``billable_s / 60`` minutes
  (answer to end) times the price per minute of the longest matching prefix
  of the rate table. The trigger call is never answered and an internal leg
  uses no trunk: both cost 0.
- **saving** (on the callback leg row only, so sums over rows count it
  once): what the user would have paid calling the dialled destination
  directly on their mobile from abroad, minus the story's cost. The first
  part is ``records.roaming_rates`` of the destination's country (the
  region ``phonenumbers`` gives the E.164 number; an internal extension
  counts as the company's country, ``numbers.country``; ``default`` for a
  country not listed) times the bridged minutes (the destination leg's
  billable time). A callback that bridged nothing saved nothing, so its
  saving is minus its cost: savings can be negative.

Everything is computed by the pure ``estimate`` from the rows; the async
``estimate_story`` only reads and writes them. Figures are rounded to six
decimals. What cannot be priced stays NULL rather than guessed: no rate
table, a number with no matching prefix (that row's cost, and the saving),
no roaming rate for the destination (the saving), a leg still in progress
(the whole story). A rate table priced in another currency than
``records.currency`` is refused as a whole, never mixed.

Rate table file (UTF-8 CSV; ``#`` comment lines and blank lines allowed)::

    prefix,price_per_minute,currency
    +48,0.02,EUR
    +4860,0.05,EUR     # Polish mobiles (the longest prefix wins)
    49,0.03,EUR        # "+" is optional

``RateTable.load`` reports every bad line as ``FILE:LINE: what is wrong;
what would be right``.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import phonenumbers
from phonenumbers import NumberParseException

from ..call import numbers
from ..config_service import RecordsSettings
from ..store import CallRecord, CallRecordFilter, CallRecordRepository, LegKind
from ..store.records import LegEstimate

log = logging.getLogger(__name__)

HEADER = ("prefix", "price_per_minute", "currency")
DEFAULT_ROAMING_KEY = "default"
DECIMALS = 6
_PREFIX = re.compile(r"\+?([0-9]{1,15})")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_EXAMPLE_LINE = "+4860,0.05,EUR"


class RateTableError(Exception):
    """A rate table that cannot be used; ``problems`` holds one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    """One line of the rate table; ``prefix`` is written ``+digits``."""

    prefix: str
    price_per_minute: float
    currency: str
    line: int


class RateTable:
    """Prices per destination prefix; ``rate_for`` picks the longest match."""

    __slots__ = ("_by_digits", "currencies", "name")

    def __init__(self, rates: Iterable[Rate], *, name: str = "rate table") -> None:
        self.name = name
        self._by_digits = {rate.prefix[1:]: rate for rate in rates}
        self.currencies = frozenset(rate.currency for rate in self._by_digits.values())

    @classmethod
    def load(cls, path: str | Path) -> RateTable:
        """Read and check the file; raises RateTableError with every problem."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise RateTableError([f"{file}: no such file; write a CSV with the header "
                                  f"{','.join(HEADER)}, then one line per prefix, e.g. "
                                  f"{_EXAMPLE_LINE}"]) from None
        except (OSError, UnicodeDecodeError) as error:
            raise RateTableError([f"{file}: cannot be read ({error}); give a readable "
                                  "UTF-8 CSV file"]) from None
        return cls.parse(text, str(file))

    @classmethod
    def parse(cls, text: str, name: str) -> RateTable:
        """The table in ``text``; ``name`` is the file name used in problems."""
        problems: list[str] = []
        rates: dict[str, Rate] = {}
        header_seen = False
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{name}:{number}"
            cells = [cell.strip() for cell in next(csv.reader([_without_comment(line)]))]
            if not header_seen:
                header_seen = True
                if tuple(cell.lower() for cell in cells) != HEADER:
                    problems.append(f"{where}: the first line is {line!r}; it must be the "
                                    f"header {','.join(HEADER)}")
                    if _looks_like_rate(cells):
                        problems.extend(_rate_problems(cells, where))
                continue
            found = _rate_problems(cells, where)
            if found:
                problems.extend(found)
                continue
            rate = Rate(prefix="+" + _digits(cells[0]), price_per_minute=float(cells[1]),
                        currency=cells[2].upper(), line=number)
            earlier = rates.get(rate.prefix)
            if earlier is not None:
                problems.append(f"{where}: prefix {rate.prefix} is already priced on line "
                                f"{earlier.line}; list each prefix once")
                continue
            rates[rate.prefix] = rate
        if not header_seen:
            problems.append(f"{name}:1: the file holds no header and no rates; write the "
                            f"header {','.join(HEADER)}, then e.g. {_EXAMPLE_LINE}")
        elif not rates and not problems:
            problems.append(f"{name}: the file holds no rates; add one line per prefix "
                            f"under the header, e.g. {_EXAMPLE_LINE}")
        if problems:
            raise RateTableError(problems)
        return cls(rates.values(), name=name)

    @property
    def rates(self) -> list[Rate]:
        """Every rate, in file order."""
        return sorted(self._by_digits.values(), key=lambda rate: rate.line)

    def __len__(self) -> int:
        return len(self._by_digits)

    def rate_for(self, e164: str) -> Rate | None:
        """The rate of the longest prefix of ``e164`` (``+48600100200``)."""
        digits = e164[1:] if e164.startswith("+") else e164
        for length in range(len(digits), 0, -1):
            rate = self._by_digits.get(digits[:length])
            if rate is not None:
                return rate
        return None

    def currency_problem(self, currency: str) -> str | None:
        """Why the table cannot price in ``currency``, or None when it can."""
        first = next((rate for rate in self.rates if rate.currency != currency.upper()), None)
        if first is None:
            return None
        return (f"rate table {self.name} prices in "
                f"{', '.join(sorted(self.currencies))} (line {first.line}: {first.prefix} "
                f"in {first.currency}) but records.currency is {currency.upper()}; price "
                f"every line in {currency.upper()} or set records.currency to match")


def _without_comment(line: str) -> str:
    """The line without a trailing ``# comment`` (prices hold no ``#``)."""
    return line.partition("#")[0].strip()


def _digits(prefix: str) -> str:
    return prefix[1:] if prefix.startswith("+") else prefix


def _looks_like_rate(cells: list[str]) -> bool:
    return len(cells) == 3 and _PREFIX.fullmatch(cells[0]) is not None


def _rate_problems(cells: list[str], where: str) -> list[str]:
    if len(cells) != len(HEADER):
        return [f"{where}: {len(cells)} fields; write three, {','.join(HEADER)}, "
                f"e.g. {_EXAMPLE_LINE}"]
    prefix, price, currency = cells
    problems = []
    if not _PREFIX.fullmatch(prefix):
        problems.append(f"{where}: prefix {prefix!r} is not a number prefix; write a "
                        "country code and more digits, with or without +, e.g. +48 or +4860")
    try:
        value = float(price)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        problems.append(f"{where}: price {price!r} is not a price per minute; write a "
                        "number 0 or more with a decimal point, e.g. 0.05")
    if not _CURRENCY.fullmatch(currency):
        problems.append(f"{where}: currency {currency!r} is not a currency code; write the "
                        "three letters of ISO 4217, e.g. EUR")
    return problems


def load_rates(settings: RecordsSettings) -> RateTable | None:
    """The table ``records.rate_table`` names; None when it names none."""
    if settings.rate_table is None:
        return None
    return RateTable.load(settings.rate_table)


# -- estimates -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StoryEstimate:
    """What ``estimate`` found: the figures per row, the story's totals (None
    when a part could not be priced), and why not."""

    legs: tuple[LegEstimate, ...]
    cost: float | None
    saving: float | None
    problems: tuple[str, ...]


def destination_country(leg: CallRecord, company_country: str) -> str | None:
    """ISO country of what a destination or internal leg dialled; None if unknown."""
    if leg.leg_kind is LegKind.INTERNAL:
        return company_country.upper()
    number = leg.dialed_destination or ""
    try:
        parsed = phonenumbers.parse(number, None)
    except NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    if region is None:  # an invalid number: the main country of its code
        region = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    return None if region in (None, phonenumbers.UNKNOWN_REGION, "001") else region


def _priced_number(leg: CallRecord, company_country: str) -> str | None:
    """The E.164 number a trunk leg is priced at, or None."""
    raw = leg.callback_target if leg.leg_kind is LegKind.CALLBACK else leg.dialed_destination
    if raw is None:
        return None
    if _E164.fullmatch(raw):
        return raw
    try:
        return numbers.normalise(raw, company_country)
    except numbers.NumberError:
        return None


def _round(value: float) -> float:
    return round(value, DECIMALS) + 0.0  # + 0.0: no "-0.0"


def estimate(legs: Sequence[CallRecord], rates: RateTable, settings: RecordsSettings,
             company_country: str) -> StoryEstimate:
    """The cost of each finished leg and the story's saving (see the module doc)."""
    problems: list[str] = []
    costs: dict[int, float | None] = {}
    for leg in legs:
        minutes = (leg.billable_s or 0.0) / 60.0
        through_trunk = (leg.trunk is not None
                         and leg.leg_kind in (LegKind.CALLBACK, LegKind.DESTINATION))
        if not through_trunk or minutes == 0.0:
            costs[leg.id] = 0.0
            continue
        number = _priced_number(leg, company_country)
        rate = None if number is None else rates.rate_for(number)
        if rate is None:
            what = "no number" if number is None else f"no prefix of {number}"
            problems.append(f"{leg.leg_kind.value} leg {leg.id} (call_id={leg.call_id}): "
                            f"{what} in rate table {rates.name}; add a line for it, e.g. "
                            f"{_EXAMPLE_LINE}")
            costs[leg.id] = None
            continue
        costs[leg.id] = _round(minutes * rate.price_per_minute)
    known = [cost for cost in costs.values() if cost is not None]
    cost = _round(sum(known)) if len(known) == len(costs) else None

    callback_legs = [leg for leg in legs if leg.leg_kind is LegKind.CALLBACK]
    saving_leg = next((leg for leg in callback_legs if leg.answered_at is not None),
                      callback_legs[-1] if callback_legs else None)
    saving: float | None = None
    if saving_leg is not None and cost is not None:
        direct = 0.0
        for leg in legs:
            minutes = (leg.billable_s or 0.0) / 60.0
            if leg.leg_kind not in (LegKind.DESTINATION, LegKind.INTERNAL) or minutes == 0.0:
                continue
            country = destination_country(leg, company_country)
            roaming = settings.roaming_rates.get(country or "",
                                                 settings.roaming_rates.get(DEFAULT_ROAMING_KEY))
            if roaming is None:
                problems.append(f"{leg.leg_kind.value} leg {leg.id} (call_id={leg.call_id}) "
                                f"to {leg.dialed_destination}: no roaming rate for "
                                f"{country or 'an unknown country'} and no default; add "
                                f"records.roaming_rates.{country or DEFAULT_ROAMING_KEY}")
                direct = math.nan
                break
            direct += minutes * roaming
        if not math.isnan(direct):
            saving = _round(direct - cost)
    currency = settings.currency
    return StoryEstimate(
        legs=tuple(
            LegEstimate(record_id=leg.id, cost_estimate=costs[leg.id],
                        saving_estimate=saving if leg is saving_leg else None,
                        currency=currency if costs[leg.id] is not None
                        or (leg is saving_leg and saving is not None) else None)
            for leg in legs),
        cost=cost, saving=saving, problems=tuple(problems))


async def estimate_story(records: CallRecordRepository, correlation_id: str,
                         rates: RateTable | None, settings: RecordsSettings,
                         company_country: str) -> None:
    """Write the cost and saving estimates on the rows of one ended story.

    Leaves them NULL without a rate table, when the table is priced in
    another currency than ``settings.currency`` (logged as an error), and
    while any leg of the story is still in progress (logged).
    """
    if rates is None:
        log.debug("correlation_id=%s no rate table: no estimates", correlation_id)
        return
    legs = await records.query(CallRecordFilter(correlation_id=correlation_id))
    call_id = next((leg.call_id for leg in legs if leg.leg_kind is LegKind.CALLBACK),
                   legs[0].call_id if legs else None)
    mismatch = rates.currency_problem(settings.currency)
    if mismatch is not None:
        log.error("call_id=%s correlation_id=%s no estimates: %s", call_id, correlation_id,
                  mismatch)
        return
    if not legs:
        log.warning("call_id=%s correlation_id=%s no call records: nothing to estimate",
                    call_id, correlation_id)
        return
    running = [leg for leg in legs if leg.ended_at is None]
    if running:
        log.warning("call_id=%s correlation_id=%s no estimates: %d leg(s) still in progress "
                    "(%s)", call_id, correlation_id, len(running),
                    ", ".join(f"call_id={leg.call_id}" for leg in running))
        return
    story = estimate(legs, rates, settings, company_country)
    for problem in story.problems:
        log.warning("call_id=%s correlation_id=%s estimate incomplete: %s", call_id,
                    correlation_id, problem)
    await records.set_estimates(story.legs)
    log.info("call_id=%s correlation_id=%s estimated: cost %s, saving %s %s", call_id,
             correlation_id, "unknown" if story.cost is None else f"{story.cost:.4f}",
             "unknown" if story.saving is None else f"{story.saving:.4f}", settings.currency)


__all__ = [
    "HEADER",
    "Rate",
    "RateTable",
    "RateTableError",
    "StoryEstimate",
    "destination_country",
    "estimate",
    "estimate_story",
    "load_rates",
]
