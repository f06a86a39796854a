"""diagnosis: index handled-message ids by when they were handled, for retention

Revision ID: diagnosis_0003
Revises: diagnosis_0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from shared.migrate import create_handled_at_index, handled_at_index

revision = "diagnosis_0003"
down_revision = "diagnosis_0002"
branch_labels = None
depends_on = None

TABLE = "diagnosis_handled_messages"


def upgrade() -> None:
    create_handled_at_index(TABLE)


def downgrade() -> None:
    op.drop_index(handled_at_index(TABLE), table_name=TABLE)
