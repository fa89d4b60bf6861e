"""Who gets a callback (SPEC §2, §3): each rule of authorise.py refuses with
its reason, in order, and a caller who passes them all is accepted."""

from __future__ import annotations

from datetime import datetime

import pytest

from boomerang.callback.authorise import authorise_trigger
from boomerang.callback.identity import CallerIdentity
from boomerang.config import Config, load_config_text

ANNA = "+48600100200"
BOB = "+48600100300"
CAROL = "+48600100400"


def config(**anna: object) -> Config:
    fields = {"number": '"100"', "mobiles": f'["{ANNA}"]', "callback": "true", **anna}
    text = ", ".join(f"{k}: {v}" for k, v in fields.items())
    return load_config_text(f"""\
sip: {{listen: [udp:127.0.0.1:0]}}
extensions:
  - {{{text}}}
  - {{number: "102", mobiles: ["{BOB}"], callback: false}}
  - {{number: "103", mobiles: ["{CAROL}"], callback: true}}
""", "test.yaml")


def caller(e164: str | None, *, withheld: bool = False) -> CallerIdentity:
    return CallerIdentity(raw=e164 or "anonymous", e164=e164, withheld=withheld)


NOON = datetime(2026, 11, 22, 12, 0)
ALL = frozenset({ANNA, BOB, CAROL})


def decide(cfg: Config, who: CallerIdentity, *, entitled: frozenset[str] = ALL,
           at: datetime = NOON, minutes: float = 0.0, calls: int = 0) -> str:
    decision = authorise_trigger(cfg, who, entitled=entitled, local_now=at,
                                 minutes_today=minutes, calls_in_progress=calls)
    assert decision.allowed == (decision.reason == "accepted")
    return decision.reason


def test_a_registered_mobile_of_a_callback_extension_is_accepted() -> None:
    decision = authorise_trigger(config(), caller(ANNA), entitled=ALL, local_now=NOON,
                                 minutes_today=0, calls_in_progress=0)
    assert decision.allowed and decision.owner is not None
    assert decision.owner.number == "100" and decision.mobile == ANNA


def test_each_refusal_has_its_reason() -> None:
    cfg = config(max_minutes_per_day=30, max_concurrent_calls=1,
                 callback_hours='"07:00-22:00"')
    assert decide(cfg, caller(None, withheld=True)) == "withheld"
    assert decide(cfg, caller("+48600999999")) == "unknown_caller"
    assert decide(cfg, caller(None)) == "unknown_caller"
    assert decide(cfg, caller(BOB)) == "no_callback"
    assert decide(cfg, caller(ANNA), entitled=frozenset({CAROL})) == "not_licensed"
    assert decide(cfg, caller(ANNA), at=datetime(2026, 11, 22, 23, 0)) == "outside_hours"
    assert decide(cfg, caller(ANNA), at=datetime(2026, 11, 22, 6, 59)) == "outside_hours"
    assert decide(cfg, caller(ANNA), at=datetime(2026, 11, 22, 7, 0)) == "accepted"
    assert decide(cfg, caller(ANNA), minutes=30.0) == "daily_minutes"
    assert decide(cfg, caller(ANNA), minutes=29.9) == "accepted"
    assert decide(cfg, caller(ANNA), calls=1) == "concurrent"
    assert decide(cfg, caller(ANNA)) == "accepted"


@pytest.mark.parametrize(("hours", "at", "expected"), [
    ('"22:00-06:00"', datetime(2026, 11, 22, 23, 30), "accepted"),
    ('"22:00-06:00"', datetime(2026, 11, 22, 5, 59), "accepted"),
    ('"22:00-06:00"', datetime(2026, 11, 22, 12, 0), "outside_hours"),
    ("null", datetime(2026, 11, 22, 3, 0), "accepted"),
])
def test_callback_hours(hours: str, at: datetime, expected: str) -> None:
    assert decide(config(callback_hours=hours), caller(ANNA), at=at) == expected


def test_zero_limits_mean_unlimited() -> None:
    assert decide(config(), caller(ANNA), minutes=10_000, calls=50) == "accepted"
