"""The INVITE server transaction: RFC 3261 §17.2.1 with RFC 6026 §7.1.

::

                               |INVITE
                               |pass INV to TU
            INVITE             V send 100 if TU won't in 200 ms
            send response+-----------+
                +--------|           |--------+ 101-199 from TU
                |        |           |        | send response
                +------->|           |<-------+
                         | Proceeding|
                         |           |--------+ Transport Err.
                         |           |        | Inform TU
                         |           |<-------+
                         +-----------+
            300-699 from TU |     |2xx from TU
            send response   |     |send response, start L
             start G, H     |     +------------------>+
                            |                         |
            INVITE          V          Timer G fires  |
            send response+-----------+ send response  |
                +--------|           |--------+       |
                |        | Completed |        |       |
                +------->|           |<-------+       |
                         +-----------+                |
                            |     |                   |
                        ACK |     | Timer H fires     |
                        -   |     | or Transport Err. |
                 start I    |     | Inform TU         |
                            V     |                   |
                         +-----------+                |
                         | Confirmed |                |
                         +-----------+                |
                               | Timer I (0 s if reliable)
                               V                      V
                          Terminated <--------- Accepted (L):
                                         2xx from TU: send;
                                         INVITE: absorbed;
                                         ACK: passed to TU

The layer sends the 100 Trying itself when ``auto_trying`` is set.
Responses the TU passes once a final response was sent (Completed,
Confirmed) are discarded, as §17.2.2 says for non-INVITE.
"""

from __future__ import annotations

from types import MappingProxyType

from .machine import Action, Input, Machine, State, Transitions

A = Action
TRANSITIONS: Transitions = MappingProxyType({
    # Proceeding
    (State.PROCEEDING, Input.REQUEST_RECEIVED): ((A.RESEND_RESPONSE,), State.PROCEEDING),
    (State.PROCEEDING, Input.PROVISIONAL_SENT): ((A.SEND_RESPONSE,), State.PROCEEDING),
    (State.PROCEEDING, Input.SUCCESS_SENT): ((A.START_L, A.SEND_RESPONSE), State.ACCEPTED),
    (State.PROCEEDING, Input.FAILURE_SENT): (
        (A.START_G, A.START_H, A.SEND_RESPONSE), State.COMPLETED),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): ((A.REPORT_TRANSPORT_ERROR,), State.TERMINATED),
    # Completed
    (State.COMPLETED, Input.REQUEST_RECEIVED): ((A.RESEND_RESPONSE,), State.COMPLETED),
    (State.COMPLETED, Input.TIMER_G): ((A.RESEND_RESPONSE, A.DOUBLE_G), State.COMPLETED),
    (State.COMPLETED, Input.TIMER_H): ((A.REPORT_TIMEOUT,), State.TERMINATED),
    (State.COMPLETED, Input.TRANSPORT_ERROR): ((A.REPORT_TRANSPORT_ERROR,), State.TERMINATED),
    (State.COMPLETED, Input.ACK_RECEIVED): (
        (A.STOP_RETRANSMISSIONS, A.STOP_TIMEOUT, A.START_I), State.CONFIRMED),
    (State.COMPLETED, Input.PROVISIONAL_SENT): ((), State.COMPLETED),
    (State.COMPLETED, Input.SUCCESS_SENT): ((), State.COMPLETED),
    (State.COMPLETED, Input.FAILURE_SENT): ((), State.COMPLETED),
    # Confirmed: absorbs ACK and INVITE retransmissions
    (State.CONFIRMED, Input.ACK_RECEIVED): ((), State.CONFIRMED),
    (State.CONFIRMED, Input.REQUEST_RECEIVED): ((), State.CONFIRMED),
    (State.CONFIRMED, Input.PROVISIONAL_SENT): ((), State.CONFIRMED),
    (State.CONFIRMED, Input.SUCCESS_SENT): ((), State.CONFIRMED),
    (State.CONFIRMED, Input.FAILURE_SENT): ((), State.CONFIRMED),
    (State.CONFIRMED, Input.TIMER_I): ((), State.TERMINATED),
    # Accepted (RFC 6026 §7.1)
    (State.ACCEPTED, Input.REQUEST_RECEIVED): ((), State.ACCEPTED),
    (State.ACCEPTED, Input.ACK_RECEIVED): ((A.PASS_ACK,), State.ACCEPTED),
    (State.ACCEPTED, Input.SUCCESS_SENT): ((A.SEND_RESPONSE,), State.ACCEPTED),
    (State.ACCEPTED, Input.TIMER_L): ((), State.TERMINATED),
})
del A

SERVER_INVITE = Machine(
    name="INVITE server",
    invite=True,
    client=False,
    initial_state=State.PROCEEDING,
    initial_actions=(Action.PASS_REQUEST,),
    transitions=TRANSITIONS,
)

__all__ = ["SERVER_INVITE"]
