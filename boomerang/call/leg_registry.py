"""Routing in-dialog requests to their leg by (Call-ID, local tag, remote tag)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sip.address import Address
from ..sip.dialog import Dialog
from ..sip.errors import SipError
from ..sip.message import Request
from ..sip.transaction.events import TransactionKey

if TYPE_CHECKING:
    from .leg import CallLeg


class LegRegistry:
    """Finds the leg of an in-dialog request by (Call-ID, local tag, remote
    tag); an ``boomerang.app.DialogHandler``: set it as the endpoint's
    ``dialog_handler``."""

    __slots__ = ("_legs",)

    def __init__(self) -> None:
        self._legs: dict[tuple[str, str, str], CallLeg] = {}

    def add(self, dialog: Dialog, leg: CallLeg) -> None:
        self._legs[(dialog.id.call_id, dialog.id.local_tag, dialog.id.remote_tag)] = leg

    def discard(self, leg: CallLeg) -> None:
        for key in [key for key, value in self._legs.items() if value is leg]:
            del self._legs[key]

    def find(self, call_id: str, local_tag: str, remote_tag: str) -> CallLeg | None:
        return self._legs.get((call_id, local_tag, remote_tag))

    def __len__(self) -> int:
        return len(self._legs)

    def __call__(self, request: Request, transaction: TransactionKey | None,
                 source: Address) -> bool:
        try:
            key = (request.call_id, request.to_tag or "", request.from_tag or "")
        except SipError:
            return False
        leg = self._legs.get(key)
        if leg is None:
            return False
        leg.receive_request(request, transaction, source)
        return True


__all__ = ["LegRegistry"]
