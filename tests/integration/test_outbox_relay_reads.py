"""What the relay reads on a big outbox: indexes, not the whole table, and not every row it has already sent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.intake.models import outbox
from shared.db import make_engine, make_sessionmaker, transaction, utcnow
from shared.messaging import Broker
from shared.outbox import OutboxRelay
from tests.conftest import eventually, new_postgres_database
from tests.helpers import outbox_rows

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A new, migrated PostgreSQL database whose outbox starts empty, as on a new installation."""
    async with new_postgres_database("brink_plans") as url:
        yield url


@dataclass
class Parts:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    broker: Broker
    stats: asyncpg.Connection  # a plain connection, for the statistics views


@asynccontextmanager
async def relay_parts(database_url: str, amqp_url: str, *, connections: int) -> AsyncIterator[Parts]:
    """An engine, a broker and a statistics connection. The outbox is never vacuumed or analyzed meanwhile,
    as a busy outbox is not between two autovacuum runs."""
    engine = make_engine(database_url, pool_size=connections, max_overflow=0)
    broker = Broker(amqp_url)
    await broker.connect()
    stats = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await stats.execute("ALTER TABLE intake_outbox SET (autovacuum_enabled = false)")
        yield Parts(engine, make_sessionmaker(engine), broker, stats)
    finally:
        await stats.close()
        await broker.close()
        await engine.dispose()


async def stage(sessions: async_sessionmaker[AsyncSession], count: int, *, published: bool = False) -> None:
    now = utcnow()
    async with transaction(sessions) as session:
        await session.execute(
            outbox.insert(),
            outbox_rows(count, event_type="test.outbox_reads", created_at=now, published_at=now if published else None),
        )


async def flush_stats(engine: AsyncEngine) -> None:
    """Have the relay's connections report their counters now rather than within the next seconds."""
    for _ in range(engine.pool.size()):  # type: ignore[attr-defined]
        async with engine.connect() as connection:
            await connection.execute(text("SELECT pg_stat_force_next_flush()"))


async def settled(read: Callable[[], Awaitable[Any]]) -> Any:
    """A counter once it has stopped moving (the relay's earlier statements are all counted)."""
    last = await read()
    while True:
        await asyncio.sleep(0.3)
        now = await read()
        if now == last:
            return now
        last = now


async def after_change(read: Callable[[], Awaitable[Any]], before: Any) -> Any:
    async def changed() -> Any:
        now = await read()
        return now if now != before else None

    return await eventually(changed)


async def test_marking_a_batch_sent_probes_the_index_when_the_plan_was_first_made_on_an_empty_outbox(
    empty_database: str, amqp_url: str
) -> None:
    # One connection, so every batch reuses the statements it prepared while the outbox was empty.
    async with relay_parts(empty_database, amqp_url, connections=1) as parts:
        relay = OutboxRelay(sessions=parts.sessions, table=outbox, broker=parts.broker, batch_size=50)
        for _ in range(8):  # past the five runs after which PostgreSQL may keep one plan for a statement
            await stage(parts.sessions, 1)
            assert await relay.publish_pending() == 1
        await stage(parts.sessions, 30_000, published=True)
        await stage(parts.sessions, 3)

        async def scans() -> tuple[int, int]:
            row = await parts.stats.fetchrow(
                "SELECT seq_scan, coalesce(idx_scan, 0) AS idx_scan"
                " FROM pg_stat_user_tables WHERE relname = 'intake_outbox'"
            )
            return row["seq_scan"], row["idx_scan"]

        await flush_stats(parts.engine)
        before = await settled(scans)
        assert await relay.publish_pending() == 3
        await flush_stats(parts.engine)
        after = await after_change(scans, before)
        assert after[0] == before[0], "the relay read the whole outbox to mark three rows sent"


async def test_scans_start_above_the_rows_already_sent_and_a_row_committed_late_is_still_published(
    empty_database: str, amqp_url: str
) -> None:
    late = await asyncpg.connect(empty_database.replace("postgresql+asyncpg://", "postgresql://"))
    async with relay_parts(empty_database, amqp_url, connections=2) as parts:
        relay = OutboxRelay(
            sessions=parts.sessions, table=outbox, broker=parts.broker, batch_size=500, full_scan_seconds=3600
        )
        await stage(parts.sessions, 30_000)
        published = 0
        while published < 30_000:
            published += await relay.publish_pending()

        # A row whose transaction takes its id now and commits only after the relay has moved past it.
        slow = late.transaction()
        await slow.start()
        await late.execute(
            "INSERT INTO intake_outbox (event_id, event_type, correlation_id, body, created_at)"
            " VALUES ($1, 'test.outbox_reads', 'reads', '{}', now())",
            str(uuid.uuid4()),
        )
        for _ in range(3):
            await stage(parts.sessions, 5)
            assert await relay.publish_pending() == 5

        async def pending_index_blocks() -> int:
            return await parts.stats.fetchval(
                "SELECT idx_blks_hit + idx_blks_read FROM pg_statio_user_indexes"
                " WHERE indexrelname = 'ix_intake_outbox_pending'"
            )

        await flush_stats(parts.engine)
        before = await settled(pending_index_blocks)
        await stage(parts.sessions, 5)
        assert await relay.publish_pending() == 5
        await flush_stats(parts.engine)
        read = await after_change(pending_index_blocks, before) - before
        assert read < 20, f"the scan read {read} blocks of the pending index, through the rows already sent"

        await slow.commit()
        await late.close()
        assert await relay.publish_pending() == 0  # below the floor: not seen by a scan from the floor
        sweeper = OutboxRelay(sessions=parts.sessions, table=outbox, broker=parts.broker, full_scan_seconds=0)
        assert await sweeper.publish_pending() == 1  # a scan from the bottom finds it
