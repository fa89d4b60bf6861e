"""The non-INVITE server transaction: RFC 3261 §17.2.2.

::

                              |Request received
                              |pass to TU
                              V
                        +-----------+
                        |           |
                        | Trying    |-------------+
                        |           |             |
                        +-----------+             |200-699 from TU
                              |                   |send response
                              |1xx from TU        |
                              |send response      |
                              |                   |
           Request            V      1xx from TU  |
           send response+-----------+send response|
               +--------|           |--------+    |
               |        | Proceeding|        |    |
               +------->|           |<-------+    |
        +<--------------|           |             |
        |Trnsprt Err    +-----------+             |
        |Inform TU            |                   |
        |                     |                   |
        |                     |200-699 from TU    |
        |                     |send response      |
        |  Request            V                   |
        |  send response+-----------+             |
        |      +--------|           |             |
        |      |        | Completed |<------------+
        |      +------->|           |
        +<--------------|           |
        |Trnsprt Err    +-----------+
        |Inform TU            |
        |                     |Timer J fires (0 s if reliable)
        |                     |-
        |                     |
        |                     V
        +-----------------> Terminated

Retransmissions in Trying are absorbed (there is no response to resend);
responses from the TU in Completed are discarded (§17.2.2).
"""

from __future__ import annotations

from types import MappingProxyType

from .machine import Action, Input, Machine, State, Transitions

A = Action
_FINAL = ((A.START_J, A.SEND_RESPONSE), State.COMPLETED)
TRANSITIONS: Transitions = MappingProxyType({
    # Trying
    (State.TRYING, Input.REQUEST_RECEIVED): ((), State.TRYING),
    (State.TRYING, Input.PROVISIONAL_SENT): ((A.SEND_RESPONSE,), State.PROCEEDING),
    (State.TRYING, Input.SUCCESS_SENT): _FINAL,
    (State.TRYING, Input.FAILURE_SENT): _FINAL,
    # Proceeding
    (State.PROCEEDING, Input.REQUEST_RECEIVED): ((A.RESEND_RESPONSE,), State.PROCEEDING),
    (State.PROCEEDING, Input.PROVISIONAL_SENT): ((A.SEND_RESPONSE,), State.PROCEEDING),
    (State.PROCEEDING, Input.SUCCESS_SENT): _FINAL,
    (State.PROCEEDING, Input.FAILURE_SENT): _FINAL,
    (State.PROCEEDING, Input.TRANSPORT_ERROR): ((A.REPORT_TRANSPORT_ERROR,), State.TERMINATED),
    # Completed
    (State.COMPLETED, Input.REQUEST_RECEIVED): ((A.RESEND_RESPONSE,), State.COMPLETED),
    (State.COMPLETED, Input.PROVISIONAL_SENT): ((), State.COMPLETED),
    (State.COMPLETED, Input.SUCCESS_SENT): ((), State.COMPLETED),
    (State.COMPLETED, Input.FAILURE_SENT): ((), State.COMPLETED),
    (State.COMPLETED, Input.TRANSPORT_ERROR): ((A.REPORT_TRANSPORT_ERROR,), State.TERMINATED),
    (State.COMPLETED, Input.TIMER_J): ((), State.TERMINATED),
})
del A, _FINAL

SERVER_NON_INVITE = Machine(
    name="non-INVITE server",
    invite=False,
    client=False,
    initial_state=State.TRYING,
    initial_actions=(Action.PASS_REQUEST,),
    transitions=TRANSITIONS,
)

__all__ = ["SERVER_NON_INVITE"]
