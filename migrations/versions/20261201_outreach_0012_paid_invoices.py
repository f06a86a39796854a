"""outreach: each subscription's newest paid invoice, which verifies a save whose withdrawal arrives after it

Revision ID: outreach_0012
Revises: outreach_0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "outreach_0012"
down_revision = "outreach_0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outreach_paid_invoices",
        sa.Column("cancellation_id", sa.String(length=255), nullable=False),
        sa.Column("paid_version", sa.BigInteger(), nullable=False),
        sa.Column("source_event_id", sa.String(length=255), nullable=False),
        sa.Column("received_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cancellation_id", name=op.f("pk_outreach_paid_invoices")),
    )


def downgrade() -> None:
    op.drop_table("outreach_paid_invoices")
