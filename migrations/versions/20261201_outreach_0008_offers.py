"""outreach: save offers applied through the billing API, with their cost, approval and result

Revision ID: outreach_0008
Revises: outreach_0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "outreach_0008"
down_revision = "outreach_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outreach_offers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("subscription_id", sa.String(length=255), nullable=False),
        sa.Column("offer", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("cost_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("preview", sa.Text(), nullable=False),
        sa.Column(
            "change", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("proposed_by", sa.String(length=320), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approval_reason", sa.Text(), nullable=True),
        sa.Column("approver_roles", sa.String(length=255), nullable=True),
        sa.Column("decided_by", sa.String(length=320), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("applied_by", sa.String(length=320), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["outreach_cases.id"],
            name=op.f("fk_outreach_offers_case_id_outreach_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_offers")),
    )
    with op.batch_alter_table("outreach_offers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outreach_offers_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outreach_offers_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outreach_offers_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_outreach_offers_applied_at"), ["applied_at"], unique=False)


def downgrade() -> None:
    op.drop_table("outreach_offers")
