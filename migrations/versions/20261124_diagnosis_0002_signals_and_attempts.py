"""diagnosis: account signals and the history of attempts

Revision ID: diagnosis_0002
Revises: diagnosis_0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db

revision = "diagnosis_0002"
down_revision = "diagnosis_0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "diagnosis_account_signals",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("values", JSON, nullable=False),
        sa.Column("observed_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("signal_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diagnosis_account_signals")),
        sa.UniqueConstraint("account_id", "kind", name=op.f("uq_diagnosis_account_signals_account_id_kind")),
    )
    op.create_table(
        "diagnosis_attempts",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("attempt_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("cancellation_id", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("result", sa.String(length=64), nullable=False),
        sa.Column("playbook", sa.String(length=64), nullable=True),
        sa.Column("whole_playbook", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("performed_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diagnosis_attempts")),
        sa.UniqueConstraint("attempt_id", name=op.f("uq_diagnosis_attempts_attempt_id")),
    )
    with op.batch_alter_table("diagnosis_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_diagnosis_attempts_account_id"), ["account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("diagnosis_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_diagnosis_attempts_account_id"))
    op.drop_table("diagnosis_attempts")
    op.drop_table("diagnosis_account_signals")
