"""What a running flow knows and may use: one ``FlowContext`` per story.

A story is everything that happens for one trigger (or one inbound call on
a DID whose flow starts with something other than ``callback``): the
callback leg, the destination legs it dials, their records, all under one
``correlation_id``. Components read and change the context; they place and
bridge calls only through ``manager`` (the call layer's API), so the flow
layer never reads a SIP message.

``values`` carries what one node hands to the next (``digits`` collected,
``inter_digit_timeout_s`` from the callback node for the dial tone).
``observer`` is told what happens (metrics, the demo's timeline); it must
not block. ``prompts`` is the process's cache of encoded WAV prompts
(the runner's), given to every media session the story opens.

``active_call()`` is the call the flow runs on (an error when there is
none); ``await media_session()`` attaches (once) and returns its
``MediaSession`` for tones, prompts and digits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..call.calls import AnyCall
    from ..call.manager import CallManager
    from ..call.media_session import MediaSession, PromptCache
    from ..config import Config, ExtensionSettings
    from ..config_flows import DidSettings
    from ..store import CallbackJob
    from .model import Flow


class FlowObserver(Protocol):
    """Hooks for metrics and timelines; every method is optional in effect
    (``NullObserver`` does nothing)."""

    def node_entered(self, context: FlowContext, node_id: str, node_type: str) -> None: ...

    def node_left(self, context: FlowContext, node_id: str, outcome: str) -> None: ...

    def digit(self, context: FlowContext, call_id: str, digit: str, source: str) -> None: ...

    def tone(self, context: FlowContext, call_id: str, name: str, playing: bool) -> None: ...

    def note(self, context: FlowContext, text: str) -> None: ...


class NullObserver:
    def node_entered(self, context: FlowContext, node_id: str, node_type: str) -> None:
        pass

    def node_left(self, context: FlowContext, node_id: str, outcome: str) -> None:
        pass

    def digit(self, context: FlowContext, call_id: str, digit: str, source: str) -> None:
        pass

    def tone(self, context: FlowContext, call_id: str, name: str, playing: bool) -> None:
        pass

    def note(self, context: FlowContext, text: str) -> None:
        pass


@dataclass(slots=True, kw_only=True)
class FlowContext:
    manager: CallManager
    config: Config
    flow: Flow
    correlation_id: str
    owner: ExtensionSettings | None        # who is billed; None: nobody known
    call: AnyCall | None = None            # the answered call the flow runs on
    did: DidSettings | None = None         # the DID that started the story
    trunk_name: str | None = None          # the DID's trunk (default for dialing out)
    job: CallbackJob | None = None         # the callback job, on the callback side
    values: dict[str, Any] = field(default_factory=dict)
    observer: FlowObserver = field(default_factory=NullObserver)
    prompts: PromptCache | None = None     # shared encoded prompts (None: per session)

    def active_call(self) -> AnyCall:
        """The call the flow runs on; RuntimeError when the story has none."""
        if self.call is None:
            raise RuntimeError(f"story {self.correlation_id}: the flow has no call")
        return self.call

    async def media_session(self) -> MediaSession:
        """The active call's media session, attached on first use."""
        session = await self.active_call().attach_media_session()
        if self.prompts is not None:
            session.prompts = self.prompts
        return session


__all__ = ["FlowContext", "FlowObserver", "NullObserver"]
