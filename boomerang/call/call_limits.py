"""Limits on calls: an extension's concurrent calls, a trunk's call length.

- ``calls_of(calls, extension)``: the stories (correlation ids) an extension
  owns among the live calls. One story is one call as the user sees it,
  whatever number of legs it has (the phone's INVITE and the call placed for
  it). ``ExtensionSettings.max_concurrent_calls`` caps them: the manager
  refuses a new story beyond the cap with **486 Busy Here** (the user's
  line is busy: a phone shows "busy", a callback trigger gets its reject).
- ``DurationLimit``: a trunk's ``max_call_seconds``. Armed when a call
  through the trunk is answered; ``lead_s`` before the end every answered
  leg of the story that is bridged hears the plan's ``warning`` tone (both
  sides of the bridge); at the end every leg of the story gets BYE with
  ``Reason: Q.850;cause=16;text="Maximum call duration"``.

The warning needs the Python relay: the two legs are unbridged for the
tone (about 1.2 s: three 200 ms beeps), each gets a media session on its
own relay socket, and the relay continues the session's RTP stream when
they are bridged again. With rtpengine there is no warning (the call is
still cut), and a leg that is not bridged (on a dial tone) gets none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from ..config import ExtensionSettings
from ..media.relay import RelayError
from ..media.tones import tone_plan
from ..transport.media_relay import MediaRelay, PythonMediaRelay
from .b2bua import end_leg
from .calls import AnyCall
from .events import Q850_NORMAL_CLEARING, EndCause, Outcome
from .media_session import MediaSessionError

log = logging.getLogger(__name__)

WARNING_LEAD_S = 10.0  # the warning tone starts this long before max_call_seconds
CONCURRENT_CALLS_STATUS = 486  # a story beyond max_concurrent_calls is refused busy
MAX_DURATION = EndCause(outcome=Outcome.HUNG_UP_LOCAL, q850_cause=Q850_NORMAL_CLEARING,
                        reason_text="Maximum call duration")


def calls_of(calls: Iterable[AnyCall], extension: str) -> set[str]:
    """The live stories (correlation ids) billed to ``extension``."""
    return {call.correlation_id for call in calls
            if call.owner_extension == extension and not call.ended.done()}


def over_concurrent_cap(calls: Iterable[AnyCall], extension: ExtensionSettings,
                        *, joining: str | None = None) -> bool:
    """True when a new story for ``extension`` would pass its
    ``max_concurrent_calls`` (0: no cap); a leg joining the live story
    ``joining`` is no new call."""
    cap = extension.max_concurrent_calls
    if not cap:
        return False
    stories = calls_of(calls, extension.number)
    if joining is not None and joining in stories:
        return False
    return len(stories) >= cap


class DurationLimit:
    """``max_call_seconds`` of one answered trunk call (see the module doc).

    ``story()`` gives the live calls of the call's story when asked (the
    legs bridged later are found then); ``run()`` returns when the call
    ended, early or cut.
    """

    __slots__ = ("call", "lead_s", "max_s", "relay", "story", "tone_plan", "warned")

    def __init__(self, call: AnyCall, *, max_s: float, lead_s: float,
                 story: Callable[[], list[AnyCall]], relay: MediaRelay,
                 tone_plan: str) -> None:
        self.call = call
        self.max_s = max_s
        self.lead_s = lead_s
        self.story = story
        self.relay = relay
        self.tone_plan = tone_plan
        self.warned: dict[str, int] = {}  # call_id -> warning frames sent

    async def _until(self, deadline: float) -> bool:
        """Sleep until ``deadline`` (loop time); False when the call ended first."""
        delay_s = deadline - asyncio.get_running_loop().time()
        if self.call.ended.done():
            return False
        if delay_s <= 0:
            return True
        done, _ = await asyncio.wait({self.call.ended}, timeout=delay_s)
        return not done

    async def run(self) -> None:
        start = self.call.answered_at
        if start is None:
            return
        end = start + self.max_s
        if 0 < self.lead_s < self.max_s and await self._until(end - self.lead_s):
            await self.warn()
        if not await self._until(end):
            return
        log.info("call_id=%s maximum call duration %.0f s reached: BYE to every leg",
                 self.call.call_id, self.max_s)
        for call in self.story():
            if not call.leg.ended:
                end_leg(call.leg, MAX_DURATION)

    async def warn(self) -> None:
        """Play the warning tone to both sides of each bridge of the story."""
        relay = self.relay
        if not isinstance(relay, PythonMediaRelay):
            log.info("call_id=%s no warning tone: the relay cannot play tones",
                     self.call.call_id)
            return
        calls = {call.media.leg_name: call for call in self.story()
                 if call.is_answered and not call.leg.ended}
        pairs: list[tuple[AnyCall, AnyCall]] = []
        for name, call in calls.items():
            try:
                peer = relay.relay_call(call.media.media_key).leg(name).peer
            except (RelayError, KeyError):
                continue
            if peer in calls and name < peer:
                pairs.append((call, calls[peer]))
        if not pairs:
            log.info("call_id=%s no warning tone: the call is not bridged",
                     self.call.call_id)
            return
        await asyncio.gather(*(self._warn_pair(relay, a, b) for a, b in pairs))

    async def _warn_pair(self, relay: PythonMediaRelay, a: AnyCall, b: AnyCall) -> None:
        key = a.media.media_key
        duration_s = (tone_plan(self.tone_plan).warning.cycle_ms or 1200) / 1000
        try:
            await relay.unbridge(key, a.media.leg_name)
            for call in (a, b):
                session = await call.media.open_session()
                session.play_tone("warning")
            log.info("call_id=%s warning tone to call_id=%s and call_id=%s: the call ends "
                     "in %.0f s", self.call.call_id, a.call_id, b.call_id, self.lead_s)
            await asyncio.sleep(duration_s)
            for call in (a, b):
                playing = call.media.session
                if playing is not None:
                    self.warned[call.call_id] = playing.frames_sent
                await call.media.hand_over()
            if not (a.leg.ended or b.leg.ended):
                await relay.bridge(key, a.media.leg_name, b.media.leg_name)
        except (RelayError, KeyError, MediaSessionError) as error:
            log.warning("call_id=%s warning tone failed: %s", self.call.call_id, error)
            with contextlib.suppress(RelayError, KeyError):
                if not (a.leg.ended or b.leg.ended):
                    await relay.bridge(key, a.media.leg_name, b.media.leg_name)


__all__ = [
    "CONCURRENT_CALLS_STATUS",
    "MAX_DURATION",
    "WARNING_LEAD_S",
    "DurationLimit",
    "calls_of",
    "over_concurrent_cap",
]
