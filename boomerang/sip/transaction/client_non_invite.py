"""The non-INVITE client transaction: RFC 3261 §17.1.2.

::

                           |Request from TU
                           |send request
       Timer E             V
       send request  +-----------+
           +---------|           |-------------------+
           |         |  Trying   |  Timer F          |
           +-------->|           |  or Transport Err.|
                     +-----------+  inform TU        |
        200-699         |  |                         |
        resp. to TU     |  |1xx                      |
        +---------------+  |resp. to TU              |
        |                  |                         |
        |   Timer E        V       Timer F           |
        |   send req +-----------+ or Transport Err. |
        |  +---------|           | inform TU         |
        |  |         |Proceeding |------------------>|
        |  +-------->|           |-----+             |
        |            +-----------+     |1xx          |
        |              |      ^        |resp to TU   |
        | 200-699      |      +--------+             |
        | resp. to TU  |                             |
        |              |                             |
        |              V                             |
        |            +-----------+                   |
        |            |           |                   |
        |            | Completed |                   |
        |            |           |                   |
        |            +-----------+                   |
        |              ^   |                         |
        |              |   | Timer K                 |
        +--------------+   | (0 s if reliable)       |
                           V                         |
                     Terminated <--------------------+

Timer E starts at T1 and doubles up to T2 in Trying; in Proceeding it is
reset to T2 each time. Responses in Completed are absorbed.
"""

from __future__ import annotations

from types import MappingProxyType

from .machine import Action, Input, Machine, State, Transitions

A = Action
_FINAL = (A.STOP_RETRANSMISSIONS, A.START_K, A.PASS_RESPONSE)
TRANSITIONS: Transitions = MappingProxyType({
    # Trying
    (State.TRYING, Input.TIMER_E): ((A.SEND_REQUEST, A.DOUBLE_E), State.TRYING),
    (State.TRYING, Input.TIMER_F): ((A.REPORT_TIMEOUT,), State.TERMINATED),
    (State.TRYING, Input.TRANSPORT_ERROR): ((A.REPORT_TRANSPORT_ERROR,), State.TERMINATED),
    (State.TRYING, Input.PROVISIONAL_RECEIVED): ((A.PASS_RESPONSE,), State.PROCEEDING),
    (State.TRYING, Input.SUCCESS_RECEIVED): (_FINAL, State.COMPLETED),
    (State.TRYING, Input.FAILURE_RECEIVED): (_FINAL, State.COMPLETED),
    # Proceeding
    (State.PROCEEDING, Input.TIMER_E): ((A.SEND_REQUEST, A.RESET_E), State.PROCEEDING),
    (State.PROCEEDING, Input.TIMER_F): ((A.REPORT_TIMEOUT,), State.TERMINATED),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): ((A.REPORT_TRANSPORT_ERROR,), State.TERMINATED),
    (State.PROCEEDING, Input.PROVISIONAL_RECEIVED): ((A.PASS_RESPONSE,), State.PROCEEDING),
    (State.PROCEEDING, Input.SUCCESS_RECEIVED): (_FINAL, State.COMPLETED),
    (State.PROCEEDING, Input.FAILURE_RECEIVED): (_FINAL, State.COMPLETED),
    # Completed: retransmitted responses are absorbed
    (State.COMPLETED, Input.PROVISIONAL_RECEIVED): ((), State.COMPLETED),
    (State.COMPLETED, Input.SUCCESS_RECEIVED): ((), State.COMPLETED),
    (State.COMPLETED, Input.FAILURE_RECEIVED): ((), State.COMPLETED),
    (State.COMPLETED, Input.TIMER_K): ((), State.TERMINATED),
})
del A, _FINAL

CLIENT_NON_INVITE = Machine(
    name="non-INVITE client",
    invite=False,
    client=True,
    initial_state=State.TRYING,
    initial_actions=(Action.START_E, Action.START_F, Action.SEND_REQUEST),
    transitions=TRANSITIONS,
)

__all__ = ["CLIENT_NON_INVITE"]
