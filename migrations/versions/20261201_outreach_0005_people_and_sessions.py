"""outreach: people and roles, server-side desk sessions, sign-in failures; snoozed tasks; customer email on cases

Revision ID: outreach_0005
Revises: outreach_0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "outreach_0005"
down_revision = "outreach_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outreach_people",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("manager_id", sa.String(length=36), nullable=True),
        sa.Column("slack_user_id", sa.String(length=32), nullable=True),
        sa.Column("time_zone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deactivated_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["outreach_people.id"],
            name=op.f("fk_outreach_people_manager_id_outreach_people"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_people")),
        sa.UniqueConstraint("email", name=op.f("uq_outreach_people_email")),
    )
    with op.batch_alter_table("outreach_people", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outreach_people_role"), ["role"], unique=False)
        batch_op.create_index(batch_op.f("ix_outreach_people_manager_id"), ["manager_id"], unique=False)

    op.create_table(
        "outreach_desk_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["outreach_people.id"],
            name=op.f("fk_outreach_desk_sessions_person_id_outreach_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_outreach_desk_sessions")),
    )
    with op.batch_alter_table("outreach_desk_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outreach_desk_sessions_person_id"), ["person_id"], unique=False)

    op.create_table(
        "outreach_sign_in_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_sign_in_failures")),
    )
    with op.batch_alter_table("outreach_sign_in_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outreach_sign_in_failures_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_outreach_sign_in_failures_address"), ["address"], unique=False)
        batch_op.create_index(batch_op.f("ix_outreach_sign_in_failures_at"), ["at"], unique=False)

    with op.batch_alter_table("outreach_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snoozed_until", shared.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("snooze_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("outreach_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_email", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outreach_cases", schema=None) as batch_op:
        batch_op.drop_column("customer_email")
    with op.batch_alter_table("outreach_tasks", schema=None) as batch_op:
        batch_op.drop_column("snooze_reason")
        batch_op.drop_column("snoozed_until")
    op.drop_table("outreach_sign_in_failures")
    op.drop_table("outreach_desk_sessions")
    op.drop_table("outreach_people")
