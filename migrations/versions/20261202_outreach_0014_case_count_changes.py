"""outreach: the database records how each status's number of cases changes, so the gauge reads no case

Counting cases by status read every case once a minute: a sequential scan of a table that only grows (0.4 s
with three processes at 260,000 cases). Triggers on ``outreach_cases`` now add a row per status that changes:
on PostgreSQL one per insert or delete statement (from its transition tables) and two per case that closes; on
SQLite per row. The gauge sums them and folds them into one row per status (``repository.count_cases_by_status``).
The cases already there are counted here, after the triggers exist and in their transaction (creating a trigger
holds off writes to the table until it commits), so no case is missed or counted twice.

Revision ID: outreach_0014
Revises: outreach_0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outreach_0014"
down_revision = "outreach_0013"
branch_labels = None
depends_on = None

CHANGES = "outreach_case_count_changes"

POSTGRES_FUNCTIONS = {
    "outreach_cases_counted_on_insert": """
        INSERT INTO outreach_case_count_changes (status, change)
        SELECT status, count(*) FROM inserted_cases GROUP BY status""",
    "outreach_cases_counted_on_update": """
        INSERT INTO outreach_case_count_changes (status, change) VALUES (OLD.status, -1), (NEW.status, 1)""",
    "outreach_cases_counted_on_delete": """
        INSERT INTO outreach_case_count_changes (status, change)
        SELECT status, -count(*) FROM deleted_cases GROUP BY status""",
}
POSTGRES_TRIGGERS = {
    "outreach_cases_counted_on_insert": (
        "AFTER INSERT ON outreach_cases REFERENCING NEW TABLE AS inserted_cases FOR EACH STATEMENT"
    ),
    # A case changes status once (when it closes), and PostgreSQL keeps no transition tables for an update of
    # some columns: a row trigger, on updates that change the status and no other.
    "outreach_cases_counted_on_update": (
        "AFTER UPDATE OF status ON outreach_cases FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)"
    ),
    "outreach_cases_counted_on_delete": (
        "AFTER DELETE ON outreach_cases REFERENCING OLD TABLE AS deleted_cases FOR EACH STATEMENT"
    ),
}
SQLITE_TRIGGERS = {
    "outreach_cases_counted_on_insert": (
        "AFTER INSERT ON outreach_cases BEGIN "
        "INSERT INTO outreach_case_count_changes (status, change) VALUES (NEW.status, 1); END"
    ),
    "outreach_cases_counted_on_update": (
        "AFTER UPDATE OF status ON outreach_cases WHEN OLD.status IS NOT NEW.status BEGIN "
        "INSERT INTO outreach_case_count_changes (status, change) VALUES (OLD.status, -1), (NEW.status, 1); END"
    ),
    "outreach_cases_counted_on_delete": (
        "AFTER DELETE ON outreach_cases BEGIN "
        "INSERT INTO outreach_case_count_changes (status, change) VALUES (OLD.status, -1); END"
    ),
}


def upgrade() -> None:
    op.create_table(
        CHANGES,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("change", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_case_count_changes")),
    )
    if op.get_bind().dialect.name == "postgresql":
        for name, body in POSTGRES_FUNCTIONS.items():
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body}; RETURN NULL; END $$"
            )
            op.execute(f"CREATE TRIGGER {name} {POSTGRES_TRIGGERS[name]} EXECUTE FUNCTION {name}()")
    else:
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")
    op.execute(
        "INSERT INTO outreach_case_count_changes (status, change) "
        "SELECT status, count(*) FROM outreach_cases GROUP BY status"
    )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON outreach_cases" if postgres else f"DROP TRIGGER {name}")
        if postgres:
            op.execute(f"DROP FUNCTION {name}()")
    op.drop_table(CHANGES)
