"""The outbox relay publishes a whole batch, confirmed and marked sent, while its process is busy serving."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.intake.models import outbox
from shared.db import make_engine, make_sessionmaker, transaction, utcnow
from shared.messaging import Broker
from shared.migrate import upgrade
from shared.outbox import OutboxRelay

pytestmark = pytest.mark.rabbitmq


async def test_a_full_batch_is_confirmed_and_marked_while_the_process_serves_other_work(
    tmp_path: Path, amqp_url: str
) -> None:
    # A database of its own: the relay publishes every pending row, and other tests' rows are theirs.
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
    await asyncio.to_thread(upgrade, database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    broker = Broker(amqp_url)
    await broker.connect()
    marker = uuid.uuid4().hex
    async with transaction(sessions) as session:
        await session.execute(
            outbox.insert(),
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "bench.relay_turns",
                    "correlation_id": marker,
                    "body": "{}",
                    "created_at": utcnow(),
                }
                for _ in range(200)
            ],
        )
    turns = 0
    stop = False

    async def other_work() -> None:  # a request handler's worth of CPU per turn, as under HTTP load
        nonlocal turns
        while not stop:
            turns += 1
            started = time.perf_counter()
            while time.perf_counter() - started < 0.005:
                pass
            await asyncio.sleep(0)

    worker = asyncio.create_task(other_work())
    relay = OutboxRelay(sessions=sessions, table=outbox, broker=broker, batch_size=200)
    try:
        published = 0
        while published < 200:
            published += await relay.publish_pending()
        stop = True
        await worker
        async with transaction(sessions) as session:
            pending = await session.scalar(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.correlation_id == marker, outbox.c.published_at.is_(None))
            )
    finally:
        stop = True
        await broker.close()
        await engine.dispose()
    assert pending == 0
    # How many loop turns a batch takes is a speed, measured by `make bench`, not asserted here.
    assert published == 200 and turns > 0
