"""Transactional outbox: events are written with the effects that caused them, then relayed with confirms."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from shared import metrics
from shared.db import UTCDateTime, metadata, transaction, utcnow
from shared.events import Envelope
from shared.logs import get_logger
from shared.messaging import EVENTS_EXCHANGE, Broker, build_message

log = get_logger("shared.outbox")

PrimaryKey = BigInteger().with_variant(Integer, "sqlite")
# The relay's statements are prepared once per connection and their plan kept. A plan made while the outbox
# held a few rows read the whole table to mark each batch sent (seen in a benchmark: a sequential scan of
# intake_outbox for every batch, growing with the table, which nothing empties). Planned afresh in each relay
# transaction they use the outbox's indexes; that costs one round trip and a plan per batch, not per event.
PLAN_EACH_STATEMENT = text("SET LOCAL plan_cache_mode = force_custom_plan")
PLAN_AS_CONFIGURED = text("RESET plan_cache_mode")


def outbox_table(service: str) -> Table:
    """A service's own outbox table, ``<service>_outbox``."""
    name = f"{service}_outbox"
    return Table(
        name,
        metadata,
        Column("id", PrimaryKey, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(64), nullable=False),
        Column("correlation_id", String(128), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("published_at", UTCDateTime(), nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text, nullable=True),
        Index(
            f"ix_{name}_pending",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )


def handled_table(service: str) -> Table:
    """Envelope ids a service's consumers have handled, committed with the handler's effects."""
    name = f"{service}_handled_messages"
    return Table(
        name,
        metadata,
        Column("consumer", String(128), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("handled_at", UTCDateTime(), nullable=False),
        # Retention deletes the oldest ids first; the envelope ids are random, so only this orders them.
        Index(f"ix_{name}_handled_at", "handled_at"),  # shared.migrate.handled_at_index
    )


def outbox_row(envelope: Envelope) -> dict[str, Any]:
    """The values of an envelope's outbox row."""
    return {
        "event_id": str(envelope.id),
        "event_type": envelope.type,
        "correlation_id": envelope.correlation_id,
        "body": envelope.model_dump_json(),
        "created_at": utcnow(),
    }


# Set in a session's info by whatever stages an event in its transaction.
STAGED_EVENTS = "brink.outbox.staged_events"


def mark_staged(session: AsyncSession) -> None:
    """Note that this session's transaction stages events, so that its commit wakes the relay. Every writer of
    outbox rows calls it (``add_to_outbox`` does); an unmarked row still goes out, at the relay's next poll."""
    session.info[STAGED_EVENTS] = True


def wake_after_commits_that_stage(sessions: async_sessionmaker[AsyncSession], wake: Callable[[], None]) -> None:
    """Call ``wake`` after each commit, through these sessions, of a transaction that staged events: a consumer's,
    an API request's, a desk form's or a timer's alike, so the relay's polls are only for what no commit here
    announced (another instance's rows, a relay that died holding some)."""
    waking = type("RelayWakingSession", (Session,), {})  # events on a class of its own: this runtime's sessions
    sessions.configure(sync_session_class=waking)

    @event.listens_for(waking, "after_commit")
    def _committed(session: Session) -> None:
        if session.info.pop(STAGED_EVENTS, False):
            wake()

    @event.listens_for(waking, "after_rollback")
    def _rolled_back(session: Session) -> None:
        session.info.pop(STAGED_EVENTS, None)


async def add_to_outbox(session: AsyncSession, table: Table, envelope: Envelope) -> None:
    """Stage an event in the caller's transaction; it is published only if that transaction commits."""
    # A plain insert with bound parameters: SQLAlchemy reuses its compiled form without rebuilding a statement.
    await session.execute(table.insert(), outbox_row(envelope))
    mark_staged(session)


async def outbox_backlog(session: AsyncSession, table: Table) -> tuple[int, datetime | None]:
    """Unpublished rows and the creation time of the oldest."""
    row = (
        await session.execute(select(func.count(), func.min(table.c.created_at)).where(table.c.published_at.is_(None)))
    ).one()
    oldest = row[1]
    if isinstance(oldest, str):  # SQLite aggregates lose the column type
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return int(row[0]), oldest


def postgres_statements(table: str) -> dict[str, str]:
    """The relay's statements on PostgreSQL. Marking sent takes ``id = ANY(array)``: one prepared statement
    whatever the batch size, where ``IN`` with a parameter per id is a new statement for each size. ``table`` is
    a service's own outbox table name, never input."""
    return {
        "scan": f"SELECT id, event_id, event_type, correlation_id, body FROM {table}"  # noqa: S608
        " WHERE published_at IS NULL AND id >= $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
        "mark": f"UPDATE {table} SET published_at = $2 WHERE id = ANY($1::bigint[])",  # noqa: S608
        "failed": f"UPDATE {table} SET attempts = attempts + 1, last_error = $2 WHERE id = $1",  # noqa: S608
    }


# An idle relay's polls space out to this many times BRINK_OUTBOX_POLL_SECONDS (4 s by default).
IDLE_POLL_GROWTH = 8


class OutboxRelay:
    """Publishes pending outbox rows in order, marking each sent only after the broker confirms it.

    Rows marked sent leave entries in the pending index until VACUUM removes them, all of them below the
    rows still pending, and a scan for the oldest pending rows read through every one: in a benchmark the
    relay's query went from 2.5 to 11 ms per batch in under a minute. So most scans start at a floor, the
    lowest id that the scan before the last one returned. A pending row below it can only be one whose
    transaction was still running through two scans (ids are taken before commit), or one that another
    relay held and did not publish; a scan from the bottom every ``full_scan_seconds`` publishes those.
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        broker: Broker,
        batch_size: int = 200,
        poll_seconds: float = 0.5,
        max_backoff_seconds: float = 10.0,
        gather_seconds: float = 0.02,
        full_scan_seconds: float = 2.0,
    ) -> None:
        self._sessions = sessions
        engine = sessions.kw.get("bind")
        assert isinstance(engine, AsyncEngine), "the relay's sessions are bound to one engine"
        self._engine = engine
        self._table = table
        self._sql = postgres_statements(table.name)
        self._broker = broker
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._idle_poll_max = IDLE_POLL_GROWTH * poll_seconds
        self._max_backoff = max_backoff_seconds
        self._gather_seconds = gather_seconds
        self._full_scan_seconds = full_scan_seconds
        self._last_full_scan = float("-inf")
        self._floor = 0  # the lowest id the scan before the last one returned
        self._last_lowest = 0  # the lowest id the last scan returned
        self._wakeup = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Called after a commit that staged events, so they go out without waiting for the next poll."""
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        backoff = self._poll_seconds
        idle_wait = self._poll_seconds
        while not self._stopping:
            try:
                published = await self.publish_pending()
                backoff = self._poll_seconds
            except Exception as error:  # broker or database down: keep the rows, try again later
                log.warning(
                    "outbox.relay.failed",
                    table=self._table.name,
                    error=str(error) or repr(error),
                    retry_in=round(backoff, 2),
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            if published >= self._batch_size:
                continue
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=idle_wait)
                # Woken by a commit: the commits of the next few milliseconds join this batch. A batch per
                # event cost intake over a millisecond of CPU an event at a steady 200/s (four round trips
                # and a session each), more than the webhook itself.
                await asyncio.sleep(self._gather_seconds)
                idle_wait = self._poll_seconds
            except TimeoutError:
                # Commits here wake the relay; a poll finds only what none announced. While polls find nothing,
                # each waits twice as long as the last, up to IDLE_POLL_GROWTH polls' worth: an idle service
                # polled twice a second, a transaction each (about 1.2 ms of Python and 0.5 of PostgreSQL).
                idle_wait = self._poll_seconds if published else min(2 * idle_wait, self._idle_poll_max)
            self._wakeup.clear()

    def _mark_published(self) -> Any:
        ids = self._table.c.id
        return (
            update(self._table).where(ids.in_(bindparam("ids", expanding=True))).values(published_at=bindparam("now"))
        )

    def _scan_floor(self) -> int:
        """Where this scan starts: the floor, or 0 (below every id) for the periodic scan from the bottom."""
        now = time.monotonic()
        if now - self._last_full_scan >= self._full_scan_seconds:
            self._last_full_scan = now
            return 0
        return self._floor

    async def _publish(self, rows: Sequence[Any]) -> tuple[list[int], list[tuple[int, BaseException]]]:
        """Publish scanned rows (id, event_id, event_type, correlation_id, body): the ids confirmed, and the failures."""
        self._floor, self._last_lowest = self._last_lowest, rows[0][0]
        started = time.perf_counter()
        results = await self._broker.publish_many(
            EVENTS_EXCHANGE,
            [
                (
                    event_type,
                    build_message(
                        body.encode(), message_id=event_id, event_type=event_type, correlation_id=correlation_id
                    ),
                )
                for _, event_id, event_type, correlation_id, body in rows
            ],
        )
        metrics.PUBLISH_CONFIRM_SECONDS.observe(time.perf_counter() - started)
        confirmed = [row[0] for row, result in zip(rows, results, strict=True) if result is None]
        failed = [(row[0], result) for row, result in zip(rows, results, strict=True) if result is not None]
        return confirmed, failed

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows were confirmed and marked sent."""
        if self._engine.dialect.name == "postgresql":
            confirmed, failed, scanned = await self._publish_pending_postgres()
        else:
            confirmed, failed, scanned = await self._publish_pending_portable()
        metrics.OUTBOX_PUBLISHED.labels(table=self._table.name).inc(len(confirmed))
        if failed:
            raise RuntimeError(f"{len(failed)} of {scanned} outbox rows were not confirmed: {failed[0][1]!r}")
        return len(confirmed)

    async def _publish_pending_postgres(self) -> tuple[list[int], list[tuple[int, BaseException]], int]:
        """The batch on the driver's own connection, in one transaction of four round trips. Through the ORM
        session (its Row objects, statement caching and transaction bookkeeping) a batch cost the relay 1.5 to 2
        ms of CPU, a tenth of a millisecond per webhook at a steady 200 a second."""
        async with self._engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            async with driver.transaction():
                await driver.execute(PLAN_EACH_STATEMENT.text)
                # FOR UPDATE SKIP LOCKED: several relays (several instances of a service) never publish one row.
                rows = await driver.fetch(self._sql["scan"], self._scan_floor(), self._batch_size)
                if not rows:
                    return [], [], 0
                confirmed, failed = await self._publish(rows)
                if confirmed:
                    await driver.execute(self._sql["mark"], confirmed, utcnow())
                for row_id, error in failed:
                    await driver.execute(self._sql["failed"], row_id, str(error)[:500] or repr(error))
        return confirmed, failed, len(rows)

    async def _publish_pending_portable(self) -> tuple[list[int], list[tuple[int, BaseException]], int]:
        async with transaction(self._sessions) as session:
            query = (
                select(
                    self._table.c.id,
                    self._table.c.event_id,
                    self._table.c.event_type,
                    self._table.c.correlation_id,
                    self._table.c.body,
                )
                .where(self._table.c.published_at.is_(None), self._table.c.id >= self._scan_floor())
                .order_by(self._table.c.id)
                .limit(self._batch_size)
            )
            rows = (await session.execute(query)).all()
            if not rows:
                return [], [], 0
            confirmed, failed = await self._publish(rows)
            if confirmed:
                await session.execute(self._mark_published(), {"ids": confirmed, "now": utcnow()})
            for row_id, error in failed:
                await session.execute(
                    update(self._table)
                    .where(self._table.c.id == row_id)
                    .values(attempts=self._table.c.attempts + 1, last_error=str(error)[:500] or repr(error))
                )
        return confirmed, failed, len(rows)
