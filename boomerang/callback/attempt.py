"""What one callback attempt came to: the language between the scheduler
(which retries and finishes jobs) and the flow runner (which places calls).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class AttemptOutcome(StrEnum):
    ANSWERED = "answered"            # the callback leg answered (and confirmed): job done
    BUSY = "busy"                    # retried
    NO_ANSWER = "no_answer"          # retried (answer_timeout, 408, 480)
    FAILED = "failed"                # retried (5xx, trunk down, no media port...)
    NOT_CONFIRMED = "not_confirmed"  # answered but the confirm key never came: retried
    REFUSED = "refused"              # not allowed any more (licence, permissions): no retry


RETRIED = frozenset({AttemptOutcome.BUSY, AttemptOutcome.NO_ANSWER, AttemptOutcome.FAILED,
                     AttemptOutcome.NOT_CONFIRMED})


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptResult:
    """``story``: when answered, the task running the rest of the flow (the
    scheduler does not wait for it). ``detail`` is for logs and the job's
    ``last_result`` (e.g. "busy 486", "no_answer 45 s")."""

    outcome: AttemptOutcome
    detail: str = ""
    sip_status: int | None = None
    q850_cause: int | None = None
    story: asyncio.Task[Any] | None = None

    @property
    def retry(self) -> bool:
        return self.outcome in RETRIED


__all__ = ["RETRIED", "AttemptOutcome", "AttemptResult"]
