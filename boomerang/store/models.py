"""Value types of the store: what goes in and what comes out of a repository.

Rows leave the store as frozen, slotted dataclasses, never as live ORM
objects: nothing lazy-loads behind the caller's back, and a job or a record
can be handed to another task or layer without a session attached.

Every timestamp is a timezone-aware datetime in UTC; the store refuses naive
datetimes (see ``tables.UtcDateTime``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    """Life of a callback job (see jobs.py for the transitions)."""

    PENDING = "pending"
    CLAIMED = "claimed"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


UNFINISHED_JOB_STATES = (JobState.PENDING, JobState.CLAIMED, JobState.RUNNING)
FINISHED_JOB_STATES = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class CallbackMethod(StrEnum):
    CALLER = "caller"
    NUMBER = "number"
    EXTENSION = "extension"


class LegKind(StrEnum):
    TRIGGER = "trigger"
    CALLBACK = "callback"
    DESTINATION = "destination"
    INTERNAL = "internal"


class CallResult(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REFUSED = "refused"


# ----------------------------------------------------------- registrations


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """One binding of an extension to a contact (RFC 3261 §10, RFC 5626).

    ``binding_key`` identifies the binding: the ``+sip.instance`` and
    ``reg-id`` pair when the phone uses RFC 5626 outbound, else the contact
    URI. A REGISTER for an existing key replaces that binding.
    """

    extension: str
    contact_uri: str
    transport: str
    source_host: str
    source_port: int
    expires_at: datetime
    call_id: str
    cseq: int
    path: tuple[str, ...] = ()
    user_agent: str | None = None
    q: float | None = None
    instance_id: str | None = None
    reg_id: int | None = None
    updated_at: datetime | None = None

    @property
    def binding_key(self) -> str:
        return binding_key(self.contact_uri, self.instance_id, self.reg_id)


def binding_key(contact_uri: str, instance_id: str | None, reg_id: int | None) -> str:
    """What identifies a binding of an extension: the RFC 5626 instance and
    reg-id when the phone sends them, else the contact URI."""
    if instance_id is not None and reg_id is not None:
        return f"{instance_id};reg-id={reg_id}"
    return contact_uri


# ------------------------------------------------------------ call records


@dataclass(frozen=True, slots=True, kw_only=True)
class NewCallRecord:
    """A call leg as it starts; the rest is filled in as the call goes on."""

    correlation_id: str
    leg_kind: LegKind
    started_at: datetime
    owner_extension: str | None = None
    trunk: str | None = None
    trigger_did: str | None = None
    trigger_caller: str | None = None
    callback_target: str | None = None
    dialed_destination: str | None = None
    call_id: str | None = None
    attempts: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    id: int
    correlation_id: str
    leg_kind: LegKind
    owner_extension: str | None
    trunk: str | None
    trigger_did: str | None
    trigger_caller: str | None
    callback_target: str | None
    dialed_destination: str | None
    call_id: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    billable_s: float | None
    result: CallResult | None
    sip_status: int | None
    q850_cause: int | None
    attempts: int
    cost_estimate: float | None
    saving_estimate: float | None
    currency: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecordFilter:
    """What ``CallRecordRepository.query`` selects; None means any."""

    owner_extension: str | None = None
    since: datetime | None = None  # started_at >= since
    until: datetime | None = None  # started_at < until
    result: CallResult | None = None
    correlation_id: str | None = None
    leg_kind: LegKind | None = None
    limit: int | None = None
    offset: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtensionTotals:
    owner_extension: str
    legs: int
    answered_legs: int
    duration_s: float
    billable_s: float
    cost_estimate: float | None
    saving_estimate: float | None


# ---------------------------------------------------------- callback jobs


@dataclass(frozen=True, slots=True, kw_only=True)
class NewCallbackJob:
    """A callback to place; ``deduplication_key`` (e.g. the mobile's E.164
    number) makes a second unfinished job with the same key impossible."""

    correlation_id: str
    owner_extension: str
    target_number: str
    method: CallbackMethod
    due_at: datetime
    flow: str
    component_id: str
    trunk: str | None = None
    caller_id: str | None = None
    max_attempts: int = 3
    retry_interval_s: float = 30.0
    deduplication_key: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackJob:
    id: int
    correlation_id: str
    owner_extension: str
    target_number: str
    method: CallbackMethod
    trunk: str | None
    caller_id: str | None
    flow: str
    component_id: str
    deduplication_key: str | None
    context: dict[str, Any]
    due_at: datetime
    attempts: int
    max_attempts: int
    retry_interval_s: float
    state: JobState
    claimed_by: str | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    last_result: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_JOB_STATES
