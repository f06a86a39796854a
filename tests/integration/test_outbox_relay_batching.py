"""The outbox relay publishes a whole batch, confirmed and marked sent, while its process is busy serving."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aio_pika
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.models import outbox
from shared.db import make_engine, make_sessionmaker, transaction, utcnow
from shared.messaging import EVENTS_EXCHANGE, Broker
from shared.migrate import upgrade
from shared.outbox import OutboxRelay
from tests.conftest import new_postgres_database

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


@asynccontextmanager
async def empty_outbox(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database of its own, so the relay publishes only this test's rows."""
    if backend == "postgres":
        async with new_postgres_database("brink_relay") as url:
            yield url
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
    await asyncio.to_thread(upgrade, url)
    yield url


async def stage(
    sessions: async_sessionmaker[AsyncSession], events: list[tuple[str, str]], bodies: list[str] | None = None
) -> None:
    """Outbox rows of these (event type, correlation id), oldest first, with these bodies (``{}`` by default)."""
    async with transaction(sessions) as session:
        await session.execute(
            outbox.insert(),
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": event_type,
                    "correlation_id": correlation_id,
                    "body": "{}" if bodies is None else bodies[position],
                    "created_at": utcnow(),
                }
                for position, (event_type, correlation_id) in enumerate(events)
            ],
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_message_the_broker_refuses_stays_pending_and_the_rest_of_its_batch_is_marked_sent(
    backend: str, tmp_path: Path, own_amqp_url: str
) -> None:
    refused_type = f"test.refused.{uuid.uuid4().hex[:8]}"
    async with empty_outbox(backend, tmp_path) as database_url:
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        broker = Broker(own_amqp_url)
        await broker.connect()
        # A full queue that refuses what is routed to it: RabbitMQ nacks those publishes.
        refusing = await aio_pika.connect(own_amqp_url)
        channel = await refusing.channel()
        full = await channel.declare_queue(
            f"test-full-{uuid.uuid4().hex[:8]}", arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
        )
        await full.bind(EVENTS_EXCHANGE, routing_key=refused_type)
        types = ["test.relayed"] * 3 + [refused_type] + ["test.relayed"] * 3
        await stage(sessions, [(event_type, "refused") for event_type in types])
        relay = OutboxRelay(sessions=sessions, table=outbox, broker=broker)
        try:
            with pytest.raises(RuntimeError, match="1 of 7 outbox rows were not confirmed"):
                await relay.publish_pending()
            async with transaction(sessions) as session:
                rows = (
                    await session.execute(
                        select(outbox.c.event_type, outbox.c.published_at, outbox.c.attempts, outbox.c.last_error)
                    )
                ).all()
        finally:
            await refusing.close()
            await broker.close()
            await engine.dispose()
    sent = [row for row in rows if row.published_at is not None]
    [pending] = [row for row in rows if row.published_at is None]
    assert len(sent) == 6 and all(row.event_type == "test.relayed" and row.attempts == 0 for row in sent)
    assert pending.event_type == refused_type and pending.attempts == 1 and pending.last_error


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_message_that_cannot_be_framed_fails_alone_and_the_rest_of_its_batch_is_sent(
    backend: str, tmp_path: Path, amqp_url: str
) -> None:
    # Intake keeps 128 characters of a client's X-Correlation-Id read as latin-1: 128 bytes above 0x7f are
    # 256 bytes of UTF-8, more than an AMQP property holds. That one event cannot go out; the others must.
    unframable = "\u00e9" * 128
    async with empty_outbox(backend, tmp_path) as database_url:
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        broker = Broker(amqp_url)
        await broker.connect()
        correlation_ids = ["before", unframable, "after"]
        await stage(sessions, [("test.relayed", correlation_id) for correlation_id in correlation_ids])
        relay = OutboxRelay(sessions=sessions, table=outbox, broker=broker)
        try:
            with pytest.raises(RuntimeError, match="1 of 3 outbox rows were not confirmed"):
                await relay.publish_pending()
            async with transaction(sessions) as session:
                rows = (
                    await session.execute(
                        select(outbox.c.correlation_id, outbox.c.published_at, outbox.c.attempts).order_by(outbox.c.id)
                    )
                ).all()
        finally:
            await broker.close()
            await engine.dispose()
    assert [(row.correlation_id, row.published_at is not None, row.attempts) for row in rows] == [
        ("before", True, 0),
        (unframable, False, 1),
        ("after", True, 0),
    ]


async def test_events_larger_than_a_frame_arrive_whole_and_in_order_from_one_batch(
    tmp_path: Path, own_amqp_url: str
) -> None:
    # RabbitMQ's frames hold 128 KiB: a 300 KB body goes out in several, between the small events of its batch.
    routing_key = f"test.sizes.{uuid.uuid4().hex[:8]}"
    bodies = ['{"n": 0}', '{"text": "' + "\u017e" * 150_000 + '"}', '{"n": 2}', "", '{"n": 4}']
    async with empty_outbox("sqlite", tmp_path) as database_url:
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        broker = Broker(own_amqp_url)
        await broker.connect()
        reading = await aio_pika.connect(own_amqp_url)
        try:
            queue = await (await reading.channel()).declare_queue(f"test-sizes-{uuid.uuid4().hex[:8]}")
            await queue.bind(EVENTS_EXCHANGE, routing_key=routing_key)
            await stage(sessions, [(routing_key, "sizes")] * len(bodies), bodies)
            relay = OutboxRelay(sessions=sessions, table=outbox, broker=broker)
            assert await relay.publish_pending() == len(bodies)
            received = []
            for _ in bodies:
                message = await queue.get(timeout=5, fail=True)
                assert message is not None
                received.append(message.body.decode())
                await message.ack()
        finally:
            await reading.close()
            await broker.close()
            await engine.dispose()
    assert received == bodies
