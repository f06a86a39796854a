"""Acks sent in runs (one frame for many deliveries) never acknowledge a message whose handling has not committed."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import make_engine, make_sessionmaker
from shared.events import AccountSignalsUpdated, Envelope
from shared.messaging import Broker
from tests.conftest import eventually
from tests.integration.test_consumer import consumer_for, signals_event


async def test_a_later_message_committed_first_does_not_acknowledge_an_earlier_one_still_in_hand(
    postgres_url: str, amqp_url: str
) -> None:
    # PostgreSQL: on SQLite the message in hand would hold the one write lock and nothing could commit after it.
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    slow = f"acct-slow-{uuid.uuid4().hex[:6]}"
    fast = [f"acct-fast-{n}-{uuid.uuid4().hex[:6]}" for n in range(5)]
    handled: list[str] = []
    never = asyncio.Event()

    async def first_run(payload: AccountSignalsUpdated, *, envelope: Envelope, session: AsyncSession) -> None:
        if payload.account_id == slow:
            await never.wait()  # still in hand when this consumer goes away
        handled.append(payload.account_id)

    broker = Broker(amqp_url)
    await broker.connect()
    consumer = consumer_for(broker, sessions, first_run, batch_size=1)  # one worker per prefetched message
    await consumer.start()
    for account in (slow, *fast):
        await broker.publish(signals_event(account))
    await eventually(lambda: asyncio.sleep(0, result=len(handled) == len(fast)))
    await asyncio.sleep(0.3)  # the five acks, had they been sent, are on the wire by now
    # The process dies with the slow message in hand: what the broker had not been acked, it delivers again.
    await consumer.stop()
    await broker.close()

    again: list[str] = []

    async def second_run(payload: AccountSignalsUpdated, *, envelope: Envelope, session: AsyncSession) -> None:
        again.append(payload.account_id)

    broker = Broker(amqp_url)
    await broker.connect()
    restarted = consumer_for(broker, sessions, second_run, batch_size=8)
    restarted.spec = consumer.spec  # the same queue
    await restarted.start()
    try:
        await eventually(lambda: asyncio.sleep(0, result=slow in again))
        await asyncio.sleep(0.3)
        # The slow one is handled now, not lost; the five committed before are duplicates, not done twice.
        assert again == [slow]
    finally:
        await restarted.stop()
        await broker.close()
        await engine.dispose()
