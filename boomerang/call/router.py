"""The dial plan of calls an authenticated extension places from its phone.

``Router.route(call, extension)`` is the manager's ``on_extension_call``:

| dialled (Request-URI user)            | what happens                                  |
|---------------------------------------|-----------------------------------------------|
| another extension                     | ring its registered phones (forked), bridge   |
|                                       | the first that answers                        |
| external, ``may_dial`` allows it      | through the first trunk that is up or         |
|                                       | registered (503 when none is), caller ID =    |
|                                       | the extension's own or the company number     |
| refused by ``may_dial``               | the Decision's status (403 / 404 / 484)       |
| the callee fails (busy, no answer...) | the caller gets ``status_for`` that cause     |
| the caller hangs up while it rings    | the callee legs get CANCEL                    |

While the callee rings, the caller hears 180 Ringing (no early media is
passed between the legs).
"""

from __future__ import annotations

import asyncio
import logging

from ..config import Config, ExtensionSettings
from ..sip.uri import SipUri, TelUri
from .b2bua import status_for
from .calls import CallEndedError, InboundCall
from .events import CallEvent, CallRinging, Outcome
from .manager import (
    TRUNK_USABLE,
    CallManager,
    CallRefused,
    ExtensionTarget,
    Target,
    TrunkTarget,
)
from .numbers import classify_dialled
from .permissions import may_dial

log = logging.getLogger(__name__)

DEFAULT_RING_TIMEOUT_S = 60.0


def dialled_digits(call: InboundCall) -> str:
    uri = call.leg.invite.request_uri
    if isinstance(uri, TelUri):
        return uri.number
    if isinstance(uri, SipUri):
        return (uri.user_unescaped or "").split(";", 1)[0]
    return ""


class Router:
    """Routes extension calls (see the module doc)."""

    def __init__(self, manager: CallManager, config: Config, *,
                 ring_timeout_s: float = DEFAULT_RING_TIMEOUT_S) -> None:
        self.manager = manager
        self.config = config
        self.ring_timeout_s = ring_timeout_s

    def install(self) -> None:
        self.manager.on_extension_call = self.route

    async def route(self, call: InboundCall, extension: ExtensionSettings) -> None:
        digits = dialled_digits(call)
        trunks = self.manager.trunks
        first_trunk = next(iter(trunks), None) if trunks is not None else None
        dialled = classify_dialled(
            digits, outside_prefix=first_trunk.settings.outside_prefix if first_trunk else None,
            country=self.config.numbers.country,
            extensions=[e.number for e in self.config.extensions])
        decision = may_dial(extension, dialled, self.config.numbers)
        if not decision.allowed:
            log.info("call_id=%s %s dialled %r: refused %d (%s)", call.call_id,
                     extension.number, digits, decision.sip_status, decision.reason)
            call.reject(decision.sip_status)
            return
        target: Target
        caller_id = extension.number
        if dialled.kind == "extension" and dialled.number is not None:
            target = ExtensionTarget(dialled.number)
        else:
            trunk = next((t for t in trunks or () if t.state in TRUNK_USABLE), None)
            caller_id = extension.caller_id or self.config.numbers.company_number or ""
            if trunk is None or dialled.e164 is None or not caller_id:
                log.info("call_id=%s %s dialled %r: no trunk up or no caller ID",
                         call.call_id, extension.number, digits)
                call.reject(503)
                return
            target = TrunkTarget(trunk.name, dialled.e164)
        await self.connect(call, target, caller_id=caller_id,
                           owner_extension=extension.number, display_name=extension.name)

    async def connect(self, call: InboundCall, target: Target, *, caller_id: str,
                      owner_extension: str | None, display_name: str | None = None) -> None:
        """Call ``target`` for ``call``; bridge them when it answers."""
        manager = self.manager
        try:
            outbound = await manager.originate(
                target, caller_id=caller_id, ring_timeout_s=self.ring_timeout_s,
                correlation_id=call.correlation_id, owner_extension=owner_extension,
                display_name=display_name or None)
        except CallRefused as error:
            log.info("call_id=%s %s: %s", call.call_id, target, error.detail)
            call.reject(error.status)
            return

        def ring(event: CallEvent) -> None:
            if isinstance(event, CallRinging) and not call.leg.ended \
                    and not call.leg.answered:
                call.ring()

        outbound.listeners.append(ring)
        waiting = asyncio.ensure_future(outbound.outcome())
        await asyncio.wait({waiting, call.ended}, return_when=asyncio.FIRST_COMPLETED)
        if call.ended.done():
            waiting.cancel()  # CANCEL to every fork
            outbound.hangup()
            return
        cause = waiting.result()
        if cause.outcome is not Outcome.ANSWERED:
            call.reject(status_for(cause), cause=cause)
            return
        try:
            await call.answer()
        except CallEndedError:
            outbound.hangup()
            return
        await manager.bridge(call, outbound)


__all__ = ["DEFAULT_RING_TIMEOUT_S", "Router", "dialled_digits"]
