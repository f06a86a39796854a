"""outreach: a case per attempt to leave, honest outcomes, verified saves, confirmed root cause

Revision ID: outreach_0006
Revises: outreach_0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "outreach_0006"
down_revision = "outreach_0005"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_table(
        "outreach_subscriptions",
        sa.Column("cancellation_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("staying_version", sa.BigInteger(), nullable=False),
        sa.Column("previous_staying_version", sa.BigInteger(), nullable=False),
        sa.Column("staying_reason", sa.String(length=64), nullable=False),
        sa.Column("staying_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cancellation_id", name=op.f("pk_outreach_subscriptions")),
    )
    # Early withdrawals carried no billing version: 0, which later diagnoses read as "withdrawn before them".
    op.execute(
        "INSERT INTO outreach_subscriptions (cancellation_id, account_id, staying_version, previous_staying_version,"
        " staying_reason, staying_at) SELECT cancellation_id, account_id, 0, 0, reason, received_at"
        " FROM outreach_early_withdrawals"
    )
    op.drop_table("outreach_early_withdrawals")
    with op.batch_alter_table("outreach_cases", schema=None) as batch_op:
        batch_op.drop_constraint("uq_outreach_cases_cancellation_id", type_="unique")
        batch_op.alter_column("status", existing_type=sa.String(length=16), type_=sa.String(length=24))
        batch_op.add_column(sa.Column("after_version", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("state_version", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("ended_version", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("previous_case_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("initiated_by", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("confirmed_root_cause", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("save_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("save_verify_by", shared.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("save_settled_at", shared.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_outreach_cases_cancellation_id"), ["cancellation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outreach_cases_previous_case_id"), ["previous_case_id"], unique=False)
        batch_op.create_index(
            "ux_outreach_cases_open_cancellation",
            ["cancellation_id"],
            unique=True,
            postgresql_where=OPEN,
            sqlite_where=OPEN,
        )
    # Saves before this revision were never checked: they stay saved, verified by the time already passed.
    op.execute("UPDATE outreach_cases SET save_status = 'verified' WHERE status = 'saved'")


def downgrade() -> None:
    # One case per subscription again: the newest of each chain stays.
    op.execute(
        "DELETE FROM outreach_cases WHERE id IN"
        " (SELECT previous_case_id FROM outreach_cases WHERE previous_case_id IS NOT NULL)"
    )
    op.execute("UPDATE outreach_cases SET status = 'saved' WHERE status = 'stayed_unprompted'")
    with op.batch_alter_table("outreach_cases", schema=None) as batch_op:
        batch_op.drop_index("ux_outreach_cases_open_cancellation", postgresql_where=OPEN, sqlite_where=OPEN)
        batch_op.drop_index(batch_op.f("ix_outreach_cases_previous_case_id"))
        batch_op.drop_index(batch_op.f("ix_outreach_cases_cancellation_id"))
        for column in (
            "save_settled_at",
            "save_verify_by",
            "save_status",
            "confirmed_root_cause",
            "initiated_by",
            "previous_case_id",
            "ended_version",
            "state_version",
            "after_version",
        ):
            batch_op.drop_column(column)
        batch_op.alter_column("status", existing_type=sa.String(length=24), type_=sa.String(length=16))
        batch_op.create_unique_constraint("uq_outreach_cases_cancellation_id", ["cancellation_id"])
    op.create_table(
        "outreach_early_withdrawals",
        sa.Column("cancellation_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("received_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cancellation_id", name=op.f("pk_outreach_early_withdrawals")),
    )
    op.execute(
        "INSERT INTO outreach_early_withdrawals (cancellation_id, account_id, reason, received_at)"
        " SELECT cancellation_id, account_id, staying_reason, staying_at FROM outreach_subscriptions"
    )
    op.drop_table("outreach_subscriptions")
