"""A flow checked as a graph before anything runs.

``validate_flow(flow, loc_prefix)`` is pure: it reads the nodes, their
components (``COMPONENTS``) and their branches, and returns every problem as
``(loc, text)``, ``loc`` being the place in the config file
(``loc_prefix + (node index, field, ...)``) and ``text`` what is wrong and
what would be right. The rules:

- a flow has at least one node, and node ids are unique;
- every branch (``next``, and a menu's ``choices``) names a node of the
  flow, under an outcome its component declares (``_``, the default, is
  always allowed; a menu's choice keys are outcomes too); a component
  without outcomes (``hangup``) takes no ``next``;
- a node whose component ``needs_next`` has a branch;
- every node is reachable from the entry (the first node);
- no loop runs without a node that ``collects_input`` (the call would go
  round for ever: a play that plays itself, two plays that name each other);
- ``callback`` is only the entry node, and no branch goes back to it (it
  runs once, when the DID's trigger call arrives).

Checks that need the rest of the file (trunks, extensions, prompt files)
are ``boomerang.config_flows``'s.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable, Mapping

from .component import DEFAULT_BRANCH
from .model import Flow, FlowNode

Loc = tuple[int | str, ...]
Problem = tuple[Loc, str]

ENTRY_ONLY = "callback"


def _loc_text(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


def _did_you_mean(value: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _choices(node: FlowNode) -> Mapping[str, str]:
    choices = getattr(node.params, "choices", None)
    return choices if isinstance(choices, Mapping) else {}


def _branch_sources(node: FlowNode) -> list[tuple[str, str, Loc]]:
    """Each branch as (outcome, target node id, where it is written in the node)."""
    found: list[tuple[str, str, Loc]] = []
    written = node.params.next
    if isinstance(written, str):
        found.append((DEFAULT_BRANCH, written, ("next",)))
    elif isinstance(written, Mapping):
        found.extend((outcome, target, ("next", outcome)) for outcome, target in written.items())
    found.extend((key, target, ("choices", key)) for key, target in _choices(node).items())
    listed = {(outcome, target) for outcome, target, _ in found}
    # a node built in Python may carry branches its params do not spell
    found.extend((outcome, target, ("next",)) for outcome, target in node.branches.items()
                 if (outcome, target) not in listed)
    return found


def _reachable(start: str, graph: Mapping[str, Iterable[str]]) -> set[str]:
    """Node ids reachable from ``start`` by one branch or more."""
    seen: set[str] = set()
    queue = deque(graph.get(start, ()))
    while queue:
        node_id = queue.popleft()
        if node_id not in seen:
            seen.add(node_id)
            queue.extend(graph.get(node_id, ()))
    return seen


def _loop_path(start: str, graph: Mapping[str, Iterable[str]]) -> list[str]:
    """A shortest path start -> ... -> start (``start`` is known to be on a loop)."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node_id = queue.popleft()
        for target in graph.get(node_id, ()):
            if target == start:
                path = [node_id]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if target not in previous:
                previous[target] = node_id
                queue.append(target)
    return [start, start]


