"""The Boomerang under test in the demo: a generated config in a temp folder.

``write_demo_config(folder, ...)`` writes ``boomerang.yaml`` and
``rates.csv`` and returns the loaded ``Config``. Everything is on
127.0.0.1: Boomerang's SIP port is picked by the kernel (``udp:...:0``),
the trunk ``carrier`` points at the simulated carrier's socket, media
ports are the range it is given (story.py finds one free), SQLite lives in
the folder. The story's people and numbers are ``DemoPlan``'s:

- extension 100, Anna: mobile +48600100200, callback and transit allowed;
  she has no desk phone in the demo, she is the one abroad;
- extension 101, Bob: a desk phone with a password (random per run, never
  printed) that registers with digest;
- DID +48221234567 on trunk ``carrier``, flow ``roaming``: callback
  (method caller, caller ID the DID, ``ring_time`` and ``delay`` short so
  the demo is quick, no retries) then ``disa`` (dial tone, digits, dial);
- a rate table pricing Polish mobiles, roaming at 1.50 EUR a minute.

Keep-alives are off (trunk OPTIONS, registrar OPTIONS): they are real SIP
but not part of the story, and would only clutter the ladder.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, load_config

RTP_RANGE_SIZE = 100
RTP_SEARCH_FIRST = 20000
RTP_SEARCH_LAST = 60000


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoPlan:
    """Who and what the demo story is about, and how quick it is."""

    did: str = "+48221234567"
    mobile: str = "+48600100200"
    owner: str = "100"
    owner_name: str = "Anna"
    callee: str = "101"
    callee_name: str = "Bob"
    tone_plan: str = "pl"
    ring_time_s: float = 2.0
    delay_s: float = 2.0
    currency: str = "EUR"
    roaming_per_minute: float = 1.50
    mobile_prefix: str = "+4860"
    mobile_per_minute: float = 0.05
    national_prefix: str = "+48"
    national_per_minute: float = 0.02
    mobile_voice_hz: float = 440.0
    phone_voice_hz: float = 660.0


def _pair_free(port: int) -> bool:
    for offset in (0, 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + offset))
            except OSError:
                return False
    return True


def free_port_range(size: int = RTP_RANGE_SIZE, *, draw: random.Random | None = None,
                    tries: int = 50) -> tuple[int, int]:
    """An even-started range of ``size`` UDP ports on 127.0.0.1 whose first
    pairs of each hundred are free now (the allocators skip any taken later)."""
    rng = draw or random.Random()
    for _ in range(tries):
        first = rng.randrange(RTP_SEARCH_FIRST, RTP_SEARCH_LAST - size) & ~1
        if all(_pair_free(first + hundred + offset) for hundred in range(0, size, 100)
               for offset in (0, 2, 4, 6)):
            return first, first + size - 1
    raise OSError(f"no free range of {size} UDP ports found on 127.0.0.1")


def config_text(plan: DemoPlan, *, folder: Path, carrier_port: int,
                rtp_ports: tuple[int, int], password: str) -> str:
    """The YAML of the Boomerang under test (see the module doc)."""
    database = (folder / "demo.db").resolve()
    return f"""\
# Written by `boomerang demo`: a Boomerang on 127.0.0.1 for one callback story.
sip:
  listen: [udp:127.0.0.1:0]
  shutdown_grace_s: 0.5
  realm: demo
media: {{rtp_ports: {rtp_ports[0]}-{rtp_ports[1]}, tone_plan: {plan.tone_plan}}}
database: sqlite:///{database}
registrar: {{keepalive_s: 0}}
numbers: {{country: PL}}
trunks:
  - name: carrier
    host: 127.0.0.1
    port: {carrier_port}
    sources: [127.0.0.1/32]
    country: PL
    dial_format: e164
    caller_id_header: pai
    keepalive_s: 0
extensions:
  - {{number: "{plan.owner}", name: {plan.owner_name}, mobiles: ["{plan.mobile}"],
     callback: true, transit: true}}
  - {{number: "{plan.callee}", name: {plan.callee_name}, password: "{password}"}}
dids:
  - {{number: "{plan.did}", trunk: carrier, flow: roaming}}
flows:
  roaming:
    - {{id: cb, type: callback, method: caller, caller_id: "{plan.did}",
       ring_time: {plan.ring_time_s}, delay: {plan.delay_s}, retries: 0, next: tone}}
    - {{id: tone, type: disa}}
records:
  rate_table: rates.csv
  currency: {plan.currency}
  roaming_rates: {{default: {plan.roaming_per_minute}}}
service: {{drain_grace_s: 2, poll_interval_s: 0.2}}
"""


def rates_text(plan: DemoPlan) -> str:
    return (f"# Written by `boomerang demo`: what the company's carrier charges\n"
            f"prefix,price_per_minute,currency\n"
            f"{plan.national_prefix},{plan.national_per_minute},{plan.currency}\n"
            f"{plan.mobile_prefix},{plan.mobile_per_minute},{plan.currency}\n")


def write_demo_config(plan: DemoPlan, *, folder: Path, carrier_port: int,
                      rtp_ports: tuple[int, int], password: str) -> Config:
    """Write the config and rate table into ``folder`` and load them."""
    (folder / "rates.csv").write_text(rates_text(plan), encoding="utf-8")
    path = folder / "boomerang.yaml"
    path.write_text(config_text(plan, folder=folder, carrier_port=carrier_port,
                                rtp_ports=rtp_ports, password=password), encoding="utf-8")
    return load_config(path)


__all__ = ["DemoPlan", "config_text", "free_port_range", "rates_text", "write_demo_config"]
