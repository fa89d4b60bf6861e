"""The two leg machines, as tables (like tests/sip/test_transaction_machines.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boomerang.call.leg import Action, CallLeg, LegInput, LegMachine, LegState
from boomerang.call.uac_leg import UAC_MACHINE, UacLeg
from boomerang.call.uas_leg import UAS_MACHINE, UasLeg
from boomerang.sip.errors import ProtocolError

MACHINES = {UAC_MACHINE: UacLeg, UAS_MACHINE: UasLeg}


@pytest.mark.parametrize("machine", list(MACHINES), ids=lambda m: m.name)
@given(state=st.sampled_from(LegState), event=st.sampled_from(LegInput))
def test_every_pair_moves_to_a_legal_state_or_raises(
    machine: LegMachine, state: LegState, event: LegInput
) -> None:
    try:
        actions, next_state = machine.transition(state, event)
    except ProtocolError as error:
        assert (state, event) not in machine.transitions
        assert error.status == 500
    else:
        assert next_state in machine.states
        assert all(isinstance(action, Action) for action in actions)


@pytest.mark.parametrize(("machine", "leg_class"), list(MACHINES.items()),
                         ids=lambda m: getattr(m, "name", ""))
def test_every_action_of_a_table_has_a_handler(machine: LegMachine,
                                               leg_class: type[CallLeg]) -> None:
    for actions, _ in machine.transitions.values():
        for action in actions:
            assert callable(getattr(leg_class, "_do_" + action.value, None)), action


@pytest.mark.parametrize("machine", list(MACHINES), ids=lambda m: m.name)
def test_every_state_is_reachable_and_ended_is_reached(machine: LegMachine) -> None:
    reached = {machine.initial_state}
    frontier = [machine.initial_state]
    while frontier:
        state = frontier.pop()
        for (from_state, _), (_, to_state) in machine.transitions.items():
            if from_state is state and to_state not in reached:
                reached.add(to_state)
                frontier.append(to_state)
    assert reached == machine.states
    assert LegState.ENDED in reached


@pytest.mark.parametrize("machine", list(MACHINES), ids=lambda m: m.name)
def test_ended_never_leaves_and_never_reports_twice(machine: LegMachine) -> None:
    for (state, _), (actions, next_state) in machine.transitions.items():
        if state is LegState.ENDED:
            assert next_state is LegState.ENDED
            assert Action.REPORT_END not in actions


@pytest.mark.parametrize("machine", list(MACHINES), ids=lambda m: m.name)
def test_network_and_timer_inputs_never_raise_once_the_call_is_up(
    machine: LegMachine
) -> None:
    network = (LegInput.BYE_RECEIVED, LegInput.REINVITE_RECEIVED, LegInput.REQUEST_RECEIVED,
               LegInput.ACK_RECEIVED, LegInput.ACK_TIMER_FIRED)
    for state in (LegState.CONFIRMED, LegState.ENDING, LegState.ENDED):
        for event in network:
            machine.transition(state, event)


def test_user_calls_on_an_ended_call_are_no_ops_or_errors_as_documented() -> None:
    assert UAS_MACHINE.transition(LegState.ENDED, LegInput.HANGUP_CALLED) == (
        (), LegState.ENDED)
    assert UAS_MACHINE.transition(LegState.ENDED, LegInput.REJECT_CALLED) == (
        (), LegState.ENDED)
    with pytest.raises(ProtocolError):
        UAS_MACHINE.transition(LegState.ENDED, LegInput.ANSWER_CALLED)
    with pytest.raises(ProtocolError):
        UAC_MACHINE.transition(LegState.ENDED, LegInput.REINVITE_CALLED)
