"""What the relay reads on a big outbox: indexes, not the whole table, and not every row it has already sent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from services.intake.models import outbox
from shared.db import make_engine, make_sessionmaker, transaction, utcnow
from shared.messaging import Broker
from shared.outbox import OutboxRelay
from tests.conftest import eventually, new_postgres_database

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A new, migrated PostgreSQL database whose outbox starts empty, as on a new installation."""
    async with new_postgres_database("brink_plans") as url:
        yield url


async def stage(sessions: object, count: int, *, published: bool = False) -> None:
    async with transaction(sessions) as session:  # type: ignore[arg-type]
        await session.execute(outbox.insert(), [
            {"event_id": str(uuid.uuid4()), "event_type": "test.outbox_plans", "correlation_id": "plans",
             "body": "{}", "created_at": utcnow(), "published_at": utcnow() if published else None}
            for _ in range(count)
        ])


async def test_marking_a_batch_sent_probes_the_index_when_the_plan_was_first_made_on_an_empty_outbox(
        empty_database: str, amqp_url: str) -> None:
    # One connection, so every batch reuses the statements it prepared while the outbox was empty.
    engine = make_engine(empty_database, pool_size=1, max_overflow=0)
    sessions = make_sessionmaker(engine)
    broker = Broker(amqp_url)
    await broker.connect()
    stats = await asyncpg.connect(empty_database.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        # Kept from being re-planned by a background ANALYZE, as a busy outbox between autovacuum runs is.
        await stats.execute("ALTER TABLE intake_outbox SET (autovacuum_enabled = false)")
        relay = OutboxRelay(sessions=sessions, table=outbox, broker=broker, batch_size=50)
        for _ in range(8):  # past the five runs after which PostgreSQL may keep one plan for a statement
            await stage(sessions, 1)
            assert await relay.publish_pending() == 1
        await stage(sessions, 30_000, published=True)
        await stage(sessions, 3)

        async def scans() -> tuple[int, int]:
            row = await stats.fetchrow(
                "SELECT seq_scan, coalesce(idx_scan, 0) AS idx_scan FROM pg_stat_user_tables WHERE relname = 'intake_outbox'")
            return row["seq_scan"], row["idx_scan"]

        async def flush_relay_connection_stats() -> None:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT pg_stat_force_next_flush()"))

        await flush_relay_connection_stats()
        before = await settled(scans)
        assert await relay.publish_pending() == 3
        await flush_relay_connection_stats()
        after = await eventually(lambda: _changed(scans, before))
        assert after[0] == before[0], "the relay read the whole outbox to mark three rows sent"
    finally:
        await stats.close()
        await broker.close()
        await engine.dispose()


async def settled(scans: object) -> tuple[int, int]:
    """The counters once they have stopped moving (the relay's earlier statements are counted)."""
    last = await scans()  # type: ignore[operator]
    while True:
        await asyncio.sleep(0.3)
        now = await scans()  # type: ignore[operator]
        if now == last:
            return now
        last = now


async def _changed(scans: object, before: tuple[int, int]) -> tuple[int, int] | None:
    now = await scans()  # type: ignore[operator]
    return now if now != before else None


async def index_blocks_read(stats: asyncpg.Connection) -> int:
    return await stats.fetchval(
        "SELECT idx_blks_hit + idx_blks_read FROM pg_statio_user_indexes WHERE indexrelname = 'ix_intake_outbox_pending'")


async def test_scans_start_above_the_rows_already_sent_and_a_row_committed_late_is_still_published(
        empty_database: str, amqp_url: str) -> None:
    engine = make_engine(empty_database, pool_size=2, max_overflow=0)
    sessions = make_sessionmaker(engine)
    broker = Broker(amqp_url)
    await broker.connect()
    stats = await asyncpg.connect(empty_database.replace("postgresql+asyncpg://", "postgresql://"))
    late = await asyncpg.connect(empty_database.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        # Sent rows stay in the pending index until VACUUM, which here never comes.
        await stats.execute("ALTER TABLE intake_outbox SET (autovacuum_enabled = false)")
        relay = OutboxRelay(sessions=sessions, table=outbox, broker=broker, batch_size=500, full_scan_seconds=3600)
        await stage(sessions, 30_000)
        published = 0
        while published < 30_000:
            published += await relay.publish_pending()

        # A row whose transaction takes its id now and commits only after the relay has moved past it.
        slow = late.transaction()
        await slow.start()
        await late.execute("INSERT INTO intake_outbox (event_id, event_type, correlation_id, body, created_at)"
                           " VALUES ($1, 'test.outbox_plans', 'plans', '{}', now())", str(uuid.uuid4()))
        for _ in range(3):
            await stage(sessions, 5)
            assert await relay.publish_pending() == 5
        await flush_stats(engine)
        before = await settled_blocks(stats)
        await stage(sessions, 5)
        assert await relay.publish_pending() == 5
        await flush_stats(engine)
        read = await eventually(lambda: _grown(stats, before)) - before
        assert read < 20, f"the scan read {read} blocks of the pending index, through the rows already sent"

        await slow.commit()
        assert await relay.publish_pending() == 0  # below the floor: not seen by a scan from the floor
        relay = OutboxRelay(sessions=sessions, table=outbox, broker=broker, batch_size=500, full_scan_seconds=0)
        assert await relay.publish_pending() == 1  # the scan from the bottom finds it
    finally:
        await late.close()
        await stats.close()
        await broker.close()
        await engine.dispose()


async def flush_stats(engine: object) -> None:
    for _ in range(2):  # either pooled connection may have served the relay
        async with engine.connect() as connection:  # type: ignore[attr-defined]
            await connection.execute(text("SELECT pg_stat_force_next_flush()"))


async def settled_blocks(stats: asyncpg.Connection) -> int:
    last = await index_blocks_read(stats)
    while True:
        await asyncio.sleep(0.3)
        now = await index_blocks_read(stats)
        if now == last:
            return now
        last = now


async def _grown(stats: asyncpg.Connection, before: int) -> int | None:
    now = await index_blocks_read(stats)
    return now if now > before else None
