"""What the four RFC 3261 §17 transaction machines are made of.

Each machine (client_invite.py, client_non_invite.py, server_invite.py,
server_non_invite.py) is a table mapping ``(State, Input)`` to
``(actions, next State)``, in the style of h2's stream.py and h11's
_state.py. The rules, once for all four tables:

- A pair missing from a table is an input the RFC does not allow in that
  state: ``Machine.transition`` raises ProtocolError.
- Inputs the network can produce at any time (late, duplicated or reordered
  messages) have explicit entries, most of them "absorb": no action.
- Actions are instructions for the layer (layer.py), which owns the bytes,
  the timers and the events; the machines are pure data.
- Timers are named as in the RFC (A..K, and L, M of RFC 6026). A
  transaction has at most two armed at once: one retransmission timer
  (A, E or G) and one other (B, D, F, H, I, J, K, L or M). Starting one of
  the second kind replaces the previous one.
- On reliable transports the layer never arms A, E or G, and D, I, J and K
  last zero seconds (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ProtocolError


class State(enum.Enum):
    """The RFC's state names."""

    # members are singletons: identity hashing (C) instead of Enum's hash of the name
    __hash__ = object.__hash__

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    """What can happen to a transaction."""

    # members are singletons: identity hashing (C) instead of Enum's hash of the name
    __hash__ = object.__hash__

    # responses received (client side)
    PROVISIONAL_RECEIVED = "1xx received"
    SUCCESS_RECEIVED = "2xx received"
    FAILURE_RECEIVED = "300-699 received"
    # requests received (server side)
    REQUEST_RECEIVED = "request retransmission received"
    ACK_RECEIVED = "ACK received"
    # responses from the TU (server side)
    PROVISIONAL_SENT = "1xx from TU"
    SUCCESS_SENT = "2xx from TU"
    FAILURE_SENT = "300-699 from TU"
    # timers
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TRANSPORT_ERROR = "transport error"

    @property
    def timer_name(self) -> str:
        """``"A"`` for TIMER_A...; '' for inputs that are not timers."""
        return self.name[6:] if self.name.startswith("TIMER_") else ""


class Action(enum.Enum):
    """Instructions to the layer, carried out in table order."""

    # members are singletons: identity hashing (C) instead of Enum's hash of the name
    __hash__ = object.__hash__

    SEND_REQUEST = "send (or resend) the request"
    SEND_ACK = "send (or resend) the ACK for the non-2xx final response"
    SEND_RESPONSE = "send the TU's response and keep it as the last response"
    RESEND_RESPONSE = "resend the last response, if any"
    PASS_REQUEST = "pass the request up to the TU"
    PASS_RESPONSE = "pass the response up to the TU"
    PASS_ACK = "pass the ACK up to the TU, outside any transaction"
    REPORT_TIMEOUT = "tell the TU the transaction timed out"
    REPORT_TRANSPORT_ERROR = "tell the TU the transport failed"
    # retransmission timers: start at T1, double (capped at T2 but for A),
    # reset to T2, stop
    START_A = "start Timer A at T1"
    DOUBLE_A = "restart Timer A at twice its last interval"
    START_E = "start Timer E at T1"
    DOUBLE_E = "restart Timer E at min(2 x interval, T2)"
    RESET_E = "restart Timer E at T2"
    START_G = "start Timer G at T1"
    DOUBLE_G = "restart Timer G at min(2 x interval, T2)"
    STOP_RETRANSMISSIONS = "stop Timer A, E or G"
    # the other timers
    START_B = "start Timer B: 64*T1"
    START_D = "start Timer D: 32 s, 0 on reliable transports"
    START_F = "start Timer F: 64*T1"
    START_H = "start Timer H: 64*T1"
    START_I = "start Timer I: T4, 0 on reliable transports"
    START_J = "start Timer J: 64*T1, 0 on reliable transports"
    START_K = "start Timer K: T4, 0 on reliable transports"
    START_L = "start Timer L: 64*T1"
    START_M = "start Timer M: 64*T1"
    STOP_TIMEOUT = "stop Timer B, F or H"


Actions = tuple[Action, ...]
Transitions = Mapping[tuple[State, Input], tuple[Actions, State]]


@dataclass(frozen=True, slots=True, eq=False)
class Machine:
    """One transaction machine: its initial state and actions, and its table."""

    name: str
    invite: bool
    client: bool
    initial_state: State
    initial_actions: Actions
    transitions: Transitions

    @property
    def states(self) -> frozenset[State]:
        """Every state the machine can be in."""
        out = {self.initial_state, State.TERMINATED}
        for (state, _), (_, next_state) in self.transitions.items():
            out.add(state)
            out.add(next_state)
        return frozenset(out)

    def transition(self, state: State, event: Input) -> tuple[Actions, State]:
        """``(actions, next state)`` for ``event`` in ``state``."""
        try:
            return self.transitions[state, event]
        except KeyError:
            raise ProtocolError(
                f"{self.name} transaction in state {state.value} cannot take {event.value}"
            ) from None


__all__ = ["Action", "Actions", "Input", "Machine", "State", "Transitions"]
