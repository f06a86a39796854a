"""diagnosis: the closed cases whose root cause was confirmed, to learn from

Revision ID: diagnosis_0004
Revises: diagnosis_0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db

revision = "diagnosis_0004"
down_revision = "diagnosis_0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "diagnosis_confirmed_cases",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=255), nullable=False),
        sa.Column("cancellation_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("diagnosed_root_cause", sa.String(length=64), nullable=True),
        sa.Column("confirmed_root_cause", sa.String(length=64), nullable=False),
        sa.Column("playbook", sa.String(length=64), nullable=True),
        sa.Column("facts", JSON, nullable=False),
        sa.Column("closed_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diagnosis_confirmed_cases")),
        sa.UniqueConstraint("case_id", name=op.f("uq_diagnosis_confirmed_cases_case_id")),
    )
    with op.batch_alter_table("diagnosis_confirmed_cases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_diagnosis_confirmed_cases_confirmed_root_cause"),
            ["confirmed_root_cause", "playbook"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("diagnosis_confirmed_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_diagnosis_confirmed_cases_confirmed_root_cause"))
    op.drop_table("diagnosis_confirmed_cases")
