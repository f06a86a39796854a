"""The consumer contract on the real broker and database: once only, retried with delay, then dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import aio_pika
import aiormq
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis.models import handled
from shared.consumer import ERROR_HEADER, QUEUE_HEADER, Batched, Consumer
from shared.db import utcnow
from shared.events import AccountSignalsUpdated, CaseClosed, Envelope
from shared.messaging import Broker, OutgoingMessage, QueueSpec
from tests.conftest import eventually


def signals_event(account: str) -> Envelope:
    return Envelope.wrap(
        AccountSignalsUpdated(account_id=account, signal_version=1), correlation_id="c-1", source="test"
    )


async def dead_messages(broker: Broker, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    assert broker.connection is not None
    found = []
    async with broker.connection.channel() as channel:
        dead = await channel.get_queue(queue, ensure=False)
        while (message := await dead.get(no_ack=False, fail=False)) is not None:
            found.append(message)
        for message in found:
            await message.nack(requeue=True)
    return found


def consumer_for(
    broker: Broker, sessions, handler, *, retry_delays=(0.1, 0.2), batch_size: int = 1, linger_seconds: float = 0.0
) -> Consumer:
    return consumer_with(
        broker,
        sessions,
        {AccountSignalsUpdated.TYPE: handler},
        retry_delays=retry_delays,
        batch_size=batch_size,
        linger_seconds=linger_seconds,
    )


def consumer_with(
    broker: Broker,
    sessions,
    handlers: dict,
    *,
    retry_delays=(0.1, 0.2),
    batch_size: int = 8,
    linger_seconds: float = 0.0,
) -> Consumer:
    spec = QueueSpec(
        name=f"test.{uuid.uuid4().hex[:8]}",
        routing_keys=tuple(handlers),
        retry_delays=retry_delays,
        delivery_limit=5,
    )
    return Consumer(
        spec=spec,
        handlers=handlers,
        broker=broker,
        sessions=sessions,
        handled=handled,
        prefetch=8,
        batch_size=batch_size,
        linger_seconds=linger_seconds,
    )


async def start_consumer(
    broker: Broker,
    sessions,
    handler,
    *,
    retry_delays=(0.1, 0.2),
    batch_size: int = 1,
) -> Consumer:
    consumer = consumer_for(broker, sessions, handler, retry_delays=retry_delays, batch_size=batch_size)
    await consumer.start()
    return consumer


@pytest.mark.parametrize("batch_size", [1, 8])
async def test_a_redelivered_envelope_is_handled_once(broker: Broker, sessions, batch_size: int) -> None:
    seen: list[str] = []

    async def handler(payload: AccountSignalsUpdated, *, envelope: Envelope, session: AsyncSession) -> None:
        seen.append(payload.account_id)

    consumer = await start_consumer(broker, sessions, handler, batch_size=batch_size)
    envelope = signals_event(f"acct-{uuid.uuid4().hex[:6]}")
    for _ in range(3):
        await broker.publish(envelope)
    await eventually(lambda: asyncio.sleep(0, result=len(seen) == 1))
    await asyncio.sleep(0.3)
    await consumer.stop()
    assert seen == [envelope.data["account_id"]]


async def test_a_failing_handler_is_retried_then_succeeds(broker: Broker, sessions) -> None:
    attempts = 0

    async def flaky(payload: AccountSignalsUpdated, *, envelope: Envelope, session: AsyncSession) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RuntimeError("CRM is briefly down")

    consumer = await start_consumer(broker, sessions, flaky)
    await broker.publish(signals_event("acct-flaky"))
    await eventually(lambda: asyncio.sleep(0, result=attempts == 3), timeout=10)
    await asyncio.sleep(0.3)
    await consumer.stop()
    assert attempts == 3
    assert await dead_messages(broker, consumer.spec.dead_queue) == []


async def test_a_handler_that_keeps_failing_is_dead_lettered_with_its_reason(broker: Broker, sessions) -> None:
    attempts = 0

    async def broken(payload: AccountSignalsUpdated, *, envelope: Envelope, session: AsyncSession) -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError(f"no playbook for account {payload.account_id}")

    consumer = await start_consumer(broker, sessions, broken)
    envelope = signals_event("acct-broken")
    await broker.publish(envelope)
    dead = await eventually(lambda: dead_messages(broker, consumer.spec.dead_queue), timeout=10)
    await consumer.stop()
    assert attempts == 3  # the first try and two delayed retries
    assert len(dead) == 1
    assert dead[0].message_id == str(envelope.id)
    assert dead[0].headers[ERROR_HEADER] == "ValueError: no playbook for account acct-broken"
    assert dead[0].headers[QUEUE_HEADER] == consumer.spec.name


async def test_an_undecodable_message_goes_straight_to_the_dead_queue(broker: Broker, sessions) -> None:
    async def never(payload: AccountSignalsUpdated, *, envelope: Envelope, session: AsyncSession) -> None:
        raise AssertionError("a poison message must not reach the handler")

    consumer = await start_consumer(broker, sessions, never)
    await broker.publish_raw(
        "brink.events",
        AccountSignalsUpdated.TYPE,
        OutgoingMessage(b"{not json", aiormq.spec.Basic.Properties(message_id="poison-1")),
    )
    dead = await eventually(lambda: dead_messages(broker, consumer.spec.dead_queue), timeout=10)
    await consumer.stop()
    assert dead[0].message_id == "poison-1"
    assert dead[0].headers[ERROR_HEADER].startswith("undecodable message")


# Messages queued before a consumer starts reach it one delivery frame at a time: without a linger, the first can
# find the worker idle and go alone, so a test about messages taken together lets the batch wait for its companions.
ARRIVING_TOGETHER_LINGER = 1.0


async def queued_before_start(broker: Broker, consumer: Consumer, envelopes: list[Envelope]) -> None:
    """Publish while nobody consumes, so the messages arrive together when the consumer starts."""
    await broker.declare_queue(consumer.spec)
    for envelope in envelopes:
        await broker.publish(envelope)


async def effects_of(sessions, consumer: Consumer) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(
            select(handled.c.event_id).where(handled.c.consumer == f"{consumer.spec.name}:effect")
        )
        return sorted(rows.scalars())


async def test_messages_that_arrive_together_commit_in_one_transaction(broker: Broker, sessions) -> None:
    transactions: list[str] = []

    async def handler(payload: AccountSignalsUpdated, *, envelope: Envelope, session: AsyncSession) -> None:
        transactions.append(session.info.setdefault("transaction", uuid.uuid4().hex))

    consumer = consumer_for(broker, sessions, handler, batch_size=8, linger_seconds=ARRIVING_TOGETHER_LINGER)
    await queued_before_start(broker, consumer, [signals_event(f"acct-{n}") for n in range(8)])
    await consumer.start()
    await eventually(lambda: asyncio.sleep(0, result=len(transactions) == 8), timeout=10)
    await consumer.stop()
    assert len(set(transactions)) < 8


@pytest.mark.parametrize("batched", [False, True], ids=["per message", "batched"])
async def test_one_failing_message_in_a_batch_costs_the_others_nothing(broker: Broker, sessions, batched: bool) -> None:
    async def handle(payload: AccountSignalsUpdated, envelope: Envelope, session: AsyncSession) -> None:
        # An effect in the handler's transaction: a batch rolled back must not leave it behind.
        await session.execute(
            handled.insert().values(
                consumer=f"{consumer.spec.name}:effect", event_id=str(envelope.id), handled_at=utcnow()
            )
        )
        if payload.account_id == "acct-bad":
            raise ValueError("no playbook for acct-bad")

    async def one(payload: AccountSignalsUpdated, *, envelope: Envelope, session: AsyncSession) -> None:
        await handle(payload, envelope, session)

    async def many(payloads: list[AccountSignalsUpdated], *, envelopes: list[Envelope], session: AsyncSession) -> None:
        for payload, envelope in zip(payloads, envelopes, strict=True):
            await handle(payload, envelope, session)

    consumer = consumer_with(broker, sessions, {AccountSignalsUpdated.TYPE: Batched(many) if batched else one})
    good = [signals_event(f"acct-{n}") for n in range(4)]
    bad = signals_event("acct-bad")
    await queued_before_start(broker, consumer, [*good[:2], bad, *good[2:]])
    await consumer.start()
    dead = await eventually(lambda: dead_messages(broker, consumer.spec.dead_queue), timeout=10)
    await consumer.stop()
    assert [message.message_id for message in dead] == [str(bad.id)]
    # Each good message's effect committed exactly once (a second insert would have failed on the key).
    assert await effects_of(sessions, consumer) == sorted(str(envelope.id) for envelope in good)


def case_closed_event(case_id: str) -> Envelope:
    closed = CaseClosed(
        case_id=case_id, cancellation_id="c", account_id="a", outcome="lost", closed_at=datetime.now(UTC)
    )
    return Envelope.wrap(closed, correlation_id="c-1", source="test")


async def test_a_batched_handler_takes_its_messages_together_in_arrival_order(broker: Broker, sessions) -> None:
    calls: list[list[str]] = []

    async def signals(
        payloads: list[AccountSignalsUpdated], *, envelopes: list[Envelope], session: AsyncSession
    ) -> None:
        calls.append([payload.account_id for payload in payloads])

    async def closed(payload: CaseClosed, *, envelope: Envelope, session: AsyncSession) -> None:
        calls.append([payload.case_id])

    consumer = consumer_with(
        broker,
        sessions,
        {AccountSignalsUpdated.TYPE: Batched(signals), CaseClosed.TYPE: closed},
        linger_seconds=ARRIVING_TOGETHER_LINGER,
    )
    first = signals_event("acct-1")
    arriving = [first, signals_event("acct-2"), case_closed_event("case-1"), signals_event("acct-3"), first]
    await queued_before_start(broker, consumer, arriving)
    await consumer.start()
    await eventually(lambda: asyncio.sleep(0, result=sum(map(len, calls)) == 4), timeout=10)
    await asyncio.sleep(0.3)
    await consumer.stop()
    # Each message once (the redelivered one not again), in the order it arrived: the batched handler's messages in
    # a row in one call, and never one call across the message of another type between them.
    assert calls == [["acct-1", "acct-2"], ["case-1"], ["acct-3"]]
