"""Which database errors a consumer waits out (the database is restarting) rather than retrying or dead-lettering."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError

from shared.db import is_database_outage


class DriverError(Exception):
    """Stands for the driver's exception, which SQLAlchemy's asyncpg adapter gives a ``sqlstate``."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "sqlstate, message",
    [
        ("57P03", "the database system is shutting down"),
        ("57P03", "the database system is starting up"),
        ("57P01", "terminating connection due to administrator command"),
        ("08006", "connection failure"),
    ],
)
def test_a_restarting_database_is_an_outage(sqlstate: str, message: str) -> None:
    assert is_database_outage(DBAPIError("SELECT 1", {}, DriverError(message, sqlstate)))


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("INSERT", {}, DriverError("duplicate key value", "23505")),
        ProgrammingError("SELEC", {}, DriverError("syntax error", "42601")),
        DBAPIError("SELECT 1", {}, DriverError("no sqlstate", None)),
        ValueError("a bug in a handler"),
    ],
)
def test_bugs_and_bad_data_are_not_outages(error: Exception) -> None:
    assert not is_database_outage(error)
