"""A consumer's linger: messages that arrive a few milliseconds apart share one transaction, and nothing else waits."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis.models import handled
from shared.consumer import Consumer
from shared.events import AccountSignalsUpdated, Envelope
from shared.messaging import Broker
from tests.conftest import eventually
from tests.integration.test_consumer import consumer_for, signals_event
from tests.integration.test_consumer_reconnect import ready_in


async def commit_times(sessions, consumer: Consumer) -> list[datetime]:
    """When each handled message's transaction committed its handled row: one time per transaction."""
    async with sessions() as session:
        rows = await session.execute(select(handled.c.handled_at).where(handled.c.consumer == consumer.spec.name))
        return sorted(rows.scalars())


def recording(seen: list[str]):
    async def handler(payload: AccountSignalsUpdated, *, envelope: Envelope, session: AsyncSession) -> None:
        seen.append(payload.account_id)

    return handler


async def test_messages_arriving_a_few_milliseconds_apart_share_one_transaction(broker: Broker, sessions) -> None:
    """Sent one by one, each arrives to find the consumer idle; the linger holds the batch open for the rest.
    The batch is full with the fifth, and goes then: not when the minute's linger is over."""
    seen: list[str] = []
    consumer = consumer_for(broker, sessions, recording(seen), batch_size=5, linger_seconds=60)
    await consumer.start()
    try:
        for number in range(5):
            await broker.publish(signals_event(f"acct-apart-{number}"))
            await asyncio.sleep(0.005)
        await eventually(lambda: asyncio.sleep(0, result=len(seen) == 5))
    finally:
        await consumer.stop()
    times = await commit_times(sessions, consumer)
    assert len(times) == 5 and len(set(times)) == 1


@pytest.mark.parametrize(("linger_seconds", "transactions"), [(0.0, 2), (30.0, 1)])
async def test_without_a_linger_a_message_is_handled_as_it_arrives(
    broker: Broker, sessions, linger_seconds: float, transactions: int
) -> None:
    """Linger 0 is the behaviour before lingers: a message that finds the consumer idle is handled at once, alone.
    With a linger, the same two messages sent 0.3 s apart are handled together."""
    seen: list[str] = []
    consumer = consumer_for(broker, sessions, recording(seen), batch_size=2, linger_seconds=linger_seconds)
    await consumer.start()
    try:
        await broker.publish(signals_event("acct-first"))
        await asyncio.sleep(0.3)
        await broker.publish(signals_event("acct-second"))
        await eventually(lambda: asyncio.sleep(0, result=len(seen) == 2))
    finally:
        await consumer.stop()
    assert len(set(await commit_times(sessions, consumer))) == transactions


async def test_a_consumer_stopped_during_a_linger_stops_at_once_and_the_message_comes_again(
    amqp_url: str, sessions
) -> None:
    seen: list[str] = []
    account = f"acct-lingering-{uuid.uuid4().hex[:6]}"
    broker = Broker(amqp_url)
    await broker.connect()
    consumer = consumer_for(broker, sessions, recording(seen), batch_size=8, linger_seconds=60)
    await consumer.start()
    await broker.publish(signals_event(account))
    # Delivered to the consumer (none ready in the queue), where it waits for company that never comes.
    await eventually(lambda: _none_ready(amqp_url, consumer))
    await asyncio.wait_for(consumer.stop(), timeout=15)  # well before the minute's linger is over
    await broker.close()
    assert seen == []  # nothing was handled, nothing acknowledged

    broker = Broker(amqp_url)
    await broker.connect()
    restarted = consumer_for(broker, sessions, recording(seen), batch_size=8)
    restarted.spec = consumer.spec  # the same queue
    await restarted.start()
    try:
        await eventually(lambda: asyncio.sleep(0, result=seen == [account]))
    finally:
        await restarted.stop()
        await broker.close()


async def _none_ready(amqp_url: str, consumer: Consumer) -> bool:
    return await ready_in(amqp_url, consumer.spec.name) == 0