def validate_flow(flow: Flow, loc_prefix: Loc = ()) -> list[Problem]:
    """Every problem of ``flow`` as a graph (see the module doc); [] when none."""
    from .components import COMPONENTS  # the registry may import the call layer

    name = flow.name
    if not flow.nodes:
        return [(loc_prefix, f"flow {name} has no nodes; list at least one, "
                             "e.g. - {id: tone, type: disa}")]
    problems: list[Problem] = []
    index_of: dict[str, int] = {}
    for index, node in enumerate(flow.nodes):
        if node.id in index_of:
            first = _loc_text((*loc_prefix, index_of[node.id]))
            problems.append(((*loc_prefix, index, "id"), f"node id {node.id!r} is already "
                             f"used by {first}; give each node its own id"))
        else:
            index_of[node.id] = index
    entry = flow.nodes[0]
    node_list = ", ".join(index_of)
    input_types = ", ".join(sorted(t for t, c in COMPONENTS.items() if c.collects_input))

    for index, node in enumerate(flow.nodes):
        loc: Loc = (*loc_prefix, index)
        component = COMPONENTS.get(node.type)
        if component is None:
            problems.append(((*loc, "type"), f"{node.type!r} is not a component; use one of "
                                             f"{', '.join(sorted(COMPONENTS))}"))
            continue
        if node.type == ENTRY_ONLY and index != 0:
            problems.append(((*loc, "type"), f"{ENTRY_ONLY} can only be the entry node (the "
                             "first of the flow), where the trigger call arrives; move this "
                             "node first, or use dial to call a number later in the flow"))
        sources = _branch_sources(node)
        if not component.outcomes and sources:
            problems.append(((*loc, "next"), f"a {node.type} node ends the call, so its next "
                             "is never followed; remove next"))
            continue
        choices = _choices(node)
        allowed = [*component.outcomes, *choices, DEFAULT_BRANCH]
        for outcome, target, where in sources:
            if outcome not in allowed:
                extra = " and its choice keys" if choices else ""
                problems.append(((*loc, *where), f"{outcome!r} is not an outcome of "
                                 f"{node.type}; {_did_you_mean(outcome, allowed)}its outcomes "
                                 f"are {', '.join(component.outcomes)}{extra}, or _ for any "
                                 "other, e.g. next: {busy: sorry, _: tone}"))
            if where[0] == "next" and outcome in choices and choices[outcome] != target:
                problems.append(((*loc, *where), f"key {outcome!r} is also a choice (going "
                                 f"to {choices[outcome]!r}); give each key once, in choices"))
            if target not in index_of:
                problems.append(((*loc, *where), f"{target!r} is not a node of flow {name}; "
                                 f"{_did_you_mean(str(target), index_of)}its nodes are "
                                 f"{node_list}"))
            elif target == entry.id and entry.type == ENTRY_ONLY:
                problems.append(((*loc, *where), f"goes back to the {ENTRY_ONLY} node "
                                 f"{entry.id!r}, which runs only when the trigger call "
                                 "arrives; name another node"))
        if component.needs_next and not node.branches:
            others = [i for i in index_of if i != node.id
                      and not (i == entry.id and entry.type == ENTRY_ONLY)]
            hint = others[0] if others else "tone"
            problems.append(((*loc, "next"), f"is required: a {node.type} node names the "
                             f"node that follows it, e.g. next: {hint}"))

    def followed(node: FlowNode) -> list[str]:
        component = COMPONENTS.get(node.type)
        if component is None or not component.outcomes:
            return []  # a node that ends the call goes nowhere
        back = entry.id if entry.type == ENTRY_ONLY else None  # refused above already
        return [target for target in node.branches.values()
                if target in index_of and target != back]

    graph = {node_id: followed(flow.nodes[i]) for node_id, i in index_of.items()}
    reached = _reachable(entry.id, graph) | {entry.id}
    for node_id, index in index_of.items():
        if node_id not in reached:
            problems.append(((*loc_prefix, index), f"node {node_id!r} is never reached from "
                             f"the entry node {entry.id!r} (the first); name it in a next or "
                             "a menu choice of a node before it, or remove it"))

    def collects_input(node_id: str) -> bool:
        component = COMPONENTS.get(flow.nodes[index_of[node_id]].type)
        return component is None or component.collects_input

    quiet = {node_id: [t for t in targets if not collects_input(t)]
             for node_id, targets in graph.items() if not collects_input(node_id)}
    reach = {node_id: _reachable(node_id, quiet) for node_id in quiet}
    reported: set[str] = set()
    for node_id, index in index_of.items():  # in file order: the loop's first node
        if node_id not in quiet or node_id in reported or node_id not in reach[node_id]:
            continue
        reported |= {other for other in reach[node_id] if node_id in reach[other]}
        path = " -> ".join(_loop_path(node_id, quiet))
        problems.append(((*loc_prefix, index), f"nodes {path} loop without collecting input, "
                         "so the call would go round for ever; let a branch leave the loop "
                         f"or put a node that collects input ({input_types}) in it"))
    return problems


__all__ = ["Loc", "Problem", "validate_flow"]
