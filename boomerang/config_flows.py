"""Settings of the call flows: ``dids`` and ``flows`` of SPEC §4.

``flows`` maps a name to a list of nodes; each node is one component of
``boomerang.flow.components`` (``type``), validated by that component's
``Params`` model, so a bad parameter is refused with its file and line
(``flows.roaming[0].delay``) before anything runs. The loader works in three
steps, each returning ``(loc, text)`` problems rather than stopping at the
first one:

1. ``build_flows`` (a field validator of ``Config.flows``): the shape,
   each node's parameters, and what a node can check alone: prompts are
   readable WAV files (paths resolved against the config file's folder),
   tone names and tone plans exist, a PIN is 4-12 digits, menu keys are
   single keys. A flow whose nodes all parsed is then checked as a graph
   by ``boomerang.flow.validate.validate_flow``.
2. ``cross_check_flows`` (with ``config_calls.cross_check`` when the
   ``Config`` is built): what needs the rest of the file. Trunks and
   extensions named by nodes and DIDs exist; numbers (``number``,
   ``caller_id``, the DID) are normalised to E.164 with the named trunk's
   ``country``, else ``numbers.country``, and put back into the ``Config``.
3. The loader turns each location into the YAML line.

A DID's number is read with its own trunk's country. The component registry
is imported when flows are built, not when this module is, so components may
use the call layer (which imports ``boomerang.config``) at module level.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, PlainValidator, ValidationError, field_validator

from .call import numbers
from .config_base import Section, problem
from .config_calls import parse_phone_number
from .flow.component import ComponentParams
from .flow.model import Flow, FlowNode
from .flow.validate import Loc, Problem, validate_flow

if TYPE_CHECKING:
    from .config import Config

# Describes one pydantic error of a node: (error, the node's Params, example).
Describe = Callable[[Mapping[str, Any], type[BaseModel], str | None], str]

_NAME = re.compile(r"[A-Za-z0-9_-]+")
MENU_KEYS = "0123456789*#"
PIN_LENGTHS = (4, 12)

# What a right value looks like, by field path ([*] for any list index).
DID_EXAMPLES: dict[str, str] = {
    "dids": 'dids: [{number: "+48221234567", trunk: carrier, flow: roaming}]',
    "dids[*]": '{number: "+48221234567", trunk: carrier, flow: roaming}',
    "dids[*].number": '"+48221234567"',
    "dids[*].trunk": "carrier",
    "dids[*].flow": "roaming",
    "flows": "flows: {roaming: [{id: cb, type: callback, next: tone}, {id: tone, type: disa}]}",
}

# What a right node parameter looks like: "TYPE.FIELD", or "*.FIELD" for any type.
NODE_EXAMPLES: dict[str, str] = {
    "*.id": "id: tone",
    "*.type": "type: disa",
    "*.next": "next: tone, or next: {busy: sorry, _: tone}",
    "*.trunk": "trunk: carrier",
    "*.caller_id": 'caller_id: "+48221234567"',
    "*.number": 'number: "+48600100200"',
    "*.extension": 'extension: "101"',
    "*.ring_timeout": "ring_timeout: 60",
    "*.timeout": "timeout: 5",
    "*.tone": "tone: busy",
    "*.prompt": "prompt: prompts/welcome.wav",
    "callback.method": "method: caller",
    "callback.delay": "delay: 5",
    "callback.ring_time": "ring_time: 6",
    "callback.reject_code": "reject_code: 486",
    "callback.answer_timeout": "answer_timeout: 45",
    "callback.retries": "retries: 2",
    "callback.retry_interval": "retry_interval: 30",
    "callback.confirm": "confirm: true",
    "disa.tone_plan": "tone_plan: pl",
    "disa.first_digit_timeout": "first_digit_timeout: 10",
    "disa.max_digits": "max_digits: 20",
    "disa.pin": 'pin: "4711"',
    "disa.pin_attempts": "pin_attempts: 3",
    "disa.star_star": "star_star: true",
    "dial.target": "target: extension",
    "play.duration": "duration: 3",
    "play.repeat": "repeat: 1",
    "menu.choices": 'choices: {"1": sales, "2": support}',
    "menu.attempts": "attempts: 3",
    "hangup.tone_duration": "tone_duration: 2",
}


class DidSettings(Section):
    """A public number reaching Boomerang on ``trunk``; calls to it run ``flow``.

    ``number`` is E.164 once the ``Config`` is built (read with the trunk's
    ``country``).
    """

    number: Annotated[str, PlainValidator(parse_phone_number)]
    trunk: str
    flow: str

    @field_validator("trunk", "flow")
    @classmethod
    def _named(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise problem(f"{value!r} is not a name; use letters, digits, _ and -, "
                          "e.g. carrier or roaming")
        return value


# -- step 1: shape, parameters, what a node checks alone ----------------------


def _did_you_mean(value: object, known: list[str]) -> str:
    close = difflib.get_close_matches(str(value), known, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _node_example(node_type: str, field: str) -> str | None:
    return NODE_EXAMPLES.get(f"{node_type}.{field}", NODE_EXAMPLES.get(f"*.{field}"))


def build_flows(value: Any, *, base_dir: Path | None, tone_plans: tuple[str, ...],
                describe: Describe) -> tuple[dict[str, Flow], list[Problem]]:
    """The ``flows`` section as ``Flow`` objects, and every problem found.

    Flows with a problem in a node are left out of the result (the caller
    refuses the file when problems are returned).
    """
    if value is None or (isinstance(value, list) and not value):
        return {}, []
    if not isinstance(value, Mapping):
        return {}, [(("flows",), "is not a mapping of flow names to lists of nodes; e.g. "
                                 + DID_EXAMPLES["flows"])]
    flows: dict[str, Flow] = {}
    problems: list[Problem] = []
    for name, raw_nodes in value.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.append((("flows", str(name)), f"{name!r} is not a flow name; use "
                             "letters, digits, _ and -, e.g. roaming"))
            continue
        loc: Loc = ("flows", name)
        if raw_nodes is None:
            raw_nodes = []
        if not isinstance(raw_nodes, list):
            problems.append((loc, "is not a list of nodes; write one node a line, e.g. "
                                  "- {id: tone, type: disa}"))
            continue
        nodes: list[FlowNode] = []
        found = len(problems)
        for index, raw in enumerate(raw_nodes):
            node = _build_node(raw, (*loc, index), base_dir=base_dir, tone_plans=tone_plans,
                               describe=describe, problems=problems)
            if node is not None:
                nodes.append(node)
        if len(problems) > found:
            continue  # the graph of a flow with a broken node would mislead
        flow = Flow(name=name, nodes=tuple(nodes))
        graph_problems = validate_flow(flow, loc)
        if graph_problems:
            problems.extend(graph_problems)
        else:
            flows[name] = flow
    return flows, problems


def _build_node(raw: Any, loc: Loc, *, base_dir: Path | None, tone_plans: tuple[str, ...],
                describe: Describe, problems: list[Problem]) -> FlowNode | None:
    from .flow.components import COMPONENTS  # see the module doc

    if not isinstance(raw, Mapping):
        problems.append((loc, f"{raw!r} is not a node; write a mapping with id and type, "
                              "e.g. {id: tone, type: disa}"))
        return None
    known = sorted(COMPONENTS)
    node_type = raw.get("type")
    if node_type is None:
        problems.append(((*loc, "type"), "is required but missing; give the component, one "
                                         f"of {', '.join(known)}, e.g. type: disa"))
        return None
    if not isinstance(node_type, str) or node_type not in COMPONENTS:
        problems.append(((*loc, "type"), f"{node_type!r} is not a component; "
                                         f"{_did_you_mean(node_type, known)}use one of "
                                         f"{', '.join(known)}"))
        return None
    component = COMPONENTS[node_type]
    model = component.Params
    data = dict(raw)
    choices = data.get("choices")
    if isinstance(choices, Mapping):  # YAML reads an unquoted key 1 as a number
        data["choices"] = {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v
                           for k, v in choices.items()}
    try:
        params = model.model_validate(data)
    except ValidationError as error:
        for where, item in _without_union_members(error.errors(include_url=False)):
            field = next((p for p in where if isinstance(p, str)), "")
            example = _node_example(node_type, field)
            if item is None:  # no form of a union fits: say so once
                given = data.get(field)
                shown = repr(given) if not isinstance(given, (dict, list)) else "this value"
                text = f"{shown} is not a valid {field}" + (f"; e.g. {example}" if example
                                                             else "")
            else:
                text = describe({**item, "loc": where}, model, example)
            problems.append(((*loc, *where), text))
        return None
    found = len(problems)
    params = _checked_alone(params, loc, base_dir, tone_plans, problems)
    if len(problems) > found:
        return None
    return flow_node(params)


# The member tags pydantic puts in the location of an error of a union field
# (``next.str``, ``next.dict[str,str].busy``, ``confirm.bool``).
_UNION_MEMBER = re.compile(r"str|int|float|bool|none|[a-z-]+\[.*\]")


def _without_union_members(errors: list[Any]) -> list[tuple[Loc, Any]]:
    """Errors located without union member tags, one per place.

    A value no member of a union accepts gets an error per member; the most
    specific ones are kept (``next: {busy: 3}``: the mapping's ``busy``), and
    when the members disagree at one depth, ``None`` stands for "not a valid
    value of any form".
    """
    grouped: dict[Loc, list[tuple[Loc, Any]]] = {}
    plain: list[tuple[Loc, Any]] = []
    for item in errors:
        where: list[int | str] = []
        tagged = False
        for part in item["loc"]:
            if isinstance(part, str) and _UNION_MEMBER.fullmatch(part):
                tagged = True
            else:
                where.append(part)
        if tagged:
            grouped.setdefault(tuple(where[:1]), []).append((tuple(where), item))
        else:
            plain.append((tuple(where), item))
    out = list(plain)
    for field, members in grouped.items():
        deepest = max(len(where) for where, _ in members)
        kept = [(where, item) for where, item in members if len(where) == deepest]
        if len(kept) > 1 and deepest == len(field):
            out.append((field, None))
        else:
            out.extend(kept)
    return out


def flow_node(params: ComponentParams) -> FlowNode:
    """The node of validated ``params``: its branches are ``next`` and, for a
    menu, one outcome per key of ``choices`` (key -> node id)."""
    branches = params.branches()
    choices = getattr(params, "choices", None)
    if isinstance(choices, Mapping):
        branches.update(choices)  # a key pressed is an outcome of its own
    return FlowNode(id=params.id, type=params.type, params=params, branches=branches)


def _checked_alone(params: ComponentParams, loc: Loc, base_dir: Path | None,
                   tone_plans: tuple[str, ...], problems: list[Problem]) -> ComponentParams:
    """What a node can check without the rest of the file, by parameter name."""
    from .media.tones import TONE_NAMES

    update: dict[str, Any] = {}
    tone = getattr(params, "tone", None)
    if tone is not None and tone not in TONE_NAMES:
        problems.append(((*loc, "tone"), f"{tone!r} is not a tone; "
                                         f"{_did_you_mean(tone, list(TONE_NAMES))}use one "
                                         f"of {', '.join(TONE_NAMES)}, e.g. tone: busy"))
    prompt = getattr(params, "prompt", None)
    if isinstance(prompt, Path):
        resolved = _readable_wav(prompt, (*loc, "prompt"), base_dir, problems)
        if resolved is not None:
            update["prompt"] = resolved
    plan = getattr(params, "tone_plan", None)
    if plan is not None:
        if plan.lower() in tone_plans:
            update["tone_plan"] = plan.lower()
        else:
            problems.append(((*loc, "tone_plan"), f"{plan!r} is not a known tone plan; use "
                             f"one of {', '.join(tone_plans)}, or leave it out for "
                             "media.tone_plan, e.g. tone_plan: pl"))
    pin = getattr(params, "pin", None)
    low, high = PIN_LENGTHS
    if pin is not None and not (pin.isascii() and pin.isdigit() and low <= len(pin) <= high):
        # never echo the PIN: the message may reach a log
        problems.append(((*loc, "pin"), f"is not a PIN of {low}-{high} digits; write "
                                        "digits in quotes, e.g. pin: \"4711\""))
    choices = getattr(params, "choices", None)
    if isinstance(choices, Mapping):
        if not choices:
            problems.append(((*loc, "choices"), "is empty; map at least one key to a node, "
                                                "e.g. " + NODE_EXAMPLES["menu.choices"]))
        for key in choices:
            if len(key) != 1 or key not in MENU_KEYS:
                problems.append(((*loc, "choices", key),
                                 f"{key!r} is not one key; use a single key of 0-9, * or # "
                                 "(quote * and #), e.g. \"1\": sales"))
    return params.model_copy(update=update) if update else params


def _readable_wav(value: Path, loc: Loc, base_dir: Path | None,
                  problems: list[Problem]) -> Path | None:
    from .media.prompts import PromptError, read_wav

    path = value if value.is_absolute() or base_dir is None else base_dir / value
    example = "prompt: prompts/welcome.wav (a PCM WAV file, relative to the config file)"
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = "does not exist" if isinstance(error, FileNotFoundError) else \
            f"cannot be read ({error.strerror})"
        problems.append((loc, f"prompt file {str(value)!r} {reason} (looked for "
                              f"{str(path)!r}); give a readable WAV file, e.g. {example}"))
        return None
    try:
        read_wav(data)
    except PromptError as error:
        problems.append((loc, f"prompt file {str(value)!r} is not a WAV we can play ({error}); "
                              "save it as PCM WAV (16-bit, mono, 8000 Hz is best), e.g. "
                              "sox in.mp3 -r 8000 -c 1 -b 16 welcome.wav"))
        return None
    return path


# -- step 2: what needs the rest of the file -----------------------------------


def _trunk_problem(name: str, known: list[str]) -> str:
    if not known:
        return (f"trunk {name!r} is not defined and there are no trunks; add it under trunks, "
                f"e.g. trunks: [{{name: {name}, host: 192.0.2.10}}]")
    return (f"trunk {name!r} is not defined; {_did_you_mean(name, known)}"
            f"use one of {', '.join(known)}")


def _e164(value: str, country: str, loc: Loc, problems: list[Problem]) -> str | None:
    try:
        return numbers.normalise(value, country)
    except numbers.NumberError as error:  # names the country and an E.164 example
        problems.append((loc, str(error)))
        return None


def cross_check_flows(config: Config) -> tuple[list[Problem], dict[str, Any]]:
    """Problems of ``dids`` and ``flows`` against trunks and extensions, and
    the normalised values (``flows`` and ``dids`` for ``Config.model_copy``)."""
    problems: list[Problem] = []
    countries = {trunk.name: trunk.country for trunk in config.trunks}
    trunk_names = sorted(countries)
    extensions = sorted(e.number for e in config.extensions)
    flows: dict[str, Flow] = {}
    for name, flow in config.flows.items():
        nodes: list[FlowNode] = []
        for index, node in enumerate(flow.nodes):
            loc: Loc = ("flows", name, index)
            params = node.params
            trunk = getattr(params, "trunk", None)
            if trunk is not None and trunk not in countries:
                problems.append(((*loc, "trunk"), _trunk_problem(trunk, trunk_names)))
            country = countries.get(trunk or "", config.numbers.country)
            update: dict[str, Any] = {}
            for field in ("number", "caller_id"):
                value = getattr(params, field, None)
                if isinstance(value, str):
                    update[field] = _e164(value, country, (*loc, field), problems) or value
            extension = getattr(params, "extension", None)
            if extension is not None and extension not in extensions:
                what = (f"use one of {', '.join(extensions)}" if extensions else
                        "there are no extensions; add it under extensions, e.g. "
                        f"extensions: [{{number: \"{extension}\", password: s3cret}}]")
                problems.append(((*loc, "extension"), f"extension {extension!r} is not "
                                 f"defined; {_did_you_mean(extension, extensions)}{what}"))
            if update:
                node = dataclasses.replace(node, params=params.model_copy(update=update))
            nodes.append(node)
        flows[name] = dataclasses.replace(flow, nodes=tuple(nodes))
    dids: list[DidSettings] = []
    seen: dict[str, int] = {}
    flow_names = sorted(config.flows)
    for index, did in enumerate(config.dids):
        loc = ("dids", index)
        if did.trunk not in countries:
            problems.append(((*loc, "trunk"), _trunk_problem(did.trunk, trunk_names)))
        if did.flow not in config.flows:
            what = (f"use one of {', '.join(flow_names)}" if flow_names else
                    "there are no flows; add it under flows, e.g. "
                    f"flows: {{{did.flow}: [{{id: tone, type: disa}}]}}")
            problems.append(((*loc, "flow"), f"flow {did.flow!r} is not defined; "
                                             f"{_did_you_mean(did.flow, flow_names)}{what}"))
        country = countries.get(did.trunk, config.numbers.country)
        number = _e164(did.number, country, (*loc, "number"), problems)
        if number is None:
            continue
        if number in seen:
            problems.append(((*loc, "number"), f"{number} is already the DID of "
                             f"dids[{seen[number]}]; list each DID once (one DID runs one "
                             "flow)"))
            continue
        seen[number] = index
        dids.append(did.model_copy(update={"number": number}))
    return problems, {"flows": flows, "dids": dids}


__all__ = [
    "DID_EXAMPLES",
    "NODE_EXAMPLES",
    "DidSettings",
    "build_flows",
    "cross_check_flows",
    "flow_node",
]
