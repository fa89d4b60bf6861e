"""``menu``: a prompt (or tone) and a choice of keys.

One attempt: the keys pressed before the menu began are forgotten, the
prompt plays (a key barges in and stops it) or the tone plays, then the
menu waits ``timeout`` seconds after the prompt for one key (with a tone,
``timeout`` seconds from the start, the tone going on until a key). A key
of ``choices`` is the outcome (the loader makes each key a branch to its
node). Another key, or none, is a failed attempt; after ``attempts`` of
them the outcome is that of the last one: ``invalid`` (a key that is not a
choice) or ``timeout`` (no key).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from pydantic import Field

from ...call.media_session import MediaSession
from ..component import Component, ComponentParams
from ..context import FlowContext

log = logging.getLogger(__name__)


class MenuParams(ComponentParams):
    prompt: Path | None = None
    tone: str | None = None
    choices: dict[str, str] = {}        # key -> node id
    timeout: float = Field(default=5.0, gt=0, le=120)
    attempts: int = Field(default=3, ge=1, le=10)


class Menu(Component):
    type = "menu"
    Params = MenuParams
    outcomes = ("timeout", "invalid")   # plus one outcome per key of choices
    help = ("Play a prompt (or tone) and wait for one key; each key of choices names the "
            "next node; after attempts without a valid key: outcome timeout or invalid.")
    collects_input = True

    async def run(self, context: FlowContext, params: Any) -> str:
        assert isinstance(params, MenuParams)
        call = context.active_call()
        session = await context.media_session()
        session.clear_digits()
        outcome = "timeout"
        for attempt in range(1, params.attempts + 1):
            key = await _one_key(context, session, params)
            if key is None:
                outcome = "timeout"
            elif key in params.choices:
                log.info("call_id=%s menu %s: key %s", call.call_id, params.id, key)
                return key
            else:
                outcome = "invalid"
            log.info("call_id=%s menu %s attempt %d/%d: %s", call.call_id, params.id,
                     attempt, params.attempts, outcome if key is None else f"key {key} invalid")
        return outcome


async def _one_key(context: FlowContext, session: MediaSession, params: MenuParams
                   ) -> str | None:
    """Play the question and take one key (None: no key in time)."""
    call_id = context.active_call().call_id
    waiting = asyncio.ensure_future(session.next_digit())
    playing: asyncio.Future[bool] | None = None
    sound = "prompt" if params.prompt is not None else params.tone
    if sound is not None:
        context.observer.tone(context, call_id, sound, True)
    try:
        if params.prompt is not None:
            playing = asyncio.ensure_future(session.play_prompt(params.prompt,
                                                                interruptible=True))
            await asyncio.wait({waiting, playing}, return_when=asyncio.FIRST_COMPLETED)
            if playing.done():
                playing.result()  # a prompt that failed to load raises here
        elif params.tone is not None:
            session.play_tone(params.tone, interruptible=True)
        await asyncio.wait({waiting}, timeout=params.timeout)
        digit = waiting.result() if waiting.done() else None
        if digit is None:
            return None
        context.observer.digit(context, call_id, digit.digit, str(digit.source))
        return digit.digit
    finally:
        waiting.cancel()
        if playing is not None and not playing.done():
            playing.cancel()
            await asyncio.wait({playing})
        if params.prompt is None and params.tone is not None \
                and session.tone_name == params.tone and session.tone_playing:
            session.stop_tone(reason="menu")
        if sound is not None:
            context.observer.tone(context, call_id, sound, False)


__all__ = ["Menu", "MenuParams"]
