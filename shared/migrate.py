"""Run the Alembic history from code (the CLI, the test fixtures, the migration job)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str) -> None:
    """Every branch (one per service) to its head."""
    command.upgrade(alembic_config(database_url), "heads")


def downgrade_to_base(database_url: str) -> None:
    command.downgrade(alembic_config(database_url), "base")


def handled_at_index(table: str) -> str:
    """The name of the index retention purges a service's handled-message ids by (as the metadata names it)."""
    return f"ix_{table}_handled_at"


def create_handled_at_index(table: str) -> None:
    """In a migration: that index, built concurrently on PostgreSQL so consumers writing to a big table never
    wait for it."""
    from alembic import op

    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                handled_at_index(table), table, ["handled_at"], postgresql_concurrently=True, if_not_exists=True
            )
    else:
        op.create_index(handled_at_index(table), table, ["handled_at"])
