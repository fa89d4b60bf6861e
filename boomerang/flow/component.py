"""The contract every flow component keeps (one component per file in
``components/``), in the manner of jambonz verbs and Kazoo callflow modules.

A component class declares:

- ``type``: the name used in the YAML (``type: disa``);
- ``Params``: a pydantic model of its parameters (``ComponentParams`` plus
  its own fields); the config loader validates every node with it, so a bad
  parameter is refused with the file and line before anything runs;
- ``outcomes``: the outcomes ``run`` may return; ``next`` maps them to the
  following node (a plain ``next: id`` is the default for every outcome,
  ``next: {busy: x, _: y}`` branches, ``_`` being the default);
- ``help``: one paragraph for the docs and ``boomerang check``;
- ``collects_input``: whether the caller can change what happens next
  (digits); a loop of nodes none of which collects input is refused;
- ``needs_next``: whether a node must name a ``next`` (a component that can
  end the call by itself, like ``disa`` or ``hangup``, need not).

``run(context, params)`` runs until an outcome and returns it; it must stop
promptly when its task is cancelled (the call ended or the server stops) and
never swallow ``CancelledError``.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import field_validator

from ..config_base import Section, problem

if TYPE_CHECKING:
    from .context import FlowContext

# The default branch of a ``next`` mapping (Kazoo's "_").
DEFAULT_BRANCH = "_"

Next = str | dict[str, str] | None


class ComponentParams(Section):
    """What every node has: its id, its type and where it goes next."""

    id: str
    type: str
    next: Next = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "_-" for c in value):
            raise problem(f"{value!r} is not a node id; use letters, digits, _ and -, "
                          "e.g. dialtone")
        return value

    def branches(self) -> dict[str, str]:
        """``next`` as a mapping of outcome to node id (``_`` the default)."""
        if self.next is None:
            return {}
        if isinstance(self.next, str):
            return {DEFAULT_BRANCH: self.next}
        return dict(self.next)


class Component:
    """Base of every flow component (see the module doc)."""

    type: ClassVar[str]
    Params: ClassVar[builtins.type[ComponentParams]]
    outcomes: ClassVar[tuple[str, ...]]
    help: ClassVar[str]
    collects_input: ClassVar[bool] = False
    needs_next: ClassVar[bool] = True

    async def run(self, context: FlowContext, params: Any) -> str:
        raise NotImplementedError


__all__ = ["DEFAULT_BRANCH", "Component", "ComponentParams", "Next"]
