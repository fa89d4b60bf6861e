"""Transport addresses as the sans-I/O core sees them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Address:
    """Where a message came from or goes to.

    ``transport`` is ``"udp"``, ``"tcp"`` or ``"tls"``. For stream transports
    the address of the far end identifies the connection: a response to a
    request received over TCP is sent to the request's ``source`` Address and
    the transport layer writes it on that connection (RFC 3261 §18.2.2).
    """

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"
