"""outreach: open tasks by due time, so counting the overdue ones reads those and not every open task

Revision ID: outreach_0013
Revises: outreach_0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outreach_0013"
down_revision = "outreach_0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_outreach_tasks_open_due",
        "outreach_tasks",
        ["due_at"],
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index("ix_outreach_tasks_open_due", table_name="outreach_tasks")
