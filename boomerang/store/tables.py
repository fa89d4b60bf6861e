"""The schema as SQLAlchemy Core tables: the code's view of the database.

Migrations (migrations/versions/) create and change the real schema; they do
not import this module, so an old migration never changes when the code
does. ``tests/store/test_migrations.py`` checks the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()

# BIGINT identity on PostgreSQL; INTEGER PRIMARY KEY (the rowid) on SQLite.
IdType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in, timezone-aware UTC datetimes out.

    PostgreSQL stores ``timestamp with time zone``. SQLite has no such type:
    it stores naive UTC text in one fixed format with microseconds, so text
    order is time order and ``due_at <= :now`` compares correctly.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store takes UTC-aware datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


registrations = sa.Table(
    "registrations",
    metadata,
    sa.Column("id", IdType, primary_key=True, autoincrement=True),
    sa.Column("extension", sa.String(64), nullable=False),
    sa.Column("binding_key", sa.String(512), nullable=False),
    sa.Column("contact_uri", sa.String(1024), nullable=False),
    sa.Column("transport", sa.String(8), nullable=False),
    sa.Column("source_host", sa.String(255), nullable=False),
    sa.Column("source_port", sa.Integer, nullable=False),
    sa.Column("path", sa.JSON, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("user_agent", sa.String(255)),
    sa.Column("q", sa.Float),
    sa.Column("instance_id", sa.String(255)),
    sa.Column("reg_id", sa.Integer),
    sa.Column("call_id", sa.String(255), nullable=False),
    sa.Column("cseq", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("extension", "binding_key", name="uq_registrations_binding"),
    sa.Index("ix_registrations_expires_at", "expires_at"),
)

call_records = sa.Table(
    "call_records",
    metadata,
    sa.Column("id", IdType, primary_key=True, autoincrement=True),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.Column("leg_kind", sa.String(16), nullable=False),
    sa.Column("owner_extension", sa.String(64)),
    sa.Column("trunk", sa.String(64)),
    sa.Column("trigger_did", sa.String(64)),
    sa.Column("trigger_caller", sa.String(64)),
    sa.Column("callback_target", sa.String(64)),
    sa.Column("dialed_destination", sa.String(64)),
    sa.Column("call_id", sa.String(255)),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("answered_at", UtcDateTime),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("duration_s", sa.Float),
    sa.Column("billable_s", sa.Float),
    sa.Column("result", sa.String(16)),
    sa.Column("sip_status", sa.Integer),
    sa.Column("q850_cause", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("cost_estimate", sa.Float),
    sa.Column("saving_estimate", sa.Float),
    sa.Column("currency", sa.String(3)),
    sa.Index("ix_call_records_correlation_id", "correlation_id"),
    sa.Index("ix_call_records_owner_started", "owner_extension", "started_at"),
    sa.Index("ix_call_records_started_at", "started_at"),
)

UNFINISHED_STATES_SQL = "state IN ('pending', 'claimed', 'running')"

callback_jobs = sa.Table(
    "callback_jobs",
    metadata,
    sa.Column("id", IdType, primary_key=True, autoincrement=True),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.Column("owner_extension", sa.String(64), nullable=False),
    sa.Column("target_number", sa.String(64), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("trunk", sa.String(64)),
    sa.Column("caller_id", sa.String(64)),
    sa.Column("flow", sa.String(64), nullable=False),
    sa.Column("component_id", sa.String(64), nullable=False),
    sa.Column("deduplication_key", sa.String(128)),
    sa.Column("context", sa.JSON, nullable=False),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("retry_interval_s", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("claimed_by", sa.String(128)),
    sa.Column("claimed_at", UtcDateTime),
    sa.Column("lease_expires_at", UtcDateTime),
    sa.Column("last_result", sa.String(64)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_callback_jobs_state_due_at", "state", "due_at"),
    sa.Index("ix_callback_jobs_state_lease", "state", "lease_expires_at"),
    # At most one unfinished job per deduplication key (one callback per
    # mobile at a time, SPEC §2), enforced by the database across nodes.
    sa.Index(
        "uq_callback_jobs_active_deduplication_key",
        "deduplication_key",
        unique=True,
        sqlite_where=sa.text(UNFINISHED_STATES_SQL),
        postgresql_where=sa.text(UNFINISHED_STATES_SQL),
    ),
)
