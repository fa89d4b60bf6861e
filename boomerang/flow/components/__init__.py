"""The flow components, one per file; ``COMPONENTS`` maps ``type`` to class."""

from __future__ import annotations

from ..component import Component
from .callback import Callback
from .dial import Dial
from .disa import Disa
from .hangup import Hangup
from .menu import Menu
from .play import Play

COMPONENTS: dict[str, type[Component]] = {
    component.type: component for component in (Callback, Disa, Dial, Play, Menu, Hangup)
}

__all__ = ["COMPONENTS"]
