"""``hangup``: end the call, optionally after a tone.

With ``tone`` and a ``tone_duration`` above 0 the tone of the plan plays
that long first (not interrupted by keys: it is the last thing the caller
hears, e.g. ``congestion`` after a refused choice; skipped when the call
has no media session, e.g. with rtpengine); then BYE. ``run``
returns the empty outcome, which ends the flow whatever ``next`` says.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from ...call.media_session import MediaSessionError
from ..component import Component, ComponentParams
from ..context import FlowContext

log = logging.getLogger(__name__)


class HangupParams(ComponentParams):
    tone: str | None = None             # e.g. congestion before the hang-up
    tone_duration: float = Field(default=0.0, ge=0, le=60)


class Hangup(Component):
    type = "hangup"
    Params = HangupParams
    outcomes = ()
    help = "End the call (BYE), optionally after a tone."
    needs_next = False

    async def run(self, context: FlowContext, params: Any) -> str:
        assert isinstance(params, HangupParams)
        call = context.active_call()
        if params.tone and params.tone_duration > 0 and not call.ended.done():
            try:
                session = await context.media_session()
            except MediaSessionError as error:  # e.g. media through rtpengine
                log.info("call_id=%s no %s tone before the hangup: %s", call.call_id,
                         params.tone, error)
            else:
                context.observer.tone(context, call.call_id, params.tone, True)
                try:
                    await session.play_tone_for(params.tone, params.tone_duration)
                finally:
                    context.observer.tone(context, call.call_id, params.tone, False)
        log.info("call_id=%s hangup node %s", call.call_id, params.id)
        call.hangup()
        return ""


__all__ = ["Hangup", "HangupParams"]
