"""The four RFC 3261 §17 transaction machines, as tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boomerang.sip.errors import ProtocolError
from boomerang.sip.transaction.client_invite import CLIENT_INVITE
from boomerang.sip.transaction.client_non_invite import CLIENT_NON_INVITE
from boomerang.sip.transaction.machine import Action, Input, Machine, State
from boomerang.sip.transaction.server_invite import SERVER_INVITE
from boomerang.sip.transaction.server_non_invite import SERVER_NON_INVITE

MACHINES = [CLIENT_INVITE, CLIENT_NON_INVITE, SERVER_INVITE, SERVER_NON_INVITE]
A = Action


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
@given(state=st.sampled_from(State), event=st.sampled_from(Input))
def test_every_pair_moves_to_a_legal_state_or_raises(
    machine: Machine, state: State, event: Input
) -> None:
    try:
        actions, next_state = machine.transition(state, event)
    except ProtocolError as error:
        assert (state, event) not in machine.transitions
        assert error.status == 500
    else:
        assert next_state in machine.states
        assert all(isinstance(action, Action) for action in actions)


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_terminated_takes_no_input(machine: Machine) -> None:
    for event in Input:
        with pytest.raises(ProtocolError):
            machine.transition(State.TERMINATED, event)


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_every_state_is_reachable_from_the_initial_one(machine: Machine) -> None:
    reached = {machine.initial_state}
    frontier = [machine.initial_state]
    while frontier:
        state = frontier.pop()
        for (from_state, _), (_, to_state) in machine.transitions.items():
            if from_state is state and to_state not in reached:
                reached.add(to_state)
                frontier.append(to_state)
    assert reached == machine.states


def test_machine_states_use_the_rfc_names() -> None:
    assert CLIENT_INVITE.states == {State.CALLING, State.PROCEEDING, State.COMPLETED,
                                    State.ACCEPTED, State.TERMINATED}
    assert CLIENT_NON_INVITE.states == {State.TRYING, State.PROCEEDING, State.COMPLETED,
                                        State.TERMINATED}
    assert SERVER_INVITE.states == {State.PROCEEDING, State.COMPLETED, State.CONFIRMED,
                                    State.ACCEPTED, State.TERMINATED}
    assert SERVER_NON_INVITE.states == {State.TRYING, State.PROCEEDING, State.COMPLETED,
                                        State.TERMINATED}
    assert State.CALLING.value == "Calling" and Input.TIMER_A.timer_name == "A"


# -- INVITE client, RFC 3261 §17.1.1 / RFC 6026 §7.2 -----------------------------


def test_client_invite_starts_calling_with_a_b_and_the_request() -> None:
    assert CLIENT_INVITE.initial_state is State.CALLING
    assert set(CLIENT_INVITE.initial_actions) == {A.START_A, A.START_B, A.SEND_REQUEST}


@pytest.mark.parametrize(
    ("state", "event", "actions", "next_state"),
    [
        (State.CALLING, Input.TIMER_A, {A.SEND_REQUEST, A.DOUBLE_A}, State.CALLING),
        (State.CALLING, Input.TIMER_B, {A.REPORT_TIMEOUT}, State.TERMINATED),
        (State.CALLING, Input.TRANSPORT_ERROR, {A.REPORT_TRANSPORT_ERROR}, State.TERMINATED),
        (State.CALLING, Input.PROVISIONAL_RECEIVED,
         {A.STOP_RETRANSMISSIONS, A.STOP_TIMEOUT, A.PASS_RESPONSE}, State.PROCEEDING),
        (State.CALLING, Input.SUCCESS_RECEIVED,
         {A.STOP_RETRANSMISSIONS, A.START_M, A.PASS_RESPONSE}, State.ACCEPTED),
        (State.CALLING, Input.FAILURE_RECEIVED,
         {A.STOP_RETRANSMISSIONS, A.START_D, A.SEND_ACK, A.PASS_RESPONSE}, State.COMPLETED),
        (State.PROCEEDING, Input.PROVISIONAL_RECEIVED, {A.PASS_RESPONSE}, State.PROCEEDING),
        (State.PROCEEDING, Input.SUCCESS_RECEIVED, {A.START_M, A.PASS_RESPONSE}, State.ACCEPTED),
        (State.PROCEEDING, Input.FAILURE_RECEIVED,
         {A.START_D, A.SEND_ACK, A.PASS_RESPONSE}, State.COMPLETED),
        (State.COMPLETED, Input.FAILURE_RECEIVED, {A.SEND_ACK}, State.COMPLETED),
        (State.COMPLETED, Input.TIMER_D, set(), State.TERMINATED),
        (State.COMPLETED, Input.TRANSPORT_ERROR, {A.REPORT_TRANSPORT_ERROR}, State.TERMINATED),
        (State.ACCEPTED, Input.SUCCESS_RECEIVED, {A.PASS_RESPONSE}, State.ACCEPTED),
        (State.ACCEPTED, Input.FAILURE_RECEIVED, set(), State.ACCEPTED),
        (State.ACCEPTED, Input.TIMER_M, set(), State.TERMINATED),
    ],
)
def test_client_invite_transitions(
    state: State, event: Input, actions: set[Action], next_state: State
) -> None:
    got_actions, got_state = CLIENT_INVITE.transition(state, event)
    assert (set(got_actions), got_state) == (actions, next_state)


def test_client_invite_timer_b_only_acts_in_calling() -> None:
    for state in (State.PROCEEDING, State.COMPLETED, State.ACCEPTED):
        with pytest.raises(ProtocolError):
            CLIENT_INVITE.transition(state, Input.TIMER_B)


# -- non-INVITE client, RFC 3261 §17.1.2 ------------------------------------------


@pytest.mark.parametrize(
    ("state", "event", "actions", "next_state"),
    [
        (State.TRYING, Input.TIMER_E, {A.SEND_REQUEST, A.DOUBLE_E}, State.TRYING),
        (State.TRYING, Input.TIMER_F, {A.REPORT_TIMEOUT}, State.TERMINATED),
        (State.TRYING, Input.TRANSPORT_ERROR, {A.REPORT_TRANSPORT_ERROR}, State.TERMINATED),
        (State.TRYING, Input.PROVISIONAL_RECEIVED, {A.PASS_RESPONSE}, State.PROCEEDING),
        (State.TRYING, Input.SUCCESS_RECEIVED,
         {A.STOP_RETRANSMISSIONS, A.START_K, A.PASS_RESPONSE}, State.COMPLETED),
        (State.TRYING, Input.FAILURE_RECEIVED,
         {A.STOP_RETRANSMISSIONS, A.START_K, A.PASS_RESPONSE}, State.COMPLETED),
        (State.PROCEEDING, Input.TIMER_E, {A.SEND_REQUEST, A.RESET_E}, State.PROCEEDING),
        (State.PROCEEDING, Input.TIMER_F, {A.REPORT_TIMEOUT}, State.TERMINATED),
        (State.PROCEEDING, Input.PROVISIONAL_RECEIVED, {A.PASS_RESPONSE}, State.PROCEEDING),
        (State.PROCEEDING, Input.FAILURE_RECEIVED,
         {A.STOP_RETRANSMISSIONS, A.START_K, A.PASS_RESPONSE}, State.COMPLETED),
        (State.COMPLETED, Input.SUCCESS_RECEIVED, set(), State.COMPLETED),
        (State.COMPLETED, Input.TIMER_K, set(), State.TERMINATED),
    ],
)
def test_client_non_invite_transitions(
    state: State, event: Input, actions: set[Action], next_state: State
) -> None:
    got_actions, got_state = CLIENT_NON_INVITE.transition(state, event)
    assert (set(got_actions), got_state) == (actions, next_state)


# -- INVITE server, RFC 3261 §17.2.1 / RFC 6026 §7.1 -------------------------------


@pytest.mark.parametrize(
    ("state", "event", "actions", "next_state"),
    [
        (State.PROCEEDING, Input.REQUEST_RECEIVED, {A.RESEND_RESPONSE}, State.PROCEEDING),
        (State.PROCEEDING, Input.PROVISIONAL_SENT, {A.SEND_RESPONSE}, State.PROCEEDING),
        (State.PROCEEDING, Input.SUCCESS_SENT, {A.START_L, A.SEND_RESPONSE}, State.ACCEPTED),
        (State.PROCEEDING, Input.FAILURE_SENT,
         {A.START_G, A.START_H, A.SEND_RESPONSE}, State.COMPLETED),
        (State.PROCEEDING, Input.TRANSPORT_ERROR, {A.REPORT_TRANSPORT_ERROR}, State.TERMINATED),
        (State.COMPLETED, Input.REQUEST_RECEIVED, {A.RESEND_RESPONSE}, State.COMPLETED),
        (State.COMPLETED, Input.TIMER_G, {A.RESEND_RESPONSE, A.DOUBLE_G}, State.COMPLETED),
        (State.COMPLETED, Input.TIMER_H, {A.REPORT_TIMEOUT}, State.TERMINATED),
        (State.COMPLETED, Input.ACK_RECEIVED,
         {A.STOP_RETRANSMISSIONS, A.STOP_TIMEOUT, A.START_I}, State.CONFIRMED),
        (State.CONFIRMED, Input.ACK_RECEIVED, set(), State.CONFIRMED),
        (State.CONFIRMED, Input.TIMER_I, set(), State.TERMINATED),
        (State.ACCEPTED, Input.REQUEST_RECEIVED, set(), State.ACCEPTED),
        (State.ACCEPTED, Input.ACK_RECEIVED, {A.PASS_ACK}, State.ACCEPTED),
        (State.ACCEPTED, Input.SUCCESS_SENT, {A.SEND_RESPONSE}, State.ACCEPTED),
        (State.ACCEPTED, Input.TIMER_L, set(), State.TERMINATED),
    ],
)
def test_server_invite_transitions(
    state: State, event: Input, actions: set[Action], next_state: State
) -> None:
    got_actions, got_state = SERVER_INVITE.transition(state, event)
    assert (set(got_actions), got_state) == (actions, next_state)


def test_server_invite_refuses_a_non_2xx_after_a_2xx() -> None:
    with pytest.raises(ProtocolError):
        SERVER_INVITE.transition(State.ACCEPTED, Input.FAILURE_SENT)


# -- non-INVITE server, RFC 3261 §17.2.2 ------------------------------------------


@pytest.mark.parametrize(
    ("state", "event", "actions", "next_state"),
    [
        (State.TRYING, Input.REQUEST_RECEIVED, set(), State.TRYING),
        (State.TRYING, Input.PROVISIONAL_SENT, {A.SEND_RESPONSE}, State.PROCEEDING),
        (State.TRYING, Input.SUCCESS_SENT, {A.START_J, A.SEND_RESPONSE}, State.COMPLETED),
        (State.TRYING, Input.FAILURE_SENT, {A.START_J, A.SEND_RESPONSE}, State.COMPLETED),
        (State.PROCEEDING, Input.REQUEST_RECEIVED, {A.RESEND_RESPONSE}, State.PROCEEDING),
        (State.PROCEEDING, Input.FAILURE_SENT, {A.START_J, A.SEND_RESPONSE}, State.COMPLETED),
        (State.PROCEEDING, Input.TRANSPORT_ERROR, {A.REPORT_TRANSPORT_ERROR}, State.TERMINATED),
        (State.COMPLETED, Input.REQUEST_RECEIVED, {A.RESEND_RESPONSE}, State.COMPLETED),
        (State.COMPLETED, Input.FAILURE_SENT, set(), State.COMPLETED),
        (State.COMPLETED, Input.TRANSPORT_ERROR, {A.REPORT_TRANSPORT_ERROR}, State.TERMINATED),
        (State.COMPLETED, Input.TIMER_J, set(), State.TERMINATED),
    ],
)
def test_server_non_invite_transitions(
    state: State, event: Input, actions: set[Action], next_state: State
) -> None:
    got_actions, got_state = SERVER_NON_INVITE.transition(state, event)
    assert (set(got_actions), got_state) == (actions, next_state)


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_only_the_retransmitting_machines_use_retransmission_timers(machine: Machine) -> None:
    timers = {event.timer_name for (_, event) in machine.transitions if event.timer_name}
    expected = {
        CLIENT_INVITE: {"A", "B", "D", "M"},
        CLIENT_NON_INVITE: {"E", "F", "K"},
        SERVER_INVITE: {"G", "H", "I", "L"},
        SERVER_NON_INVITE: {"J"},
    }[machine]
    assert timers == expected
