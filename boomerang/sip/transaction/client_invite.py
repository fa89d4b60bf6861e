"""The INVITE client transaction: RFC 3261 §17.1.1 with RFC 6026 §7.2.

::

                       |INVITE from TU
     Timer A fires     |INVITE sent
     Reset A,          V                      Timer B fires
     INVITE sent +-----------+                or Transport Err.
       +---------|           |---------------+inform TU
       |         |  Calling  |               |
       +-------->|           |-------------->|
                 +-----------+ 2xx           |
                    |  |       2xx to TU     |
                    |  |1xx    start M       |
    300-699         |  |1xx to TU            |
   ACK sent         |  |                     |
   start D          |  V                     |
   resp. to TU      |  +-----------+ 2xx     |
           +--------|  |           |----------->Accepted (M)
           |        |  |Proceeding |           2xx to TU, start M
           |        |  |           |<--+       |
           |        |  +-----------+   |1xx    |
           |        |     |     |      |to TU  |
           |        |     |     +------+       |
           |        |     |300-699             |
           V        V     |ACK sent, start D   |
    +-----------+         |resp. to TU         |
    | Completed |<--------+                    |
    +-----------+  300-699: ACK sent           |
           |Timer D fires (0 s if reliable)    |
           V                                   |
      Terminated <-----------------------------+

In Accepted, every 2xx is passed up (the TU re-ACKs it) until Timer M.
Timer B acts only in Calling (Proceeding waits for the final response).
Late 1xx/2xx in Completed and late 1xx/non-2xx in Accepted are absorbed.
"""

from __future__ import annotations

from types import MappingProxyType

from .machine import Action, Input, Machine, State, Transitions

A = Action
TRANSITIONS: Transitions = MappingProxyType({
    # Calling
    (State.CALLING, Input.TIMER_A): ((A.SEND_REQUEST, A.DOUBLE_A), State.CALLING),
    (State.CALLING, Input.TIMER_B): ((A.REPORT_TIMEOUT,), State.TERMINATED),
    (State.CALLING, Input.TRANSPORT_ERROR): ((A.REPORT_TRANSPORT_ERROR,), State.TERMINATED),
    (State.CALLING, Input.PROVISIONAL_RECEIVED): (
        (A.STOP_RETRANSMISSIONS, A.STOP_TIMEOUT, A.PASS_RESPONSE), State.PROCEEDING),
    (State.CALLING, Input.SUCCESS_RECEIVED): (
        (A.STOP_RETRANSMISSIONS, A.START_M, A.PASS_RESPONSE), State.ACCEPTED),
    (State.CALLING, Input.FAILURE_RECEIVED): (
        (A.STOP_RETRANSMISSIONS, A.START_D, A.SEND_ACK, A.PASS_RESPONSE), State.COMPLETED),
    # Proceeding
    (State.PROCEEDING, Input.PROVISIONAL_RECEIVED): ((A.PASS_RESPONSE,), State.PROCEEDING),
    (State.PROCEEDING, Input.SUCCESS_RECEIVED): ((A.START_M, A.PASS_RESPONSE), State.ACCEPTED),
    (State.PROCEEDING, Input.FAILURE_RECEIVED): (
        (A.START_D, A.SEND_ACK, A.PASS_RESPONSE), State.COMPLETED),
    # Completed: retransmitted finals are ACKed again, never passed up
    (State.COMPLETED, Input.FAILURE_RECEIVED): ((A.SEND_ACK,), State.COMPLETED),
    (State.COMPLETED, Input.PROVISIONAL_RECEIVED): ((), State.COMPLETED),
    (State.COMPLETED, Input.SUCCESS_RECEIVED): ((), State.COMPLETED),
    (State.COMPLETED, Input.TIMER_D): ((), State.TERMINATED),
    (State.COMPLETED, Input.TRANSPORT_ERROR): ((A.REPORT_TRANSPORT_ERROR,), State.TERMINATED),
    # Accepted (RFC 6026 §7.2)
    (State.ACCEPTED, Input.SUCCESS_RECEIVED): ((A.PASS_RESPONSE,), State.ACCEPTED),
    (State.ACCEPTED, Input.PROVISIONAL_RECEIVED): ((), State.ACCEPTED),
    (State.ACCEPTED, Input.FAILURE_RECEIVED): ((), State.ACCEPTED),
    (State.ACCEPTED, Input.TIMER_M): ((), State.TERMINATED),
})
del A

CLIENT_INVITE = Machine(
    name="INVITE client",
    invite=True,
    client=True,
    initial_state=State.CALLING,
    initial_actions=(Action.START_A, Action.START_B, Action.SEND_REQUEST),
    transitions=TRANSITIONS,
)

__all__ = ["CLIENT_INVITE"]
