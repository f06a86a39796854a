"""outreach: each person's notification channels and daily digest

Revision ID: outreach_0007
Revises: outreach_0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outreach_0007"
down_revision = "outreach_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outreach_people", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("notify_channels", sa.String(length=64), server_default="email,slack_dm", nullable=False)
        )
        batch_op.add_column(sa.Column("daily_digest", sa.Boolean(), server_default=sa.text("true"), nullable=False))
        batch_op.add_column(sa.Column("last_digest_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outreach_people", schema=None) as batch_op:
        batch_op.drop_column("last_digest_on")
        batch_op.drop_column("daily_digest")
        batch_op.drop_column("notify_channels")
