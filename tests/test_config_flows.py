"""DIDs and call flows in the config file, and flows checked as graphs.

Each file under fixtures/flows/bad/ states what it must produce in lines
``# expect: LINE | FIELD | TEXT``: a problem that starts with
``FILE:LINE: FIELD`` and contains TEXT. The file must produce exactly those
problems, no fewer and no more. Files under fixtures/flows/good/ load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import pytest

from boomerang.config import Config, ConfigError, DidSettings, load_config, load_config_text
from boomerang.config_flows import flow_node
from boomerang.flow.component import ComponentParams
from boomerang.flow.components import COMPONENTS
from boomerang.flow.model import Flow, FlowNode
from boomerang.flow.validate import validate_flow

FIXTURES = Path(__file__).parent / "fixtures" / "flows"
GOOD = sorted((FIXTURES / "good").glob("*.yaml"))
BAD = sorted((FIXTURES / "bad").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+) \| ([^|]+?) \| (.+)$", re.MULTILINE)
DOCS = Path(__file__).parent.parent / "docs" / "CONFIG.md"


def test_fixture_folders_are_not_empty() -> None:
    assert len(GOOD) >= 3 and len(BAD) >= 40


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_files_load(path: Path) -> None:
    config = load_config(path)
    assert config.dids and config.flows
    for did in config.dids:
        assert did.number.startswith("+") and config.flow(did.flow) is not None


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_files_are_refused_with_every_problem_located_and_a_fix(path: Path) -> None:
    expected = EXPECT.findall(path.read_text())
    assert expected, f"{path.name} states no '# expect:' line"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    for line, field, text in expected:
        prefix = f"{path}:{line}: {field}: "
        matching = [p for p in problems if p.startswith(prefix) and text in p]
        assert matching, f"no problem starting {prefix!r} with {text!r} in:\n" + "\n".join(
            problems)
    assert len(problems) == len(expected), "\n".join(problems)


# -- what a good file gives ---------------------------------------------------------


def test_nodes_are_typed_with_their_branches_and_menu_keys() -> None:
    config = load_config(FIXTURES / "good" / "all_components.yaml")
    roaming = config.flows["roaming"]
    assert [n.id for n in roaming.nodes] == [
        "cb", "welcome", "choose", "tone", "office", "sorry", "bye"]
    assert roaming.entry.id == "cb"
    cb = roaming.node("cb")
    assert cb.next_for("answered") == "welcome" and cb.next_for("busy") == "bye"
    choose = roaming.node("choose")
    assert choose.branches == {"timeout": "bye", "invalid": "choose", "1": "tone",
                               "2": "office", "#": "bye"}
    assert choose.next_for("1") == "tone" and choose.next_for("#") == "bye"
    assert choose.next_for("9") is None  # no default branch: the flow ends
    assert roaming.node("bye").branches == {}
    office = roaming.node("office").params
    assert (office.target, office.extension) == ("extension", "102")  # type: ignore[attr-defined]
    assert roaming.node("cb").params.confirm_digit == "1"  # type: ignore[attr-defined]


def test_prompts_are_resolved_against_the_config_folder() -> None:
    path = FIXTURES / "good" / "all_components.yaml"
    prompt = load_config(path).flows["roaming"].node("welcome").params.prompt  # type: ignore[attr-defined]
    assert prompt == path.parent / "../prompts/welcome.wav"
    assert prompt.is_file()


def test_numbers_are_normalised_with_the_trunk_country_else_numbers_country() -> None:
    config = load_config(FIXTURES / "good" / "all_components.yaml")
    roaming, fixed = config.flows["roaming"], config.flows["fixed"]
    # no trunk on the node: numbers.country (PL)
    assert roaming.node("cb").params.caller_id == "+48221234567"  # type: ignore[attr-defined]
    # trunk berlin (DE)
    assert roaming.node("tone").params.caller_id == "+493012345678"  # type: ignore[attr-defined]
    assert fixed.node("cb").params.number == "+4915123456789"  # type: ignore[attr-defined]
    assert fixed.node("out").params.number == "+48600100200"  # type: ignore[attr-defined]
    assert roaming.node("tone").params.tone_plan == "de"  # type: ignore[attr-defined]
    assert [(d.number, d.trunk, d.flow) for d in config.dids] == [
        ("+48221234567", "carrier", "roaming"), ("+493012345678", "berlin", "fixed")]


def test_did_finds_a_did_by_e164_or_by_its_trunk_national_form() -> None:
    config = load_config(FIXTURES / "good" / "all_components.yaml")
    berlin = DidSettings(number="+493012345678", trunk="berlin", flow="fixed")
    assert config.did("+493012345678") == berlin
    assert config.did("030 12345678") == berlin  # read as DE, the DID's trunk country
    assert config.did("0049 30 12345678") == berlin
    assert config.did("221234567") is not None and config.did("221234567").flow == "roaming"  # type: ignore[union-attr]
    assert config.did("+48221234568") is None
    assert config.did("not a number") is None
    assert config.flow("fixed") is config.flows["fixed"] and config.flow("nope") is None


@pytest.mark.parametrize("empty", ["flows:\ndids:\n", "flows: []\ndids: []\n",
                                   "flows: {}\n"])
def test_no_flows_and_no_dids_may_be_written_empty_or_null(empty: str) -> None:
    config = load_config_text("sip: {listen: [udp:127.0.0.1:0]}\n" + empty, "x.yaml")
    assert config.flows == {} and config.dids == []


def test_flow_problems_are_listed_with_the_problems_of_other_sections() -> None:
    text = ("sip: {listen: [udp:127.0.0.1:99999]}\n"
            "flows:\n  a:\n    - {id: x, type: play}\n  b:\n    - {id: y, type: nope}\n")
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "x.yaml")
    problems = caught.value.problems
    assert [p.split(": ")[0] for p in problems] == ["x.yaml:1", "x.yaml:4", "x.yaml:6"]
    assert "sip.listen[0]" in problems[0]
    assert problems[1].startswith("x.yaml:4: flows.a[0]: give exactly one of tone")
    assert problems[2].startswith("x.yaml:6: flows.b[0].type: 'nope' is not a component")


def test_a_wrong_pin_is_never_echoed() -> None:
    text = ("sip: {listen: [udp:127.0.0.1:0]}\n"
            "flows: {a: [{id: tone, type: disa, pin: '98x7654'}]}\n")
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "x.yaml")
    (problem,) = caught.value.problems
    assert "flows.a[0].pin: is not a PIN of 4-12 digits" in problem
    assert "98x7654" not in problem


def test_models_built_in_python_are_cross_checked_and_normalised() -> None:
    base: dict[str, Any] = {
        "sip": {"listen": ["udp:127.0.0.1:0"]},
        "trunks": [{"name": "carrier", "host": "127.0.0.1"}],
        "dids": [{"number": "221234567", "trunk": "carrier", "flow": "roaming"}],
        "flows": {"roaming": [{"id": "cb", "type": "callback", "next": "tone"},
                              {"id": "tone", "type": "disa"}]},
    }
    config = Config.model_validate(base)
    assert config.dids[0].number == "+48221234567"
    assert isinstance(config.flows["roaming"], Flow)
    with pytest.raises(ValueError, match=r"dids\[0\]\.trunk: trunk 'carier' is not defined"):
        Config.model_validate({**base, "dids": [
            {"number": "221234567", "trunk": "carier", "flow": "roaming"}]})
    with pytest.raises(ValueError, match=r"flows\.roaming\[0\]\.next: 'tones' is not a node"):
        Config.model_validate({**base, "flows": {"roaming": [
            {"id": "cb", "type": "callback", "next": "tones"}, {"id": "tone", "type": "disa"}]}})


# -- validate_flow, rule by rule ---------------------------------------------------


def params_model(node_type: str) -> type[ComponentParams]:
    # Component.type shadows the builtin in the class body: mypy misreads Params
    return cast("type[ComponentParams]", COMPONENTS[node_type].Params)


def node(node_type: str, node_id: str, **params: Any) -> FlowNode:
    model = params_model(node_type).model_validate({"id": node_id, "type": node_type, **params})
    return flow_node(model)


def flow(*nodes: FlowNode) -> Flow:
    return Flow(name="f", nodes=nodes)


def texts(problems: list[tuple[tuple[int | str, ...], str]]) -> list[str]:
    return [text for _, text in problems]


SPEC_FLOW = flow(node("callback", "cb", next="tone"), node("disa", "tone"))


def test_the_spec_flow_has_no_problem() -> None:
    assert validate_flow(SPEC_FLOW, ("flows", "roaming")) == []


def test_an_empty_flow_is_refused() -> None:
    assert validate_flow(flow(), ("flows", "f")) == [
        (("flows", "f"), "flow f has no nodes; list at least one, e.g. - {id: tone, type: disa}")]
    assert validate_flow(flow(node("hangup", "bye")), ()) == []


def test_node_ids_are_unique() -> None:
    problems = validate_flow(flow(node("disa", "tone"), node("hangup", "tone")), ("p",))
    assert problems == [(("p", 1, "id"), "node id 'tone' is already used by p[0]; give each "
                                         "node its own id")]


def test_a_branch_names_a_node_of_the_flow() -> None:
    bad = flow(node("callback", "cb", next={"busy": "sory", "_": "tone"}),
               node("disa", "tone"), node("hangup", "sorry"))
    problems = validate_flow(bad, ())
    assert problems[0] == ((0, "next", "busy"), "'sory' is not a node of flow f; did you mean "
                                                "'sorry'? its nodes are cb, tone, sorry")
    good = flow(node("callback", "cb", next={"busy": "sorry", "_": "tone"}),
                node("disa", "tone"), node("hangup", "sorry"))
    assert validate_flow(good, ()) == []


def test_a_branch_outcome_is_one_the_component_declares() -> None:
    bad = flow(node("callback", "cb", next={"bussy": "tone"}), node("disa", "tone"))
    ((loc, text),) = validate_flow(bad, ())
    assert loc == (0, "next", "bussy")
    assert text.startswith("'bussy' is not an outcome of callback; did you mean 'busy'? its "
                           "outcomes are answered, busy, no_answer, failed, not_confirmed, "
                           "or _ for any other")
    for outcome in (*COMPONENTS["callback"].outcomes, "_"):
        good = flow(node("callback", "cb", next={outcome: "tone"}), node("disa", "tone"))
        assert validate_flow(good, ()) == [], outcome


def test_a_menu_key_is_an_outcome_of_the_menu() -> None:
    menu = node("menu", "m", tone="dial", choices={"1": "tone"},
                next={"1": "tone", "timeout": "bye", "7": "bye"})
    problems = validate_flow(flow(menu, node("disa", "tone"), node("hangup", "bye")), ())
    assert [loc for loc, _ in problems] == [(0, "next", "7")]
    assert "its outcomes are timeout, invalid and its choice keys" in problems[0][1]
    contradiction = node("menu", "m", tone="dial", choices={"1": "tone"},
                         next={"1": "bye", "timeout": "bye"})
    problems = validate_flow(flow(contradiction, node("disa", "tone"), node("hangup", "bye")),
                             ())
    assert texts(problems) == ["key '1' is also a choice (going to 'tone'); give each key "
                               "once, in choices"]


def test_a_node_that_needs_next_has_one() -> None:
    bad = flow(node("callback", "cb", next="hello"), node("play", "hello", tone="ringback"))
    assert validate_flow(bad, ()) == [
        ((1, "next"), "is required: a play node names the node that follows it, "
                      "e.g. next: tone")]
    # disa and hangup may end the call; a menu's choices count as branches
    good = flow(node("callback", "cb", next="m"),
                node("menu", "m", tone="dial", choices={"1": "tone", "2": "bye"}),
                node("disa", "tone"), node("hangup", "bye"))
    assert validate_flow(good, ()) == []


def test_a_hangup_takes_no_next() -> None:
    bad = flow(node("disa", "tone", next="bye"), node("hangup", "bye", next="tone"))
    assert validate_flow(bad, ()) == [
        ((1, "next"), "a hangup node ends the call, so its next is never followed; "
                      "remove next")]


def test_every_node_is_reachable_from_the_entry() -> None:
    bad = flow(node("callback", "cb", next="tone"), node("disa", "tone"),
               node("hangup", "bye"), node("play", "sorry", tone="busy", next="bye"))
    problems = validate_flow(bad, ("flows", "f"))
    assert [loc for loc, _ in problems] == [("flows", "f", 2), ("flows", "f", 3)]
    assert problems[0][1].startswith("node 'bye' is never reached from the entry node 'cb'")
    good = flow(node("callback", "cb", next={"busy": "sorry", "_": "tone"}),
                node("disa", "tone"), node("hangup", "bye"),
                node("play", "sorry", tone="busy", next="bye"))
    assert validate_flow(good, ()) == []


def test_a_loop_without_input_is_refused() -> None:
    bad = flow(node("callback", "cb", next="a"), node("play", "a", tone="busy", next="b"),
               node("play", "b", tone="busy", next={"done": "a"}))
    ((loc, text),) = validate_flow(bad, ())
    assert loc == (1,)
    assert text.startswith("nodes a -> b -> a loop without collecting input")
    assert "(disa, menu)" in text
    itself = flow(node("play", "a", tone="busy", next="a"))
    assert texts(validate_flow(itself, ()))[0].startswith("nodes a -> a loop")
    # a dial that loops back to itself on busy is a loop without input too
    redial = flow(node("dial", "d", target="extension", extension="101", next={"busy": "d"}))
    assert texts(validate_flow(redial, ()))[0].startswith("nodes d -> d loop")


def test_a_loop_through_a_node_that_collects_input_is_allowed() -> None:
    through_menu = flow(node("menu", "m", tone="dial", choices={"1": "again"}),
                        node("play", "again", tone="ringback", next="m"))
    assert validate_flow(through_menu, ()) == []
    through_disa = flow(node("callback", "cb", next="tone"),
                        node("disa", "tone", next={"timeout": "sorry"}),
                        node("play", "sorry", tone="congestion", next="tone"))
    assert validate_flow(through_disa, ()) == []


def test_callback_is_only_the_entry_and_never_a_branch_target() -> None:
    late = flow(node("disa", "tone", next={"ended": "cb"}), node("callback", "cb", next="tone"))
    ((loc, text),) = validate_flow(late, ())
    assert loc == (1, "type")
    assert text.startswith("callback can only be the entry node")
    back = flow(node("callback", "cb", next="tone"), node("disa", "tone", next={"timeout": "cb"}))
    assert validate_flow(back, ()) == [
        ((1, "next", "timeout"), "goes back to the callback node 'cb', which runs only when "
                                 "the trigger call arrives; name another node")]
    # said once, not again as a loop without input
    quiet = flow(node("callback", "cb", next="p"), node("play", "p", tone="busy", next="cb"))
    assert [loc for loc, _ in validate_flow(quiet, ())] == [(1, "next")]


def test_branches_of_a_node_built_in_python_are_checked_too() -> None:
    params = params_model("play").model_validate({"id": "p", "type": "play", "tone": "busy"})
    odd = FlowNode(id="p", type="play", params=params, branches={"_": "nowhere"})
    ((loc, text),) = validate_flow(flow(odd), ())
    assert loc == (0, "next") and text.startswith("'nowhere' is not a node of flow f")


# -- the documentation ------------------------------------------------------------


def _docs_section(component: str) -> str:
    text = DOCS.read_text()
    start = text.index(f"### `{component}`\n")
    end = min((i for i in (text.find("\n### ", start + 1), text.find("\n## ", start + 1))
               if i != -1), default=len(text))
    return text[start:end]


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_every_component_parameter_outcome_and_help_is_documented(component: str) -> None:
    section = _docs_section(component)
    cls = COMPONENTS[component]
    common = {"id", "type", "next"}  # documented once, above the components
    missing = [f for f in params_model(component).model_fields if f not in common
               and f"| `{f}` |" not in section]
    assert not missing, f"docs/CONFIG.md ### `{component}` lacks rows for {missing}"
    assert all(f"`{outcome}`" in section for outcome in cls.outcomes)
    assert " ".join(cls.help.split()) in " ".join(section.split())


def test_every_new_section_is_documented() -> None:
    text = DOCS.read_text()
    for heading in ("## `dids`", "## `flows`", "### How `next` works", "## `records`",
                    "## `service`", "`licence_public_key`"):
        assert heading in text
    for key in ("max_minutes_per_day", "callback_hours", "timezone", "rate_table",
                "roaming_rates", "metrics_listen", "poll_interval_s", "lease_s",
                "drain_grace_s", "node_id", "currency"):
        assert f"| `{key}` |" in text, key
