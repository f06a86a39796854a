"""outreach: an applied offer is confirmed when the billing system's webhook of the change arrives

Revision ID: outreach_0010
Revises: outreach_0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outreach_0010"
down_revision = "outreach_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outreach_offers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outreach_offers", schema=None) as batch_op:
        batch_op.drop_column("confirmed_at")
