"""intake: how each delivery arrived; the reconciler's cursors and lease

Revision ID: intake_0002
Revises: intake_0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.db

revision = "intake_0002"
down_revision = "intake_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("intake_webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("received_via", sa.String(length=16), server_default="webhook", nullable=False))
    op.create_table(
        "intake_reconcile_cursors",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("read_until", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_success_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_intake_reconcile_cursors")),
    )
    op.create_table(
        "intake_reconcile_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_intake_reconcile_leases")),
    )


def downgrade() -> None:
    op.drop_table("intake_reconcile_leases")
    op.drop_table("intake_reconcile_cursors")
    with op.batch_alter_table("intake_webhook_events", schema=None) as batch_op:
        batch_op.drop_column("received_via")
