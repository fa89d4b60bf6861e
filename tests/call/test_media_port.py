"""The SDP address of a leg when Boomerang listens on a wildcard address."""

from __future__ import annotations

from boomerang.call.manager import _route_source
from boomerang.call.media_port import RelayMediaPort
from boomerang.sip.sdp import SessionDescription


class FakeLeg:
    call_id = "c1"


class FixedRelay:
    """Hands out one port at the address the real relay is bound to."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def allocate(self, call_id: str, leg: str) -> tuple[str, int]:
        return self.address, 40_000


async def _offer_address(bound: str, advertised_host: str | None) -> str:
    port = RelayMediaPort(FixedRelay(bound), media_key="k", leg_name="a",  # type: ignore[arg-type]
                          advertised_host=advertised_host)
    await port.allocate()
    sdp = SessionDescription.parse(port.offer(FakeLeg()))
    connection = sdp.connection_of(sdp.media[0])
    assert connection is not None
    return connection.address


async def test_a_wildcard_relay_address_is_replaced_by_the_legs_host() -> None:
    assert await _offer_address("0.0.0.0", "192.0.2.10") == "192.0.2.10"


async def test_a_real_relay_address_is_kept() -> None:
    # an explicit public address (or a specific bind) wins over the leg's host
    assert await _offer_address("198.51.100.7", "192.0.2.10") == "198.51.100.7"


async def test_without_a_leg_host_the_relay_address_stays() -> None:
    assert await _offer_address("127.0.0.1", None) == "127.0.0.1"


def test_the_route_source_toward_a_loopback_peer_is_loopback() -> None:
    # connect() on a UDP socket only asks the routing table; nothing is sent
    assert _route_source("127.0.0.1") == "127.0.0.1"
