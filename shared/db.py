"""Async database engine and sessions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg
from sqlalchemy import JSON, CursorResult, DateTime, Insert, MetaData, Result, Table, TypeDecorator, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on both engines (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(DeclarativeBase):
    # Every model maps one table (never a join or a select), so its __table__ is a Table to insert into.
    __table__: ClassVar[Table]
    metadata = metadata
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }


def rows_matched(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched (a session types every result as a plain Result)."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"{type(result).__name__} is not the result of an UPDATE or DELETE")
    return result.rowcount


def utcnow() -> datetime:
    return datetime.now(UTC)


SQLITE_BUSY_SECONDS = 30


class _ReleasingSqliteConnection(sqlite3.Connection):
    """A SQLite connection that gives up its transaction when closed.

    A task cancelled while reading rows (a service stopping, a dropped broker connection cancelling a handler)
    leaves a statement unfinished; closing the connection then leaves it alive as a zombie until that statement is
    collected, still holding the transaction's write lock, and every other writer of the file waits and fails
    with "database is locked" meanwhile.
    """

    def close(self) -> None:
        with suppress(sqlite3.Error):  # closed already, or the rollback failed: closing releases what it can
            if self.in_transaction:
                self.rollback()
        super().close()


# jit off: PostgreSQL compiles a statement whose estimated cost passes jit_above_cost, and estimates grow with the
# tables (more so where statistics are stale). Brink's statements read a few rows each; once outreach held about
# 250,000 cases the placing statement's estimate crossed the line and every batch spent 15 ms compiling it, more
# PostgreSQL CPU than running it.
POSTGRES_SESSION_SETTINGS = {"jit": "off"}


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int | None = None) -> AsyncEngine:
    """Engine for either backend; SQLite gets WAL and a busy timeout so three processes can share it."""
    if url.startswith("sqlite"):
        # One connection per process, handed out in turn: SQLite has one writer, and several connections of one
        # process each waiting for it in SQLite's busy handler (sleep and retry) starve the one waiting longest.
        engine = create_async_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_SECONDS, "factory": _ReleasingSqliteConnection},
            pool_size=1,
            max_overflow=0,
            pool_timeout=SQLITE_BUSY_SECONDS,
            hide_parameters=True,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            # Let SQLAlchemy, not the driver, decide when a transaction begins (see the begin hook).
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin_immediate(conn: Any) -> None:
            # Writers take the lock up front, so two processes never deadlock upgrading a read lock.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    overflow = pool_size if max_overflow is None else max_overflow
    # The same ceiling of open connections, all kept: overflow connections are closed on return, so under a
    # load just past pool_size every few requests paid for a new connection (a server fork and the driver's
    # type introspection).
    # hide_parameters: an error's text (logged, and written into a dead letter's headers) never carries the
    # values of a statement, which hold customers' names and emails.
    engine = create_async_engine(
        url,
        pool_size=pool_size + overflow,
        max_overflow=0,
        hide_parameters=True,
        connect_args={"server_settings": dict(POSTGRES_SESSION_SETTINGS)},
    )
    ping_unless_fresh(engine)
    return engine


FRESH_CONNECTION_SECONDS = 1.0


def ping_unless_fresh(engine: AsyncEngine, *, fresh_seconds: float = FRESH_CONNECTION_SECONDS) -> None:
    """Pre-ping pooled connections, except one back from use within ``fresh_seconds`` and still open.

    SQLAlchemy's ``pool_pre_ping`` costs three round trips on asyncpg (BEGIN, a query, ROLLBACK) on every
    checkout, a third of intake's database time under load. A connection the server closed (a restart, a
    terminated backend) is seen as closed locally, so it is still replaced before use; one idle longer
    than ``fresh_seconds`` is pinged exactly as before.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        is_closed = getattr(driver, "is_closed", None)
        if callable(is_closed) and is_closed():
            raise DisconnectionError("the server closed this pooled connection")
        returned = record.info.get("returned_at")
        if returned is not None and time.monotonic() - returned < fresh_seconds:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # any failure means: discard it and let the pool connect afresh
            raise DisconnectionError(f"pre-ping failed: {error}") from error
        if alive is False:
            raise DisconnectionError("pre-ping failed")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on success, rolls back on any error. Only edges call this."""
    async with sessions() as session, session.begin():
        yield session


def upsert_into(session: AsyncSession, table: Any) -> Any:
    """An INSERT for the session's dialect that takes ``ON CONFLICT`` (PostgreSQL's or SQLite's)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def insert_ignoring_conflicts(session: AsyncSession, table: Any, **values: Any) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the session's dialect."""
    return upsert_into(session, table).values(**values).on_conflict_do_nothing()


# Built once per dialect, table and returned column, and run with bound parameters: building the statement
# (and its cache key) on every call cost about as much as sending it.
_INSERTS_IF_NEW: dict[tuple[str, Any, Any], Insert] = {}


def _insert_if_new_statement(session: AsyncSession, table: Any, returning: Any) -> Insert:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    key = (dialect, table, returning)
    statement = _INSERTS_IF_NEW.get(key)
    if statement is None:
        builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = _INSERTS_IF_NEW[key] = builder(table).on_conflict_do_nothing().returning(returning)
    return statement


async def insert_if_new(session: AsyncSession, table: Any, *, returning: Any, **values: Any) -> Any | None:
    """Insert a row unless its unique key exists; the returned column's value, or None for a duplicate."""
    statement = _insert_if_new_statement(session, table, returning)
    return (await session.execute(statement, values)).scalar_one_or_none()


async def insert_many_if_new(
    session: AsyncSession, table: Any, rows: list[dict[str, Any]], *, returning: Any
) -> set[Any]:
    """Insert the rows whose unique key is new, in batched statements; the returned column's values of those.

    Run as an executemany of one cached statement (SQLAlchemy's insertmanyvalues): a statement listing the
    rows itself would be compiled anew for every call.
    """
    statement = _insert_if_new_statement(session, table, returning)
    return set((await session.execute(statement, rows)).scalars())


def is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


# PostgreSQL SQLSTATE prefixes that mean "the server is not there right now": connection exceptions (08) and
# operator intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
UNAVAILABLE_SQLSTATES = ("08", "57P")


def is_database_outage(error: BaseException) -> bool:
    """True for errors that waiting cures (the database restarting, unreachable), not for bugs."""
    if isinstance(error, (OperationalError, InterfaceError)):
        return True
    if isinstance(error, asyncpg.InterfaceError):  # asyncpg used directly: its connection was closed under it
        return True
    if str(getattr(error, "sqlstate", None) or "").startswith(UNAVAILABLE_SQLSTATES):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        # asyncpg's "the database system is shutting down" arrives as a plain DBAPIError: read its SQLSTATE.
        state = str(getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None) or "")
        if state.startswith(UNAVAILABLE_SQLSTATES):
            return True
    return isinstance(error, (ConnectionError, OSError))
