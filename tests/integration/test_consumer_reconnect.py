"""A consumer whose connection is cut while it handles a batch resumes on the new connection, losing nothing."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import aio_pika
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import make_engine, make_sessionmaker
from shared.events import AccountSignalsUpdated, Envelope
from shared.messaging import Broker
from tests.conftest import eventually
from tests.integration.test_consumer import consumer_for, signals_event
from tests.tcp_proxy import TcpProxy, amqp_through


async def ready_in(amqp_url: str, queue: str) -> int:
    """How many messages wait in the queue for a consumer (none are held by one)."""
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


@pytest.mark.parametrize("linger_seconds", [0.0, 0.02])
async def test_a_batch_committed_after_its_connection_was_cut_does_not_stop_the_consumer(
    postgres_url: str, amqp_url: str, linger_seconds: float
) -> None:
    """The batch commits once its connection is gone; its ack cannot be sent and its messages come again on the
    new connection (duplicates now). Seen in make chaos: the consumer's one worker ended there, and a prefetch
    window of redelivered messages stayed in its hands for good. The same with batches that linger for company."""
    upstream = urlsplit(amqp_url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 5672)
    await proxy.start()
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    first = [f"acct-cut-{n}-{uuid.uuid4().hex[:6]}" for n in range(3)]
    after = f"acct-after-{uuid.uuid4().hex[:6]}"
    handled: list[str] = []
    in_hand = asyncio.Event()
    cut_done = asyncio.Event()

    async def handle(payload: AccountSignalsUpdated, *, envelope: Envelope, session: AsyncSession) -> None:
        in_hand.set()
        await cut_done.wait()  # the first batch is still being handled while its connection goes
        handled.append(payload.account_id)

    publisher = Broker(amqp_url)
    await publisher.connect()
    broker = Broker(amqp_through(proxy, amqp_url))
    await broker.connect()
    # prefetch 8: one worker takes the batch
    consumer = consumer_for(broker, sessions, handle, batch_size=8, linger_seconds=linger_seconds)
    try:
        await consumer.start()
        for account in first:
            await publisher.publish(signals_event(account))
        await asyncio.wait_for(in_hand.wait(), 10)

        await proxy.cut()
        await eventually(lambda: asyncio.sleep(0, result=not broker.is_connected))
        await proxy.restore()
        await eventually(lambda: asyncio.sleep(0, result=broker.is_connected), timeout=30)
        cut_done.set()  # the batch commits now, on a connection already replaced

        # The consumer goes on: an event published after the reconnect is handled, and nothing stays behind.
        await publisher.publish(signals_event(after))
        await eventually(lambda: asyncio.sleep(0, result=after in handled), timeout=15)
        assert sorted(handled) == sorted([*first, after])  # the redelivered batch was not handled twice
    finally:
        await consumer.stop()
        await broker.close()
        await publisher.close()
        await proxy.close()
        await engine.dispose()
    # Every message was acknowledged: none came back to the queue when the consumer went away.
    assert await ready_in(amqp_url, consumer.spec.name) == 0


async def test_a_consumer_stops_while_its_broker_is_unreachable(postgres_url: str, amqp_url: str) -> None:
    """A service told to stop during a broker outage stops (its consumer's cancel waited for the reconnect)."""
    upstream = urlsplit(amqp_url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 5672)
    await proxy.start()
    engine = make_engine(postgres_url)
    broker = Broker(amqp_through(proxy, amqp_url))
    await broker.connect()

    async def handle(payload: AccountSignalsUpdated, *, envelope: Envelope, session: AsyncSession) -> None:
        return None

    consumer = consumer_for(broker, make_sessionmaker(engine), handle)
    try:
        await consumer.start()
        await proxy.cut()
        await eventually(lambda: asyncio.sleep(0, result=not broker.is_connected))
        await asyncio.wait_for(consumer.stop(), 60)  # without a bound on the cancel: never
    finally:
        await broker.close()
        await proxy.close()
        await engine.dispose()
