"""Boomerang store layer: SQLite by default, PostgreSQL in production.

    store = await open_store("sqlite:///boomerang.db")
    job = await store.jobs.create(NewCallbackJob(...))
    ...
    await store.close()

See docs/DATABASE.md, and jobs.py for the exact durability and
claim guarantees of callback jobs.
"""

from .engine import Database, DatabaseTarget, resolve_url
from .errors import (
    DatabaseUrlError,
    JobAlreadyActiveError,
    SchemaOutOfDateError,
    SchemaTooNewError,
    StoreError,
)
from .jobs import DEFAULT_LEASE_S, CallbackJobRepository
from .migrate import head_revision, migrate
from .models import (
    FINISHED_JOB_STATES,
    UNFINISHED_JOB_STATES,
    CallbackJob,
    CallbackMethod,
    CallRecord,
    CallRecordFilter,
    CallResult,
    ExtensionTotals,
    JobState,
    LegKind,
    NewCallbackJob,
    NewCallRecord,
    Registration,
)
from .records import CallRecordRepository
from .registrations import RegistrationRepository
from .store import Store, open_store, system_utc_now

__all__ = [
    "DEFAULT_LEASE_S",
    "FINISHED_JOB_STATES",
    "UNFINISHED_JOB_STATES",
    "CallRecord",
    "CallRecordFilter",
    "CallRecordRepository",
    "CallResult",
    "CallbackJob",
    "CallbackJobRepository",
    "CallbackMethod",
    "Database",
    "DatabaseTarget",
    "DatabaseUrlError",
    "ExtensionTotals",
    "JobAlreadyActiveError",
    "JobState",
    "LegKind",
    "NewCallRecord",
    "NewCallbackJob",
    "Registration",
    "RegistrationRepository",
    "SchemaOutOfDateError",
    "SchemaTooNewError",
    "Store",
    "StoreError",
    "head_revision",
    "migrate",
    "open_store",
    "resolve_url",
    "system_utc_now",
]
