"""Flows as data: what the config loader builds and the runner walks.

A flow is an ordered list of nodes; the first is its entry (the node a DID
reaches). Each node is one component with its validated parameters and
its branches (outcome -> node id, ``_`` the default). A node without a
branch for an outcome ends the flow there (the call is hung up).
"""

from __future__ import annotations

from dataclasses import dataclass

from .component import DEFAULT_BRANCH, ComponentParams


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowNode:
    id: str
    type: str
    params: ComponentParams
    branches: dict[str, str]

    def next_for(self, outcome: str) -> str | None:
        """The node that follows ``outcome``, or None: the flow ends."""
        return self.branches.get(outcome, self.branches.get(DEFAULT_BRANCH))


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    name: str
    nodes: tuple[FlowNode, ...]

    @property
    def entry(self) -> FlowNode:
        return self.nodes[0]

    def node(self, node_id: str) -> FlowNode:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"flow {self.name} has no node {node_id!r}")


__all__ = ["Flow", "FlowNode"]
