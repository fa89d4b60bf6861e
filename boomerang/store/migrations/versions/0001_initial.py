"""Initial schema: registrations, call_records, callback_jobs.

Revision ID: 0001_initial
Revises:
Create Date: 2025-11-22

Self-contained on purpose (no import of boomerang.store.tables): a migration
describes the schema as it was when it was written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

UNFINISHED = "state IN ('pending', 'claimed', 'running')"


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                     primary_key=True, autoincrement=True)


def _utc(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "registrations",
        _id(),
        sa.Column("extension", sa.String(64), nullable=False),
        sa.Column("binding_key", sa.String(512), nullable=False),
        sa.Column("contact_uri", sa.String(1024), nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("source_host", sa.String(255), nullable=False),
        sa.Column("source_port", sa.Integer, nullable=False),
        sa.Column("path", sa.JSON, nullable=False),
        _utc("expires_at", nullable=False),
        sa.Column("user_agent", sa.String(255)),
        sa.Column("q", sa.Float),
        sa.Column("instance_id", sa.String(255)),
        sa.Column("reg_id", sa.Integer),
        sa.Column("call_id", sa.String(255), nullable=False),
        sa.Column("cseq", sa.BigInteger, nullable=False),
        _utc("updated_at", nullable=False),
        sa.UniqueConstraint("extension", "binding_key", name="uq_registrations_binding"),
    )
    op.create_index("ix_registrations_expires_at", "registrations", ["expires_at"])

    op.create_table(
        "call_records",
        _id(),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("leg_kind", sa.String(16), nullable=False),
        sa.Column("owner_extension", sa.String(64)),
        sa.Column("trunk", sa.String(64)),
        sa.Column("trigger_did", sa.String(64)),
        sa.Column("trigger_caller", sa.String(64)),
        sa.Column("callback_target", sa.String(64)),
        sa.Column("dialed_destination", sa.String(64)),
        sa.Column("call_id", sa.String(255)),
        _utc("started_at", nullable=False),
        _utc("answered_at"),
        _utc("ended_at"),
        sa.Column("duration_s", sa.Float),
        sa.Column("billable_s", sa.Float),
        sa.Column("result", sa.String(16)),
        sa.Column("sip_status", sa.Integer),
        sa.Column("q850_cause", sa.Integer),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("cost_estimate", sa.Float),
        sa.Column("saving_estimate", sa.Float),
        sa.Column("currency", sa.String(3)),
    )
    op.create_index("ix_call_records_correlation_id", "call_records", ["correlation_id"])
    op.create_index("ix_call_records_owner_started", "call_records",
                    ["owner_extension", "started_at"])
    op.create_index("ix_call_records_started_at", "call_records", ["started_at"])

    op.create_table(
        "callback_jobs",
        _id(),
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
        _utc("due_at", nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("retry_interval_s", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(128)),
        _utc("claimed_at"),
        _utc("lease_expires_at"),
        sa.Column("last_result", sa.String(64)),
        _utc("created_at", nullable=False),
        _utc("updated_at", nullable=False),
    )
    op.create_index("ix_callback_jobs_state_due_at", "callback_jobs", ["state", "due_at"])
    op.create_index("ix_callback_jobs_state_lease", "callback_jobs",
                    ["state", "lease_expires_at"])
    op.create_index("uq_callback_jobs_active_deduplication_key", "callback_jobs",
                    ["deduplication_key"], unique=True,
                    sqlite_where=sa.text(UNFINISHED), postgresql_where=sa.text(UNFINISHED))


def downgrade() -> None:
    op.drop_table("callback_jobs")
    op.drop_table("call_records")
    op.drop_table("registrations")
