"""Retention: rows kept only to send, de-duplicate or audit are deleted once older than the retention age.

Sent outbox rows, handled-message ids and stored webhook deliveries would otherwise grow for ever, and every
statement that reads their indexes with them. Deletion goes in small batches, each its own short transaction,
so no lock is held for long and the service's own writes never wait behind a purge. One purge at a time per
service across all its instances: on PostgreSQL a session advisory lock, held for the run and released by
the server if the process dies; SQLite is one machine's file, where writers queue anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    Table,
    any_,
    bindparam,
    delete,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import metrics
from shared.db import rows_matched, utcnow
from shared.logs import get_logger
from shared.outbox import PLAN_EACH_STATEMENT

Connect = Callable[[], AbstractAsyncContextManager[AsyncConnection]]

log = get_logger("shared.retention")

# Stripe keeps events for 30 days and both billing systems retry for three: a shorter age lets a redelivered
# or reconciled event through as new.
VENDOR_EVENT_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class Expiry:
    """Which rows of a table retention deletes.

    A row goes once ``expires`` (when it stopped being needed) is older than the retention age; a row whose
    ``expires`` is empty (an outbox row not yet sent) stays. Tables are walked in ``position`` order, an
    indexed column that grows with ``born``: ``born`` at or past the cutoff ends the walk, since every row
    after it is younger.
    """

    table: Table
    position: Column[Any]
    born: Column[Any]
    expires: Column[Any]
    start: Any = 0  # at or below every row's position: ids start at 1

    @property
    def name(self) -> str:
        return self.table.name


def sent_outbox_rows(table: Table) -> Expiry:
    """Outbox rows once published: a pending row is kept however old it is."""
    return Expiry(table=table, position=table.c.id, born=table.c.created_at, expires=table.c.published_at)


def handled_message_ids(table: Table) -> Expiry:
    """Handled-message ids, walked by their ``handled_at`` index."""
    stamp = table.c.handled_at
    return Expiry(table=table, position=stamp, born=stamp, expires=stamp, start=datetime(1970, 1, 1, tzinfo=UTC))


def received_deliveries(table: Table, *, received_at: str = "received_at") -> Expiry:
    """Stored webhook deliveries (their bodies and their de-duplication keys), by arrival."""
    return Expiry(table=table, position=table.c.id, born=table.c[received_at], expires=table.c[received_at])


def lock_key(service: str) -> int:
    """The advisory lock a service's purges take on PostgreSQL: a stable signed 64-bit number per service."""
    digest = hashlib.sha256(f"brink.retention.{service}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class PurgeReport:
    """What one purge did: rows deleted per table, or that another instance's purge was running."""

    purged: dict[str, int]
    skipped: bool = False


class RetentionWorker:
    """Deletes a service's expired rows every ``interval_seconds``, a batch per short transaction."""

    def __init__(
        self,
        *,
        service: str,
        engine: AsyncEngine,
        expiries: Sequence[Expiry],
        max_age: timedelta,
        interval_seconds: float = 600.0,
        batch_size: int = 500,
        pause_seconds: float = 0.05,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._service = service
        self._engine = engine
        self._expiries = tuple(expiries)
        self._max_age = max_age
        self._interval = interval_seconds
        self._batch_size = batch_size
        self._pause = pause_seconds
        self._clock = clock
        self._stop = asyncio.Event()
        self._postgres = engine.dialect.name == "postgresql"
        self._statements = {expiry.name: self._statements_for(expiry) for expiry in self._expiries}

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Purge now and then every interval until stopped; a failed purge waits for the next turn."""
        if self._max_age < VENDOR_EVENT_WINDOW:
            log.warning(
                "retention.shorter_than_vendor_window",
                service=self._service,
                retention_days=self._max_age / timedelta(days=1),
            )
        while not self._stop.is_set():
            try:
                await self.purge_once()
            except Exception as error:  # database away: the rows wait for the next turn
                log.warning("retention.purge.failed", service=self._service, error=str(error) or repr(error))
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self._interval)

    async def purge_once(self) -> PurgeReport:
        """Delete every expired row, unless another instance of the service is purging right now."""
        if self._postgres:
            # The advisory lock belongs to the session that took it: every batch goes through that connection.
            async with self._engine.connect() as connection:
                if not await self._lock(connection):
                    log.info("retention.purge.skipped", service=self._service, reason="another instance is purging")
                    return PurgeReport(purged={}, skipped=True)
                try:
                    purged = await self._purge_all(lambda: nullcontext(connection))
                    await self._vacuum([name for name, count in purged.items() if count])
                    await self._measure(lambda: nullcontext(connection))
                finally:
                    await self._unlock(connection)
        else:
            # A SQLite engine has one connection per process (shared.db): taken per batch, and given back in the
            # pauses, so the service's own work goes in between.
            purged = await self._purge_all(self._engine.connect)
            await self._measure(self._engine.connect)
        metrics.RETENTION_LAST_RUN.labels(self._service).set(self._clock().timestamp())
        if any(purged.values()):
            log.info("retention.purged", service=self._service, **purged)
        return PurgeReport(purged=purged)

    async def _purge_all(self, connect: Connect) -> dict[str, int]:
        cutoff = self._clock() - self._max_age
        return {expiry.name: await self._purge_table(connect, expiry, cutoff) for expiry in self._expiries}

    async def _vacuum(self, tables: list[str]) -> None:
        """VACUUM the tables just purged, so new rows reuse the space of the deleted ones.

        Autovacuum does this where it is on and keeps up; where it is off or behind, a table whose old rows
        are deleted as fast as new ones arrive still grows without end (a soak on a server without autovacuum:
        7,000 live rows and 100,000 dead in intake's outbox, 161 MB, after 58,000 webhooks). A plain VACUUM
        takes no lock that stops reads or writes, and reads only the pages changed since the last one.
        """
        if not tables:
            return
        async with self._engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            quote = connection.dialect.identifier_preparer.quote
            for table in tables:
                await autocommit.execute(text(f"VACUUM {quote(table)}"))

    async def _lock(self, connection: AsyncConnection) -> bool:
        async with connection.begin():
            return bool(await connection.scalar(select(func.pg_try_advisory_lock(lock_key(self._service)))))

    async def _unlock(self, connection: AsyncConnection) -> None:
        """Release the lock; a connection that cannot is closed, which releases it too (it must not go back to
        the pool still holding it, or every later purge would be skipped)."""
        try:
            if connection.in_transaction():
                await connection.rollback()
            async with connection.begin():
                await connection.execute(select(func.pg_advisory_unlock(lock_key(self._service))))
        except Exception:
            await connection.invalidate()
            raise

    def _statements_for(self, expiry: Expiry) -> tuple[Any, Any]:
        """The walk's read of the next batch and its delete, built once and run with bound parameters."""
        table, position = expiry.table, expiry.position
        keys = list(table.primary_key.columns)
        read = (
            select(position.label("position"), expiry.born.label("born"), expiry.expires.label("expires"), *keys)
            .where(position >= bindparam("after", type_=position.type))
            .order_by(position)
            .limit(self._batch_size)
        )
        if len(keys) == 1 and self._postgres:
            # One prepared statement whatever the batch size (an IN list is a new statement per size).
            matches = keys[0] == any_(bindparam("keys", type_=ARRAY(BigInteger)))
        elif len(keys) == 1:
            matches = keys[0].in_(bindparam("keys", expanding=True))
        else:
            matches = tuple_(*keys).in_(bindparam("keys", expanding=True))
        return read, delete(table).where(matches, expiry.expires < bindparam("cutoff", type_=expiry.expires.type))

    async def _purge_table(self, connect: Connect, expiry: Expiry, cutoff: datetime) -> int:
        """Walk the table from its oldest rows, deleting the expired ones a batch per transaction.

        The walk resumes at the last position read (inclusive): rows kept in a batch are either young, which
        ends the walk, or have unique positions (ids), so each read starts further on or finds fewer rows.
        """
        read, remove = self._statements[expiry.name]
        keys = [column.name for column in expiry.table.primary_key.columns]
        after = expiry.start
        total = 0
        while not self._stop.is_set():
            async with connect() as connection, connection.begin():
                if self._postgres:
                    # Planned with the table as it is now: a plan kept from when it was small could read all
                    # of it for every batch (as the relay's did).
                    await connection.execute(PLAN_EACH_STATEMENT)
                rows = (await connection.execute(read, {"after": after})).all()
                expired = [
                    row._mapping[keys[0]] if len(keys) == 1 else tuple(row._mapping[key] for key in keys)
                    for row in rows
                    if row.expires is not None and row.expires < cutoff
                ]
                deleted = 0
                if expired:
                    deleted = rows_matched(await connection.execute(remove, {"keys": expired, "cutoff": cutoff}))
            if deleted:
                total += deleted
                metrics.RETENTION_PURGED.labels(expiry.name).inc(deleted)
            if len(rows) < self._batch_size or any(row.born >= cutoff for row in rows):
                break
            after = rows[-1].position
            await asyncio.sleep(self._pause)  # the service's own work goes in between batches
        return total

    async def _measure(self, connect: Connect) -> None:
        """Each table's rows (an estimate on PostgreSQL) and, on PostgreSQL, its size on disk with indexes."""
        for expiry in self._expiries:
            async with connect() as connection, connection.begin():
                if self._postgres:
                    size, rows = (await connection.execute(TABLE_SIZE, {"name": expiry.name})).one()
                    metrics.TABLE_BYTES.labels(expiry.name).set(size)
                else:
                    rows = await connection.scalar(select(func.count()).select_from(expiry.table))
            metrics.TABLE_ROWS.labels(expiry.name).set(rows or 0)


TABLE_SIZE = text(
    "SELECT pg_total_relation_size(c.oid), GREATEST(c.reltuples, 0)::bigint FROM pg_class c "
    "WHERE c.oid = CAST(:name AS regclass)"
)
