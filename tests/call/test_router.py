"""The router's decisions that end before any call is placed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from boomerang.call.router import Router
from boomerang.config import load_config_text
from boomerang.sip.uri import parse_uri

CONFIG = """\
sip: {listen: ["udp:127.0.0.1:0"]}
numbers: {country: PL, company_number: "+48221234567"}
trunks:
  - {name: carrier, host: 127.0.0.1, port: 5070, outside_prefix: "0", keepalive_s: 0}
extensions:
  - {number: "101", password: pw-101, transit: true}
  - {number: "102", password: pw-102}
"""


class FakeCall:
    """What the router reads of an InboundCall, and the reject it sends."""

    def __init__(self, dialled: str) -> None:
        self.call_id = "c1"
        self.leg = SimpleNamespace(invite=SimpleNamespace(
            request_uri=parse_uri(f"sip:{dialled}@127.0.0.1")))
        self.rejected: list[int] = []

    def reject(self, status: int) -> None:
        self.rejected.append(status)


def _router(trunk_state: str) -> Router:
    config = load_config_text(CONFIG, "router.yaml")
    trunk = SimpleNamespace(name="carrier", state=trunk_state,
                            settings=config.trunk("carrier"))
    manager = SimpleNamespace(trunks=[trunk], on_extension_call=None)
    return Router(manager, config)  # type: ignore[arg-type]


@pytest.mark.parametrize(("extension", "dialled", "status"), [
    ("101", "0600100200", 503),  # transit, but the only trunk is down
    ("102", "0600100200", 403),  # no transit permission
    ("101", "0701234567", 403),  # premium rate
    ("101", "10", 484),          # a prefix of extensions: incomplete
])
async def test_calls_that_cannot_be_placed_are_refused_with_the_right_status(
        extension: str, dialled: str, status: int) -> None:
    router = _router("down")
    config = router.config
    call = FakeCall(dialled)
    ext = config.extension(extension)
    assert ext is not None
    await router.route(call, ext)  # type: ignore[arg-type]
    assert call.rejected == [status]
