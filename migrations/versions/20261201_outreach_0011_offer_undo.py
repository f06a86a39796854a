"""outreach: an offer's undo (who took it back, when) and the new subscription a reactivation made

Revision ID: outreach_0011
Revises: outreach_0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outreach_0011"
down_revision = "outreach_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outreach_offers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("new_subscription_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("undone_by", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outreach_offers", schema=None) as batch_op:
        batch_op.drop_column("undone_at")
        batch_op.drop_column("undone_by")
        batch_op.drop_column("new_subscription_id")
