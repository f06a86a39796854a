"""outreach: an offer draws on its proposer's team's budget

Revision ID: outreach_0009
Revises: outreach_0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outreach_0009"
down_revision = "outreach_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outreach_offers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team", sa.String(length=64), server_default="default", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("outreach_offers", schema=None) as batch_op:
        batch_op.drop_column("team")
