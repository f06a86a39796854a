"""RabbitMQ unreachable: intake keeps accepting, and publishes every event exactly once when it returns."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import urlsplit

import aio_pika
from sqlalchemy import func, select

from services.intake.models import outbox
from shared.messaging import EVENTS_EXCHANGE
from tests.conftest import eventually
from tests.helpers import stripe_event, stripe_subscription
from tests.intake_helpers import intake_settings, post_stripe, running_intake
from tests.tcp_proxy import TcpProxy, amqp_through


async def test_accepts_while_the_broker_is_unreachable_and_publishes_each_event_once(
    postgres_url: str, amqp_url: str
) -> None:
    upstream = urlsplit(amqp_url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 5672)
    await proxy.start()
    watcher = await aio_pika.connect(amqp_url)
    try:
        channel = await watcher.channel()
        exchange = await channel.declare_exchange(
            EVENTS_EXCHANGE,
            aio_pika.ExchangeType.TOPIC,
            durable=True,
            arguments={"alternate-exchange": "brink.unrouted"},
        )
        queue = await channel.declare_queue(f"test.intake.outage.{uuid.uuid4().hex[:8]}", exclusive=True)
        await queue.bind(exchange, routing_key="cancellation.#")
        ours: set[str] = set()  # the suite shares one database: count only this test's cancellations
        deliveries: list[str] = []

        async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                if json.loads(message.body)["data"]["cancellation_id"] in ours:
                    deliveries.append(message.message_id or "")

        def cancellation() -> dict:
            subscription = stripe_subscription()
            ours.add(f"stripe:{subscription['id']}")
            return stripe_event("customer.subscription.deleted", subscription)

        await queue.consume(collect)
        settings = intake_settings(database_url=postgres_url, amqp_url=amqp_through(proxy, amqp_url))
        async with running_intake(settings) as (app, client):
            runtime = app.state.runtime

            first = await post_stripe(client, cancellation())
            assert first.json()["outcome"] == "accepted"
            await eventually(lambda: _count(deliveries, 1))
            await eventually(lambda: _unpublished(runtime, 0))  # rows other tests left behind go out first

            await proxy.cut()
            await eventually(lambda: _true(not runtime.broker.is_connected))
            during = [await post_stripe(client, cancellation()) for _ in range(5)]
            assert [response.status_code for response in during] == [200] * 5
            assert {response.json()["outcome"] for response in during} == {"accepted"}
            await asyncio.sleep(1.0)  # the relay tries, and must not lose or half-send anything meanwhile
            assert len(deliveries) == 1
            assert await _unpublished(runtime, 5)

            await proxy.restore()
            await eventually(lambda: _count(deliveries, 6), timeout=30)
            await asyncio.sleep(1.0)  # room for a wrongly repeated publish to show up

            assert len(deliveries) == 6 and len(set(deliveries)) == 6
            assert await _unpublished(runtime, 0)
    finally:
        await watcher.close()
        await proxy.close()


async def _count(deliveries: list[str], expected: int) -> bool:
    return len(deliveries) >= expected


async def _true(value: bool) -> bool:
    return value


async def _unpublished(runtime: object, expected: int) -> bool:
    async with runtime.sessions() as session:  # type: ignore[attr-defined]
        waiting = await session.scalar(select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None)))
    return waiting == expected
