"""outreach: initial tables

Revision ID: outreach_0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db

revision = "outreach_0001"
down_revision = None
branch_labels = ("outreach",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outreach_cases",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("cancellation_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("customer_name", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("symptom", sa.String(length=64), nullable=False),
        sa.Column("root_cause", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("mrr_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("effective_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("diagnosis_version", sa.Integer(), nullable=False),
        sa.Column(
            "diagnosis", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("opened_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_cases")),
        sa.UniqueConstraint("cancellation_id", name=op.f("uq_outreach_cases_cancellation_id")),
    )
    with op.batch_alter_table("outreach_cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outreach_cases_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outreach_cases_status"), ["status"], unique=False)

    op.create_table(
        "outreach_handled_messages",
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("handled_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_outreach_handled_messages")),
    )
    op.create_table(
        "outreach_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("correlation_id", sa.String(length=128), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outreach_outbox_event_id")),
    )
    with op.batch_alter_table("outreach_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outreach_outbox_pending",
            ["id"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.create_table(
        "outreach_tasks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("owner_role", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("result", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["outreach_cases.id"],
            name=op.f("fk_outreach_tasks_case_id_outreach_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_tasks")),
    )
    with op.batch_alter_table("outreach_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outreach_tasks_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outreach_tasks_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_outreach_tasks_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outreach_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outreach_tasks_status"))
        batch_op.drop_index(batch_op.f("ix_outreach_tasks_owner"))
        batch_op.drop_index(batch_op.f("ix_outreach_tasks_case_id"))

    op.drop_table("outreach_tasks")
    with op.batch_alter_table("outreach_outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outreach_outbox_pending",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.drop_table("outreach_outbox")
    op.drop_table("outreach_handled_messages")
    with op.batch_alter_table("outreach_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outreach_cases_status"))
        batch_op.drop_index(batch_op.f("ix_outreach_cases_account_id"))

    op.drop_table("outreach_cases")
