"""Test parts for the operations tests: a real consumer whose handler fails until the test fixes its cause."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aio_pika
from prometheus_client import REGISTRY
from sqlalchemy import Column, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.consumer import Consumer
from shared.db import UTCDateTime, make_engine, make_sessionmaker
from shared.events import DiagnosisCompleted, Envelope, Verdict
from shared.messaging import Broker, QueueSpec

# Outreach's handled-messages table exists after migration; the test's own queue name keeps its rows apart.
# Described on a MetaData of its own so the services' models can still define it on the shared one.
HANDLED = Table(
    "outreach_handled_messages",
    MetaData(),
    Column("consumer", String(128), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("handled_at", UTCDateTime(), nullable=False),
)


def diagnosis_completed(*, playbook: str = "price-objection") -> Envelope:
    """A diagnosis.completed event as diagnosis publishes it."""
    payload = DiagnosisCompleted(
        diagnosis_id=str(uuid.uuid4()),
        diagnosis_version=1,
        cancellation_id=str(uuid.uuid4()),
        account_id="acct_ops",
        customer_id="cus_ops",
        source="stripe",
        symptom="cancelled",
        root_cause="price",
        verdict=Verdict(decision="pursue", priority=50),
        recommended_playbook=playbook,
    )
    return Envelope.wrap(payload, correlation_id=f"ops-{uuid.uuid4().hex[:8]}", source="diagnosis")


@dataclass
class PlaybookHandler:
    """Stands for outreach's handler: it cannot start a playbook it does not know, until an operator adds it."""

    known_playbooks: set[str] = field(default_factory=set)
    attempts: int = 0
    processed: list[str] = field(default_factory=list)

    async def __call__(self, payload: DiagnosisCompleted, *, envelope: Envelope, session: AsyncSession) -> None:
        self.attempts += 1
        if payload.recommended_playbook not in self.known_playbooks:
            raise LookupError(f"no playbook named {payload.recommended_playbook!r}")
        self.processed.append(str(envelope.id))


@asynccontextmanager
async def running_consumer(
    *, database_url: str, amqp_url: str, handler: PlaybookHandler, retry_delays: tuple[float, ...] = (0.1, 0.2)
) -> AsyncIterator[Consumer]:
    """A real Consumer on a fresh queue of its own, with the real broker and database."""
    engine = make_engine(database_url)
    broker = Broker(amqp_url)
    await broker.connect()
    spec = QueueSpec(
        name=f"opstest.{uuid.uuid4().hex[:8]}",
        routing_keys=(f"opstest.{uuid.uuid4().hex[:8]}",),
        retry_delays=retry_delays,
    )
    consumer = Consumer(
        spec=spec,
        handlers={DiagnosisCompleted.TYPE: handler},
        broker=broker,
        sessions=make_sessionmaker(engine),
        handled=HANDLED,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()
        await broker.close()
        await engine.dispose()


async def send_to_queue(amqp_url: str, queue: str, envelope: Envelope) -> None:
    """Publish straight to one queue (default exchange), persistent and confirmed."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        message = aio_pika.Message(
            envelope.to_bytes(),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
            message_id=str(envelope.id),
            type=envelope.type,
            correlation_id=envelope.correlation_id,
        )
        await channel.default_exchange.publish(message, routing_key=queue, mandatory=True)
    finally:
        await connection.close()


def sample(name: str, **labels: str) -> float:
    """The current value of one metric sample in this process (0 when it has not been set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def handled_rows(database_url: str, consumer: str) -> int:
    """Handled-message rows a consumer committed."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            query = select(func.count()).select_from(HANDLED).where(HANDLED.c.consumer == consumer)
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()
