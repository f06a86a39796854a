"""outreach: case history, escalation timers, owner rotation, early withdrawals, notifications

Revision ID: outreach_0002
Revises: outreach_0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db

revision = "outreach_0002"
down_revision = "outreach_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outreach_early_withdrawals",
        sa.Column("cancellation_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("received_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cancellation_id", name=op.f("pk_outreach_early_withdrawals")),
    )
    op.create_table(
        "outreach_notifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=True),
        sa.Column(
            "body", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_notifications")),
    )
    with op.batch_alter_table("outreach_notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outreach_notifications_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_outreach_notifications_pending",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )

    op.create_table(
        "outreach_rotation_cursors",
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("role", name=op.f("pk_outreach_rotation_cursors")),
    )
    op.create_table(
        "outreach_case_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column(
            "detail", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["outreach_cases.id"],
            name=op.f("fk_outreach_case_events_case_id_outreach_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_case_events")),
    )
    with op.batch_alter_table("outreach_case_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outreach_case_events_case_id"), ["case_id"], unique=False)

    op.create_table(
        "outreach_timers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("fired_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["outreach_cases.id"],
            name=op.f("fk_outreach_timers_case_id_outreach_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["outreach_tasks.id"],
            name=op.f("fk_outreach_timers_task_id_outreach_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_timers")),
    )
    with op.batch_alter_table("outreach_timers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outreach_timers_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_outreach_timers_pending",
            ["due_at"],
            unique=False,
            postgresql_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
            sqlite_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
        )
        batch_op.create_index(batch_op.f("ix_outreach_timers_task_id"), ["task_id"], unique=False)

    with op.batch_alter_table("outreach_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("playbook", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("escalation_level", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("sequence_exhausted", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
        batch_op.add_column(sa.Column("first_touched_at", shared.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closed_reason", sa.Text(), nullable=True))

    with op.batch_alter_table("outreach_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="step", nullable=False))
        batch_op.add_column(sa.Column("offer", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("playbook", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("rung", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("escalate_after_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("completed_by", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outreach_tasks", schema=None) as batch_op:
        batch_op.drop_column("completed_by")
        batch_op.drop_column("escalate_after_seconds")
        batch_op.drop_column("rung")
        batch_op.drop_column("playbook")
        batch_op.drop_column("offer")
        batch_op.drop_column("kind")

    with op.batch_alter_table("outreach_cases", schema=None) as batch_op:
        batch_op.drop_column("closed_reason")
        batch_op.drop_column("first_touched_at")
        batch_op.drop_column("sequence_exhausted")
        batch_op.drop_column("escalation_level")
        batch_op.drop_column("playbook")

    with op.batch_alter_table("outreach_timers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outreach_timers_task_id"))
        batch_op.drop_index(
            "ix_outreach_timers_pending",
            postgresql_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
            sqlite_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_outreach_timers_case_id"))

    op.drop_table("outreach_timers")
    with op.batch_alter_table("outreach_case_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outreach_case_events_case_id"))

    op.drop_table("outreach_case_events")
    op.drop_table("outreach_rotation_cursors")
    with op.batch_alter_table("outreach_notifications", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outreach_notifications_pending",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_index(batch_op.f("ix_outreach_notifications_case_id"))

    op.drop_table("outreach_notifications")
    op.drop_table("outreach_early_withdrawals")
