"""outreach: personal notifications (recipient, delivery lease) and the inaction ladder's step on timers

Revision ID: outreach_0004
Revises: outreach_0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outreach_0004"
down_revision = "outreach_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outreach_notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipient", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("lease_token", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_outreach_notifications_recipient"), ["recipient"], unique=False)
    with op.batch_alter_table("outreach_timers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outreach_timers", schema=None) as batch_op:
        batch_op.drop_column("step")
    with op.batch_alter_table("outreach_notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outreach_notifications_recipient"))
        batch_op.drop_column("lease_token")
        batch_op.drop_column("recipient")
