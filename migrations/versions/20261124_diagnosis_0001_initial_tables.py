"""diagnosis: initial tables

Revision ID: diagnosis_0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db

revision = "diagnosis_0001"
down_revision = None
branch_labels = ("diagnosis",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "diagnosis_cancellations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("cancellation_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("state_version", sa.BigInteger(), nullable=False),
        sa.Column(
            "details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("received_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diagnosis_cancellations")),
        sa.UniqueConstraint("cancellation_id", name=op.f("uq_diagnosis_cancellations_cancellation_id")),
    )
    with op.batch_alter_table("diagnosis_cancellations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_diagnosis_cancellations_account_id"), ["account_id"], unique=False)

    op.create_table(
        "diagnosis_diagnoses",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("cancellation_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("symptom", sa.String(length=64), nullable=False),
        sa.Column("root_cause", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column(
            "explanation", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diagnosis_diagnoses")),
        sa.UniqueConstraint("cancellation_id", "version", name=op.f("uq_diagnosis_diagnoses_cancellation_id_version")),
    )
    with op.batch_alter_table("diagnosis_diagnoses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_diagnosis_diagnoses_account_id"), ["account_id"], unique=False)

    op.create_table(
        "diagnosis_handled_messages",
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("handled_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_diagnosis_handled_messages")),
    )
    op.create_table(
        "diagnosis_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("correlation_id", sa.String(length=128), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diagnosis_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_diagnosis_outbox_event_id")),
    )
    with op.batch_alter_table("diagnosis_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_diagnosis_outbox_pending",
            ["id"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("diagnosis_outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_diagnosis_outbox_pending",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.drop_table("diagnosis_outbox")
    op.drop_table("diagnosis_handled_messages")
    with op.batch_alter_table("diagnosis_diagnoses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_diagnosis_diagnoses_account_id"))

    op.drop_table("diagnosis_diagnoses")
    with op.batch_alter_table("diagnosis_cancellations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_diagnosis_cancellations_account_id"))

    op.drop_table("diagnosis_cancellations")
